"""MoMo signing against the published vectors (GATEWAYS.md §3.5). No DB."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from payment_service.gateways.momo import protocol as momo

# --- MoMo -----------------------------------------------------------------------

MOMO_CONFIG = momo.MomoConfig(
    partner_code="MOMO",
    access_key="F8BBA842ECF85",
    secret_key="K951B6PE1waDMi640xX08PD3vg6EkVlz",
    redirect_url="https://example.com/momo/return",
    ipn_url="https://example.com/momo/ipn",
)
MOMO_CREATE_SIG = "01473ba1f005e9f84c6bebce583fd7b140327ad7b7dcde738ce256b0ec51792b"
MOMO_IPN_SIG = "13d142495649a345a342a72afaaefe5e87d5d745fbda90aa4e87ad5e2deca100"
MOMO_QUERY_SIG = "872843ffb71ce6e0914a0818b8ebc15cbecda2616dbe22ecc70705a0fc1a299b"
MOMO_REFUND_SIG = "8ed09ccdfde781722f1ed0663c9a38f0d83ebeb706b76c1195f48a344919791a"
MOMO_IPN: dict[str, Any] = {
    "partnerCode": "MOMO",
    "orderId": "ORD123",
    "requestId": "REQ123",
    "amount": 50000,
    "orderInfo": "Thanh toan don hang ORD123",
    "orderType": "momo_wallet",
    "transId": 4088878653,
    "resultCode": 0,
    "message": "Successful.",
    "payType": "qr",
    "responseTime": 1714534512345,
    "extraData": "",
}


def _momo_body(fields: dict[str, Any], signature: str) -> bytes:
    return json.dumps({**fields, "signature": signature}, ensure_ascii=False).encode("utf-8")


def _momo_sign_ipn(fields: dict[str, Any]) -> str:
    raw = momo.ipn_signing_string(fields, MOMO_CONFIG.access_key)
    return hmac.new(MOMO_CONFIG.secret_key.encode(), raw.encode("utf-8"), hashlib.sha256).hexdigest()


def test_momo_create_vector() -> None:
    sig = momo.create_signature(
        access_key="F8BBA842ECF85",
        amount=50000,
        extra_data="",
        ipn_url="https://example.com/momo/ipn",
        order_id="ORD123",
        order_info="Thanh toan don hang ORD123",
        partner_code="MOMO",
        redirect_url="https://example.com/momo/return",
        request_id="REQ123",
        request_type="captureWallet",
        secret_key="K951B6PE1waDMi640xX08PD3vg6EkVlz",
    )
    assert sig == MOMO_CREATE_SIG


def test_momo_build_create_payload() -> None:
    payload = momo.build_create_payload(
        MOMO_CONFIG,
        order_id="ORD123",
        request_id="REQ123",
        amount=50000,
        order_info="Thanh toan don hang ORD123",
    )
    assert payload == {
        "partnerCode": "MOMO",
        "requestId": "REQ123",
        "amount": 50000,
        "orderId": "ORD123",
        "orderInfo": "Thanh toan don hang ORD123",
        "redirectUrl": "https://example.com/momo/return",
        "ipnUrl": "https://example.com/momo/ipn",
        "requestType": "captureWallet",
        "extraData": "",
        "lang": "vi",
        "signature": MOMO_CREATE_SIG,
    }
    assert "accessKey" not in payload  # signed, never sent


def test_momo_create_payload_overrides_and_extra_data() -> None:
    extra = momo.encode_extra_data({"cart": "Giỏ hàng 1"})
    assert json.loads(base64.b64decode(extra)) == {"cart": "Giỏ hàng 1"}
    payload = momo.build_create_payload(
        MOMO_CONFIG,
        order_id="ORD-124.a_b",
        request_id="REQ124",
        amount=1000,
        order_info="Thanh toán đơn hàng",  # UTF-8, where the official sample crashes
        extra_data=extra,
        redirect_url="https://shop.example/back",
        ipn_url="https://shop.example/ipn",
    )
    raw = (
        f"accessKey=F8BBA842ECF85&amount=1000&extraData={extra}&ipnUrl=https://shop.example/ipn"
        "&orderId=ORD-124.a_b&orderInfo=Thanh toán đơn hàng&partnerCode=MOMO"
        "&redirectUrl=https://shop.example/back&requestId=REQ124&requestType=captureWallet"
    )
    expected = hmac.new(MOMO_CONFIG.secret_key.encode(), raw.encode("utf-8"), hashlib.sha256).hexdigest()
    assert payload["signature"] == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": 999},
        {"amount": 50_000_001},
        {"amount": True},
        {"order_info": "x" * 200},
        {"order_info": "a&b"},
        {"order_info": "a=b"},
        {"order_info": "  "},
        {"order_info": "line\nbreak"},
        {"order_id": "-ORD"},
        {"order_id": "ORD 1"},
        {"order_id": "x" * 201},
        {"request_id": ""},
        {"request_id": "a&b"},
        {"request_id": "x" * 51},
        {"extra_data": "not base64!"},
        {"extra_data": base64.b64encode(b"[1]").decode()},
    ],
)
def test_momo_build_create_payload_rejects_bad_input(overrides: dict[str, Any]) -> None:
    args: dict[str, Any] = {"order_id": "ORD1", "request_id": "REQ1", "amount": 50000, "order_info": "ok"}
    with pytest.raises(ValueError):
        momo.build_create_payload(MOMO_CONFIG, **{**args, **overrides})


def test_momo_limits_accepted() -> None:
    for amount in (momo.AMOUNT_MIN, momo.AMOUNT_MAX):
        momo.build_create_payload(
            MOMO_CONFIG, order_id="O", request_id="R", amount=amount, order_info="x" * 199
        )


def test_momo_ipn_vector() -> None:
    assert _momo_sign_ipn(MOMO_IPN) == MOMO_IPN_SIG
    result = momo.verify_ipn(_momo_body(MOMO_IPN, MOMO_IPN_SIG), MOMO_CONFIG)
    assert result == momo.IpnVerifyResult(True, MOMO_IPN, None)
    assert momo.is_success(result.data["resultCode"])


def test_momo_ipn_access_key_comes_from_config_not_body() -> None:
    body = _momo_body({**MOMO_IPN, "accessKey": "ATTACKER"}, MOMO_IPN_SIG)
    assert momo.verify_ipn(body, MOMO_CONFIG).valid
    other = momo.MomoConfig(
        partner_code="MOMO",
        access_key="OTHERKEY",
        secret_key=MOMO_CONFIG.secret_key,
        redirect_url="https://r",
        ipn_url="https://i",
    )
    assert not momo.verify_ipn(_momo_body(MOMO_IPN, MOMO_IPN_SIG), other).valid


@pytest.mark.parametrize("key", sorted(MOMO_IPN))
def test_momo_ipn_any_tampered_value_fails(key: str) -> None:
    value = MOMO_IPN[key]
    tampered = {**MOMO_IPN, key: value + 1 if isinstance(value, int) else value + "x"}
    result = momo.verify_ipn(_momo_body(tampered, MOMO_IPN_SIG), MOMO_CONFIG)
    assert not result.valid and result.reason == "signature mismatch"


def test_momo_ipn_utf8_and_hex_case() -> None:
    fields = {**MOMO_IPN, "orderInfo": "Thanh toán đơn hàng", "message": "Thành công."}
    signature = _momo_sign_ipn(fields).upper()
    assert momo.verify_ipn(_momo_body(fields, signature), MOMO_CONFIG).valid


def test_momo_ipn_for_another_partner_is_rejected() -> None:
    fields = {**MOMO_IPN, "partnerCode": "OTHER"}
    result = momo.verify_ipn(_momo_body(fields, _momo_sign_ipn(fields)), MOMO_CONFIG)
    assert not result.valid and result.reason == "partnerCode is not this merchant's"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "body is not a JSON object"),
        (b"[]", "body is not a JSON object"),
        (_momo_body(MOMO_IPN, "")[:-1] + b', "amount": 1}', "duplicate key"),
        (json.dumps(MOMO_IPN).encode(), "missing signature"),
        (_momo_body({**MOMO_IPN, "amount": 50000.0}, MOMO_IPN_SIG), "amount is neither"),
        (_momo_body({**MOMO_IPN, "resultCode": True}, MOMO_IPN_SIG), "resultCode is neither"),
        (_momo_body(MOMO_IPN, "é" * 64), "signature mismatch"),
    ],
)
def test_momo_malformed_ipn_is_invalid_not_an_exception(body: bytes, reason: str) -> None:
    result = momo.verify_ipn(body, MOMO_CONFIG)
    assert not result.valid
    assert result.reason is not None and reason in result.reason


def test_momo_query_vector() -> None:
    sig = momo.query_signature(
        access_key="F8BBA842ECF85",
        order_id="ORD123",
        partner_code="MOMO",
        request_id="REQ124",
        secret_key=MOMO_CONFIG.secret_key,
    )
    assert sig == MOMO_QUERY_SIG
    payload = momo.build_query_payload(MOMO_CONFIG, order_id="ORD123", request_id="REQ124")
    assert payload == {
        "partnerCode": "MOMO",
        "requestId": "REQ124",
        "orderId": "ORD123",
        "lang": "vi",
        "signature": MOMO_QUERY_SIG,
    }


def test_momo_refund_vector() -> None:
    payload = momo.build_refund_payload(
        MOMO_CONFIG, order_id="RF-ORD123", request_id="REQ125", amount=50000, trans_id=4088878653
    )
    assert payload["signature"] == MOMO_REFUND_SIG
    assert payload["transId"] == 4088878653 and payload["description"] == ""
    with pytest.raises(ValueError):
        momo.build_refund_payload(MOMO_CONFIG, order_id="R", request_id="Q", amount=50000, trans_id=0)


def test_momo_result_codes() -> None:
    assert momo.is_success(0) and momo.is_success(9000)
    assert not momo.is_success(1006) and not momo.is_success(1000) and not momo.is_success(False)
    assert momo.is_pending(1000) and momo.is_pending(7000) and not momo.is_pending(0)
    assert "denied" in momo.result_code_reason(1006)
    assert "Unknown" in momo.result_code_reason(123456)


def test_momo_config_repr_hides_keys() -> None:
    text = repr(MOMO_CONFIG)
    assert "F8BBA842ECF85" not in text and MOMO_CONFIG.secret_key not in text and "MOMO" in text
    with pytest.raises(ValueError):
        momo.MomoConfig(partner_code="M", access_key="a", secret_key="", redirect_url="r", ipn_url="i")
