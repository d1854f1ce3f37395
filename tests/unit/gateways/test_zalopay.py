"""ZaloPay signing against the published vectors (GATEWAYS.md §4.5). No DB."""

from __future__ import annotations

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

from payment_service.gateways.zalopay import protocol as zalopay

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
from payment_service.gateways.zalopay.protocol import app_trans_id
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
