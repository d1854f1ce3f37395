"""Refund requests of each gateway, checked against the GATEWAYS.md vectors
(VNPay §1.5, MoMo §3.5, ZaloPay §4.5), and the gateway-side idempotency keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.vnpay import protocol as vnpay
from payment_service.gateways.zalopay import protocol as zalopay
from tests.unit.gateways.test_momo import MOMO_CONFIG
from tests.unit.gateways.test_zalopay import ZLP_CONFIG

VNPAY = vnpay.VnpayConfig(
    tmn_code="TESTTMN1",
    hash_secret="VNPAYTESTSECRET0123456789ABCDEFG",
    pay_url="https://x",
    return_url="https://x/r",
)


def test_vnpay_refund_matches_the_vector() -> None:
    body = vnpay.build_refund(
        VNPAY,
        request_id="RF20240501120000",
        txn_ref="ORD123",
        amount=10_000,
        full=True,
        transaction_no="14226112",
        transaction_date=datetime(2024, 5, 1, 3, 30, tzinfo=UTC),  # 10:30 GMT+7
        now=datetime(2024, 5, 1, 5, 0, tzinfo=UTC),
        create_by="admin",
        ip_addr="127.0.0.1",
        order_info="Hoan tien GD ORD123",
    )
    assert body["vnp_TransactionType"] == "02" and body["vnp_Amount"] == "1000000"
    assert body["vnp_SecureHash"] == (
        "71300007b7fde1e76fedfcfa3f589b536d4392496478c051381e730b19796176"
        "404e71de434df81b5b614ba2743ae141901faf5742d2d5ec74e486321314295c"
    )
    partial = vnpay.build_refund(
        VNPAY,
        request_id=uuid.uuid4().hex,
        txn_ref="ORD123",
        amount=5_000,
        full=False,
        transaction_no="",
        transaction_date=datetime(2024, 5, 1, 3, 30, tzinfo=UTC),
        now=datetime(2024, 5, 1, 5, 0, tzinfo=UTC),
        create_by="admin",
        ip_addr="127.0.0.1",
        order_info="x",
    )
    assert partial["vnp_TransactionType"] == "03" and partial["vnp_TransactionNo"] == "0"


def test_vnpay_refund_answer_checksum() -> None:
    answer = {f: "x" for f in vnpay.REFUND_RESPONSE_FIELDS}
    answer["vnp_SecureHash"] = vnpay.refund_response_hash(answer, VNPAY.hash_secret)
    assert vnpay.verify_refund_response(answer, VNPAY.hash_secret)
    assert not vnpay.verify_refund_response({**answer, "vnp_Amount": "1"}, VNPAY.hash_secret)


def test_momo_refund_matches_the_vector() -> None:
    body = momo.build_refund_payload(
        MOMO_CONFIG, order_id="RF-ORD123", request_id="REQ125", amount=50_000, trans_id=4088878653
    )
    assert body["signature"] == "8ed09ccdfde781722f1ed0663c9a38f0d83ebeb706b76c1195f48a344919791a"


def test_zalopay_refund_matches_the_vector() -> None:
    body = zalopay.build_refund_payload(
        ZLP_CONFIG,
        m_refund_id="240501_2553_x",
        zp_trans_id="240501000000389",
        amount=50_000,
        description="Hoan tien ORD123",
        timestamp=1714539600000,
    )
    assert body["mac"] == "c79ed895ee6d412c09b8076d0019a855249ceca95bddbf990d97fa6c000e6030"


def test_zalopay_m_refund_id_is_gmt7_dated_and_stable() -> None:
    key = uuid.UUID(int=7).hex
    late_evening_utc = datetime(2024, 4, 30, 20, 0, tzinfo=UTC)
    assert zalopay.m_refund_id(late_evening_utc, 2553, key) == f"240501_2553_{key}"
