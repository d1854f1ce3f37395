"""VNPay 2.1.0 signing against the published vectors (GATEWAYS.md §1.5). No DB."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from payment_service.gateways.vnpay import protocol as vnpay
from payment_service.gateways.vnpay.protocol import (
    IPN_RESPONSE_CODES,
    TRANSACTION_STATUS,
    VnpayConfig,
    build_payment_url,
    canonical_query,
    format_vnpay_time,
    is_successful_payment,
    order_info_problem,
    parse_vnpay_time,
    response_code_reason,
    sign,
    verify_query,
)

SECRET = "VNPAYTESTSECRET0123456789ABCDEFG"

PAY_HASHDATA = (
    "vnp_Amount=1000000&vnp_Command=pay&vnp_CreateDate=20240501103000&vnp_CurrCode=VND"
    "&vnp_ExpireDate=20240501104500&vnp_IpAddr=127.0.0.1&vnp_Locale=vn"
    "&vnp_OrderInfo=Thanh+toan+don+hang+ORD123&vnp_OrderType=other"
    "&vnp_ReturnUrl=https%3A%2F%2Fexample.com%2Fvnpay%2Freturn&vnp_TmnCode=TESTTMN1"
    "&vnp_TxnRef=ORD123&vnp_Version=2.1.0"
)
PAY_HASH = (
    "18c62756655bd78569d2a4533c1eae2831eea1c3c4f8607fe47c3ae5bd96daaa"
    "6c690864f51934b08dc9640da92e92d44c8a9e5a8119e3266bda3c7b60b8b1d6"
)
PAY_PARAMS = {
    "vnp_Version": "2.1.0",
    "vnp_Command": "pay",
    "vnp_TmnCode": "TESTTMN1",
    "vnp_Amount": "1000000",
    "vnp_CurrCode": "VND",
    "vnp_IpAddr": "127.0.0.1",
    "vnp_Locale": "vn",
    "vnp_OrderInfo": "Thanh toan don hang ORD123",
    "vnp_OrderType": "other",
    "vnp_ReturnUrl": "https://example.com/vnpay/return",
    "vnp_TxnRef": "ORD123",
    "vnp_CreateDate": "20240501103000",
    "vnp_ExpireDate": "20240501104500",
}

IPN_HASHDATA = (
    "vnp_Amount=1000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14226112&vnp_CardType=ATM"
    "&vnp_OrderInfo=Thanh+toan+don+hang+ORD123&vnp_PayDate=20240501103512&vnp_ResponseCode=00"
    "&vnp_TmnCode=TESTTMN1&vnp_TransactionNo=14226112&vnp_TransactionStatus=00&vnp_TxnRef=ORD123"
)
IPN_HASH = (
    "bc74c5fd399665aa141c2471de4a4041b05f56ea13c3f0af778b1883bffeb21d"
    "558333eebe044c3929b3ca718d85b28d93dbc943fa4b3cc60af46d5b04d1c4b1"
)
IPN_QUERY = f"{IPN_HASHDATA}&vnp_SecureHash={IPN_HASH}"

CONFIG = VnpayConfig(
    tmn_code="TESTTMN1",
    hash_secret=SECRET,
    pay_url="https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
    return_url="https://example.com/vnpay/return",
)
CREATE = datetime(2024, 5, 1, 3, 30, tzinfo=UTC)  # 10:30 GMT+7


def _build(**overrides: object) -> str:
    kwargs: dict[str, object] = {
        "txn_ref": "ORD123",
        "amount": 10000,
        "order_info": "Thanh toan don hang ORD123",
        "ip_addr": "127.0.0.1",
        "create_time": CREATE,
        "expire_time": CREATE + timedelta(minutes=15),
    }
    kwargs.update(overrides)
    return build_payment_url(CONFIG, **kwargs)  # type: ignore[arg-type]


def _independent_hash(data: str) -> str:
    return hmac.new(SECRET.encode(), data.encode(), hashlib.sha512).hexdigest()


# --- published vectors -------------------------------------------------------


def test_pay_vector_canonical_query_and_hash() -> None:
    assert canonical_query(PAY_PARAMS) == PAY_HASHDATA
    assert sign(PAY_PARAMS, SECRET) == PAY_HASH
    assert _independent_hash(PAY_HASHDATA) == PAY_HASH


def test_percent20_spaces_give_a_different_hash() -> None:
    pct20 = PAY_HASHDATA.replace("+", "%20")
    assert pct20 != PAY_HASHDATA
    assert _independent_hash(pct20).startswith("b7de567cc7c1c022")
    assert _independent_hash(pct20) != PAY_HASH


def test_ipn_vector_verifies() -> None:
    result = verify_query(IPN_QUERY, SECRET)
    assert result.valid, result.reason
    assert result.reason is None
    assert result.data["vnp_TxnRef"] == "ORD123"
    assert result.data["vnp_OrderInfo"] == "Thanh toan don hang ORD123"
    assert "vnp_SecureHash" not in result.data
    assert is_successful_payment(result.data)
    assert verify_query(IPN_QUERY.encode(), SECRET).valid
    assert verify_query("?" + IPN_QUERY, SECRET).valid


def test_ipn_verification_is_order_and_case_insensitive_and_ignores_extras() -> None:
    shuffled = "&".join(reversed(IPN_QUERY.split("&")))
    assert verify_query(shuffled, SECRET).valid
    assert verify_query(f"{IPN_HASHDATA}&vnp_SecureHash={IPN_HASH.upper()}", SECRET).valid
    extras = f"{IPN_QUERY}&vnp_SecureHashType=HmacSHA512&utm_source=x"
    result = verify_query(extras, SECRET)
    assert result.valid
    assert "utm_source" not in result.data


@pytest.mark.parametrize("index", range(len(IPN_HASHDATA.split("&"))))
def test_ipn_any_tampered_value_fails(index: int) -> None:
    pairs = IPN_HASHDATA.split("&")
    key, value = pairs[index].split("=", 1)
    pairs[index] = f"{key}={value}9"
    result = verify_query("&".join(pairs) + f"&vnp_SecureHash={IPN_HASH}", SECRET)
    assert not result.valid
    assert result.reason == "vnp_SecureHash mismatch"


def test_ipn_wrong_secret_fails() -> None:
    assert not verify_query(IPN_QUERY, SECRET + "x").valid


@pytest.mark.parametrize("query", [IPN_HASHDATA, f"{IPN_HASHDATA}&vnp_SecureHash="])
def test_ipn_missing_hash_fails(query: str) -> None:
    result = verify_query(query, SECRET)
    assert not result.valid
    assert result.reason == "missing vnp_SecureHash"


@pytest.mark.parametrize(
    "extra", ["vnp_ResponseCode=00", "vnp_Amount=1000000", f"vnp_SecureHash={IPN_HASH}", "foo=1&foo=2"]
)
def test_ipn_duplicate_key_fails(extra: str) -> None:
    result = verify_query(f"{IPN_QUERY}&{extra}", SECRET)
    assert not result.valid
    assert result.reason is not None and "duplicate" in result.reason


@pytest.mark.parametrize("bad_hash", ["%C3%A1" * 64, "zz", IPN_HASH[:-2]])
def test_ipn_garbage_hash_is_invalid_not_an_exception(bad_hash: str) -> None:
    assert not verify_query(f"{IPN_HASHDATA}&vnp_SecureHash={bad_hash}", SECRET).valid


def test_ipn_non_ascii_bytes_rejected() -> None:
    result = verify_query(IPN_QUERY.encode() + b"&vnp_X=\xff", SECRET)
    assert not result.valid


def test_failed_payment_codes() -> None:
    assert not is_successful_payment({"vnp_ResponseCode": "00", "vnp_TransactionStatus": "02"})
    assert not is_successful_payment({"vnp_ResponseCode": "24", "vnp_TransactionStatus": "00"})
    assert response_code_reason("24") == "Customer cancelled the transaction"
    assert "Unknown" in response_code_reason("42")
    assert set(IPN_RESPONSE_CODES) >= {"00", "07", "09", "10", "11", "12", "13", "24", "51", "65", "75", "79"}
    assert set(TRANSACTION_STATUS) == {"00", "01", "02", "04", "05", "06", "07", "09"}


# --- build_payment_url ---------------------------------------------------------


def test_build_payment_url_reproduces_vector() -> None:
    url = _build()
    assert url.startswith(CONFIG.pay_url + "?")
    query = urlsplit(url).query
    assert query == f"{PAY_HASHDATA}&vnp_SecureHash={PAY_HASH}"
    assert dict(parse_qsl(query))["vnp_SecureHash"] == PAY_HASH
    assert "vnp_SecureHashType" not in query


def test_build_payment_url_verified_independently() -> None:
    """Re-derive the hash with only stdlib, not via our canonical_query."""
    url = _build(txn_ref="X9", amount=123456, order_info="Don hang X9: a/b, c.d_e", bank_code="NCB")
    received = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True, strict_parsing=True))
    got_hash = received.pop("vnp_SecureHash")
    expected = _independent_hash(urlencode(sorted(received.items())))
    assert hmac.compare_digest(got_hash, expected)
    assert received["vnp_Amount"] == "12345600"
    assert received["vnp_BankCode"] == "NCB"
    assert received["vnp_CreateDate"] == "20240501103000"
    assert received["vnp_ExpireDate"] == "20240501104500"
    # And our own verifier accepts what we build.
    assert verify_query(urlsplit(url).query, SECRET).valid


def test_build_payment_url_overrides_and_drops_empty_bank_code() -> None:
    url = _build(return_url="https://shop.example/vnp", bank_code="")
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["vnp_ReturnUrl"] == "https://shop.example/vnp"
    assert "vnp_BankCode" not in params
    assert "=&" not in urlsplit(url).query


@pytest.mark.parametrize(
    "overrides",
    [
        {"txn_ref": ""},
        {"txn_ref": "ORD-123"},
        {"txn_ref": "A" * 101},
        {"amount": 0},
        {"amount": -1},
        {"amount": True},
        {"amount": 10_000_000_000},  # *100 needs 13 digits
        {"ip_addr": ""},
        {"ip_addr": "1.1.1"},
        {"ip_addr": "1" * 46},
        {"order_info": "Thanh toán"},
        {"order_info": ""},
        {"create_time": datetime(2024, 5, 1, 10, 30)},
        {"expire_time": datetime(2024, 5, 1, 10, 45)},
        {"expire_time": CREATE},
        {"bank_code": "N@"},
        {"return_url": "http://x"},
    ],
)
def test_build_payment_url_rejects_bad_input(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _build(**overrides)


def test_largest_amount_accepted() -> None:
    params = dict(parse_qsl(urlsplit(_build(amount=9_999_999_999)).query))
    assert params["vnp_Amount"] == "999999999900"


def test_config_repr_hides_secret() -> None:
    assert SECRET not in repr(CONFIG)
    assert SECRET not in str(CONFIG)
    assert "TESTTMN1" in repr(CONFIG)
    with pytest.raises(ValueError):
        VnpayConfig(tmn_code="T", hash_secret="", pay_url="https://x", return_url="https://x/r")


# --- time -----------------------------------------------------------------------

_TZ_SCRIPT = """
import time
from datetime import datetime, timezone
from payment_service.gateways.vnpay.protocol import format_vnpay_time
print(format_vnpay_time(datetime(2024, 4, 30, 20, 0, tzinfo=timezone.utc)), time.strftime("%z"))
"""


def _create_date_under_tz(tz: str) -> tuple[str, str]:
    repo_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TZ": tz, "PYTHONPATH": str(repo_root)}
    out = subprocess.run(
        [sys.executable, "-c", _TZ_SCRIPT], env=env, cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], out[1]


def test_create_date_is_gmt7_whatever_the_server_tz() -> None:
    utc_date, utc_offset = _create_date_under_tz("UTC")
    ny_date, ny_offset = _create_date_under_tz("America/New_York")
    assert utc_offset != ny_offset  # proves TZ really changed in the child
    here = format_vnpay_time(datetime(2024, 4, 30, 20, 0, tzinfo=UTC))
    assert utc_date == ny_date == here == "20240501030000"


def test_format_vnpay_time_converts_from_any_zone() -> None:
    ny = datetime(2024, 4, 30, 16, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert format_vnpay_time(ny) == "20240501030000"


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError):
        format_vnpay_time(datetime(2024, 5, 1, 10, 30))


def test_parse_vnpay_time_round_trip() -> None:
    parsed = parse_vnpay_time("20240501103512")
    assert parsed == datetime(2024, 5, 1, 3, 35, 12, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)
    assert format_vnpay_time(parsed) == "20240501103512"
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in "20240501103512")  # str.isdigit() is True
    for bad in ("2024050110351", "2024-05-01 10:35", "20241301103512", fullwidth):
        with pytest.raises(ValueError):
            parse_vnpay_time(bad)


# --- order info -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Thanh toán", "'á'"),
        ("a&b", "'&'"),
        ("a=b", "'='"),
        ("100%", "'%'"),
        ("", "empty"),
        ("   ", "empty"),
        ("a" * 256, "256"),
        ("line\nbreak", "'\\n'"),
    ],
)
def test_order_info_problem_rejects(text: str, needle: str) -> None:
    problem = order_info_problem(text)
    assert problem is not None
    assert needle in problem


def test_order_info_problem_accepts_safe_text() -> None:
    assert order_info_problem("Thanh toan don hang ORD-1: a/b, c.d_e") is None
    assert order_info_problem("a" * 255) is None


# --- querydr ----------------------------------------------------------------------


def test_querydr_checksum_matches_the_published_vector() -> None:
    data = (
        "REQ20240501113000|2.1.0|querydr|TESTTMN1|ORD123|20240501103000|20240501113000|127.0.0.1"
        "|Truy van GD ORD123"
    )
    expected = (
        "7cb52e0574f23f47adae3a37a48b708f615d57e46470d73ffc9e4d60f5d6e9d9"
        "4caa398114b6a57742316164eb0a7f29f30717d266c6e77f4de67597663d6bc0"
    )
    assert vnpay.pipe_signature(data.split("|"), "VNPAYTESTSECRET0123456789ABCDEFG") == expected
    config = vnpay.VnpayConfig(
        "TESTTMN1", "VNPAYTESTSECRET0123456789ABCDEFG", "https://x.example/pay", "https://x.example/r"
    )
    body = vnpay.build_querydr(
        config,
        request_id="REQ20240501113000",
        txn_ref="ORD123",
        transaction_date=datetime(2024, 5, 1, 3, 30, tzinfo=UTC),
        now=datetime(2024, 5, 1, 4, 30, tzinfo=UTC),
        ip_addr="127.0.0.1",
    )
    assert body["vnp_SecureHash"] == expected
