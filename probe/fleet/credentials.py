"""The credentials each simulated payer registers for the fleet's one client, derived from the seed.

Client secrets, refresh tokens and static bearer tokens are seeded hashes; ES384 private keys are
derived from the seed too (deterministic PEM). RS384 keys cannot be derived that way and are
generated once per process (so only RS384 payers' keys differ between runs).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from probe.fleet.config import ClientAuth, PayerConfig, derive

_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


@dataclass(frozen=True, slots=True)
class PayerCredentials:
    """What the fleet's client holds for one payer (secrets included: never print these)."""

    client_id: str
    auth: ClientAuth
    client_secret: str
    refresh_token: str
    bearer_token: str
    private_key_pem: str
    key_id: str
    algorithm: str

    def public_key(self) -> Any:
        """The client's registered public key (what the server verifies assertions with)."""
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        return key.public_key()


def _token(seed: int, *parts: object) -> str:
    return base64.urlsafe_b64encode(derive(seed, *parts)).decode().rstrip("=")


@cache
def _ec_key_pem(seed: int, slug: str) -> str:
    value = int.from_bytes(derive(seed, slug, "ec-key") + derive(seed, slug, "ec-key-2"), "big")
    key = ec.derive_private_key(value % (_P384_ORDER - 1) + 1, ec.SECP384R1())
    return _pem(key)


@cache
def _rsa_key_pem(seed: int, slug: str) -> str:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def payer_credentials(seed: int, payer: PayerConfig) -> PayerCredentials:
    """The (deterministic) credentials of the fleet's client at this payer."""
    slug = payer.slug
    algorithm = payer.oauth.key_algorithm
    needs_key = payer.oauth.client_auth == "private_key_jwt"
    if not needs_key:
        pem = ""
    elif algorithm == "ES384":
        pem = _ec_key_pem(seed, slug)
    else:
        pem = _rsa_key_pem(seed, slug)
    return PayerCredentials(
        client_id=f"fleet-client-{slug}",
        auth=payer.oauth.client_auth,
        client_secret="cs-" + _token(seed, slug, "client-secret"),
        refresh_token="rt-" + _token(seed, slug, "refresh-token"),
        bearer_token="at-" + _token(seed, slug, "static-bearer"),
        private_key_pem=pem,
        key_id=f"{slug}-key-1",
        algorithm=algorithm,
    )


@cache
def issuer_key(seed: int) -> ec.EllipticCurvePrivateKey:
    """The fleet's own ES384 key that signs id_tokens (published at each payer's jwks_uri)."""
    value = int.from_bytes(derive(seed, "issuer") + derive(seed, "issuer-2"), "big")
    return ec.derive_private_key(value % (_P384_ORDER - 1) + 1, ec.SECP384R1())
