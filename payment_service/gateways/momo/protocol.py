"""MoMo AIO v2 (captureWallet): request signing and IPN verification.

Pure functions only (no network, env or DB) so the protocol can be tested
against the vectors in GATEWAYS.md §3.5. The HTTP client lives in another layer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl

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

MOMO_TEST_ENDPOINT: Final = "https://test-payment.momo.vn"
MOMO_PROD_ENDPOINT: Final = "https://payment.momo.vn"
CREATE_PATH: Final = "/v2/gateway/api/create"
QUERY_PATH: Final = "/v2/gateway/api/query"
REFUND_PATH: Final = "/v2/gateway/api/refund"
# MoMo wants HTTP 204 No Content for an IPN, within 15 s.
IPN_ACK_STATUS: Final = 204

AMOUNT_MIN: Final = 1_000
AMOUNT_MAX: Final = 50_000_000
# The spec says String(255); MoMo said 200 in momo-wallet/php#4, so stay under.
ORDER_INFO_MAX_LEN: Final = 199
_ORDER_ID_RE: Final = re.compile(r"[0-9a-zA-Z]([-_.]*[0-9a-zA-Z]+)*")
_ORDER_ID_MAX_LEN: Final = 200
_REQUEST_ID_MAX_LEN: Final = 50

# Signed field lists, in the exact order MoMo builds the raw string.
CREATE_FIELDS: Final = (
    "accessKey",
    "amount",
    "extraData",
    "ipnUrl",
    "orderId",
    "orderInfo",
    "partnerCode",
    "redirectUrl",
    "requestId",
    "requestType",
)
IPN_FIELDS: Final = (
    "accessKey",
    "amount",
    "extraData",
    "message",
    "orderId",
    "orderInfo",
    "orderType",
    "partnerCode",
    "payType",
    "requestId",
    "responseTime",
    "resultCode",
    "transId",
)
QUERY_FIELDS: Final = ("accessKey", "orderId", "partnerCode", "requestId")
REFUND_FIELDS: Final = (
    "accessKey",
    "amount",
    "description",
    "orderId",
    "partnerCode",
    "requestId",
    "transId",
)


@dataclass(frozen=True, kw_only=True)
class MomoConfig:
    partner_code: str
    # repr=False keeps the keys out of logs, tracebacks and debug output.
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    endpoint: str = MOMO_TEST_ENDPOINT
    redirect_url: str
    ipn_url: str
    request_type: str = "captureWallet"
    lang: str = "vi"

    def __post_init__(self) -> None:
        for name in ("partner_code", "access_key", "secret_key", "endpoint", "redirect_url", "ipn_url"):
            if not getattr(self, name):
                raise ValueError(f"MomoConfig.{name} must not be empty")
        if self.lang not in ("vi", "en"):
            raise ValueError(f"MomoConfig.lang must be 'vi' or 'en', got {self.lang!r}")


# --- signing --------------------------------------------------------------


def raw_signature_string(fields: Sequence[tuple[str, str]]) -> str:
    """``k=v`` joined by ``&`` in the given order, values raw (never URL-encoded)."""
    return "&".join(f"{key}={value}" for key, value in fields)


def _hmac_sha256(data: str, key: str) -> str:
    # UTF-8: the official Python sample's bytes(raw, 'ascii') crashes on Vietnamese text.
    return hmac_hex(data, key, key_name="MoMo secret key")


def create_signature(
    *,
    access_key: str,
    amount: int,
    extra_data: str,
    ipn_url: str,
    order_id: str,
    order_info: str,
    partner_code: str,
    redirect_url: str,
    request_id: str,
    request_type: str,
    secret_key: str,
) -> str:
    values = (
        access_key,
        str(amount),
        extra_data,
        ipn_url,
        order_id,
        order_info,
        partner_code,
        redirect_url,
        request_id,
        request_type,
    )
    return _hmac_sha256(raw_signature_string(list(zip(CREATE_FIELDS, values, strict=True))), secret_key)


def query_signature(
    *, access_key: str, order_id: str, partner_code: str, request_id: str, secret_key: str
) -> str:
    values = (access_key, order_id, partner_code, request_id)
    return _hmac_sha256(raw_signature_string(list(zip(QUERY_FIELDS, values, strict=True))), secret_key)


def refund_signature(
    *,
    access_key: str,
    amount: int,
    description: str,
    order_id: str,
    partner_code: str,
    request_id: str,
    trans_id: int,
    secret_key: str,
) -> str:
    values = (access_key, str(amount), description, order_id, partner_code, request_id, str(trans_id))
    return _hmac_sha256(raw_signature_string(list(zip(REFUND_FIELDS, values, strict=True))), secret_key)


# --- request payloads -----------------------------------------------------


def _check_amount(amount: int) -> None:
    # bool is an int subclass; True must not become a 1 VND payment.
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError("amount must be an integer number of VND")
    if not AMOUNT_MIN <= amount <= AMOUNT_MAX:
        raise ValueError(f"amount must be between {AMOUNT_MIN:,} and {AMOUNT_MAX:,} VND")


def _check_order_id(order_id: str) -> None:
    if len(order_id) > _ORDER_ID_MAX_LEN or not _ORDER_ID_RE.fullmatch(order_id):
        raise ValueError(
            "order_id must be 1-200 ASCII letters/digits, optionally joined by - _ . "
            "(MoMo's ^[0-9a-zA-Z]([-_.]*[0-9a-zA-Z]+)*$)"
        )


def _check_request_id(request_id: str) -> None:
    # Signed raw: '&' or '=' would make the k=v&k=v string ambiguous.
    if not 1 <= len(request_id) <= _REQUEST_ID_MAX_LEN or not request_id.isascii():
        raise ValueError("request_id must be 1-50 ASCII characters")
    if any(ch in request_id for ch in "&= ") or not request_id.isprintable():
        raise ValueError("request_id must not contain '&', '=', spaces or control characters")


def order_info_problem(text: str) -> str | None:
    """Why MoMo can't take ``text`` as orderInfo, or None if fine."""
    if not text.strip():
        return "order info is empty"
    if len(text) > ORDER_INFO_MAX_LEN:
        return f"order info is {len(text)} characters long; keep it under {ORDER_INFO_MAX_LEN + 1}"
    # Values are signed raw, so these corrupt the k=v&k=v string (momo-wallet/php#3).
    for ch in "&=":
        if ch in text:
            return f"order info must not contain {ch!r}"
    if not text.isprintable():
        return "order info must not contain control characters"
    return None


def encode_extra_data(obj: Mapping[str, Any]) -> str:
    """extraData as MoMo wants it: base64 of a JSON object."""
    text = json.dumps(dict(obj), separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _check_extra_data(extra_data: str) -> None:
    if not extra_data:
        return
    try:
        decoded = json.loads(base64.b64decode(extra_data, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("extra_data must be '' or base64 of a JSON object") from exc
    if not isinstance(decoded, dict):
        raise ValueError("extra_data must be '' or base64 of a JSON object")


def build_create_payload(
    config: MomoConfig,
    *,
    order_id: str,
    request_id: str,
    amount: int,
    order_info: str,
    extra_data: str = "",
    redirect_url: str | None = None,
    ipn_url: str | None = None,
    order_expire_minutes: int | None = None,
) -> dict[str, Any]:
    """Signed JSON body for ``POST /v2/gateway/api/create``. ``amount`` is integer VND.

    ``request_id`` is MoMo's idempotency key: reuse it only to retry the same
    request. accessKey is signed but never sent. Raises ValueError for any field
    MoMo would reject or sign differently."""
    _check_order_id(order_id)
    _check_request_id(request_id)
    _check_amount(amount)
    if problem := order_info_problem(order_info):
        raise ValueError(f"order_info: {problem}")
    _check_extra_data(extra_data)
    redirect = redirect_url or config.redirect_url
    ipn = ipn_url or config.ipn_url
    signature = create_signature(
        access_key=config.access_key,
        amount=amount,
        extra_data=extra_data,
        ipn_url=ipn,
        order_id=order_id,
        order_info=order_info,
        partner_code=config.partner_code,
        redirect_url=redirect,
        request_id=request_id,
        request_type=config.request_type,
        secret_key=config.secret_key,
    )
    return {
        "partnerCode": config.partner_code,
        "requestId": request_id,
        "amount": amount,
        "orderId": order_id,
        "orderInfo": order_info,
        "redirectUrl": redirect,
        "ipnUrl": ipn,
        "requestType": config.request_type,
        "extraData": extra_data,
        "lang": config.lang,
        "signature": signature,
        # How long the payUrl stays payable, in minutes (not signed; GATEWAYS.md §7).
        **({"orderExpireTime": order_expire_minutes} if order_expire_minutes is not None else {}),
    }


def build_query_payload(config: MomoConfig, *, order_id: str, request_id: str) -> dict[str, Any]:
    """Signed JSON body for ``POST /v2/gateway/api/query`` (a fresh request_id)."""
    _check_order_id(order_id)
    _check_request_id(request_id)
    signature = query_signature(
        access_key=config.access_key,
        order_id=order_id,
        partner_code=config.partner_code,
        request_id=request_id,
        secret_key=config.secret_key,
    )
    return {
        "partnerCode": config.partner_code,
        "requestId": request_id,
        "orderId": order_id,
        "lang": config.lang,
        "signature": signature,
    }


def build_refund_payload(
    config: MomoConfig,
    *,
    order_id: str,
    request_id: str,
    amount: int,
    trans_id: int,
    description: str = "",
) -> dict[str, Any]:
    """Signed JSON body for ``POST /v2/gateway/api/refund``.

    ``order_id`` must be a NEW id, not the purchase's; ``trans_id`` is MoMo's
    id of the purchase."""
    _check_order_id(order_id)
    _check_request_id(request_id)
    _check_amount(amount)
    if isinstance(trans_id, bool) or not isinstance(trans_id, int) or trans_id <= 0:
        raise ValueError("trans_id must be MoMo's positive integer transId")
    if any(ch in description for ch in "&="):
        raise ValueError("description must not contain '&' or '='")
    signature = refund_signature(
        access_key=config.access_key,
        amount=amount,
        description=description,
        order_id=order_id,
        partner_code=config.partner_code,
        request_id=request_id,
        trans_id=trans_id,
        secret_key=config.secret_key,
    )
    return {
        "partnerCode": config.partner_code,
        "orderId": order_id,
        "requestId": request_id,
        "amount": amount,
        "transId": trans_id,
        "lang": config.lang,
        "description": description,
        "signature": signature,
    }


# --- IPN verification -----------------------------------------------------


# verify_ipn results: ``data`` is the parsed IPN body without ``signature``.
IpnVerifyResult = VerifyResult


def _ipn_value(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    # Long fields (amount, transId, responseTime, resultCode) in decimal.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{name} is neither a string nor an integer")


def ipn_signing_string(body: Mapping[str, Any], access_key: str) -> str:
    """The raw string MoMo signs for an IPN; accessKey comes from our config,
    never from the body. Raises ValueError for a field of the wrong type."""
    pairs = [("accessKey", access_key)] + [(name, _ipn_value(body, name)) for name in IPN_FIELDS[1:]]
    return raw_signature_string(pairs)


def ipn_signature(body: Mapping[str, Any], access_key: str, secret_key: str) -> str:
    """The signature MoMo puts on an IPN (and on the redirect to redirectUrl)."""
    return _hmac_sha256(ipn_signing_string(body, access_key), secret_key)


def verify_ipn(raw_body: bytes, config: MomoConfig) -> IpnVerifyResult:
    """Check the signature of a MoMo IPN body exactly as received, and that it
    is addressed to this partner."""
    try:
        body = parse_json_object(raw_body)
    except (ValueError, RecursionError) as exc:
        return rejected(f"body is not a JSON object: {exc}")
    return _verify_signed_fields(body, config)


_REDIRECT_NUMBERS: Final = ("amount", "transId", "resultCode", "responseTime")
_INTEGER_RE: Final = re.compile(r"-?[0-9]{1,19}")


def verify_redirect(raw_query: bytes, config: MomoConfig) -> IpnVerifyResult:
    """Check the browser's return to redirectUrl: the IPN's fields in the
    query string, signed exactly as the IPN is (numbers arrive as text)."""
    try:
        pairs = parse_qsl(raw_query.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        return rejected(f"query is not readable: {exc}")
    body: dict[str, Any] = dict(pairs)
    for name in _REDIRECT_NUMBERS:
        value = body.get(name)
        if isinstance(value, str) and _INTEGER_RE.fullmatch(value):
            body[name] = int(value)
    return _verify_signed_fields(body, config)


def _verify_signed_fields(body: dict[str, Any], config: MomoConfig) -> IpnVerifyResult:
    received = body.pop("signature", None)
    if not isinstance(received, str) or not received:
        return rejected("missing signature", body)
    try:
        signing_string = ipn_signing_string(body, config.access_key)
    except ValueError as exc:
        return rejected(str(exc), body)
    expected = _hmac_sha256(signing_string, config.secret_key)
    if not same_hex(expected, received):
        return rejected("signature mismatch", body)
    if body.get("partnerCode") != config.partner_code:
        return rejected("partnerCode is not this merchant's", body)
    return verified(body)


def verify_query_answer(answer: Mapping[str, Any], config: MomoConfig, order_id: str) -> VerifyResult:
    """Check a /query answer like an IPN: signed with the secret key over the
    IPN field list (fields the answer lacks sign as empty), this partner's,
    and about the order asked for. Assumption: MoMo's query answer carries
    ``signature`` over the same raw string as its IPN (the AIO v2 query page
    lists the same fields; GATEWAYS.md §3.4 does not give the string)."""
    body = dict(answer)
    received = body.pop("signature", None)
    if not isinstance(received, str) or not received:
        return rejected("query answer is not signed", body)
    try:
        expected = ipn_signature(body, config.access_key, config.secret_key)
    except ValueError as exc:
        return rejected(str(exc), body)
    if not same_hex(expected, received):
        return rejected("query answer signature mismatch", body)
    if body.get("partnerCode") != config.partner_code:
        return rejected("query answer partnerCode is not this merchant's", body)
    if body.get("orderId") != order_id:
        return rejected(f"query answer is about orderId {body.get('orderId')!r}, not {order_id!r}", body)
    return verified(body)


# --- result codes ---------------------------------------------------------

# resultCode in create/query responses, the IPN and the redirect.
RESULT_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {
        0: "Successful",
        9000: "Authorised; awaiting capture or cancel",
        1000: "Initiated; waiting for the user to confirm",
        7000: "Processing",
        7002: "Processing by the payment provider",
        1001: "Insufficient funds",
        1002: "Rejected by the issuer",
        1003: "Cancelled after authorisation",
        1004: "Over the daily/monthly payment limit",
        1005: "Payment URL or QR code expired",
        1006: "User denied the payment",
        1007: "User account inactive",
        1017: "Cancelled by the merchant",
        1026: "Restricted by promotion rules",
        1080: "Refund rejected: already refunded or over the refundable amount",
        1081: "Refund rejected: already refunded or over the refundable amount",
        1088: "Transaction is not refundable",
        4001: "User account issue (restricted or not verified)",
        4002: "User account issue (restricted or not verified)",
        4100: "User account issue (login failed)",
        10: "System under maintenance",
        11: "Access denied",
        12: "Unsupported API version",
        13: "Merchant authentication failed",
        20: "Bad request format (often a bad signature)",
        21: "Invalid amount",
        22: "Amount out of range",
        40: "Duplicated requestId",
        41: "Duplicated orderId",
        42: "orderId not found",
        43: "A similar transaction is in progress",
        98: "QR code not generated",
        99: "Unknown error",
    }
)

# 9000 only occurs with autoCapture=false; for a one-step payment it is paid.
SUCCESS_CODES: Final = frozenset({0, 9000})
PENDING_CODES: Final = frozenset({1000, 7000, 7002})


# Which resultCodes settle a transaction (GATEWAYS.md §3.3 "resultCode" and
# §7 "MoMo result codes that are not final"). Query-level errors (10 maintenance,
# 11 access denied, 12 API version, 13 authentication, 20 bad request, 21/22
# amount, 40/41 duplicate ids, 42 orderId not found, 43 similar transaction in
# progress, 98 QR not generated, 99 unknown) describe the request, not the
# transaction: they never fail a payment. Codes not listed are NOT_FINAL too.
RESULT_FINALITY: Final[Mapping[int, Finality]] = MappingProxyType(
    {
        # §3.3: 0 success; 9000 authorised (a one-step payment is paid).
        0: Finality.PAID,
        9000: Finality.PAID,
        # §3.3 "Pending", §7: waiting for the user, being processed.
        1000: Finality.PENDING,
        7000: Finality.PENDING,
        7002: Finality.PENDING,
        # §3.3 "Failed (final)".
        **dict.fromkeys(
            (1001, 1002, 1003, 1004, 1005, 1006, 1007, 1017, 1026, 4001, 4002, 4100), Finality.FAILED
        ),
        # §3.3 merchant and system errors, §7: about the request.
        **dict.fromkeys((10, 11, 12, 13, 20, 21, 22, 40, 41, 42, 43, 98, 99), Finality.NOT_FINAL),
    }
)


def result_finality(result_code: object) -> Finality:
    """What a resultCode (IPN or query) says of the transaction; unknown or
    mistyped codes are NOT_FINAL."""
    if isinstance(result_code, bool) or not isinstance(result_code, int):
        return Finality.NOT_FINAL
    return RESULT_FINALITY.get(result_code, Finality.NOT_FINAL)


def is_success(result_code: int) -> bool:
    return not isinstance(result_code, bool) and result_code in SUCCESS_CODES


def is_pending(result_code: int) -> bool:
    """Not final: reconcile later with /query."""
    return not isinstance(result_code, bool) and result_code in PENDING_CODES


def result_code_reason(result_code: int) -> str:
    return RESULT_CODES.get(result_code, f"Unknown MoMo resultCode {result_code!r}")


# --- the callback journal's view --------------------------------------------

_AUDIT_KEEP: Final = frozenset(
    {
        "partnerCode",
        "orderId",
        "requestId",
        "amount",
        "orderType",
        "transId",
        "resultCode",
        "message",
        "payType",
        "responseTime",
        "signature",
    }
)


def audit_fields(raw_body: bytes, raw_query: bytes) -> dict[str, str]:
    """What the journal keeps of a MoMo IPN (body) or return (query):
    references, amount, codes, signature; orderInfo and extraData (free text,
    possibly the shopper's data) and anything unknown masked."""
    fields: dict[str, Any] = loose_json(raw_body) if raw_body else loose_query(raw_query)
    return audit_view(fields, _AUDIT_KEEP)
