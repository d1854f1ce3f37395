"""payOS, MoMo and ZaloPay signing against the published vectors (GATEWAYS.md
§2.5, §3.5, §4.5), plus a cross-check of payOS against the official SDK. No DB."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from payment_service.providers import momo, payos, zalopay

# --- payOS ----------------------------------------------------------------------

PAYOS_KEY = "1a54716c8f0efb2744fb28b6e38b25da7f67a925d98bc1c18bd8faaecadd7675"
PAYOS_WEBHOOK_SIG = "412e915d2871504ed31be63c8f62a149a4410d34c4c42affc9006ef9917eaa03"
PAYOS_CREATE_SIG = "ef54001b31ee9d49d08258ec3f18dad4f7f58f2c4f81c8742089578a7a8d6888"
# The webhook-guide sample (payos.vn/docs/tich-hop-webhook/kiem-tra-du-lieu-voi-signature),
# in the order payOS sends it.
PAYOS_SAMPLE_DATA: dict[str, Any] = {
    "orderCode": 123,
    "amount": 3000,
    "description": "VQRIO123",
    "accountNumber": "12345678",
    "reference": "TF230204212323",
    "transactionDateTime": "2023-02-04 18:25:00",
    "currency": "VND",
    "paymentLinkId": "124c33293c43417ab7879e14c8d9eb18",
    "code": "00",
    "desc": "Thành công",
    "counterAccountBankId": "",
    "counterAccountBankName": "",
    "counterAccountName": "",
    "counterAccountNumber": "",
    "virtualAccountName": "",
    "virtualAccountNumber": "",
}
PAYOS_SAMPLE_STRING = (
    "accountNumber=12345678&amount=3000&code=00&counterAccountBankId=&counterAccountBankName="
    "&counterAccountName=&counterAccountNumber=&currency=VND&desc=Thành công&description=VQRIO123"
    "&orderCode=123&paymentLinkId=124c33293c43417ab7879e14c8d9eb18&reference=TF230204212323"
    "&transactionDateTime=2023-02-04 18:25:00&virtualAccountName=&virtualAccountNumber="
)
PAYOS_CONFIG = payos.PayosConfig(
    client_id="client-1",
    api_key="api-key-secret",
    checksum_key=PAYOS_KEY,
    return_url="https://example.com/success",
    cancel_url="https://example.com/cancel",
)


def _payos_body(data: dict[str, Any], signature: str) -> bytes:
    envelope = {"code": "00", "desc": "success", "success": True, "data": data, "signature": signature}
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")


def test_payos_webhook_doc_sample() -> None:
    assert payos.data_signing_string(PAYOS_SAMPLE_DATA) == PAYOS_SAMPLE_STRING
    assert payos.data_signature(PAYOS_SAMPLE_DATA, PAYOS_KEY) == PAYOS_WEBHOOK_SIG
    result = payos.verify_webhook(_payos_body(PAYOS_SAMPLE_DATA, PAYOS_WEBHOOK_SIG), PAYOS_KEY)
    assert result == payos.WebhookVerifyResult(True, PAYOS_SAMPLE_DATA, None)
    assert payos.is_registration_ping(result.data)
    assert payos.is_successful_payment(result.data)


def test_payos_signing_string_keeps_raw_utf8() -> None:
    s = payos.data_signing_string({"desc": "Thành công", "url": "https://x/y?a=b"})
    assert s == "desc=Thành công&url=https://x/y?a=b"


def test_payos_null_and_placeholder_strings_sign_as_empty() -> None:
    nulls = {**PAYOS_SAMPLE_DATA, "counterAccountName": None, "virtualAccountName": "null"}
    nulls["virtualAccountNumber"] = "undefined"
    assert payos.data_signature(nulls, PAYOS_KEY) == PAYOS_WEBHOOK_SIG
    result = payos.verify_webhook(_payos_body(nulls, PAYOS_WEBHOOK_SIG), PAYOS_KEY)
    assert result.valid and result.data["counterAccountName"] is None


def test_payos_verify_is_key_order_and_hex_case_insensitive() -> None:
    shuffled = dict(reversed(list(PAYOS_SAMPLE_DATA.items())))
    assert payos.verify_webhook(_payos_body(shuffled, PAYOS_WEBHOOK_SIG.upper()), PAYOS_KEY).valid


@pytest.mark.parametrize("key", sorted(PAYOS_SAMPLE_DATA))
def test_payos_any_tampered_value_fails(key: str) -> None:
    tampered = {**PAYOS_SAMPLE_DATA, key: "1" if PAYOS_SAMPLE_DATA[key] != "1" else "2"}
    result = payos.verify_webhook(_payos_body(tampered, PAYOS_WEBHOOK_SIG), PAYOS_KEY)
    assert not result.valid and result.reason == "signature mismatch"
    assert result.data == tampered  # still there for the journal


def test_payos_wrong_key_fails() -> None:
    body = _payos_body(PAYOS_SAMPLE_DATA, PAYOS_WEBHOOK_SIG)
    assert not payos.verify_webhook(body, "0" * 64).valid


def test_payos_unknown_field_verifies_when_signed_over_raw_data() -> None:
    extended = {**PAYOS_SAMPLE_DATA, "brandNewField": "from a future payOS release"}
    signature = payos.data_signature(extended, PAYOS_KEY)
    result = payos.verify_webhook(_payos_body(extended, signature), PAYOS_KEY)
    assert result.valid and result.data["brandNewField"] == "from a future payOS release"
    # A model that dropped the field would sign something else and reject it.
    assert signature != PAYOS_WEBHOOK_SIG


def test_payos_omitted_field_verifies_when_signed_over_raw_data() -> None:
    # payOS omitting a field must not become "field=" (what a model filling None does).
    trimmed = {k: v for k, v in PAYOS_SAMPLE_DATA.items() if k != "virtualAccountNumber"}
    signature = payos.data_signature(trimmed, PAYOS_KEY)
    assert payos.verify_webhook(_payos_body(trimmed, signature), PAYOS_KEY).valid
    assert signature != PAYOS_WEBHOOK_SIG


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body is not a JSON object"),
        (b"[1, 2]", "body is not a JSON object"),
        (b'{"data": {"a": 1}, "data": {"a": 2}, "signature": "x"}', "duplicate key"),
        (b'{"data": {"a": NaN}, "signature": "x"}', "NaN"),
        (b"\xff\xfe{}", "body is not a JSON object"),
        (b'{"data": null, "signature": "x"}', "data is not a JSON object"),
        (b'{"data": "a=1", "signature": "x"}', "data is not a JSON object"),
        (b'{"data": {"a": 1}}', "missing signature"),
        (b'{"data": {"a": 1}, "signature": 5}', "missing signature"),
        (b'{"data": {"a": {"b": 1}}, "signature": "x"}', "nested object"),
        (b'{"data": {"a": 1}, "signature": "\xc3\xa9\xc3\xa9"}', "signature mismatch"),
    ],
)
def test_payos_malformed_webhooks_are_invalid_not_exceptions(body: bytes, reason: str) -> None:
    result = payos.verify_webhook(body, PAYOS_KEY)
    assert not result.valid
    assert result.reason is not None and reason in result.reason


def test_payos_list_values_are_compact_json_with_sorted_element_keys() -> None:
    data = {
        "transactions": [{"reference": "TF1", "amount": 3000, "desc": "Thành công", "x": None}],
        "tags": [True, 1.5, None, "a"],
        "paid": True,
    }
    assert payos.data_signing_string(data) == (
        'paid=true&tags=[true,1.5,null,"a"]'
        '&transactions=[{"amount":3000,"desc":"Thành công","reference":"TF1","x":null}]'
    )


def test_payos_create_signature_vector() -> None:
    sig = payos.create_request_signature(
        2000, "https://example.com/cancel", "Thanh toan", 123, "https://example.com/success", PAYOS_KEY
    )
    assert sig == PAYOS_CREATE_SIG


def test_payos_build_create_payload() -> None:
    expires = datetime(2024, 5, 1, 10, 45, tzinfo=timezone(timedelta(hours=7)))
    payload = payos.build_create_payload(
        PAYOS_CONFIG,
        order_code=1001,
        amount=2000,
        description="Thanh toan",
        expired_at=expires,
        buyer_name="Nguyễn Văn A",
    )
    assert payload == {
        "orderCode": 1001,
        "amount": 2000,
        "description": "Thanh toan",
        "returnUrl": "https://example.com/success",
        "cancelUrl": "https://example.com/cancel",
        "expiredAt": 1714535100,
        "buyerName": "Nguyễn Văn A",
        "signature": payos.create_request_signature(
            2000, "https://example.com/cancel", "Thanh toan", 1001, "https://example.com/success", PAYOS_KEY
        ),
    }
    overridden = payos.build_create_payload(
        PAYOS_CONFIG,
        order_code=1001,
        amount=2000,
        description="x" * payos.DESCRIPTION_MAX_LEN,
        expired_at=expires,
        return_url="https://shop.example/ok",
        cancel_url="https://shop.example/no",
    )
    assert (overridden["returnUrl"], overridden["cancelUrl"]) == (
        "https://shop.example/ok",
        "https://shop.example/no",
    )
    assert "buyerName" not in overridden


_EXPIRES = datetime(2024, 5, 1, 3, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    "overrides",
    [
        {"order_code": 0},
        {"order_code": 2**53},
        {"order_code": True},
        {"order_code": 123},  # reserved for payOS's webhook test
        {"amount": 0},
        {"amount": True},
        {"description": ""},
        {"description": "x" * 26},
        {"expired_at": datetime(2024, 5, 1, 10, 45)},
        {"expired_at": datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC)},
    ],
)
def test_payos_build_create_payload_rejects_bad_input(overrides: dict[str, Any]) -> None:
    args: dict[str, Any] = {"order_code": 1001, "amount": 2000, "description": "ok", "expired_at": _EXPIRES}
    with pytest.raises(ValueError):
        payos.build_create_payload(PAYOS_CONFIG, **{**args, **overrides})


def test_payos_largest_values_accepted() -> None:
    payload = payos.build_create_payload(
        PAYOS_CONFIG,
        order_code=payos.ORDER_CODE_MAX,
        amount=2000,
        description="ok",
        expired_at=datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
    )
    assert payload["expiredAt"] == 2**31 - 1


def test_payos_registration_ping_is_only_order_123() -> None:
    assert not payos.is_registration_ping({**PAYOS_SAMPLE_DATA, "orderCode": 1234})
    assert not payos.is_registration_ping({**PAYOS_SAMPLE_DATA, "orderCode": "123"})
    assert not payos.is_successful_payment({**PAYOS_SAMPLE_DATA, "code": "01"})


def test_payos_cancel_payload_is_signed_over_the_body() -> None:
    body = payos.build_cancel_payload(PAYOS_CONFIG, "Khách hủy")
    expected = hmac.new(
        PAYOS_KEY.encode(), "cancellationReason=Khách hủy".encode(), hashlib.sha256
    ).hexdigest()
    assert body == {"cancellationReason": "Khách hủy", "signature": expected}
    assert payos.build_cancel_payload(PAYOS_CONFIG) == {"signature": payos.data_signature({}, PAYOS_KEY)}


def test_payos_config_repr_hides_secrets() -> None:
    text = repr(PAYOS_CONFIG)
    assert PAYOS_KEY not in text and "api-key-secret" not in text and "client-1" in text
    with pytest.raises(ValueError):
        payos.PayosConfig(client_id="c", api_key="k", checksum_key="", return_url="r", cancel_url="c")
    assert payos.request_headers(PAYOS_CONFIG)["x-client-id"] == "client-1"


# --- payOS vs the official SDK ----------------------------------------------------

_SDK_OBJECTS: list[dict[str, Any]] = [
    PAYOS_SAMPLE_DATA,
    {**PAYOS_SAMPLE_DATA, "counterAccountName": None, "virtualAccountName": "null", "reference": "undefined"},
    {"b": True, "a": False, "c": 0, "d": -5, "e": 1.5, "f": "", "g": "Thành công & co=1"},
    {
        "orderCode": 1001,
        "transactions": [
            {"reference": "TF1", "amount": 3000, "description": "Chuyển tiền", "virtualAccountName": None},
            {"z": {"y": 1, "x": [2, None]}, "a": "nested dict inside a list element"},
            "plain",
            7,
        ],
        "empty": [],
    },
    {},
]


@pytest.mark.parametrize("obj", _SDK_OBJECTS, ids=range(len(_SDK_OBJECTS)))
def test_payos_data_signature_matches_sdk(obj: dict[str, Any]) -> None:
    pytest.importorskip("payos")
    from payos._crypto import CryptoProvider

    assert payos.data_signature(obj, PAYOS_KEY) == CryptoProvider().create_signature_from_object(
        obj, PAYOS_KEY
    )


def test_payos_nested_object_deliberately_differs_from_sdk() -> None:
    pytest.importorskip("payos")
    from payos._crypto import CryptoProvider

    obj = {"amount": 1, "meta": {"b": 1, "a": 2}}
    # The SDK signs Python's repr ("meta={'b': 1, 'a': 2}"); the docs' JS sample
    # would sign "[object Object]". We refuse instead of picking one.
    repr_sig = hmac.new(PAYOS_KEY.encode(), b"amount=1&meta={'b': 1, 'a': 2}", hashlib.sha256).hexdigest()
    assert CryptoProvider().create_signature_from_object(obj, PAYOS_KEY) == repr_sig
    with pytest.raises(ValueError, match="nested object"):
        payos.data_signature(obj, PAYOS_KEY)
    result = payos.verify_data(obj, repr_sig, PAYOS_KEY)
    assert not result.valid and result.reason is not None and "nested object" in result.reason


def test_payos_create_signature_matches_sdk() -> None:
    pytest.importorskip("payos")
    from payos._crypto import CryptoProvider

    payload = payos.build_create_payload(
        PAYOS_CONFIG, order_code=987654321, amount=150000, description="Đơn 987654321", expired_at=_EXPIRES
    )
    sdk = CryptoProvider().create_signature_of_payment_request(payload, PAYOS_KEY)
    assert payload["signature"] == sdk
    vector = {
        "amount": 2000,
        "cancelUrl": "https://example.com/cancel",
        "description": "Thanh toan",
        "orderCode": 123,
        "returnUrl": "https://example.com/success",
    }
    assert CryptoProvider().create_signature_of_payment_request(vector, PAYOS_KEY) == PAYOS_CREATE_SIG


def test_payos_cancel_signature_matches_sdk() -> None:
    pytest.importorskip("payos")
    from payos._crypto import CryptoProvider

    body = payos.build_cancel_payload(PAYOS_CONFIG, "Khách hủy")
    assert body["signature"] == CryptoProvider().create_signature_from_object(
        {"cancellationReason": "Khách hủy"}, PAYOS_KEY
    )


def test_payos_sdk_rejects_what_we_accept() -> None:
    """GATEWAYS.md §5: the SDK's extra="forbid" model rejects a genuinely signed
    webhook with a new field; verifying the raw data accepts it."""
    pytest.importorskip("payos")
    from payos import PayOS, WebhookError

    client = PayOS(client_id="offline", api_key="offline", checksum_key=PAYOS_KEY)
    assert client.webhooks.verify(_payos_body(PAYOS_SAMPLE_DATA, PAYOS_WEBHOOK_SIG)).order_code == 123
    extended = {**PAYOS_SAMPLE_DATA, "brandNewField": "x"}
    body = _payos_body(extended, payos.data_signature(extended, PAYOS_KEY))
    with pytest.raises(WebhookError):
        client.webhooks.verify(body)
    assert payos.verify_webhook(body, PAYOS_KEY).valid


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


# --- ZaloPay --------------------------------------------------------------------

ZLP_KEY1 = "PcY4iZIKFCIdgZvA6ueMcMHHUbRLYjPL"
ZLP_KEY2 = "kLtgPl8HHhfvMuDHPwKfgfsY4Ydm9eIz"
ZLP_CONFIG = zalopay.ZalopayConfig(
    app_id=2553,
    key1=ZLP_KEY1,
    key2=ZLP_KEY2,
    callback_url="https://example.com/zlp/callback",
    redirect_url="https://example.com/zlp/return",
)
# The callback-api doc sample (docs.zalopay.vn/docs/specs/callback-api), byte for byte.
ZLP_DOC_DATA = (
    '{"app_id":2553,"app_trans_id":"200904_2553_1598435687208","app_time":1599189392817,'
    '"app_user":"demo","amount":10000,'
    '"embed_data":"{\\"merchantinfo\\":\\"embeddata123\\",\\"promotioninfo\\":\\"\\"}",'
    '"item":"[{\\"itemid\\":\\"knb\\",\\"itemname\\":\\"kim nguyen bao\\",\\"itemprice\\":198400,'
    '\\"itemquantity\\":1}]",'
    '"zp_trans_id":200904000000389,"server_time":1599189413498,"channel":38,'
    '"merchant_user_id":"7ZMSl3nEg5sOUJzOLSoUFT8xKNQVaLOLXHB--8Eytqc","user_fee_amount":0,"discount_amount":0}'
)
ZLP_DOC_MAC = "d8d33baf449b31d7f9b94fa50d7c942c08cd4d83f28fa185557da21acb104f67"
ZLP_CREATE_MAC = "519e07da4c3b462a44050665c7377a273447f6def2f6260418687fa25211d105"
ZLP_QUERY_MAC = "3d857f20fd1dcd843cddd6e89d21326c62a25e2de4727c6c0f314d05d7e4b0d1"
ZLP_REFUND_MAC = "c79ed895ee6d412c09b8076d0019a855249ceca95bddbf990d97fa6c000e6030"


def _zlp_body(data: Any, mac: Any, type_: Any = 1) -> bytes:
    return json.dumps({"data": data, "mac": mac, "type": type_}).encode("utf-8")


def test_zalopay_doc_callback_sample() -> None:
    result = zalopay.verify_callback(_zlp_body(ZLP_DOC_DATA, ZLP_DOC_MAC), ZLP_KEY2)
    assert result.valid and result.reason is None and result.callback_type == 1
    assert result.data["app_trans_id"] == "200904_2553_1598435687208"
    assert result.data["zp_trans_id"] == 200904000000389
    assert result.data["embed_data"] == '{"merchantinfo":"embeddata123","promotioninfo":""}'


def test_zalopay_callback_mac_is_over_the_raw_data_string() -> None:
    # Same JSON value, different bytes: a re-serialised data string fails.
    reserialised = json.dumps(json.loads(ZLP_DOC_DATA))
    assert json.loads(reserialised) == json.loads(ZLP_DOC_DATA)
    result = zalopay.verify_callback(_zlp_body(reserialised, ZLP_DOC_MAC), ZLP_KEY2)
    assert not result.valid and result.reason == "mac mismatch"
    # Envelope formatting does not matter: only the decoded data string is hashed.
    pretty = json.dumps(
        {"type": 1, "mac": ZLP_DOC_MAC.upper(), "data": ZLP_DOC_DATA}, indent=2, ensure_ascii=True
    )
    assert zalopay.verify_callback(pretty.encode(), ZLP_KEY2).valid


def test_zalopay_callback_raw_utf8_data() -> None:
    data = '{"app_trans_id":"240501_ORD123","amount":50000,"description":"Thanh toán đơn hàng"}'
    mac = hmac.new(ZLP_KEY2.encode(), data.encode("utf-8"), hashlib.sha256).hexdigest()
    body = json.dumps({"data": data, "mac": mac, "type": 1}, ensure_ascii=False).encode("utf-8")
    result = zalopay.verify_callback(body, ZLP_KEY2)
    assert result.valid and result.data["description"] == "Thanh toán đơn hàng"


def test_zalopay_callback_tampered_or_wrong_key_fails() -> None:
    tampered = ZLP_DOC_DATA.replace('"amount":10000', '"amount":10')
    result = zalopay.verify_callback(_zlp_body(tampered, ZLP_DOC_MAC), ZLP_KEY2)
    assert not result.valid and result.data["amount"] == 10  # kept for the journal
    assert not zalopay.verify_callback(_zlp_body(ZLP_DOC_DATA, ZLP_DOC_MAC), ZLP_KEY1).valid


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "body is not a JSON object"),
        (b'"string"', "body is not a JSON object"),
        (_zlp_body(json.loads(ZLP_DOC_DATA), ZLP_DOC_MAC), "data is not a string"),
        (_zlp_body("not json", ZLP_DOC_MAC), "data is not a JSON object"),
        (_zlp_body("[1]", ZLP_DOC_MAC), "data is not a JSON object"),
        (_zlp_body('{"a":1,"a":2}', ZLP_DOC_MAC), "duplicate key"),
        (_zlp_body(ZLP_DOC_DATA, None), "missing mac"),
        (_zlp_body(ZLP_DOC_DATA, "é"), "mac mismatch"),
        (_zlp_body('{"a":"\\ud800"}', ZLP_DOC_MAC), "mac mismatch"),
        (b'{"data": "{\\"a\\":\\"\\ud800\\"}", "mac": "x"}', "not valid Unicode"),
    ],
)
def test_zalopay_malformed_callbacks_are_invalid_not_exceptions(body: bytes, reason: str) -> None:
    result = zalopay.verify_callback(body, ZLP_KEY2)
    assert not result.valid
    assert result.reason is not None and reason in result.reason


def test_zalopay_create_vector() -> None:
    embed = zalopay.build_embed_data(ZLP_CONFIG)
    assert embed == '{"redirecturl":"https://example.com/zlp/return"}'
    mac = zalopay.create_mac(
        app_id=2553,
        app_trans_id="240501_ORD123",
        app_user="user123",
        amount=50000,
        app_time=1714534200000,
        embed_data=embed,
        item="[]",
        key1=ZLP_KEY1,
    )
    assert mac == ZLP_CREATE_MAC
    payload = zalopay.build_create_payload(
        ZLP_CONFIG,
        app_trans_id="240501_ORD123",
        app_user="user123",
        amount=50000,
        app_time_ms=1714534200000,
        description="Thanh toán đơn hàng ORD123",
        embed_data=embed,
    )
    assert payload == {
        "app_id": 2553,
        "app_user": "user123",
        "app_trans_id": "240501_ORD123",
        "app_time": 1714534200000,
        "expire_duration_seconds": 900,
        "amount": 50000,
        "item": "[]",
        "embed_data": embed,
        "description": "Thanh toán đơn hàng ORD123",
        "bank_code": "",
        "callback_url": "https://example.com/zlp/callback",
        "mac": ZLP_CREATE_MAC,
    }


def test_zalopay_doc_qr_sample() -> None:
    mac = zalopay.create_mac(
        app_id=553,
        app_trans_id="200904_000234",
        app_user="user123",
        amount=10000,
        app_time=1599202366026,
        embed_data="{}",
        item="[]",
        key1="9phuAOYhan4urywHTh0ndEXiV3pKHr5Q",
    )
    # GATEWAYS.md gives this digest abridged: 7e95836a…b5a6838.
    assert mac.startswith("7e95836a") and mac.endswith("b5a6838")


_ZLP_ARGS: dict[str, Any] = {
    "app_trans_id": "240501_ORD123",
    "app_user": "user123",
    "amount": 50000,
    "app_time_ms": 1714534200000,
    "description": "ok",
    "embed_data": "{}",
}


@pytest.mark.parametrize(
    "overrides",
    [
        {"app_trans_id": "240430_ORD123"},  # not app_time's GMT+7 date
        {"app_trans_id": "ORD123"},
        {"app_trans_id": "240501_" + "x" * 34},
        {"app_trans_id": "240501_ORD-1"},
        {"app_time_ms": 1714534200},  # seconds, not ms
        {"app_time_ms": True},
        {"app_user": ""},
        {"app_user": "a|b"},
        {"app_user": "x" * 51},
        {"amount": 0},
        {"amount": True},
        {"description": ""},
        {"description": "x" * 257},
        {"embed_data": "[]"},
        {"embed_data": "{"},
        {"embed_data": json.dumps({"k": "x" * 1020})},
        {"item": "{}"},
        {"item": json.dumps(["x" * 2050])},
        {"expire_duration_seconds": 299},
        {"expire_duration_seconds": 2_592_001},
    ],
)
def test_zalopay_build_create_payload_rejects_bad_input(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        zalopay.build_create_payload(ZLP_CONFIG, **{**_ZLP_ARGS, **overrides})


def test_zalopay_create_payload_limits_accepted() -> None:
    longest = "240501_" + "x" * zalopay.SUFFIX_MAX_LEN
    assert len(longest) == zalopay.APP_TRANS_ID_MAX_LEN
    payload = zalopay.build_create_payload(
        ZLP_CONFIG, **{**_ZLP_ARGS, "app_trans_id": longest, "expire_duration_seconds": 300}
    )
    assert payload["app_trans_id"] == longest


def test_zalopay_query_vector() -> None:
    assert zalopay.query_mac(2553, "240501_ORD123", ZLP_KEY1) == ZLP_QUERY_MAC
    assert zalopay.build_query_payload(ZLP_CONFIG, app_trans_id="240501_ORD123") == {
        "app_id": 2553,
        "app_trans_id": "240501_ORD123",
        "mac": ZLP_QUERY_MAC,
    }


def test_zalopay_refund_vector() -> None:
    mac = zalopay.refund_mac(
        app_id=2553,
        zp_trans_id=240501000000389,
        amount=50000,
        description="Hoan tien ORD123",
        timestamp=1714539600000,
        key1=ZLP_KEY1,
    )
    assert mac == ZLP_REFUND_MAC
    with_fee = zalopay.refund_mac(
        app_id=2553,
        zp_trans_id=240501000000389,
        amount=50000,
        description="Hoan tien ORD123",
        timestamp=1714539600000,
        key1=ZLP_KEY1,
        refund_fee_amount=1000,
    )
    raw = b"2553|240501000000389|50000|1000|Hoan tien ORD123|1714539600000"
    assert with_fee == hmac.new(ZLP_KEY1.encode(), raw, hashlib.sha256).hexdigest()
    raw_query = b"2553|240501_2553_r1|1714539600000"
    assert (
        zalopay.query_refund_mac(
            app_id=2553, m_refund_id="240501_2553_r1", timestamp=1714539600000, key1=ZLP_KEY1
        )
        == hmac.new(ZLP_KEY1.encode(), raw_query, hashlib.sha256).hexdigest()
    )


def test_zalopay_app_trans_id_timezone_edge() -> None:
    assert zalopay.app_trans_id(datetime(2024, 4, 30, 20, 0, tzinfo=UTC), "ORD123") == "240501_ORD123"
    assert zalopay.app_trans_id(datetime(2024, 4, 30, 16, 59, 59, tzinfo=UTC), "ORD123") == "240430_ORD123"
    ny = datetime(2024, 4, 30, 16, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert zalopay.app_trans_id(ny, "x") == "240501_x"
    with pytest.raises(ValueError):
        zalopay.app_trans_id(datetime(2024, 4, 30, 20, 0), "ORD123")


@pytest.mark.parametrize("suffix", ["", "x" * 34, "ORD-1", "ORD 1", "ĐƠN1", "a|b"])
def test_zalopay_app_trans_id_rejects_bad_suffix(suffix: str) -> None:
    with pytest.raises(ValueError):
        zalopay.app_trans_id(datetime(2024, 5, 1, tzinfo=UTC), suffix)


_TZ_SCRIPT = """
import time
from datetime import datetime, timezone
from payment_service.providers.zalopay import app_trans_id
print(app_trans_id(datetime(2024, 4, 30, 20, 0, tzinfo=timezone.utc), "ORD123"), time.strftime("%z"))
"""


def _app_trans_id_under_tz(tz: str) -> tuple[str, str]:
    repo_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TZ": tz, "PYTHONPATH": str(repo_root)}
    out = subprocess.run(
        [sys.executable, "-c", _TZ_SCRIPT], env=env, cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], out[1]


def test_zalopay_app_trans_id_is_gmt7_whatever_the_server_tz() -> None:
    utc_id, utc_offset = _app_trans_id_under_tz("UTC")
    la_id, la_offset = _app_trans_id_under_tz("America/Los_Angeles")
    assert utc_offset != la_offset  # proves TZ really changed in the child
    assert utc_id == la_id == "240501_ORD123"


def test_zalopay_callback_ack() -> None:
    assert (
        zalopay.callback_ack(zalopay.ACK_SUCCESS, "success")
        == b'{"return_code":1,"return_message":"success"}'
    )
    assert json.loads(zalopay.callback_ack(-1, "mac không hợp lệ")) == {
        "return_code": -1,
        "return_message": "mac không hợp lệ",
    }
    with pytest.raises(ValueError):
        zalopay.callback_ack(True, "x")


def test_zalopay_codes_and_config() -> None:
    assert zalopay.is_paid_query(1) and not zalopay.is_paid_query(3) and not zalopay.is_paid_query(True)
    assert "Duplicate" in zalopay.sub_return_code_reason(-68)
    text = repr(ZLP_CONFIG)
    assert ZLP_KEY1 not in text and ZLP_KEY2 not in text and "2553" in text
    with pytest.raises(ValueError):
        zalopay.ZalopayConfig(app_id=0, key1="a", key2="b", callback_url="c", redirect_url="r")
