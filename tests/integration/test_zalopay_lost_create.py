"""Issue 11, finding 8: a ZaloPay create that timed out after ZaloPay
accepted it is not lost, and "Pay again" is not refused. The next create of
that app_trans_id gets -68; the order is queried, and (ZaloPay's query gives
no order_url) the attempt is closed, watched until its session's deadline,
and a new attempt opened with a fresh link."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from payment_service.bootstrap import App, bootstrap
from payment_service.domain.model import PaymentStatus, Policy, Provider
from payment_service.gateways import registry
from payment_service.gateways.cod import CodConfig
from payment_service.service_layer.services import CreatePayment
from tests.conftest import TEST_VNPAY, FakeClock, make_settings
from tests.integration.test_wallets import ZALOPAY


class AcceptThenTimeOut:
    """ZaloPay's create and query: the first create is accepted and its
    answer comes too late for the client; a repeated app_trans_id gets -68;
    the query says "processing" (return_code 3)."""

    def __init__(self) -> None:
        self.orders: list[str] = []
        self.queried: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ref = body["app_trans_id"]
                if self.path.endswith("/v2/query"):
                    api.queried.append(ref)
                    answer: dict[str, Any] = {"return_code": 3, "return_message": "processing"}
                elif ref in api.orders:
                    answer = {"return_code": 2, "sub_return_code": -68, "sub_return_message": "duplicate"}
                else:
                    api.orders.append(ref)
                    if len(api.orders) == 1:
                        time.sleep(1.0)  # accepted; the answer times out
                    answer = {"return_code": 1, "sub_return_code": 1, "order_url": f"http://zp.test/{ref}"}
                out = json.dumps(answer).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the client gave up

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def zalopay_app(db_url: str, clock: FakeClock) -> Iterator[tuple[App, AcceptThenTimeOut]]:
    import dataclasses

    fake = AcceptThenTimeOut()
    settings = make_settings(
        policy=Policy(
            enabled_providers=frozenset({Provider.VNPAY, Provider.COD, Provider.ZALOPAY}),
            traits=registry.traits(),
        ),
        gateways={
            Provider.VNPAY: TEST_VNPAY,
            Provider.COD: CodConfig(),
            Provider.ZALOPAY: dataclasses.replace(ZALOPAY, endpoint=fake.url),
        },
        gateway_timeout_seconds=0.3,
    )
    app = bootstrap(settings, db_url, clock=clock)
    yield app, fake
    app.close()
    fake.server.shutdown()


def request() -> CreatePayment:
    return CreatePayment(
        order_id="ORD-ZP-LOST",
        user_id="u1",
        amount=150_000,
        currency="",
        provider=Provider.ZALOPAY,
        description="",
        client_ip="",
        user_agent="",
        return_url="",
        request_id="",
    )


def test_a_timed_out_zalopay_create_is_recovered_not_refused(
    zalopay_app: tuple[App, AcceptThenTimeOut],
) -> None:
    app, fake = zalopay_app
    result = app.use_cases.create_or_get_payment(request())
    first_ref = fake.orders[0]
    assert fake.queried == [first_ref]  # asked about the lost create
    assert result.checkout_url == f"http://zp.test/{result.payment.provider_reference}"
    old, new = app.use_cases.get_payments_by_order("ORD-ZP-LOST", "u1")
    assert old.provider_reference == first_ref and old.status == PaymentStatus.CANCELED
    assert old.closing_until is not None and old.closing_until >= old.expire_time  # watched
    assert new.id == result.payment.id and new.status == PaymentStatus.PENDING and new.attempt == 2
