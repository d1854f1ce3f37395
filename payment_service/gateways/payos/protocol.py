"""payOS v2 payment requests: request signing and webhook/response verification.

Pure functions only (no network, env or DB) so the protocol can be tested
against the published vectors in GATEWAYS.md §2.5 and cross-checked with the
official ``payos`` SDK. The HTTP client lives in another layer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl, quote

from payment_service.gateways._wire import (
    Finality,
    VerifyResult,
    audit_view,
    hmac_hex,
    loose_json,
    loose_query,
    parse_json_object,
    rejected,
    same_hex,
    verified,
)

PAYOS_BASE_URL: Final = "https://api-merchant.payos.vn"
PAYMENT_REQUESTS_PATH: Final = "/v2/payment-requests"
PAYOS_CHECKOUT_BASE: Final = "https://pay.payos.vn/web"

# JS clients (the Node SDK, payOS's own pages) hold orderCode in a double.
ORDER_CODE_MAX: Final = 2**53 - 1
# The API rejects longer descriptions ("Mô tả tối đa 25 kí tự"). The docs add
# that it is limited to 9 characters when the receiving bank account is not
# linked through payOS; callers unsure of their account type should stay at 9.
DESCRIPTION_MAX_LEN: Final = 25
DESCRIPTION_UNLINKED_ACCOUNT_MAX_LEN: Final = 9


def short_description(text: str, limit: int = DESCRIPTION_MAX_LEN) -> str:
    """A description that fits payOS's limit without cutting the order
    number: "Thanh toan don hang 100015" (26) becomes "Don hang 100015"; a
    text without a trailing number is cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    last = text.rpartition(" ")[2]
    if last.isdigit():
        for candidate in (f"Don hang {last}", f"DH {last}", f"DH{last}", last):
            if len(candidate) <= limit:
                return candidate
        return last[-limit:]
    cut = text[: limit + 1].rpartition(" ")[0]
    return cut or text[:limit]


def parse_return(raw_query: bytes) -> dict[str, str]:
    """The query payOS puts on returnUrl/cancelUrl (code, id, cancel, status,
    orderCode). payOS does NOT sign it: show it, never act on it."""
    try:
        return dict(parse_qsl(raw_query.decode("utf-8"), keep_blank_values=True, max_num_fields=64))
    except (UnicodeDecodeError, ValueError):
        return {}


# expiredAt is documented as Int32 Unix seconds.
_INT32_MAX: Final = 2**31 - 1

# payOS's confirm-webhook flow sends a signed sample with this orderCode and
# needs a 2xx. build_create_payload never issues it, so the ping can never be
# mistaken for a real order.
REGISTRATION_PING_ORDER_CODE: Final = 123

PAYMENT_LINK_STATUSES: Final = frozenset(
    {"PENDING", "CANCELLED", "UNDERPAID", "PAID", "EXPIRED", "PROCESSING", "FAILED"}
)


@dataclass(frozen=True, kw_only=True)
class PayoutConfig:
    """payOS payout credentials: a separate channel with keys of its own
    (payos-lib-python examples/payout_operations.py), on the same API host."""

    client_id: str
    api_key: str = field(repr=False)
    checksum_key: str = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("client_id", "api_key", "checksum_key"):
            if not getattr(self, name):
                raise ValueError(f"PayoutConfig.{name} must not be empty")


@dataclass(frozen=True, kw_only=True)
class PayosConfig:
    client_id: str
    # repr=False keeps the secrets out of logs, tracebacks and debug output.
    api_key: str = field(repr=False)
    checksum_key: str = field(repr=False)
    base_url: str = PAYOS_BASE_URL
    return_url: str
    cancel_url: str
    # Where payOS serves a payment link: <base>/<paymentLinkId>.
    checkout_base: str = PAYOS_CHECKOUT_BASE
    # Refunds go out as payouts when set; None: manual refunds only.
    payout: PayoutConfig | None = None

    def __post_init__(self) -> None:
        # An empty key would still "sign" and only fail at payOS, far from the cause.
        for name in ("client_id", "api_key", "checksum_key", "base_url", "return_url", "cancel_url"):
            if not getattr(self, name):
                raise ValueError(f"PayosConfig.{name} must not be empty")


def request_headers(config: PayosConfig) -> dict[str, str]:
    """Authentication headers for every payOS merchant API call."""
    return {
        "x-client-id": config.client_id,
        "x-api-key": config.api_key,
        "Content-Type": "application/json",
    }


# --- signing --------------------------------------------------------------


def _hmac_sha256(data: str, key: str) -> str:
    return hmac_hex(data, key, key_name="payOS checksum key")


def create_request_signature(
    amount: int, cancel_url: str, description: str, order_code: int, return_url: str, key: str
) -> str:
    """``signature`` of a create request: HMAC-SHA256 over exactly these five
    fields, alphabetical, raw (not URL-encoded) values."""
    data = (
        f"amount={amount}&cancelUrl={cancel_url}&description={description}"
        f"&orderCode={order_code}&returnUrl={return_url}"
    )
    return _hmac_sha256(data, key)


def _render_value(key: str, value: Any) -> str:
    """One ``data`` value as payOS signs it; mirrors payos 1.1.0
    ``CryptoProvider.create_signature_from_object``."""
    if value is None:
        return ""
    if isinstance(value, list):
        # Each element's own keys are sorted (one level, as the SDKs do); the
        # rest keeps the order it arrived in.
        items = [{k: item[k] for k in sorted(item)} if isinstance(item, dict) else item for item in value]
        return json.dumps(items, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if isinstance(value, str):
        return "" if value in ("null", "undefined") else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        # payos 1.1.0 signs repr(dict) ("{'a': 1}"); the docs' JS sample signs
        # "[object Object]" (leaving the contents unsigned); third-party ports
        # use JSON. No payOS data carries one today; refuse rather than guess.
        raise ValueError(f"data.{key} is a nested object, which payOS signs inconsistently")
    raise ValueError(f"data.{key} has unsupported type {type(value).__name__}")


def data_signing_string(data: Mapping[str, Any]) -> str:
    """The string payOS signs for a webhook or response ``data`` object: every
    key sorted, ``key=value`` joined by ``&``, values raw UTF-8; None, "null"
    and "undefined" become ""; lists become compact JSON (non-ASCII kept).

    Raises ValueError for values payOS has no defined rendering for."""
    return "&".join(f"{key}={_render_value(key, data[key])}" for key in sorted(data))


def data_signature(data: Mapping[str, Any], key: str) -> str:
    """Lowercase hex HMAC-SHA256 of data_signing_string(data)."""
    return _hmac_sha256(data_signing_string(data), key)


def _checked_create_fields(order_code: int, amount: int, description: str, expired_at: datetime) -> int:
    """Raises ValueError for a create field payOS would reject; expiredAt in Unix seconds."""
    # bool is an int subclass; True must not become order 1 or a 1 VND payment.
    if isinstance(order_code, bool) or not isinstance(order_code, int):
        raise ValueError("order_code must be an integer")
    if not 1 <= order_code <= ORDER_CODE_MAX:
        raise ValueError(f"order_code must be between 1 and {ORDER_CODE_MAX}")
    if order_code == REGISTRATION_PING_ORDER_CODE:
        raise ValueError(f"order_code {REGISTRATION_PING_ORDER_CODE} is reserved for payOS's webhook test")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("amount must be a positive integer number of VND")
    if not description.strip():
        raise ValueError("description must not be empty")
    if len(description) > DESCRIPTION_MAX_LEN:
        raise ValueError(
            f"description is {len(description)} characters long; payOS allows at most "
            f"{DESCRIPTION_MAX_LEN} ({DESCRIPTION_UNLINKED_ACCOUNT_MAX_LEN} for unlinked bank accounts)"
        )
    if expired_at.tzinfo is None or expired_at.utcoffset() is None:
        raise ValueError("expired_at must be timezone-aware")
    expired_ts = int(expired_at.timestamp())
    if not 0 < expired_ts <= _INT32_MAX:
        raise ValueError("expired_at must fit in Int32 Unix seconds")
    return expired_ts


def build_create_payload(
    config: PayosConfig,
    *,
    order_code: int,
    amount: int,
    description: str,
    expired_at: datetime,
    return_url: str | None = None,
    cancel_url: str | None = None,
    buyer_name: str | None = None,
    buyer_company_name: str | None = None,
    buyer_tax_code: str | None = None,
    buyer_address: str | None = None,
    buyer_email: str | None = None,
    buyer_phone: str | None = None,
) -> dict[str, Any]:
    """Signed JSON body for ``POST /v2/payment-requests``. ``amount`` is integer VND.

    ``description`` may be up to 25 characters, but payOS documents a 9-character
    limit when the receiving bank account is not linked through payOS.
    Raises ValueError for any field payOS would reject."""
    expired_ts = _checked_create_fields(order_code, amount, description, expired_at)
    ret = return_url or config.return_url
    cancel = cancel_url or config.cancel_url

    payload: dict[str, Any] = {
        "orderCode": order_code,
        "amount": amount,
        "description": description,
        "returnUrl": ret,
        "cancelUrl": cancel,
        "expiredAt": expired_ts,
    }
    buyer = (
        ("buyerName", buyer_name),
        ("buyerCompanyName", buyer_company_name),
        ("buyerTaxCode", buyer_tax_code),
        ("buyerAddress", buyer_address),
        ("buyerEmail", buyer_email),
        ("buyerPhone", buyer_phone),
    )
    # Omitted, never sent as null: the buyer fields are not signed either way.
    payload.update((wire, value) for wire, value in buyer if value is not None)
    payload["signature"] = create_request_signature(
        amount, cancel, description, order_code, ret, config.checksum_key
    )
    return payload


def build_cancel_payload(config: PayosConfig, cancellation_reason: str | None = None) -> dict[str, Any]:
    """Body for ``POST /v2/payment-requests/{id}/cancel``, signed over the body
    like the Python SDK does (the Node SDK sends no signature)."""
    body: dict[str, Any] = {"cancellationReason": cancellation_reason} if cancellation_reason else {}
    body["signature"] = data_signature(body, config.checksum_key)
    return body


# --- webhook / response verification --------------------------------------


# verify_webhook / verify_data results: ``data`` is the signed object exactly
# as received (unknown fields kept). The envelope's own ``code``/``success``
# are not signed: use ``data["code"]``.
WebhookVerifyResult = VerifyResult


def verify_data(data: object, signature: object, key: str) -> WebhookVerifyResult:
    """Check ``signature`` over a ``data`` object as parsed from the wire.

    Pass the raw parsed dict, never a model re-serialised from it: a field
    payOS adds, or one it omits, must be signed exactly as sent."""
    if not isinstance(data, dict):
        return rejected("data is not a JSON object")
    if not isinstance(signature, str) or not signature:
        return rejected("missing signature", data)
    try:
        signing_string = data_signing_string(data)
    except ValueError as exc:
        return rejected(str(exc), data)
    if not same_hex(_hmac_sha256(signing_string, key), signature):
        return rejected("signature mismatch", data)
    return verified(data)


def verify_webhook(raw_body: bytes, key: str) -> WebhookVerifyResult:
    """Verify a payOS webhook body ``{code, desc, success, data, signature}``
    exactly as received.

    Create, get and cancel responses share that envelope, so this also checks
    their ``data`` once the caller has seen ``code == "00"``."""
    try:
        body = parse_json_object(raw_body)
    except (ValueError, RecursionError) as exc:
        return rejected(f"body is not a JSON object: {exc}")
    return verify_data(body.get("data"), body.get("signature"), key)


def is_registration_ping(data: Mapping[str, Any]) -> bool:
    """True for the sample payOS sends when a webhook URL is registered.

    Call only on verified data; answer it 2xx and apply nothing."""
    code = data.get("orderCode")
    return type(code) is int and code == REGISTRATION_PING_ORDER_CODE


# A payment link's status (GATEWAYS.md §2.1 status list, §2.4 GET, §7 "payOS"):
# PAID settles it; CANCELLED and EXPIRED can no longer take money (§7 "Cancel
# before payment"); FAILED is final; UNDERPAID means money arrived but not all
# of it (amountPaid/amountRemaining, §7): a person decides. Anything else,
# unknown statuses included, is not final.
LINK_STATUS_FINALITY: Final[Mapping[str, Finality]] = MappingProxyType(
    {
        "PAID": Finality.PAID,
        "CANCELLED": Finality.FAILED,
        "EXPIRED": Finality.FAILED,
        "FAILED": Finality.FAILED,
        "PENDING": Finality.PENDING,
        "PROCESSING": Finality.PENDING,
        "UNDERPAID": Finality.REVIEW,
    }
)


def link_finality(data: Mapping[str, Any]) -> Finality:
    """What a payment link (GET/cancel answer ``data``) says; money paid on a
    link that is not PAID is REVIEW, whatever its status."""
    finality = LINK_STATUS_FINALITY.get(str(data.get("status")), Finality.NOT_FINAL)
    paid = data.get("amountPaid")
    if finality != Finality.PAID and type(paid) is int and paid > 0:
        return Finality.REVIEW
    return finality


def webhook_finality(data: Mapping[str, Any]) -> Finality:
    """payOS sends its webhook when money arrives (§2.3): ``data.code`` "00"
    is a payment; any other code is not a final answer (ask with GET)."""
    return Finality.PAID if data.get("code") == "00" else Finality.NOT_FINAL


def is_successful_payment(data: Mapping[str, Any]) -> bool:
    """A webhook reports a payment only when the signed ``data.code`` is "00"."""
    return data.get("code") == "00"


# --- the callback journal's view --------------------------------------------

_AUDIT_KEEP: Final = frozenset(
    {
        "code",
        "desc",
        "success",
        "signature",
        "id",
        "cancel",
        "status",
        "orderCode",
        "data.orderCode",
        "data.amount",
        "data.reference",
        "data.transactionDateTime",
        "data.currency",
        "data.paymentLinkId",
        "data.code",
        "data.desc",
        "data.counterAccountBankId",
        "data.counterAccountBankName",
    }
)
# Bank account numbers: the last digits only.
_AUDIT_PARTIAL: Final = frozenset(
    {"data.accountNumber", "data.counterAccountNumber", "data.virtualAccountNumber"}
)


def audit_fields(raw_body: bytes, raw_query: bytes) -> dict[str, str]:
    """What the journal keeps of a payOS webhook (body) or return (query):
    order code, amount, references, codes; the payer's name and the
    description masked, account numbers down to their last digits."""
    if not raw_body:
        return audit_view(loose_query(raw_query), _AUDIT_KEEP)
    body = loose_json(raw_body)
    fields: dict[str, Any] = {k: v for k, v in body.items() if k != "data"}
    data = body.get("data")
    if isinstance(data, dict):
        fields.update({f"data.{k}": v for k, v in data.items()})
    return audit_view(fields, _AUDIT_KEEP, _AUDIT_PARTIAL)


# --- payouts (refunds) --------------------------------------------------------

# payOS has no refund API: money goes back by a payout to the payer's
# account (GATEWAYS.md §7). payos-lib-python 1.1.0 resources/v1/payouts:
# create is POST /v1/payouts with x-idempotency-key and the body signed in an
# x-signature header; get is GET /v1/payouts/{id}; the list filters by
# referenceId. Answers carry {code, desc, data}, data signed in x-signature.
PAYOUTS_PATH: Final = "/v1/payouts"
PAYOUT_CATEGORY: Final = "refund"
# A payout transaction's states (types/v1/payouts PayoutTransactionState).
PAYOUT_SUCCEEDED: Final = "SUCCEEDED"
PAYOUT_FAILED_STATES: Final = frozenset({"FAILED", "CANCELLED", "REVERSED"})
PAYOUT_PENDING_STATES: Final = frozenset({"RECEIVED", "PROCESSING", "ON_HOLD"})
# A payout's approval failed as a whole (types/v1/payouts PayoutApprovalState).
PAYOUT_APPROVAL_FAILED: Final = frozenset({"REJECTED", "CANCELLED", "FAILED"})
# Answer codes. Not in GATEWAYS.md or the SDK: the simulator's choice, as
# for payment links ("231" exists, "20" bad request, "201" bad signature);
# check them against payOS before going live. A refused payout is final;
# any other code leaves the refund pending (asked again, same key).
PAYOUT_DUPLICATE: Final = "231"
PAYOUT_REFUSED: Final = frozenset({"20", "214"})
PAYOUT_TRANSACTION_STATES: Final = PAYOUT_PENDING_STATES | PAYOUT_FAILED_STATES | {PAYOUT_SUCCEEDED}


def _deep_sorted(value: Any) -> Any:
    """Every object's keys sorted, at any depth; lists keep their order."""
    if isinstance(value, Mapping):
        return {key: _deep_sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_deep_sorted(item) for item in value]
    return value


def _header_value(value: Any) -> str:
    if isinstance(value, list | Mapping):
        return json.dumps(_deep_sorted(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def header_signing_string(data: Mapping[str, Any]) -> str:
    """The string payOS's payout API signs (request body and answer
    ``data``, in the x-signature header): keys sorted, nested objects sorted
    at every depth and rendered as compact JSON (non-ASCII kept), None as "",
    booleans as true/false, then key and value each percent-encoded
    (urllib.parse.quote) and joined as ``k=v&k=v``. Mirrors payos 1.1.0
    ``CryptoProvider.create_signature`` with its defaults."""
    return "&".join(f"{quote(str(key))}={quote(_header_value(data[key]))}" for key in sorted(data))


def header_signature(data: Mapping[str, Any], key: str) -> str:
    """Lowercase hex HMAC-SHA256 of header_signing_string(data)."""
    return hmac_hex(header_signing_string(data), key, key_name="payOS payout checksum key")


def verify_header_signature(data: object, signature: str, key: str) -> WebhookVerifyResult:
    """Check a payout answer's ``data`` against its x-signature header."""
    if not isinstance(data, dict):
        return rejected("data is not a JSON object")
    if not signature:
        return rejected("missing x-signature", data)
    if not same_hex(header_signature(data, key), signature):
        return rejected("signature mismatch", data)
    return verified(data)


def payout_idempotency_key(key: str) -> str:
    """x-idempotency-key from our refund's key (32 hex): the same refund is
    always the same request, so an answer lost after acceptance never pays twice."""
    return str(uuid.UUID(hex=key))


def build_payout(
    *, reference_id: str, amount: int, description: str, to_bin: str, to_account_number: str
) -> dict[str, Any]:
    """The body of ``POST /v1/payouts``. Raises ValueError for a field payOS would reject."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("amount must be a positive integer number of VND")
    if not reference_id:
        raise ValueError("reference_id must not be empty")
    if not (to_bin.isdigit() and len(to_bin) == 6):
        raise ValueError(f"to_bin must be a 6-digit bank BIN, not {to_bin!r}")
    if not (to_account_number.isalnum() and 1 <= len(to_account_number) <= 32):
        raise ValueError("to_account_number must be a bank account number")
    return {
        "referenceId": reference_id,
        "amount": amount,
        "description": description[:DESCRIPTION_MAX_LEN] or "Hoan tien",
        "toBin": to_bin,
        "toAccountNumber": to_account_number,
        "category": [PAYOUT_CATEGORY],
    }


def payout_headers(
    config: PayoutConfig, body: Mapping[str, Any] | None, idempotency_key: str = ""
) -> dict[str, str]:
    """Authentication headers of a payout call; a body is signed in x-signature."""
    headers = {"x-client-id": config.client_id, "x-api-key": config.api_key}
    if idempotency_key:
        headers["x-idempotency-key"] = idempotency_key
    if body is not None:
        headers["x-signature"] = header_signature(body, config.checksum_key)
    return headers


def payout_state(payout: Mapping[str, Any], reference_id: str) -> tuple[str, Mapping[str, Any]]:
    """The state of the payout's transaction for ``reference_id`` (a single
    payout has one), and that transaction; ("", {}) when there is none."""
    for item in payout.get("transactions") or []:
        if isinstance(item, Mapping) and item.get("referenceId") in (reference_id, None):
            return str(item.get("state", "")), item
    return "", {}


def payer_account(data: Mapping[str, Any]) -> tuple[str, str]:
    """(BIN, account number) of the account a payment came from, as a
    verified webhook ``data`` reports it; ("", "") when payOS did not say
    (sandbox transfers leave them empty)."""
    bin_ = str(data.get("counterAccountBankId") or "").strip()
    number = str(data.get("counterAccountNumber") or "").strip()
    if not (bin_.isdigit() and len(bin_) == 6 and number.isalnum()):
        return "", ""
    return bin_, number
