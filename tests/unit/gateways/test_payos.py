"""payOS signing against the published vectors (GATEWAYS.md §2.5), plus a
cross-check against the official SDK. No DB."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from payment_service.gateways.payos import protocol as payos

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
