"""Reconciliation: a payment no callback settled is asked about at its
gateway (here VNPay querydr, served by a stand-in that signs as VNPay does)
and settled through the same code as a callback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from payment_service.bootstrap import App, bootstrap
from payment_service.domain.model import Provider
from payment_service.gateways.cod import CodConfig
from tests.conftest import TEST_VNPAY, FakeClock, make_settings
from tests.integration.helpers import rows

RESPONSE_FIELDS = (
    "vnp_ResponseId vnp_Command vnp_ResponseCode vnp_Message vnp_TmnCode vnp_TxnRef vnp_Amount vnp_BankCode "
    "vnp_PayDate vnp_TransactionNo vnp_TransactionType vnp_TransactionStatus vnp_OrderInfo vnp_PromotionCode "
    "vnp_PromotionAmount"
).split()


class FakeVnpayApi:
    """Answers querydr for every transaction with `status`, signed."""

    def __init__(self) -> None:
        self.status = "00"
        self.amounts: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append(request)
                answer = {
                    "vnp_ResponseId": "R1",
                    "vnp_Command": "querydr",
                    "vnp_ResponseCode": "00",
                    "vnp_Message": "QueryDR Success",
                    "vnp_TmnCode": request["vnp_TmnCode"],
                    "vnp_TxnRef": request["vnp_TxnRef"],
                    "vnp_Amount": str(api.amounts.get(request["vnp_TxnRef"], 0) * 100),
                    "vnp_BankCode": "NCB",
                    "vnp_PayDate": "20260501103512",
                    "vnp_TransactionNo": "14226112",
                    "vnp_TransactionType": "01",
                    "vnp_TransactionStatus": api.status,
                    "vnp_OrderInfo": "x",
                    "vnp_PromotionCode": "",
                    "vnp_PromotionAmount": "",
                }
                data = "|".join(answer[f] for f in RESPONSE_FIELDS)
                answer["vnp_SecureHash"] = hmac.new(
                    TEST_VNPAY.hash_secret.encode(), data.encode(), hashlib.sha512
                ).hexdigest()
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/merchant_webapi/api/transaction"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vnpay_api() -> Iterator[FakeVnpayApi]:
    api = FakeVnpayApi()
    yield api
    api.close()


@pytest.fixture
def reconciling_app(db_url: str, clock: FakeClock, vnpay_api: FakeVnpayApi) -> Iterator[App]:
    app = bootstrap(
        make_settings(
            gateways={Provider.VNPAY: replace(TEST_VNPAY, query_url=vnpay_api.url), Provider.COD: CodConfig()}
        ),
        db_url,
        clock=clock,
    )
    yield app
    app.close()


def create(app: App, order_id: str) -> Any:
    from payment_service.domain import model
    from payment_service.service_layer.services import CreatePayment

    req = CreatePayment(
        order_id=order_id,
        user_id="u1",
        amount=150_000,
        currency="",
        provider=model.Provider.VNPAY,
        description="",
        client_ip="",
        user_agent="",
        return_url="",
        request_id="",
    )
    return app.use_cases.create_or_get_payment(req).payment


def test_a_payment_without_callback_is_settled_by_querydr(
    reconciling_app: App, vnpay_api: FakeVnpayApi, db_url: str, clock: FakeClock
) -> None:
    payment = create(reconciling_app, "ORD-R1")
    vnpay_api.amounts[payment.provider_reference] = 150_000
    assert reconciling_app.callbacks.reconcile_due() == 0  # too early: callbacks may still come
    assert vnpay_api.requests == []
    clock.advance(minutes=2, seconds=1)
    vnpay_api.status = "01"  # not completed yet
    assert reconciling_app.callbacks.reconcile_due() == 0
    assert rows(db_url, "SELECT status, reconcile_attempts FROM payments") == [("PENDING", 1)]
    assert reconciling_app.callbacks.reconcile_due() == 0  # next question only after the backoff
    clock.advance(minutes=4, seconds=1)
    vnpay_api.status = "00"
    assert reconciling_app.callbacks.reconcile_due() == 1
    assert rows(db_url, "SELECT status, reconcile_time FROM payments") == [("SUCCEEDED", None)]
    assert rows(db_url, "SELECT kind, outcome FROM callback_journal") == [("reconcile", "succeeded")]
    assert len(vnpay_api.requests) == 2


def test_gateway_says_paid_for_what_we_expired(
    reconciling_app: App, vnpay_api: FakeVnpayApi, db_url: str, clock: FakeClock
) -> None:
    payment = create(reconciling_app, "ORD-R2")
    vnpay_api.amounts[payment.provider_reference] = 150_000
    vnpay_api.status = "01"
    clock.advance(minutes=21)
    assert reconciling_app.use_cases.expire_due_payments() == 1
    reconciling_app.callbacks.reconcile_due()
    vnpay_api.status = "00"
    clock.advance(minutes=5)
    assert reconciling_app.callbacks.reconcile_due() == 1
    assert rows(db_url, "SELECT status, needs_review FROM payments") == [("EXPIRED", True)]
    # The order's only money: kept (for a person to honour or refund), not extra.
    assert rows(db_url, "SELECT type FROM outbox_events ORDER BY seq DESC LIMIT 1") == [
        ("payment.late_success",),
    ]
    assert rows(db_url, "SELECT count(*) FROM extra_payments") == [(0,)]


def test_cod_is_never_reconciled(reconciling_app: App, vnpay_api: FakeVnpayApi, clock: FakeClock) -> None:
    from payment_service.domain import model
    from payment_service.service_layer.services import CreatePayment

    req = CreatePayment(
        order_id="ORD-COD",
        user_id="u1",
        amount=150_000,
        currency="",
        provider=model.Provider.COD,
        description="",
        client_ip="",
        user_agent="",
        return_url="",
        request_id="",
    )
    reconciling_app.use_cases.create_or_get_payment(req)
    clock.advance(hours=5)
    assert reconciling_app.callbacks.reconcile_due() == 0
    assert vnpay_api.requests == []
