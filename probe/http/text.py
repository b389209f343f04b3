"""Server-supplied text made safe to show: no control characters, no bidi overrides.

A server's strings (a CapabilityStatement's ``software.name``, an OperationOutcome's text, a
next link) reach terminals, logs, XML and Markdown. This module holds the pure cleaning that
every output shares; escaping for a particular format (rich markup, XML, Markdown) is done by
the code that writes that format.
"""

from __future__ import annotations

import re

#: What replaces a character that must not be shown.
REPLACEMENT = "\ufffd"

# C0 controls except TAB and LF, DEL, C1 controls, the bidi embedding/override/isolate marks
# (U+202A-U+202E, U+2066-U+2069) and lone surrogates, which no encoder accepts.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# XML 1.0 allows TAB, LF and CR only among C0 (and no surrogates, U+FFFE or U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with control characters, bidi overrides and lone surrogates replaced.

    TAB and LF are kept unless `one_line`, which replaces them too (log lines, table cells).
    """
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(REPLACEMENT, text)


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids even when escaped, and without the
    terminal controls :func:`printable` removes."""
    return _NOT_XML.sub(REPLACEMENT, printable(text))


def without_nul(text: str) -> str:
    """`text` without NUL characters and with lone surrogates replaced: what every database
    and UTF-8 encoder accepts."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _SURROGATE.search(text) is not None:
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")
