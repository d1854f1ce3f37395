"""What every gateway protocol shares on the wire: the one HMAC helper, the
one strict JSON parser and the one verification result. Pure; the gateways'
protocol modules and the simulator sign and parse through these."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

Digest = Literal["sha256", "sha512"]


class Finality(StrEnum):
    """What a gateway's answer says about the transaction, as each gateway's
    code table (in its protocol module) classifies its codes. Only PAID and
    FAILED settle a payment; REVIEW means money was taken but not cleanly (a
    person decides); PENDING and NOT_FINAL leave the payment as it is."""

    PAID = "paid"
    FAILED = "failed"  # final for the transaction: it can no longer take money
    PENDING = "pending"  # the transaction is still open
    NOT_FINAL = "not_final"  # the answer is about the request (or unknown), not the transaction
    REVIEW = "review"  # money moved, but not cleanly


def hmac_hex(data: str, key: str, digest: Digest = "sha256", *, key_name: str = "") -> str:
    """Lowercase hex HMAC of ``data`` (UTF-8) under ``key`` (UTF-8).

    With ``key_name``, an empty key is refused: it would still "sign" and only
    fail at the gateway, far from the cause."""
    if key_name and not key:
        raise ValueError(f"{key_name} must not be empty")
    algorithm = hashlib.sha512 if digest == "sha512" else hashlib.sha256
    return hmac.new(key.encode("utf-8"), data.encode("utf-8"), algorithm).hexdigest()


def same_hex(expected: str, received: str) -> bool:
    """Constant-time comparison of our lowercase hex digest with the one
    received (any case). Bytes, because compare_digest raises TypeError on
    non-ASCII str input."""
    return hmac.compare_digest(expected.encode("ascii"), received.lower().encode("utf-8", "replace"))


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            # Parsers disagree on which duplicate wins; refuse to guess.
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_loads(text: str) -> Any:
    """json.loads that refuses duplicate keys and NaN/Infinity.

    Raises ValueError (or RecursionError for absurd nesting)."""
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def parse_json_object(raw_body: bytes) -> dict[str, Any]:
    """A request body as a JSON object, strictly (see strict_loads).

    Raises ValueError (or RecursionError) when it is anything else."""
    value = strict_loads(raw_body.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("body is not a JSON object")
    return value


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking a gateway's signature.

    ``data`` holds the signed fields as received (without the signature), so
    a caller can log e.g. the order reference; it is attacker-controlled
    unless ``valid``."""

    valid: bool
    data: dict[str, Any]
    reason: str | None


def verified(data: dict[str, Any]) -> VerifyResult:
    return VerifyResult(True, data, None)


def rejected(reason: str, data: dict[str, Any] | None = None) -> VerifyResult:
    return VerifyResult(False, {} if data is None else data, reason)
