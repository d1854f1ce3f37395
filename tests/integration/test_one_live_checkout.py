"""Issue 11, findings 2, 3, 4 and 6 on the payment service: an attempt's TTL
is capped by the caller's not_after; "Pay again" without a provider keeps the
order's provider; a closed attempt is watched until its gateway deadline (or
closed at payOS); the expiry grace covers VNPay's IPN retry interval."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from payment.v1 import payment_pb2
from payment.v1 import payment_service_pb2 as ps

from payment_service.bootstrap import bootstrap
from payment_service.domain.model import Policy, Provider
from payment_service.entrypoints import server as grpc_server
from payment_service.gateways import registry
from payment_service.gateways.cod import CodConfig
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.payos import protocol as payos
from payment_service.gateways.payos.protocol import PayosConfig
from payment_service.gateways.payos.settings import DEV_KEYS as DEV_PAYOS
from tests.conftest import TEST_VNPAY, FakeClock, make_settings
from tests.integration.helpers import rows
from tests.integration.test_wallets import MOMO, ZALOPAY


class FakePayos:
    """payOS's create, get and cancel, signed; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.links: dict[str, dict[str, Any]] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.calls.append(("GET", self.path))
                self._answer(api.links[self.path.rsplit("/", 1)[1]])

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                api.calls.append(("POST", self.path))
                if self.path.endswith("/cancel"):
                    link = api.links[self.path.rsplit("/", 2)[1]]
                    link["status"] = "CANCELLED"
                else:
                    link = {
                        "orderCode": body["orderCode"],
                        "amount": body["amount"],
                        "status": "PENDING",
                        "checkoutUrl": f"http://payos.test/web/{body['orderCode']}",
                        "expiredAt": body["expiredAt"],
                    }
                    api.links[str(body["orderCode"])] = link
                self._answer(link)

            def _answer(self, data: dict[str, Any]) -> None:
                signature = payos.data_signature(data, DEV_PAYOS["checksum_key"])
                out = json.dumps({"code": "00", "desc": "ok", "data": data, "signature": signature}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_payos() -> Iterator[FakePayos]:
    api = FakePayos()
    yield api
    api.close()


@pytest.fixture
def stub(db_url: str, clock: FakeClock, fake_payos: FakePayos) -> Iterator[Any]:
    from payment.v1 import payment_service_pb2_grpc

    payos_config = PayosConfig(
        **DEV_PAYOS,
        base_url=fake_payos.url,
        return_url="https://shop.example/r",
        cancel_url="https://shop.example/r",
        checkout_base=fake_payos.url + "/web",
    )
    settings = make_settings(
        policy=Policy(
            enabled_providers=frozenset(Provider),
            traits=registry.traits(),
            default_provider=Provider.VNPAY,
        ),
        gateways={
            Provider.VNPAY: TEST_VNPAY,
            Provider.COD: CodConfig(),
            Provider.PAYOS: payos_config,
            Provider.MOMO: MOMO,
            Provider.ZALOPAY: ZALOPAY,
        },
        gateway_timeout_seconds=0.5,
    )
    app = bootstrap(settings, db_url, clock=clock)
    running = grpc_server.start(app, port=0, sweep=False)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield payment_service_pb2_grpc.PaymentServiceStub(channel)
    running.stop(grace=0)


def request(order_id: str, provider: int = payment_pb2.PROVIDER_UNSPECIFIED, **kw: Any) -> Any:
    return ps.CreateOrGetPaymentRequest(
        order_id=order_id, user_id="u1", amount=150_000, provider=provider, **kw
    )


def at(clock: FakeClock, delta: timedelta) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(clock() + delta)
    return ts


def test_pay_again_without_provider_keeps_the_orders_provider(stub: Any, fake_payos: FakePayos) -> None:
    first = stub.CreateOrGetPayment(request("O-keep", payment_pb2.PROVIDER_PAYOS))
    again = stub.CreateOrGetPayment(request("O-keep"))
    assert again.payment.id == first.payment.id and again.reused
    assert again.payment.provider == payment_pb2.PROVIDER_PAYOS


def test_first_attempt_without_provider_takes_the_default(stub: Any) -> None:
    assert stub.CreateOrGetPayment(request("O-default")).payment.provider == payment_pb2.PROVIDER_VNPAY


def test_attempt_ttl_is_capped_at_not_after(stub: Any, clock: FakeClock) -> None:
    answer = stub.CreateOrGetPayment(
        request("O-cap", payment_pb2.PROVIDER_VNPAY, not_after=at(clock, timedelta(minutes=5)))
    )
    expire = answer.payment.expire_time.ToDatetime()
    assert expire == (clock() + timedelta(minutes=5)).replace(tzinfo=None, microsecond=expire.microsecond)
    assert "vnp_ExpireDate" in answer.checkout_url


def test_no_attempt_when_the_order_is_about_to_expire(stub: Any, clock: FakeClock, db_url: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateOrGetPayment(
            request("O-late", payment_pb2.PROVIDER_VNPAY, not_after=at(clock, timedelta(seconds=90)))
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "about to expire" in (info.value.details() or "")
    assert rows(db_url, "SELECT count(*) FROM payments WHERE order_id = 'O-late'") == [(0,)]


def test_zalopay_attempt_is_refused_rather_than_outlived_by_its_session(stub: Any, clock: FakeClock) -> None:
    """ZaloPay's shortest session is 300 s: with 4 minutes left, no attempt."""
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateOrGetPayment(
            request("O-zlp", payment_pb2.PROVIDER_ZALOPAY, not_after=at(clock, timedelta(minutes=4)))
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_switching_provider_cancels_the_payos_link_at_payos(
    stub: Any, fake_payos: FakePayos, db_url: str
) -> None:
    first = stub.CreateOrGetPayment(request("O-switch", payment_pb2.PROVIDER_PAYOS))
    stub.CreateOrGetPayment(request("O-switch", payment_pb2.PROVIDER_VNPAY))
    assert ("POST", f"/v2/payment-requests/{first.payment.provider_reference}/cancel") in fake_payos.calls
    assert fake_payos.links[first.payment.provider_reference]["status"] == "CANCELLED"
    # Cancelled at the gateway: nothing left to watch.
    assert rows(db_url, "SELECT status, closing_until FROM payments WHERE id = %s", first.payment.id) == [
        ("CANCELED", None)
    ]


def test_a_cancelled_vnpay_attempt_is_watched_until_its_session_ends(
    stub: Any, clock: FakeClock, db_url: str
) -> None:
    p = stub.CreateOrGetPayment(request("O-watch", payment_pb2.PROVIDER_VNPAY)).payment
    stub.CancelPayment(ps.CancelPaymentRequest(payment_id=p.id, reason="shopper left"))
    ((closing_until, reconcile_time),) = rows(
        db_url, "SELECT closing_until, reconcile_time FROM payments WHERE id = %s", p.id
    )
    # Its VNPay page stays payable until expire_time; VNPay retries its IPN 5 minutes later.
    assert closing_until >= p.expire_time.ToDatetime().replace(tzinfo=closing_until.tzinfo) + timedelta(
        minutes=5
    )
    assert reconcile_time is not None


def test_expiry_grace_covers_vnpays_ipn_retry(stub: Any, clock: FakeClock) -> None:
    stub.CreateOrGetPayment(request("O-grace", payment_pb2.PROVIDER_VNPAY))
    clock.advance(minutes=15, seconds=90)  # past the old 60 s grace, within VNPay's retry interval
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateOrGetPayment(request("O-grace", payment_pb2.PROVIDER_VNPAY))
    assert info.value.code() == grpc.StatusCode.ABORTED


def test_momo_page_closes_with_the_attempt() -> None:
    body = momo.build_create_payload(
        MOMO, order_id="pi1", request_id="pi1", amount=50_000, order_info="x", order_expire_minutes=14
    )
    assert body["orderExpireTime"] == 14
