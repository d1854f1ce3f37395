"""Issue 11, findings 1, 7 and 10: only final answers change a payment;
money taken but not cleanly goes to review; query answers are verified like
callbacks; a second distinct transaction on a paid attempt is extra money."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payment_service.domain.callbacks import Notification, Outcome, apply_notification
from payment_service.domain.model import Payment, PaymentStatus
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.momo.gateway import MomoGateway
from payment_service.gateways.momo.settings import DEV_KEYS as MOMO_KEYS
from payment_service.gateways.port import AnswerRejected, RawCallback, Verified
from payment_service.gateways.vnpay import protocol as vnpay
from payment_service.gateways.vnpay.gateway import VnpayGateway
from payment_service.gateways.zalopay.gateway import ZalopayGateway
from payment_service.gateways.zalopay.protocol import ZalopayConfig
from payment_service.gateways.zalopay.settings import DEV_KEYS as ZLP_KEYS

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
MOMO_CONFIG = momo.MomoConfig(
    **MOMO_KEYS,
    endpoint="http://momo.test",
    redirect_url="https://s.example/r",
    ipn_url="https://s.example/i",
)
ZLP_CONFIG = ZalopayConfig(
    app_id=int(ZLP_KEYS["app_id"]),
    key1=ZLP_KEYS["key1"],
    key2=ZLP_KEYS["key2"],
    endpoint="http://zlp.test",
    callback_url="https://s.example/cb",
    redirect_url="https://s.example/r",
)
VNPAY_CONFIG = vnpay.VnpayConfig(
    tmn_code="TESTTMN1",
    hash_secret="VNPAYTESTSECRET0123456789ABCDEFG",
    pay_url="http://vnpay.test/pay",
    return_url="https://s.example/return",
    query_url="http://vnpay.test/api",
)


@dataclass
class FakeHttp:
    answer: dict[str, Any]
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def request(self, method: str, url: str, body: Any = None, headers: Any = None) -> dict[str, Any]:
        self.calls.append((method, url, body))
        return dict(self.answer)


def payment(reference: str = "pi01", amount: int = 50_000, **kw: Any) -> Payment:
    values: dict[str, Any] = dict(
        id=uuid.uuid4(),
        payment_intent_id="pi01",
        order_id="o1",
        user_id="u1",
        amount=amount,
        currency="VND",
        provider="MOMO",
        status="PENDING",
        attempt=1,
        original_payment_id=None,
        provider_reference=reference,
        description="d",
        client_ip="127.0.0.1",
        user_agent="",
        create_time=NOW,
        update_time=NOW,
        expire_time=NOW + timedelta(minutes=15),
    )
    values.update(kw)
    return Payment(**values)


def momo_answer(code: int, order_id: str = "pi01", amount: int = 50_000, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partnerCode": MOMO_CONFIG.partner_code,
        "orderId": order_id,
        "requestId": "r1",
        "amount": amount,
        "transId": 4088000001,
        "resultCode": code,
        "message": "m",
        "payType": "qr",
        "responseTime": 1,
        "extraData": "",
    }
    body.update(kw)
    body["signature"] = momo.ipn_signature(body, MOMO_CONFIG.access_key, MOMO_CONFIG.secret_key)
    return body


@pytest.mark.parametrize("code", [10, 11, 13, 20, 43, 99, 1000, 7000, 7002, 12345])
def test_momo_query_errors_and_pending_codes_never_fail_a_payment(code: int) -> None:
    gateway = MomoGateway(MOMO_CONFIG, FakeHttp(momo_answer(code)))  # type: ignore[arg-type]
    assert gateway.query(payment(), NOW) is None


def test_momo_query_final_failure_fails() -> None:
    gateway = MomoGateway(MOMO_CONFIG, FakeHttp(momo_answer(1006)))  # type: ignore[arg-type]
    n = gateway.query(payment(), NOW)
    assert n is not None and n.final and not n.succeeded


def test_momo_ipn_pending_code_is_not_final() -> None:
    body = json.dumps(momo_answer(1000)).encode()
    verdict = MomoGateway(MOMO_CONFIG, FakeHttp({})).verify_callback(  # type: ignore[arg-type]
        RawCallback("/webhooks/momo/ipn", b"", body, "application/json")
    )
    assert isinstance(verdict, Verified) and not verdict.notification.final


def test_momo_query_answer_with_a_bad_signature_is_rejected() -> None:
    answer = momo_answer(0)
    answer["amount"] = 1_000  # changed after signing
    gateway = MomoGateway(MOMO_CONFIG, FakeHttp(answer))  # type: ignore[arg-type]
    with pytest.raises(AnswerRejected):
        gateway.query(payment(), NOW)


def test_momo_query_answer_about_another_order_is_rejected() -> None:
    gateway = MomoGateway(MOMO_CONFIG, FakeHttp(momo_answer(0, order_id="other")))  # type: ignore[arg-type]
    with pytest.raises(AnswerRejected):
        gateway.query(payment(), NOW)


@pytest.mark.parametrize("sub_code", [-401, -402, -429, -500, -999, -101, -12345])
def test_zalopay_return_code_2_about_the_request_is_not_final(sub_code: int) -> None:
    answer = {"return_code": 2, "sub_return_code": sub_code, "return_message": "x"}
    gateway = ZalopayGateway(ZLP_CONFIG, FakeHttp(answer))  # type: ignore[arg-type]
    assert gateway.query(payment("261201_pi01"), NOW) is None


def test_zalopay_return_code_2_about_the_transaction_fails() -> None:
    answer = {"return_code": 2, "sub_return_code": 2, "return_message": "x", "amount": 50_000}
    gateway = ZalopayGateway(ZLP_CONFIG, FakeHttp(answer))  # type: ignore[arg-type]
    n = gateway.query(payment("261201_pi01"), NOW)
    assert n is not None and n.final and not n.succeeded


def querydr_answer(
    status: str, txn_ref: str = "pi01", tmn: str = "TESTTMN1", code: str = "00"
) -> dict[str, str]:
    answer = {
        "vnp_ResponseId": "R1",
        "vnp_Command": "querydr",
        "vnp_ResponseCode": code,
        "vnp_Message": "ok",
        "vnp_TmnCode": tmn,
        "vnp_TxnRef": txn_ref,
        "vnp_Amount": "5000000",
        "vnp_BankCode": "NCB",
        "vnp_PayDate": "20261201100000",
        "vnp_TransactionNo": "14226112",
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": status,
        "vnp_OrderInfo": "x",
        "vnp_PromotionCode": "",
        "vnp_PromotionAmount": "",
    }
    answer["vnp_SecureHash"] = vnpay.querydr_response_hash(answer, VNPAY_CONFIG.hash_secret)
    return answer


@pytest.mark.parametrize("status", ["04", "07", "05"])
def test_vnpay_querydr_money_taken_not_cleanly_goes_to_review(status: str) -> None:
    gateway = VnpayGateway(VNPAY_CONFIG, FakeHttp(querydr_answer(status)))  # type: ignore[arg-type]
    n = gateway.query(payment(), NOW)
    assert n is not None and n.final and n.review_reason and not n.succeeded
    p = payment()
    decision = apply_notification(p, n, NOW)
    assert decision.outcome == Outcome.REVIEW
    assert (p.status, p.needs_review) == (PaymentStatus.PENDING, True)


@pytest.mark.parametrize("code", ["91", "94", "97", "99", "02"])
def test_vnpay_querydr_errors_are_not_final(code: str) -> None:
    gateway = VnpayGateway(VNPAY_CONFIG, FakeHttp(querydr_answer("02", code=code)))  # type: ignore[arg-type]
    assert gateway.query(payment(), NOW) is None


@pytest.mark.parametrize(("txn_ref", "tmn"), [("other", "TESTTMN1"), ("pi01", "OTHERTMN")])
def test_vnpay_querydr_about_another_transaction_or_merchant_is_rejected(txn_ref: str, tmn: str) -> None:
    gateway = VnpayGateway(VNPAY_CONFIG, FakeHttp(querydr_answer("00", txn_ref, tmn)))  # type: ignore[arg-type]
    with pytest.raises(AnswerRejected):
        gateway.query(payment(), NOW)


def test_vnpay_ipn_response_code_07_goes_to_review_not_failed() -> None:
    params = {
        "vnp_Amount": "5000000",
        "vnp_ResponseCode": "07",
        "vnp_TmnCode": "TESTTMN1",
        "vnp_TransactionNo": "1",
        "vnp_TransactionStatus": "00",
        "vnp_TxnRef": "pi01",
    }
    query = vnpay.signed_query(params, VNPAY_CONFIG.hash_secret).encode()
    verdict = VnpayGateway(VNPAY_CONFIG, FakeHttp({})).verify_callback(  # type: ignore[arg-type]
        RawCallback("/webhooks/vnpay/ipn", query, b"", "")
    )
    assert isinstance(verdict, Verified)
    p = payment()
    assert apply_notification(p, verdict.notification, NOW).outcome == Outcome.REVIEW
    assert p.status == PaymentStatus.PENDING and p.needs_review


def test_a_second_distinct_transaction_on_a_paid_attempt_is_an_extra_payment() -> None:
    p = payment(status="SUCCEEDED", paid_time=NOW, provider_transaction_id="T1")
    n = Notification("pi01", 50_000, True, "T2", "0", "")
    decision = apply_notification(p, n, NOW)
    assert decision.outcome == Outcome.EXTRA_PAYMENT
    assert decision.extra is not None and decision.extra.provider_transaction_id == "T2"
    same = Notification("pi01", 50_000, True, "T1", "0", "")
    assert apply_notification(p, same, NOW).outcome == Outcome.DUPLICATE
