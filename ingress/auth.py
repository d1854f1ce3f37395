"""Development identity: an RS256 key pair in DATA_DIR, the JWKS the
ingress validates tokens against, and tokens for `payments token`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "payments-dev"
AUDIENCE = "payments"
KEY_ID = "dev-1"


@dataclass(frozen=True)
class DevKeys:
    private_pem: bytes
    jwks: dict[str, Any]

    def token(
        self,
        user: str,
        *,
        ttl_seconds: int = 3600,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        admin: bool = False,
    ) -> str:
        """`admin`: with the claim the ingress requires for /admin/v1/."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user,
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
        }
        if admin:
            claims["admin"] = True
        return jwt.encode(claims, self.private_pem, algorithm="RS256", headers={"kid": KEY_ID})


def generate_keys() -> DevKeys:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": KEY_ID, "alg": "RS256", "use": "sig"})
    return DevKeys(private_pem=pem, jwks={"keys": [public]})


def load_or_create(data_dir: Path) -> DevKeys:
    """The key pair in data_dir/auth, created on first use (private key 0600)."""
    folder = data_dir / "auth"
    private, jwks = folder / "dev-private-key.pem", folder / "jwks.json"
    if private.exists() and jwks.exists():
        return DevKeys(private.read_bytes(), json.loads(jwks.read_text()))
    keys = generate_keys()
    folder.mkdir(parents=True, exist_ok=True)
    private.touch(mode=0o600)
    private.write_bytes(keys.private_pem)
    jwks.write_text(json.dumps(keys.jwks, indent=2))
    return keys
