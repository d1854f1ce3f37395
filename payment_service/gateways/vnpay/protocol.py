"""VNPay API 2.1.0: payment URL signing and IPN/return verification.

Pure functions only (no network, env or DB) so the protocol can be tested
against the published vectors in GATEWAYS.md §1.5.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl, quote_plus
from zoneinfo import ZoneInfo

from payment_service.gateways._wire import (
    Finality,
    VerifyResult,
    audit_view,
    hmac_hex,
    loose_query,
    rejected,
    same_hex,
    verified,
)

VNPAY_VERSION: Final = "2.1.0"
VNPAY_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
_TIME_FORMAT: Final = "%Y%m%d%H%M%S"
_TIME_RE: Final = re.compile(r"[0-9]{14}")

_TXN_REF_RE: Final = re.compile(r"[A-Za-z0-9]{1,100}")
_BANK_CODE_RE: Final = re.compile(r"[A-Za-z0-9]{3,20}")
_MAX_VNP_AMOUNT: Final = 999_999_999_999  # vnp_Amount is Numeric[1,12]
ORDER_INFO_MAX_LEN: Final = 255

# Every official demo encodes exactly these characters the same way, so a hash
# we compute is the hash VNPay computes (GATEWAYS.md §1.2).
ORDER_INFO_ALLOWED: Final = frozenset(string.ascii_letters + string.digits + " .-_:/,")

# A query string has ~13 vnp_ fields; the cap bounds work on hostile input.
_MAX_QUERY_FIELDS: Final = 100


# --- time -----------------------------------------------------------------


def format_vnpay_time(dt: datetime) -> str:
    """yyyyMMddHHmmss in GMT+7, whatever the server's TZ.

    Naive datetimes are refused: server-local time is the classic
    "works in dev, fails in prod" VNPay bug."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return dt.astimezone(VNPAY_TZ).strftime(_TIME_FORMAT)


def parse_vnpay_time(s: str) -> datetime:
    """Parse a VNPay yyyyMMddHHmmss (GMT+7) timestamp into an aware UTC datetime."""
    if not _TIME_RE.fullmatch(s):
        raise ValueError(f"not a VNPay timestamp (yyyyMMddHHmmss): {s!r}")
    return datetime.strptime(s, _TIME_FORMAT).replace(tzinfo=VNPAY_TZ).astimezone(UTC)


# --- signing --------------------------------------------------------------


def order_info_problem(text: str) -> str | None:
    """Why VNPay can't sign ``text`` consistently as vnp_OrderInfo, or None if fine."""
    if not text.strip():
        return "order info is empty"
    if len(text) > ORDER_INFO_MAX_LEN:
        return f"order info is {len(text)} characters long; VNPay allows at most {ORDER_INFO_MAX_LEN}"
    for i, ch in enumerate(text):
        if ch not in ORDER_INFO_ALLOWED:
            return (
                f"character {ch!r} (U+{ord(ch):04X}) at position {i} is not allowed; use only "
                "ASCII letters, digits, space and . - _ : / , (no diacritics)"
            )
    return None


def canonical_query(params: Mapping[str, str]) -> str:
    """The string VNPay signs, which is also the URL query.

    Keys sorted ascending; values form-encoded with quote_plus (space -> '+',
    '/' -> '%2F'); keys left as-is (all vnp_* are URL-safe). Empty values are
    kept as ``key=`` like the PHP/Python demos, while the Java/C# demos drop
    them; to be right under both readings build_payment_url never sends an
    empty value.
    """
    return "&".join(f"{key}={quote_plus(params[key])}" for key in sorted(params))


def _hmac_sha512(data: str, secret: str) -> str:
    return hmac_hex(data, secret, "sha512")


def sign(params: Mapping[str, str], secret: str) -> str:
    """vnp_SecureHash: lowercase hex HMAC-SHA512 of canonical_query(params)."""
    return _hmac_sha512(canonical_query(params), secret)


def signed_query(params: Mapping[str, str], secret: str) -> str:
    """``canonical query&vnp_SecureHash=…`` exactly as VNPay appends it to a URL."""
    return f"{canonical_query(params)}&vnp_SecureHash={sign(params, secret)}"


# --- payment URL ----------------------------------------------------------


@dataclass(frozen=True)
class VnpayConfig:
    tmn_code: str
    # repr=False keeps the secret out of logs, tracebacks and debug output.
    hash_secret: str = field(repr=False)
    pay_url: str
    return_url: str
    locale: str = "vn"
    order_type: str = "other"
    # The querydr endpoint (merchant_webapi); empty: VNPay is not reconciled.
    query_url: str = ""

    def __post_init__(self) -> None:
        # An empty secret would still "sign" and only fail at VNPay, far from the cause.
        for name in ("tmn_code", "hash_secret", "pay_url", "return_url"):
            if not getattr(self, name):
                raise ValueError(f"VnpayConfig.{name} must not be empty")
        if self.locale not in ("vn", "en"):
            raise ValueError(f"VnpayConfig.locale must be 'vn' or 'en', got {self.locale!r}")


def build_payment_url(
    config: VnpayConfig,
    *,
    txn_ref: str,
    amount: int,
    order_info: str,
    ip_addr: str,
    create_time: datetime,
    expire_time: datetime,
    return_url: str | None = None,
    bank_code: str | None = None,
) -> str:
    """Signed VNPay 2.1.0 ``pay`` redirect URL. ``amount`` is integer VND.

    Raises ValueError for any field VNPay would reject or sign differently."""
    if not _TXN_REF_RE.fullmatch(txn_ref):
        raise ValueError("txn_ref must be 1-100 ASCII letters/digits")
    # bool is an int subclass; True must not become a 1 VND payment.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("amount must be a positive integer number of VND")
    if amount * 100 > _MAX_VNP_AMOUNT:
        raise ValueError("amount too large: amount*100 must fit in 12 digits")
    if not 7 <= len(ip_addr) <= 45:
        raise ValueError("ip_addr must be 7-45 characters")
    if problem := order_info_problem(order_info):
        raise ValueError(f"order_info: {problem}")
    create_date = format_vnpay_time(create_time)
    expire_date = format_vnpay_time(expire_time)
    if expire_time <= create_time:
        raise ValueError("expire_time must be after create_time")
    ret = return_url or config.return_url
    if not 10 <= len(ret) <= 255:
        raise ValueError("return_url must be 10-255 characters")

    params = {
        "vnp_Version": VNPAY_VERSION,
        "vnp_Command": "pay",
        "vnp_TmnCode": config.tmn_code,
        "vnp_Amount": str(amount * 100),
        "vnp_CurrCode": "VND",
        "vnp_IpAddr": ip_addr,
        "vnp_Locale": config.locale,
        "vnp_OrderInfo": order_info,
        "vnp_OrderType": config.order_type,
        "vnp_ReturnUrl": ret,
        "vnp_TxnRef": txn_ref,
        "vnp_CreateDate": create_date,
        "vnp_ExpireDate": expire_date,
    }
    # Empty optional values are dropped, never signed (see canonical_query).
    if bank_code:
        if not _BANK_CODE_RE.fullmatch(bank_code):
            raise ValueError("bank_code must be 3-20 ASCII letters/digits")
        params["vnp_BankCode"] = bank_code
    # 2.1.0 must not send vnp_SecureHashType.
    query = canonical_query(params)
    return f"{config.pay_url}?{query}&vnp_SecureHash={_hmac_sha512(query, config.hash_secret)}"


# --- IPN / return verification --------------------------------------------


def verify_query(raw_query: str | bytes, secret: str) -> VerifyResult:
    """Check vnp_SecureHash of an IPN/return query string exactly as received.
    ``data`` of the result holds the decoded vnp_* fields (without the hash fields).

    Values are decoded and re-encoded with canonical_query, never hashed raw,
    because VNPay signs its own encoding (GATEWAYS.md §1.2)."""
    if isinstance(raw_query, bytes):
        try:
            raw_query = raw_query.decode("ascii")
        except UnicodeDecodeError:
            return rejected("query string is not ASCII")
    try:
        pairs = parse_qsl(
            raw_query.removeprefix("?"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=_MAX_QUERY_FIELDS,
        )
    except ValueError:
        return rejected(f"query string has more than {_MAX_QUERY_FIELDS} fields")

    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            # Frameworks disagree on which duplicate wins; refuse to guess.
            return rejected(f"duplicate parameter {key!r}")
        seen.add(key)

    if any(ord(c) < 32 for k, v in pairs for c in k + v):
        return rejected("control characters in the query")
    params = {k: v for k, v in pairs if k.startswith("vnp_")}
    received = params.pop("vnp_SecureHash", "")
    # Not sent by 2.1.0, but never part of the signed data if present.
    params.pop("vnp_SecureHashType", None)
    if not received:
        return rejected("missing vnp_SecureHash", params)
    expected = sign(params, secret)
    if not same_hex(expected, received):
        return rejected("vnp_SecureHash mismatch", params)
    return verified(params)


def is_successful_payment(params: Mapping[str, str]) -> bool:
    """Paid only if both codes are 00; the demos disagree (||, &&, one field)."""
    return params.get("vnp_ResponseCode") == "00" and params.get("vnp_TransactionStatus") == "00"


# --- code tables ----------------------------------------------------------

# vnp_ResponseCode sent by VNPay in the IPN and on the return URL.
IPN_RESPONSE_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "00": "Transaction successful",
        "07": "Money debited, but the transaction is flagged as suspicious (fraud check)",
        "09": "Customer's card/account is not registered for internet banking",
        "10": "Customer entered wrong card/account details more than 3 times",
        "11": "Payment window expired",
        "12": "Customer's card/account is locked",
        "13": "Wrong OTP entered",
        "24": "Customer cancelled the transaction",
        "51": "Insufficient funds",
        "65": "Daily transaction limit exceeded",
        "75": "Bank is under maintenance",
        "79": "Wrong payment password entered too many times",
        "99": "Other error",
    }
)

# vnp_TransactionStatus sent by VNPay in the IPN, return URL and querydr.
TRANSACTION_STATUS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "00": "Successful",
        "01": "Not completed",
        "02": "Error",
        "04": "Reversed: customer debited at the bank but not successful at VNPay",
        "05": "Refund in progress at VNPay",
        "06": "Refund sent to the bank",
        "07": "Suspected fraud",
        "09": "Refund rejected",
    }
)

# RspCode *we* answer an IPN with. VNPay stops retrying only on 00 and 02.
IPN_ACK_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "00": "Confirm Success",
        "01": "Order not found",
        "02": "Order already confirmed",
        "04": "Invalid amount",
        "97": "Invalid signature",
        "99": "Unknown error",
    }
)


# What vnp_TransactionStatus says of a transaction (GATEWAYS.md §1.3 and §7
# "VNPay codes that mean money moved, but not cleanly"): 00 paid (with
# ResponseCode 00), 01 not completed, 02 error (final); 04 reversed after the
# customer was debited and 07 suspected fraud are money taken but not clean;
# 05/06/09 are refund states of a transaction that was paid. Unknown: not final.
TRANSACTION_STATUS_FINALITY: Final[Mapping[str, Finality]] = MappingProxyType(
    {
        "00": Finality.PAID,
        "01": Finality.PENDING,
        "02": Finality.FAILED,
        "04": Finality.REVIEW,
        "05": Finality.REVIEW,
        "06": Finality.REVIEW,
        "07": Finality.REVIEW,
        "09": Finality.REVIEW,
    }
)
# vnp_ResponseCode of an IPN/return (§1.3): 07 is "money debited, flagged as
# suspicious": never a failure (§7).
REVIEW_RESPONSE_CODES: Final = frozenset({"07"})
# querydr's own vnp_ResponseCode is about the query (§1.4): only 00 carries a
# transaction status; 91 (not found), 94, 97, 99 and the rest are not final.
QUERYDR_OK: Final = "00"


def transaction_finality(params: Mapping[str, str]) -> Finality:
    """What an IPN (or the transaction part of a querydr answer) says of the
    transaction: paid only with both codes 00 (§1.2), review for 07 / 04 and
    the refund states, failed for status 02, otherwise not final."""
    code, status = params.get("vnp_ResponseCode"), params.get("vnp_TransactionStatus", "")
    if code in REVIEW_RESPONSE_CODES:
        return Finality.REVIEW
    finality = TRANSACTION_STATUS_FINALITY.get(status, Finality.NOT_FINAL)
    if finality == Finality.PAID and code != "00":
        return Finality.REVIEW  # status says paid, the response code does not: a person looks
    return finality


def querydr_finality(answer: Mapping[str, Any]) -> Finality:
    """What a verified querydr answer says of the transaction."""
    if str(answer.get("vnp_ResponseCode", "")) != QUERYDR_OK:
        return Finality.NOT_FINAL
    status = str(answer.get("vnp_TransactionStatus", ""))
    return TRANSACTION_STATUS_FINALITY.get(status, Finality.NOT_FINAL)


def response_code_reason(code: str) -> str:
    return IPN_RESPONSE_CODES.get(code, f"Unknown VNPay response code {code!r}")


def transaction_status_reason(code: str) -> str:
    return TRANSACTION_STATUS.get(code, f"Unknown VNPay transaction status {code!r}")


# --- querydr (reconciliation) ----------------------------------------------

QUERYDR_FIELDS: Final = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
QUERYDR_RESPONSE_FIELDS: Final = (
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
)


def pipe_signature(values: Sequence[str], secret: str) -> str:
    """querydr/refund checksum: HMAC-SHA512 over the raw `|`-joined values."""
    return _hmac_sha512("|".join(values), secret)


def querydr_request_hash(body: Mapping[str, Any], secret: str) -> str:
    """vnp_SecureHash of a querydr request body."""
    return pipe_signature([str(body.get(name, "")) for name in QUERYDR_FIELDS], secret)


def querydr_response_hash(body: Mapping[str, Any], secret: str) -> str:
    """vnp_SecureHash of a querydr answer (missing fields sign as empty)."""
    return pipe_signature([str(body.get(name, "")) for name in QUERYDR_RESPONSE_FIELDS], secret)


def build_querydr(
    config: VnpayConfig,
    *,
    request_id: str,
    txn_ref: str,
    transaction_date: datetime,
    now: datetime,
    ip_addr: str,
) -> dict[str, str]:
    """The JSON body of a querydr request for one transaction."""
    body = {
        "vnp_RequestId": request_id,
        "vnp_Version": VNPAY_VERSION,
        "vnp_Command": "querydr",
        "vnp_TmnCode": config.tmn_code,
        "vnp_TxnRef": txn_ref,
        "vnp_TransactionDate": format_vnpay_time(transaction_date),
        "vnp_CreateDate": format_vnpay_time(now),
        "vnp_IpAddr": ip_addr,
        "vnp_OrderInfo": f"Truy van GD {txn_ref}",
    }
    body["vnp_SecureHash"] = querydr_request_hash(body, config.hash_secret)
    return body


def verify_querydr_response(body: Mapping[str, Any], secret: str) -> bool:
    received = str(body.get("vnp_SecureHash", ""))
    return same_hex(querydr_response_hash(body, secret), received)


# --- the callback journal's view --------------------------------------------

_AUDIT_KEEP: Final = frozenset(
    {
        "vnp_Amount",
        "vnp_TxnRef",
        "vnp_TransactionNo",
        "vnp_ResponseCode",
        "vnp_TransactionStatus",
        "vnp_BankCode",
        "vnp_CardType",
        "vnp_PayDate",
        "vnp_TmnCode",
        "vnp_SecureHash",
        "vnp_SecureHashType",
    }
)
_AUDIT_PARTIAL: Final = frozenset({"vnp_BankTranNo"})


def audit_fields(raw_body: bytes, raw_query: bytes) -> dict[str, str]:
    """What the journal keeps of a VNPay IPN or return (the query): amounts,
    references, codes and the hash; vnp_OrderInfo (free text) and anything
    unknown masked, the bank's transaction number down to its last digits."""
    return audit_view(loose_query(raw_query), _AUDIT_KEEP, _AUDIT_PARTIAL)


# --- refund -------------------------------------------------------------------

REFUND_FIELDS: Final = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TransactionType",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_TransactionNo",
    "vnp_TransactionDate",
    "vnp_CreateBy",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
REFUND_RESPONSE_FIELDS: Final = QUERYDR_RESPONSE_FIELDS[:-2]  # without the two Promotion fields
REFUND_FULL: Final = "02"
REFUND_PARTIAL: Final = "03"
# Refund states of a paid transaction as querydr reports them (GATEWAYS.md §1.3).
REFUND_PROCESSING: Final = "05"
REFUND_SENT_TO_BANK: Final = "06"
REFUND_REJECTED: Final = "09"
# Refund answer codes that refuse the refund for good: bad merchant, bad
# format, no such transaction, original not successful, our checksum.
REFUND_REFUSED_CODES: Final = frozenset({"02", "03", "91", "95", "97"})


def refund_request_hash(body: Mapping[str, Any], secret: str) -> str:
    return pipe_signature([str(body.get(name, "")) for name in REFUND_FIELDS], secret)


def refund_response_hash(body: Mapping[str, Any], secret: str) -> str:
    return pipe_signature([str(body.get(name, "")) for name in REFUND_RESPONSE_FIELDS], secret)


def verify_refund_response(body: Mapping[str, Any], secret: str) -> bool:
    return same_hex(refund_response_hash(body, secret), str(body.get("vnp_SecureHash", "")))


def build_refund(
    config: VnpayConfig,
    *,
    request_id: str,
    txn_ref: str,
    amount: int,
    full: bool,
    transaction_no: str,
    transaction_date: datetime,
    now: datetime,
    create_by: str,
    ip_addr: str,
    order_info: str,
) -> dict[str, str]:
    """The JSON body of ``vnp_Command=refund``: 02 full, 03 partial; the
    amount times 100; vnp_RequestId is the idempotency key (≤ 32 alphanumerics)."""
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", request_id):
        raise ValueError("vnp_RequestId must be 1-32 letters or digits")
    body = {
        "vnp_RequestId": request_id,
        "vnp_Version": VNPAY_VERSION,
        "vnp_Command": "refund",
        "vnp_TmnCode": config.tmn_code,
        "vnp_TransactionType": REFUND_FULL if full else REFUND_PARTIAL,
        "vnp_TxnRef": txn_ref,
        "vnp_Amount": str(amount * 100),
        "vnp_TransactionNo": transaction_no or "0",
        "vnp_TransactionDate": format_vnpay_time(transaction_date),
        "vnp_CreateBy": create_by,
        "vnp_CreateDate": format_vnpay_time(now),
        "vnp_IpAddr": ip_addr,
        "vnp_OrderInfo": order_info,
    }
    body["vnp_SecureHash"] = refund_request_hash(body, config.hash_secret)
    return body
