"""Keeping secrets out of URLs, messages and stored observations.

Two defences, applied together:

- **Known secrets.** Every secret value probe holds (a resolved token, client secret, refresh
  token, private key, an access token a server issued, a signed client assertion) is
  registered in :data:`KNOWN_SECRETS` as soon as it is in memory. The registry derives the
  encodings a server could echo it in (raw, URL-encoded, base64, JSON-escaped, the pieces of a
  value split by CR/LF, the base64 ``client_id:secret`` of ``client_secret_basic``), and
  :func:`scrub_secrets` replaces every one of them wherever text is stored or printed.
- **Secret-shaped text.** URL user info, the values of query parameters that carry secrets,
  and ``Bearer``/``Basic`` credentials are replaced whether or not the value is known.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

SECRET_QUERY_PARAMS = frozenset(
    {
        "access_token",
        "token",
        "id_token",
        "refresh_token",
        "code",
        "client_secret",
        "client_assertion",
        "password",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
        "state",
        "jwt",
        "assertion",
    }
)
REDACTED = "REDACTED"
#: Secrets shorter than this are not scrubbed from text: they would match ordinary words.
MIN_SECRET_LENGTH = 6
#: A piece of a secret split by CR/LF is scrubbed on its own when at least this long.
MIN_PIECE_LENGTH = 8
#: A secret of more lines than this (a PEM key) is not scrubbed line by line.
MAX_PIECES = 4
#: Forms registered since the last compilation are looked for one by one, up to this many.
PENDING_FORMS = 64

_AUTH_SCHEME = re.compile(r"(?i)\b(Bearer|Basic)(\s+|%20|\+)([A-Za-z0-9\-._~+/]{16,}=*)")


def _encodings(value: str) -> set[str]:
    """The forms in which `value` may come back from a server."""
    forms = {value, quote(value, safe=""), quote_plus(value), value.replace("/", "\\/")}
    raw = value.encode("utf-8", "surrogatepass")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        forms |= {text, text.rstrip("=")}
    escaped = value.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
    forms.add(escaped)
    pieces = [p for p in re.split(r"[\r\n]+", value) if len(p) >= MIN_PIECE_LENGTH]
    # A token split by CR/LF (a header injection) has a few pieces; a PEM key, which never
    # leaves probe (only signatures do), is scrubbed whole and its lines are not listed.
    if 1 < len(pieces) <= MAX_PIECES or (len(pieces) == 1 and pieces[0] != value):
        for piece in pieces:
            forms |= {piece, quote(piece, safe="")}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _trie_pattern(forms: set[str]) -> str:
    """One regular expression matching any of `forms`, longest first, built as a trie (with
    single-child chains merged) so that matching costs about the same however many forms
    there are."""
    trie: dict[str, Any] = {}
    for form in forms:
        node = trie
        for char in form:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = []
        for char, child in sorted(node.items()):
            if not char:
                continue
            run = [char]
            while len(child) == 1 and "" not in child:  # a chain: no branch, no end
                ((char, child),) = child.items()
                run.append(char)
            branches.append(re.escape("".join(run)) + build(child))
        if not branches:
            return ""
        if len(branches) == 1 and "" not in node:
            return branches[0]
        return "(?:" + "|".join(branches) + ")" + ("?" if "" in node else "")

    try:
        return build(trie)
    except RecursionError:  # pathological nesting: a plain alternation, longest first
        ordered = sorted(forms, key=len, reverse=True)
        return "|".join(re.escape(f) for f in ordered)


class SecretScrubber:
    """A thread-safe set of live secret values, each with its encodings, and their removal.

    Forms are kept in three tiers so that registering a token during a crawl stays cheap and
    scrubbing stays fast: the newest (up to :data:`PENDING_FORMS`) are looked for one by one, a
    small compiled trie holds those since the last merge, and a large compiled trie, rebuilt
    only when the small one outgrows half of it, holds the rest.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._known: set[str] = set()
        self._pending: tuple[str, ...] = ()
        self._small: set[str] = set()
        self._big: set[str] = set()
        self._big_pattern: re.Pattern[str] | None = None
        self._patterns: tuple[re.Pattern[str], ...] = ()

    def __len__(self) -> int:
        return len(self._values)

    def register(self, value: str | None) -> None:
        """Remember `value` (and every encoding of it) as a secret; trivial values are ignored."""
        if not value or len(value) < MIN_SECRET_LENGTH or value in self._values:
            return
        forms = _encodings(value)
        with self._lock:
            self._values.add(value)
            new = forms - self._known
            if not new:
                return
            self._known |= new
            pending = self._pending + tuple(sorted(new, key=len, reverse=True))
            if len(pending) <= PENDING_FORMS:
                self._pending = pending
                return
            self._small |= set(pending)
            if len(self._small) > max(1024, len(self._big) // 2):
                self._big |= self._small
                self._small = set()
                self._big_pattern = re.compile(_trie_pattern(self._big))
            small = [re.compile(_trie_pattern(self._small))] if self._small else []
            big = [self._big_pattern] if self._big_pattern is not None else []
            self._patterns = tuple(big + small)  # first the patterns, then the pending forms go
            self._pending = ()

    def register_basic(self, client_id: str, secret: str | None) -> None:
        """Remember the ``client_secret_basic`` credential of `client_id` and `secret`."""
        if not secret:
            return
        self.register(secret)
        pairs = (f"{quote(client_id, safe='')}:{quote(secret, safe='')}", f"{client_id}:{secret}")
        for pair in pairs:
            self.register(base64.b64encode(pair.encode("utf-8", "surrogatepass")).decode("ascii"))

    def forget_all(self) -> None:
        """Drop every registered secret (tests, or a process that starts over)."""
        with self._lock:
            self._values.clear()
            self._known.clear()
            self._pending = ()
            self._small.clear()
            self._big.clear()
            self._big_pattern = None
            self._patterns = ()

    def scrub(self, text: str) -> str:
        """`text` with every registered secret, in every encoding, replaced by REDACTED."""
        if not text:
            return text
        for pattern in self._patterns:
            text = pattern.sub(REDACTED, text)
        for form in self._pending:  # longest first within each registration
            if form in text:
                text = text.replace(form, REDACTED)
        return text


#: The process's registry of live secrets (the sync's authorizer and the directory's
#: SecretSource register into it; the store and the CLI scrub with it).
KNOWN_SECRETS = SecretScrubber()


def register_secret(value: str | None) -> None:
    """Register a secret value in :data:`KNOWN_SECRETS`."""
    KNOWN_SECRETS.register(value)


def scrub_secrets(text: str) -> str:
    """`text` without any known secret and without ``Bearer``/``Basic`` credentials."""
    text = KNOWN_SECRETS.scrub(text)
    if "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text:
        text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return text


def redact_url(url: str) -> str:
    """The URL with user info, known secrets and the values of secret query parameters replaced."""
    url = KNOWN_SECRETS.scrub(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in pairs],
                safe="*:/",
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of each (non-trivial) secret, and every known secret,
    replaced by REDACTED."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return scrub_secrets(text)
