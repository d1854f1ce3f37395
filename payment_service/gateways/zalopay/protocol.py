"""ZaloPay v2: order MACs, app_trans_id and callback verification.

Pure functions only (no network, env or DB) so the protocol can be tested
against the vectors in GATEWAYS.md §4.5. The HTTP client lives in another layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from payment_service.gateways._wire import (
    Finality,
    VerifyResult,
    audit_view,
    hmac_hex,
    loose_json,
    loose_query,
    same_hex,
    strict_loads,
)

ZALOPAY_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
ZALOPAY_SANDBOX_ENDPOINT: Final = "https://sb-openapi.zalopay.vn"
ZALOPAY_PROD_ENDPOINT: Final = "https://openapi.zalopay.vn"
CREATE_PATH: Final = "/v2/create"
QUERY_PATH: Final = "/v2/query"
REFUND_PATH: Final = "/v2/refund"
QUERY_REFUND_PATH: Final = "/v2/query_refund"

APP_TRANS_ID_MAX_LEN: Final = 40
SUFFIX_MAX_LEN: Final = 33  # 40 minus "yymmdd_"
_SUFFIX_RE: Final = re.compile(r"[A-Za-z0-9_]{1,33}")
_APP_TRANS_ID_RE: Final = re.compile(r"([0-9]{6})_[A-Za-z0-9_]{1,33}")
APP_USER_MAX_LEN: Final = 50
DESCRIPTION_MAX_LEN: Final = 256
EMBED_DATA_MAX_LEN: Final = 1024
ITEM_MAX_LEN: Final = 2048
EXPIRE_DURATION_MIN: Final = 300
EXPIRE_DURATION_MAX: Final = 2_592_000
# app_time is Unix milliseconds; anything smaller is almost surely seconds.
_MIN_PLAUSIBLE_MS: Final = 10**12


@dataclass(frozen=True, kw_only=True)
class ZalopayConfig:
    app_id: int
    # repr=False keeps the keys out of logs, tracebacks and debug output.
    key1: str = field(repr=False)  # signs our requests
    key2: str = field(repr=False)  # verifies ZaloPay's callbacks
    endpoint: str = ZALOPAY_SANDBOX_ENDPOINT
    callback_url: str
    redirect_url: str

    def __post_init__(self) -> None:
        if isinstance(self.app_id, bool) or not isinstance(self.app_id, int) or self.app_id <= 0:
            raise ValueError("ZalopayConfig.app_id must be a positive integer")
        for name in ("key1", "key2", "endpoint", "callback_url", "redirect_url"):
            if not getattr(self, name):
                raise ValueError(f"ZalopayConfig.{name} must not be empty")


# --- identifiers ----------------------------------------------------------


def date_prefix(when: datetime) -> str:
    """yymmdd in GMT+7, whatever the server's TZ.

    Naive datetimes are refused: the official demos use server-local time,
    which gives yesterday's prefix on a UTC server between 00:00 and 07:00 GMT+7."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return when.astimezone(ZALOPAY_TZ).strftime("%y%m%d")


def app_trans_id(now: datetime, suffix: str) -> str:
    """``yymmdd_<suffix>``: ZaloPay requires today's GMT+7 date as the prefix.

    ``suffix`` is 1-33 ASCII letters, digits or '_', so the id fits in 40."""
    if not _SUFFIX_RE.fullmatch(suffix):
        raise ValueError(f"suffix must be 1-{SUFFIX_MAX_LEN} ASCII letters, digits or '_'")
    return f"{date_prefix(now)}_{suffix}"


# --- MACs -----------------------------------------------------------------


def _hmac_sha256(data: str, key: str) -> str:
    return hmac_hex(data, key, key_name="ZaloPay key")


def create_mac(
    *,
    app_id: int,
    app_trans_id: str,
    app_user: str,
    amount: int,
    app_time: int,
    embed_data: str,
    item: str,
    key1: str,
) -> str:
    """``app_id|app_trans_id|app_user|amount|app_time|embed_data|item`` with key1.

    ``embed_data`` and ``item`` must be the exact strings sent."""
    return _hmac_sha256(f"{app_id}|{app_trans_id}|{app_user}|{amount}|{app_time}|{embed_data}|{item}", key1)


def query_mac(app_id: int, app_trans_id: str, key1: str) -> str:
    """``app_id|app_trans_id|key1`` with key1 (yes, the key is in the data too)."""
    return _hmac_sha256(f"{app_id}|{app_trans_id}|{key1}", key1)


def refund_mac(
    *,
    app_id: int,
    zp_trans_id: int | str,
    amount: int,
    description: str,
    timestamp: int,
    key1: str,
    refund_fee_amount: int | None = None,
) -> str:
    """``app_id|zp_trans_id|amount[|refund_fee_amount]|description|timestamp`` with key1."""
    fee = "" if refund_fee_amount is None else f"|{refund_fee_amount}"
    return _hmac_sha256(f"{app_id}|{zp_trans_id}|{amount}{fee}|{description}|{timestamp}", key1)


def query_refund_mac(*, app_id: int, m_refund_id: str, timestamp: int, key1: str) -> str:
    """``app_id|m_refund_id|timestamp`` with key1."""
    return _hmac_sha256(f"{app_id}|{m_refund_id}|{timestamp}", key1)


# --- request payloads -----------------------------------------------------


def build_embed_data(config: ZalopayConfig, extra: Mapping[str, Any] | None = None) -> str:
    """A compact embed_data string carrying the configured redirect URL.

    Send the returned string unchanged: it is what create_mac signs."""
    obj: dict[str, Any] = {"redirecturl": config.redirect_url}
    obj.update(extra or {})
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _check_json_string(name: str, text: str, kind: type, max_len: int) -> None:
    if len(text) > max_len:
        raise ValueError(f"{name} is {len(text)} characters long; ZaloPay allows at most {max_len}")
    expected = f"{name} must be a JSON {'object' if kind is dict else 'array'} string"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(expected) from exc
    if not isinstance(value, kind):
        raise ValueError(expected)


def _check_create_fields(
    *,
    app_trans_id: str,
    app_user: str,
    amount: int,
    app_time_ms: int,
    description: str,
    embed_data: str,
    item: str,
    expire_duration_seconds: int,
) -> None:
    """Raises ValueError for any create field ZaloPay would reject."""
    match = _APP_TRANS_ID_RE.fullmatch(app_trans_id)
    if not match:
        raise ValueError("app_trans_id must be yymmdd_ followed by 1-33 ASCII letters, digits or '_'")
    if isinstance(app_time_ms, bool) or not isinstance(app_time_ms, int) or app_time_ms < _MIN_PLAUSIBLE_MS:
        raise ValueError("app_time_ms must be Unix time in milliseconds")
    if match.group(1) != date_prefix(datetime.fromtimestamp(app_time_ms / 1000, UTC)):
        raise ValueError("app_trans_id's yymmdd is not app_time's date in GMT+7")
    if not app_user.strip() or len(app_user) > APP_USER_MAX_LEN or "|" in app_user:
        raise ValueError(f"app_user must be 1-{APP_USER_MAX_LEN} characters, not blank, without '|'")
    # bool is an int subclass; True must not become a 1 VND payment.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("amount must be a positive integer number of VND")
    if not description.strip() or len(description) > DESCRIPTION_MAX_LEN:
        raise ValueError(f"description must be 1-{DESCRIPTION_MAX_LEN} characters")
    _check_json_string("embed_data", embed_data, dict, EMBED_DATA_MAX_LEN)
    _check_json_string("item", item, list, ITEM_MAX_LEN)
    if (
        isinstance(expire_duration_seconds, bool)
        or not isinstance(expire_duration_seconds, int)
        or not EXPIRE_DURATION_MIN <= expire_duration_seconds <= EXPIRE_DURATION_MAX
    ):
        raise ValueError(
            f"expire_duration_seconds must be an integer from {EXPIRE_DURATION_MIN} to {EXPIRE_DURATION_MAX}"
        )


def build_create_payload(
    config: ZalopayConfig,
    *,
    app_trans_id: str,
    app_user: str,
    amount: int,
    app_time_ms: int,
    description: str,
    embed_data: str,
    item: str = "[]",
    expire_duration_seconds: int = 900,
    bank_code: str = "",
) -> dict[str, Any]:
    """Signed body for ``POST /v2/create``. ``amount`` is integer VND.

    Derive ``app_trans_id`` and ``app_time_ms`` from the same instant: the
    id's yymmdd must be app_time's GMT+7 date. Raises ValueError for any field
    ZaloPay would reject."""
    _check_create_fields(
        app_trans_id=app_trans_id,
        app_user=app_user,
        amount=amount,
        app_time_ms=app_time_ms,
        description=description,
        embed_data=embed_data,
        item=item,
        expire_duration_seconds=expire_duration_seconds,
    )
    mac = create_mac(
        app_id=config.app_id,
        app_trans_id=app_trans_id,
        app_user=app_user,
        amount=amount,
        app_time=app_time_ms,
        embed_data=embed_data,
        item=item,
        key1=config.key1,
    )
    return {
        "app_id": config.app_id,
        "app_user": app_user,
        "app_trans_id": app_trans_id,
        "app_time": app_time_ms,
        "expire_duration_seconds": expire_duration_seconds,
        "amount": amount,
        "item": item,
        "embed_data": embed_data,
        "description": description,
        "bank_code": bank_code,
        "callback_url": config.callback_url,
        "mac": mac,
    }


def build_query_payload(config: ZalopayConfig, *, app_trans_id: str) -> dict[str, Any]:
    """Signed body for ``POST /v2/query``."""
    if not _APP_TRANS_ID_RE.fullmatch(app_trans_id):
        raise ValueError("app_trans_id must be yymmdd_ followed by 1-33 ASCII letters, digits or '_'")
    return {
        "app_id": config.app_id,
        "app_trans_id": app_trans_id,
        "mac": query_mac(config.app_id, app_trans_id, config.key1),
    }


# --- callback verification ------------------------------------------------


@dataclass(frozen=True)
class CallbackVerifyResult(VerifyResult):
    """Outcome of verify_callback.

    ``data`` is the parsed inner ``data`` JSON. ``callback_type`` (1 order,
    2 agreement) comes from the envelope and is NOT covered by the mac."""

    callback_type: int | None = None


def callback_mac(data: str, key2: str) -> str:
    """The mac ZaloPay puts on a callback: HMAC(key2) over the raw data string."""
    return _hmac_sha256(data, key2)


def redirect_checksum(
    *,
    app_id: int,
    app_trans_id: str,
    pmcid: str,
    bank_code: str,
    amount: int,
    discount_amount: int,
    status: str,
    key2: str,
) -> str:
    """HMAC(key2) over ``appid|apptransid|pmcid|bankcode|amount|discountamount|status`` (browser redirect)."""
    data = f"{app_id}|{app_trans_id}|{pmcid}|{bank_code}|{amount}|{discount_amount}|{status}"
    return _hmac_sha256(data, key2)


def verify_callback(raw_body: bytes, key2: str) -> CallbackVerifyResult:
    """Check the mac of a ZaloPay callback ``{"data": "<json>", "mac": ..., "type": 1}``.

    The mac covers the ``data`` string exactly as ZaloPay sent it, so it is
    hashed as decoded from the envelope, never re-serialised."""
    try:
        body = strict_loads(raw_body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        return CallbackVerifyResult(False, {}, f"body is not a JSON object: {exc}")
    if not isinstance(body, dict):
        return CallbackVerifyResult(False, {}, "body is not a JSON object")
    raw_type = body.get("type")
    callback_type = raw_type if type(raw_type) is int else None
    data_str, received = body.get("data"), body.get("mac")
    if not isinstance(data_str, str):
        return CallbackVerifyResult(False, {}, "data is not a string", callback_type)
    try:
        data = strict_loads(data_str)
    except (ValueError, RecursionError) as exc:
        return CallbackVerifyResult(False, {}, f"data is not a JSON object: {exc}", callback_type)
    if not isinstance(data, dict):
        return CallbackVerifyResult(False, {}, "data is not a JSON object", callback_type)
    if not isinstance(received, str) or not received:
        return CallbackVerifyResult(False, data, "missing mac", callback_type)
    try:
        expected = callback_mac(data_str, key2)
    except UnicodeEncodeError:  # a lone surrogate escaped in the envelope
        return CallbackVerifyResult(False, data, "data is not valid Unicode", callback_type)
    if not same_hex(expected, received):
        return CallbackVerifyResult(False, data, "mac mismatch", callback_type)
    return CallbackVerifyResult(True, data, None, callback_type)


REDIRECT_FIELDS: Final = ("appid", "apptransid", "pmcid", "bankcode", "amount", "discountamount", "status")
REDIRECT_PAID: Final = "1"


def verify_redirect(raw_query: bytes, app_id: int, key2: str) -> VerifyResult:
    """Check the browser's return to the redirect URL: ``checksum`` is
    HMAC(key2) over the seven fields joined by ``|`` (see redirect_checksum)."""
    try:
        pairs = parse_qsl(raw_query.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        return VerifyResult(False, {}, f"query is not readable: {exc}")
    data: dict[str, Any] = dict(pairs)
    received = data.pop("checksum", "")
    if not received:
        return VerifyResult(False, data, "missing checksum")
    expected = _hmac_sha256("|".join(str(data.get(name, "")) for name in REDIRECT_FIELDS), key2)
    if not same_hex(expected, received):
        return VerifyResult(False, data, "checksum mismatch")
    if data.get("appid") != str(app_id):
        return VerifyResult(False, data, "appid is not this merchant's")
    return VerifyResult(True, data, None)


# return_code values we answer a callback with.
ACK_SUCCESS: Final = 1
ACK_RETRY: Final = 0  # ZaloPay calls back again, up to 3 times
ACK_INVALID_MAC: Final = -1


def callback_ack(return_code: int, message: str) -> bytes:
    """The JSON body ZaloPay expects in answer to a callback (HTTP 200)."""
    if isinstance(return_code, bool) or not isinstance(return_code, int):
        raise ValueError("return_code must be an integer")
    body = {"return_code": return_code, "return_message": message}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- code tables ----------------------------------------------------------

# return_code of /v2/query.
QUERY_RETURN_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "Paid",
        2: "Failed",
        3: "Unpaid or processing; query again within the order's lifetime",
    }
)

# sub_return_code of /v2/create (and others).
SUB_RETURN_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {
        -68: "Duplicate app_trans_id",
        -401: "Invalid request parameters",
        -402: "Invalid app or signature",
        -429: "Rate limited",
        -500: "ZaloPay system error",
        -999: "ZaloPay under maintenance",
    }
)


# /v2/query return_code (GATEWAYS.md §4.4): 1 paid, 3 unpaid or processing.
# 2 ("failed") is final only when its sub_return_code is about the
# transaction (§7 "ZaloPay query"): codes about the request (bad parameters,
# bad app or mac, rate limit, system error, maintenance, §4.1; -101 order not
# found, which the query also answers before a create has landed) are not.
QUERY_FINALITY: Final[Mapping[int, Finality]] = MappingProxyType({1: Finality.PAID, 3: Finality.PENDING})
REQUEST_SUB_RETURN_CODES: Final = frozenset({-68, -101, -401, -402, -429, -500, -999})
# sub_return_codes of return_code 2 that end the transaction. 2 is what the
# local simulator sends for a failed, cancelled or expired order; the codes
# the real gateway sends there are not in our sources, so any other code is
# NOT_FINAL (the payment stays as it is and closes at its expiry).
TRANSACTION_FAILED_SUB_RETURN_CODES: Final = frozenset({2})


def query_finality(return_code: object, sub_return_code: object) -> Finality:
    """What a /v2/query answer says of the transaction."""
    if isinstance(return_code, bool) or not isinstance(return_code, int):
        return Finality.NOT_FINAL
    if return_code == 2:
        if sub_return_code in TRANSACTION_FAILED_SUB_RETURN_CODES and not isinstance(sub_return_code, bool):
            return Finality.FAILED
        return Finality.NOT_FINAL
    return QUERY_FINALITY.get(return_code, Finality.NOT_FINAL)


def is_paid_query(return_code: int) -> bool:
    return not isinstance(return_code, bool) and return_code == 1


def sub_return_code_reason(code: int) -> str:
    return SUB_RETURN_CODES.get(code, f"Unknown ZaloPay sub_return_code {code!r}")


# --- the callback journal's view --------------------------------------------

_AUDIT_KEEP: Final = frozenset(
    {
        "type",
        "mac",
        "data.app_id",
        "data.app_trans_id",
        "data.app_time",
        "data.amount",
        "data.zp_trans_id",
        "data.server_time",
        "data.channel",
        "data.user_fee_amount",
        "data.discount_amount",
        *REDIRECT_FIELDS,
        "checksum",
    }
)


def audit_fields(raw_body: bytes, raw_query: bytes) -> dict[str, str]:
    """What the journal keeps of a ZaloPay callback (body) or return (query):
    ids, amounts, channel, mac; app_user, merchant_user_id, item and
    embed_data (the shopper and free text) masked."""
    if not raw_body:
        return audit_view(loose_query(raw_query), _AUDIT_KEEP)
    body = loose_json(raw_body)
    fields: dict[str, Any] = {k: v for k, v in body.items() if k != "data"}
    data = body.get("data")
    inner = loose_json(data.encode("utf-8", "replace")) if isinstance(data, str) else {}
    fields.update({f"data.{k}": v for k, v in inner.items()})
    return audit_view(fields, _AUDIT_KEEP)


# --- refund -------------------------------------------------------------------


def m_refund_id(when: datetime, app_id: int, key: str) -> str:
    """``yymmdd_appid_xxx`` with the GMT+7 date of `when` (the refund's
    creation, so the id is the same on every retry)."""
    return f"{date_prefix(when)}_{app_id}_{key}"


def build_refund_payload(
    config: ZalopayConfig,
    *,
    m_refund_id: str,
    zp_trans_id: str,
    amount: int,
    description: str,
    timestamp: int,
) -> dict[str, Any]:
    """Signed body of ``POST /v2/refund`` (asynchronous: poll query_refund)."""
    return {
        "app_id": config.app_id,
        "m_refund_id": m_refund_id,
        "zp_trans_id": zp_trans_id,
        "amount": amount,
        "timestamp": timestamp,
        "description": description,
        "mac": refund_mac(
            app_id=config.app_id,
            zp_trans_id=zp_trans_id,
            amount=amount,
            description=description,
            timestamp=timestamp,
            key1=config.key1,
        ),
    }


def build_query_refund_payload(config: ZalopayConfig, *, m_refund_id: str, timestamp: int) -> dict[str, Any]:
    return {
        "app_id": config.app_id,
        "m_refund_id": m_refund_id,
        "timestamp": timestamp,
        "mac": query_refund_mac(
            app_id=config.app_id, m_refund_id=m_refund_id, timestamp=timestamp, key1=config.key1
        ),
    }
