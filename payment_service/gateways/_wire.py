"""What every gateway protocol shares on the wire: the one HMAC helper, the
one strict JSON parser and the one verification result. Pure; the gateways'
protocol modules and the simulator sign and parse through these."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import parse_qsl

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


# --- the journal's view of a callback: audit fields kept, shopper data masked ---

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS = re.compile(r"\d[\d .-]{6,}\d")  # phone, card and account numbers
AUDIT_VALUE_MAX = 200


def keep_last(value: Any, keep: int = 4) -> str:
    """A card or account number as an audit may see it: ****6789."""
    text = str(value)
    return "*" * max(len(text) - keep, 0) + text[-keep:] if len(text) > keep else "*" * len(text)


def masked(value: Any) -> str:
    """Free text, names, addresses: only that something of this size was there."""
    return f"<masked {len(str(value))} chars>"


def scrub(text: str) -> str:
    """Masks e-mail addresses and long digit runs (phones, cards, accounts)
    in text nobody parsed: what an unverified request keeps."""
    text = _EMAIL.sub("<email>", text)
    return _DIGITS.sub(lambda m: keep_last(re.sub(r"\D", "", m.group()), 2), text)


def audit_view(
    fields: Mapping[str, Any], keep: Collection[str], partial: Collection[str] = ()
) -> dict[str, str]:
    """Each field as the journal keeps it: the audit fields as they are
    (bounded), numbers in `partial` down to their last digits, anything else
    (free text, names, phones, fields we do not know) masked."""
    view: dict[str, str] = {}
    for name, value in fields.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if name in keep:
            view[name] = text[:AUDIT_VALUE_MAX]
        elif name in partial:
            view[name] = keep_last(text)
        else:
            view[name] = masked(text)
    return view


def loose_json(raw: bytes) -> dict[str, Any]:
    """A JSON object for the journal's view, {} for anything else (never raises)."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def loose_query(raw: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=128))
    except ValueError:
        return {}
