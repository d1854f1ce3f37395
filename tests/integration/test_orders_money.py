"""Issue 11, the order side, against a real payment service and two real
PostgreSQL databases: expiry that asks about money while the event stream
is stalled, "Pay again" near expiry and without a provider, cash on
delivery replaced by VNPay, the event stream's deadline, and "Pay again"
racing the follower and CancelOrder."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from google.api import httpbody_pb2
from order.v1 import order_pb2, order_service_pb2_grpc
from order.v1 import order_service_pb2 as os_pb2
from payment.v1 import payment_pb2
from payment.v1 import payment_service_pb2 as ps
from sqlalchemy import create_engine

from paykit import migrations
from paykit.database import sqlalchemy_url
from tests.conftest import TEST_VNPAY, FakeClock, make_order_settings
from tests.integration.helpers import rows, signed_vnpay_query, vnpay_ipn_params

U1 = (("x-user-id", "u1"),)


def checkout(stub: Any, quantity: int = 1) -> Any:
    request = os_pb2.CreateOrderRequest(
        items=[os_pb2.CreateOrderItem(variant_id="mug-blue", quantity=quantity)],
        receiver_name="Nguyen Van A",
        receiver_phone="+84901234567",
        shipping_address="1 Le Loi, District 1, HCMC",
    )
    return stub.CreateOrder(request, metadata=U1).order


def retry(stub: Any, order_id: str, provider: int = 0) -> Any:
    return stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order_id, provider=provider), metadata=U1)


def pay(stub: Any, txn_ref: str, amount: int) -> str:
    query = signed_vnpay_query(vnpay_ipn_params(txn_ref, amount), TEST_VNPAY.hash_secret)
    reply = stub.HandleCallback(
        httpbody_pb2.HttpBody(), metadata=[("x-envoy-original-path", "/webhooks/vnpay/ipn?" + query)]
    )
    return str(reply.data.decode())


def attempts(stub: Any, order_id: str) -> Any:
    return stub.GetPaymentByOrder(ps.GetPaymentByOrderRequest(order_id=order_id, user_id="u1"))


def status(stub: Any, order_id: str) -> str:
    order = stub.GetOrder(os_pb2.GetOrderRequest(order_id=order_id), metadata=U1).order
    return str(order_pb2.OrderStatus.Name(order.status))


def stock(order_db_url: str) -> int:
    return int(rows(order_db_url, "SELECT stock FROM products WHERE variant_id = 'mug-blue'")[0][0])


def start_orders(
    payment_port: int, order_db_url: str, clock: FakeClock, *, follow: bool, **settings: Any
) -> Any:
    from order_service.bootstrap import bootstrap
    from order_service.entrypoints import server

    app = bootstrap(make_order_settings(payment_port, **settings), order_db_url, clock=clock)
    return server.start(app, port=0, sweep=False, follow=follow)


@pytest.fixture
def stalled(server: Any, order_db_url: str, clock: FakeClock) -> Iterator[tuple[Any, Any]]:
    """The order service with its event follower stopped: a stalled stream."""
    running = start_orders(server.port, order_db_url, clock, follow=False, stream_deadline_seconds=10.0)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield running, order_service_pb2_grpc.OrderServiceStub(channel)
    running.stop(grace=0)


def apply_all_events(running: Any, payment_db_url: str) -> None:
    """What the follower would do: apply every event of the stream."""
    order_db_url = str(running.app.engine.url.render_as_string(hide_password=False))
    total = rows(payment_db_url, "SELECT count(*) FROM outbox_events")[0][0]
    total -= rows(order_db_url, "SELECT count(*) FROM applied_payment_events")[0][0]
    use_cases = running.app.use_cases
    if total == 0:
        return
    for n, event in enumerate(use_cases.payment_events(), start=1):
        use_cases.apply_payment_event(event)
        if n == total:
            return


def test_order_models_match_migrations(empty_db_url: str) -> None:
    from order_service.adapters.orm import metadata

    migrations.upgrade(empty_db_url, "order")
    engine = create_engine(sqlalchemy_url(empty_db_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert diff == []
    migrations.downgrade(empty_db_url, "order", "o0001")
    migrations.upgrade(empty_db_url, "order")


def test_a_stalled_stream_does_not_expire_a_paid_order(
    stalled: tuple[Any, Any], stub: Any, order_db_url: str, db_url: str, clock: FakeClock
) -> None:
    """Finding 5: the payment event never reaches the order service, yet the
    order is paid at expiry (asked of the payment service), not restocked."""
    running, order_stub = stalled
    paid, waiting, unpaid = checkout(order_stub, 3), checkout(order_stub, 2), checkout(order_stub, 1)
    retry(order_stub, paid.id)
    retry(order_stub, waiting.id)
    payment = attempts(stub, paid.id).payment
    assert '"RspCode":"00"' in pay(stub, payment.provider_reference, paid.total_amount)
    clock.advance(minutes=31)
    assert running.app.use_cases.expire_due_orders() == 2
    assert status(order_stub, paid.id) == "ORDER_STATUS_PAID"
    # Its attempt is still PENDING at the payment service (its sweeper is
    # off): money may still land, so the order waits.
    assert status(order_stub, waiting.id) == "ORDER_STATUS_PENDING_PAYMENT"
    assert status(order_stub, unpaid.id) == "ORDER_STATUS_EXPIRED"
    assert stock(order_db_url) == 50 - 3 - 2
    # The stream catching up later changes nothing: PAID once.
    apply_all_events(running, db_url)
    assert rows(order_db_url, "SELECT count(*) FROM order_events WHERE type = 'order.paid'") == [(1,)]


def test_expiry_waits_while_the_payment_service_cannot_answer(order_db_url: str, clock: FakeClock) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    running = start_orders(dead_port, order_db_url, clock, follow=False, payment_timeout_seconds=1.0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            order_stub = order_service_pb2_grpc.OrderServiceStub(channel)
            order = checkout(order_stub, 4)
            clock.advance(minutes=31)
            assert running.app.use_cases.expire_due_orders() == 0
            assert status(order_stub, order.id) == "ORDER_STATUS_PENDING_PAYMENT"
            assert stock(order_db_url) == 46
    finally:
        running.stop(grace=0)


def test_pay_again_near_expiry_is_refused(order_stub: Any, clock: FakeClock) -> None:
    """Finding 4: an attempt opened at minute 29 would outlive its order."""
    order = checkout(order_stub)
    clock.advance(minutes=29)
    with pytest.raises(grpc.RpcError) as info:
        retry(order_stub, order.id)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "too soon to start a payment; create a new order" in info.value.details()
    clock.advance(minutes=2)
    with pytest.raises(grpc.RpcError) as info:
        retry(order_stub, order.id)
    assert "has expired" in info.value.details()


def test_pay_again_without_a_provider_keeps_the_current_one(stalled: tuple[Any, Any], stub: Any) -> None:
    """Finding 3: no provider used to mean VNPay, superseding the shopper's
    chosen attempt (here cash on delivery, before the order saw it)."""
    _, order_stub = stalled
    order = checkout(order_stub)
    cod = retry(order_stub, order.id, payment_pb2.PROVIDER_COD)
    again = retry(order_stub, order.id)
    assert again.payment_id == cod.payment_id
    assert [p.provider for p in attempts(stub, order.id).attempts] == [payment_pb2.PROVIDER_COD]


def test_cash_on_delivery_replaced_by_vnpay_waits_for_the_money(
    stalled: tuple[Any, Any], stub: Any, db_url: str
) -> None:
    """Finding 9: COD chosen, then VNPay before the order saw the COD
    attempt: the order used to stay "awaiting delivery payment"."""
    running, order_stub = stalled
    order = checkout(order_stub)
    retry(order_stub, order.id, payment_pb2.PROVIDER_COD)
    vnpay = retry(order_stub, order.id, payment_pb2.PROVIDER_VNPAY)
    apply_all_events(running, db_url)
    final = order_stub.GetOrder(os_pb2.GetOrderRequest(order_id=order.id), metadata=U1).order
    assert final.status == order_pb2.ORDER_STATUS_PENDING_PAYMENT
    assert final.payment_id == vnpay.payment_id
    pay(stub, attempts(stub, order.id).payment.provider_reference, order.total_amount)
    apply_all_events(running, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_PAID"


def test_the_stream_reconnects_at_its_deadline_without_loss_or_duplicates(
    server: Any, stub: Any, order_db_url: str, db_url: str, clock: FakeClock, caplog: Any
) -> None:
    """Finding 5: the stream has a deadline; the follower resumes from its
    cursor and logs its lag on every reconnect."""
    caplog.set_level(logging.INFO, logger="order_service.follower")
    running = start_orders(server.port, order_db_url, clock, follow=True, stream_deadline_seconds=1.0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            order_stub = order_service_pb2_grpc.OrderServiceStub(channel)
            orders = []
            for _ in range(3):
                orders.append(checkout(order_stub))
                retry(order_stub, orders[-1].id)
                time.sleep(1.2)  # past a deadline
            total = rows(db_url, "SELECT count(*) FROM outbox_events")[0][0]
            deadline = time.monotonic() + 10
            while running.follower.lag.received < total and time.monotonic() < deadline:
                time.sleep(0.05)
        lag = running.follower.lag
        assert lag.connects >= 3, "reconnected at each deadline"
        assert lag.received == total == 3, "every event once: none lost, none twice"
        assert rows(order_db_url, "SELECT count(*) FROM applied_payment_events") == [(3,)]
        lines = [r for r in caplog.records if r.getMessage() == "payment event stream lag"]
        assert any(getattr(r, "why", "") == "deadline; reconnecting" for r in lines)
        assert all(hasattr(r, "seconds_behind_newest_event") for r in lines)
    finally:
        running.stop(grace=0)


def test_pay_again_racing_the_follower_and_cancel(
    server: Any, stub: Any, order_db_url: str, db_url: str, clock: FakeClock
) -> None:
    """Finding 9 / concurrency: RetryPayment (switching between VNPay and
    COD), CancelOrder and a VNPay IPN on one order at once, with the event
    follower applying as they go. Never PAID and canceled, stock exact, the
    order's payment_id the newest attempt."""
    from order_service.domain.model import OrderPolicy

    running = start_orders(
        server.port, order_db_url, clock, follow=True, policy=OrderPolicy(retry_limit=10_000)
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            race(order_service_pb2_grpc.OrderServiceStub(channel), stub, order_db_url, db_url)
    finally:
        running.stop(grace=0)


def race(order_stub: Any, stub: Any, order_db_url: str, db_url: str) -> None:
    rounds, orders = 12, []
    for _ in range(rounds):
        order = checkout(order_stub)
        retry(order_stub, order.id, payment_pb2.PROVIDER_VNPAY)
        first = attempts(stub, order.id).payment
        barrier = threading.Barrier(5)

        def act(
            i: int,
            order_id: str = order.id,
            ref: str = first.provider_reference,
            amount: int = order.total_amount,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait(timeout=30)
            try:
                if i < 3:
                    retry(order_stub, order_id, (payment_pb2.PROVIDER_COD, payment_pb2.PROVIDER_VNPAY, 0)[i])
                elif i == 3:
                    order_stub.CancelOrder(os_pb2.CancelOrderRequest(order_id=order_id), metadata=U1)
                else:
                    pay(stub, ref, amount)
            except grpc.RpcError as error:
                assert error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE), (
                    error
                )

        with ThreadPoolExecutor(5) as pool:
            list(pool.map(act, range(5)))
        orders.append(order)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        outbox = rows(db_url, "SELECT count(*) FROM outbox_events")[0][0]
        if rows(order_db_url, "SELECT count(*) FROM applied_payment_events")[0][0] == outbox:
            break
        time.sleep(0.1)
    held = 0
    for order in orders:
        final = order_stub.GetOrder(os_pb2.GetOrderRequest(order_id=order.id), metadata=U1).order
        name = order_pb2.OrderStatus.Name(final.status)
        events = [
            t
            for (t,) in rows(
                order_db_url, "SELECT type FROM order_events WHERE aggregateid = %s ORDER BY seq", order.id
            )
        ]
        payments = attempts(stub, order.id)
        money = [p for p in payments.attempts if p.HasField("paid_time")]
        # Paid never becomes canceled; money after the cancel is honoured
        # (LATE_PAYMENT_POLICY=honour: the stock taken again) or reviewed.
        if "order.paid" in events and "order.canceled" in events:
            assert events.index("order.paid") > events.index("order.canceled"), events
        assert final.payment_id == payments.payment.id, "payment_id is the newest attempt"
        if money:
            assert name in ("ORDER_STATUS_PAID", "ORDER_STATUS_NEEDS_REVIEW"), (name, events)
        if "order.canceled" in events:
            assert events.count("order.canceled") == 1
            assert not [p for p in payments.attempts if p.status == payment_pb2.PAYMENT_STATUS_PENDING]
            held += name == "ORDER_STATUS_PAID"  # honoured: its stock taken again
        else:
            held += 1
            assert name in ("ORDER_STATUS_PAID", "ORDER_STATUS_AWAITING_DELIVERY_PAYMENT"), (name, events)
    assert stock(order_db_url) == 50 - held
