"""PKCE (RFC 7636) with the S256 method only: `plain` is never sent."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field

METHOD = "S256"


def challenge_for(verifier: str) -> str:
    """The S256 code challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class Pkce:
    """A code verifier (secret, kept out of reprs) and its S256 challenge."""

    verifier: str = field(repr=False)
    challenge: str
    method: str = METHOD


def new_pkce() -> Pkce:
    """A fresh verifier of 43 unreserved characters (32 random octets) and its challenge."""
    verifier = secrets.token_urlsafe(32)
    return Pkce(verifier, challenge_for(verifier))
