"""Ending a one-shot command's process without the interpreter's teardown.

A process that synced a patient holds hundreds of thousands of objects (imported modules,
pydantic and httpx machinery, parsed pages); at a normal exit the interpreter clears every
module and collects them, a tenth of a second or more the user waits for after the last line
is printed. A command whose work is done (everything written, files closed, output printed)
calls :func:`skip_teardown`; the entry point (:func:`probe.cli.app.main`) then flushes
standard output and error and ends the process with ``os._exit``. Only the console entry point
does this: a command invoked in-process (tests, ``CliRunner``) returns normally.

:func:`pause_gc` turns the cyclic garbage collector off for the rest of such a command: its data
(JSON trees) is freed by reference counting, and a bounded sync creates few reference cycles, so
the collector's repeated scans of every live object are pure cost there.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys

_requested = False


def skip_teardown() -> None:
    """Ask the entry point to end the process right after flushing output (no teardown)."""
    global _requested
    _requested = True


def pause_gc() -> None:
    """Stop cyclic garbage collection for the rest of this one-shot command."""
    gc.disable()


def end_now_if_asked(code: int) -> None:
    """Flush logging, standard output and error, then end the process with `code`, if a command
    asked (:func:`skip_teardown`); otherwise return."""
    if not _requested:
        return
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
