"""Reading response bodies: JSON with named failure kinds, HTML titles, OperationOutcome text."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

from probe.models import Exchange

MAX_JSON_DEPTH = 200
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_START = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_LOGIN_WORDS = ("login", "log in", "sign in", "signin", "sign-in", "password", "authenticate")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A body read as JSON: `data` when it is a JSON object, else `problem` names why not.

    `problem` is one of: empty, html, invalid_utf8, invalid_json, invalid_number, too_deep,
    not_object, truncated.
    """

    data: dict[str, Any] | None
    problem: str | None = None
    detail: str | None = None
    html_title: str | None = None

    @property
    def ok(self) -> bool:
        """True when the body was a JSON object."""
        return self.data is not None


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    """True when the body is an HTML page (by content type or by its first tag)."""
    if content_type and "html" in content_type.lower():
        return True
    return bool(_HTML_START.match(body[:512]))


def html_title(body: bytes) -> str | None:
    """The text of the page's <title>, whitespace collapsed, or None."""
    match = _TITLE.search(body[:65536])
    if not match:
        return None
    text = html.unescape(match.group(1).decode("utf-8", "replace"))
    return " ".join(text.split())[:200] or None


def is_login_page(body: bytes) -> bool:
    """True when an HTML page looks like a sign-in form (title or password field)."""
    head = body[:65536].lower()
    if b'type="password"' in head or b"type='password'" in head:
        return True
    title = (html_title(body) or "").lower()
    return any(word in title for word in _LOGIN_WORDS)


def _depth_exceeds(data: Any, limit: int) -> bool:
    """True when parsed JSON nests containers deeper than `limit`; iterative, no recursion.

    Walks the containers only (scalars are skipped), so it costs a fraction of the parse.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


#: Digits a JSON integer may have (FHIR integers are 32-bit; Python refuses past 4,300 digits).
MAX_INTEGER_DIGITS = 100


class _BadNumber(ValueError):
    """A JSON number probe will not hold: too long, not finite, or a NaN/Infinity constant."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _BadNumber(
            f"a JSON integer of {len(text.lstrip('-'))} digits (at most {MAX_INTEGER_DIGITS})"
        )
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadNumber(f"a JSON number out of range ({text[:40]}...)")
    return value


def _no_constant(name: str) -> float:
    raise _BadNumber(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def parse_json(exchange: Exchange, *, max_depth: int = MAX_JSON_DEPTH) -> Parsed:
    """Read an exchange's body as a JSON object, naming the problem when it is not one."""
    body = exchange.body
    if exchange.truncated:
        return Parsed(None, "truncated", f"body cut at {exchange.size_bytes} bytes")
    if not body.strip():
        return Parsed(None, "empty", "the response body is empty")
    if looks_like_html(body, exchange.content_type):
        title = html_title(body)
        return Parsed(None, "html", f"an HTML page{f' titled {title!r}' if title else ''}", title)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Parsed(None, "invalid_utf8", f"not UTF-8 at byte {exc.start}")
    try:
        data = json.loads(
            text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except _BadNumber as exc:
        return Parsed(None, "invalid_number", str(exc))
    except RecursionError:
        limit = f"{max_depth} levels" if max_depth else "the parser allows"
        return Parsed(None, "too_deep", f"JSON nested deeper than {limit}")
    except json.JSONDecodeError as exc:
        return Parsed(None, "invalid_json", f"invalid JSON at line {exc.lineno} col {exc.colno}")
    if not isinstance(data, dict):
        return Parsed(None, "not_object", f"JSON {type(data).__name__}, not an object")
    if max_depth and _depth_exceeds(data, max_depth):
        return Parsed(None, "too_deep", f"JSON nested deeper than {max_depth} levels")
    return Parsed(data)


def operation_outcome_text(data: dict[str, Any] | None) -> str | None:
    """A one-line summary of an OperationOutcome's issues (severity, code, text), or None."""
    if not data or data.get("resourceType") != "OperationOutcome":
        return None
    parts: list[str] = []
    for issue in data.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        text = (
            issue.get("diagnostics")
            or (details or {}).get("text")
            or next(
                (
                    c.get("display") or c.get("code")
                    for c in (details or {}).get("coding") or []
                    if isinstance(c, dict)
                ),
                None,
            )
        )
        label = "/".join(str(x) for x in (issue.get("severity"), issue.get("code")) if x)
        parts.append(f"{label or 'issue'}: {text}" if text else (label or "issue"))
    return "; ".join(parts)[:300] or "OperationOutcome with no issues"


def excerpt(body: bytes, limit: int = 200) -> str:
    """The start of a body as printable text, for evidence."""
    text = body[: limit * 4].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
