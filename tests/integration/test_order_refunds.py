"""Issue 12, the order side, against a real payment service and two real
PostgreSQL databases: refunds of the kept payment make the order
PARTIALLY_REFUNDED then REFUNDED, a refund of an extra payment leaves it
PAID, a refund with restock returns the stock exactly once (concurrent
requests, redelivered events, two replicas applying at once), resolved
reviews move the order out of NEEDS_REVIEW, and LATE_PAYMENT_POLICY=honour
takes the stock again only when it is there (never below zero)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest
from order.v1 import order_pb2, order_service_pb2_grpc
from order.v1 import order_service_pb2 as os_pb2
from payment.v1 import payment_pb2
from payment.v1 import payment_service_pb2 as ps

from order_service.domain.model import LatePaymentPolicy, OrderPolicy
from order_service.domain.payments import PaymentEvent
from payment_service.bootstrap import App, bootstrap
from payment_service.domain.callbacks import Notification
from payment_service.domain.model import LatePaymentPolicy as PaymentLatePolicy
from payment_service.domain.model import Provider
from payment_service.gateways.port import RefundState
from payment_service.service_layer.refunds import RefundUseCases
from tests.conftest import FakeClock, make_settings
from tests.integration.helpers import rows
from tests.integration.test_orders_money import U1, apply_all_events, checkout, retry, start_orders, stock
from tests.integration.test_refunds import FakeRefunds

PRICE = 89_000  # mug-blue


@pytest.fixture
def gateway() -> FakeRefunds:
    return FakeRefunds()


@pytest.fixture
def late() -> str:
    """LATE_PAYMENT_POLICY of both services (a test parametrizes it)."""
    return "honour"


@pytest.fixture
def app(db_url: str, clock: FakeClock, gateway: FakeRefunds, late: str) -> Iterator[App]:
    """The payment service, its VNPay refunds answered by a fake refund API."""
    base = make_settings()
    settings = make_settings(policy=replace(base.policy, late_payment_policy=PaymentLatePolicy(late)))
    application = bootstrap(settings, db_url, clock=clock)
    uc = application.use_cases
    application.refunds = RefundUseCases(uc.uow_factory, {Provider.VNPAY: gateway}, uc.policy, uc.clock)  # type: ignore[dict-item]
    yield application
    application.close()


@pytest.fixture
def orders(server: Any, order_db_url: str, clock: FakeClock, late: str) -> Iterator[Any]:
    """The order service with its follower off (tests apply the stream themselves)."""
    policy = OrderPolicy(late_payment=LatePaymentPolicy(late))
    running = start_orders(server.port, order_db_url, clock, follow=False, policy=policy)
    yield running
    running.stop(grace=0)


@pytest.fixture
def order_stub(orders: Any) -> Iterator[Any]:
    with grpc.insecure_channel(f"127.0.0.1:{orders.port}") as channel:
        yield order_service_pb2_grpc.OrderServiceStub(channel)


def get(order_stub: Any, order_id: str) -> Any:
    return order_stub.GetOrder(os_pb2.GetOrderRequest(order_id=order_id), metadata=U1).order


def status(order_stub: Any, order_id: str) -> str:
    return str(order_pb2.OrderStatus.Name(get(order_stub, order_id).status))


def current(stub: Any, order_id: str) -> Any:
    return stub.GetPaymentByOrder(ps.GetPaymentByOrderRequest(order_id=order_id, user_id="u1")).payment


def pay(app: App, payment: Any, amount: int, transaction_id: str = "T1") -> None:
    """The gateway's final answer that the money was taken."""
    app.callbacks.apply_answer(
        Provider.VNPAY,
        Notification(payment.provider_reference, amount, True, transaction_id, "00", ""),
        app.use_cases.clock(),
    )


def paid_order(app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, quantity: int = 1) -> Any:
    order = checkout(order_stub, quantity)
    retry(order_stub, order.id, payment_pb2.PROVIDER_VNPAY)
    payment = current(stub, order.id)
    pay(app, payment, order.total_amount, f"T-{order.order_code}")
    apply_all_events(orders, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_PAID"
    return order, payment


def refund(stub: Any, payment_id: str, amount: int, key: str, restock: bool = False) -> Any:
    request = ps.RefundPaymentRequest(payment_id=payment_id, amount=amount, request_id=key, restock=restock)
    return stub.RefundPayment(request).refund


def order_events(order_db_url: str, order_id: str) -> list[str]:
    return [
        t
        for (t,) in rows(
            order_db_url, "SELECT type FROM order_events WHERE aggregateid = %s ORDER BY seq", order_id
        )
    ]


def test_partial_then_full_refund(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, payment = paid_order(app, stub, order_stub, orders, db_url)
    assert refund(stub, payment.id, 30_000, "part").status == payment_pb2.REFUND_STATUS_SUCCEEDED
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert (got.status, got.refunded_amount) == (order_pb2.ORDER_STATUS_PARTIALLY_REFUNDED, 30_000)
    listed = order_stub.ListOrders(os_pb2.ListOrdersRequest(), metadata=U1).orders
    assert [o.status for o in listed if o.id == order.id] == [order_pb2.ORDER_STATUS_PARTIALLY_REFUNDED]
    refund(stub, payment.id, 0, "rest")
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert (got.status, got.refunded_amount) == (order_pb2.ORDER_STATUS_REFUNDED, PRICE)
    assert stock(order_db_url) == 49  # no restock asked
    assert order_events(order_db_url, order.id)[-2:] == ["order.partially_refunded", "order.refunded"]
    with pytest.raises(grpc.RpcError) as info:
        retry(order_stub, order.id)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_full_refund_at_once(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, payment = paid_order(app, stub, order_stub, orders, db_url)
    refund(stub, payment.id, 0, "all")
    apply_all_events(orders, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_REFUNDED"


def test_a_failed_refund_changes_only_the_reason(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, gateway: FakeRefunds
) -> None:
    order, payment = paid_order(app, stub, order_stub, orders, db_url)
    gateway.state = RefundState.FAILED
    assert refund(stub, payment.id, 10_000, "refused").status == payment_pb2.REFUND_STATUS_FAILED
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert (got.status, got.refunded_amount) == (order_pb2.ORDER_STATUS_PAID, 0)
    assert "failed" in got.status_reason


def test_refunding_an_extra_payment_leaves_the_order_paid(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, payment = paid_order(app, stub, order_stub, orders, db_url)
    pay(app, payment, order.total_amount, "T-second")  # a second distinct transaction: auto-refunded
    assert app.refunds is not None and app.refunds.reconcile_due() == 1
    assert rows(db_url, "SELECT provider_transaction_id, status FROM refunds") == [("T-second", "SUCCEEDED")]
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert (got.status, got.refunded_amount) == (order_pb2.ORDER_STATUS_PAID, 0)
    # Nothing moved the stock: the order keeps its goods and its money.
    assert stock(order_db_url) == 49


def test_restock_exactly_once_under_concurrent_requests_and_redelivery(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, payment = paid_order(app, stub, order_stub, orders, db_url, quantity=2)
    assert stock(order_db_url) == 48
    barrier = threading.Barrier(4)
    answers: list[Any] = []

    def ask(i: int) -> None:
        barrier.wait(timeout=30)
        while True:
            try:
                answers.append(refund(stub, payment.id, 40_000, f"restock-{i}", restock=True))
                return
            except grpc.RpcError as error:
                # VNPay takes one refund of a transaction at a time: ask again.
                if "in progress" not in str(error.details()):
                    raise
                time.sleep(0.01)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status for a in answers) == [payment_pb2.REFUND_STATUS_SUCCEEDED] * 4
    assert all(a.restock for a in answers)

    # Every event, delivered to two replicas applying at once, twice each.
    use_cases = orders.app.use_cases
    events: list[PaymentEvent] = []
    total = (
        rows(db_url, "SELECT count(*) FROM outbox_events")[0][0]
        - rows(order_db_url, "SELECT count(*) FROM applied_payment_events")[0][0]
    )
    for event in use_cases.payment_events():
        events.append(event)
        if len(events) == total:
            break
    start = threading.Barrier(2)

    def replica() -> None:
        start.wait(timeout=30)
        for event in events + events:
            use_cases.apply_payment_event(event)

    replicas = [threading.Thread(target=replica) for _ in range(2)]
    for t in replicas:
        t.start()
    for t in replicas:
        t.join()
    assert stock(order_db_url) == 50  # given back once: not 52, 54...
    got = get(order_stub, order.id)
    assert (got.status, got.refunded_amount) == (order_pb2.ORDER_STATUS_PARTIALLY_REFUNDED, 160_000)
    assert rows(order_db_url, "SELECT stock_held FROM orders WHERE id = %s", order.id) == [(False,)]
    # The rest, with restock again: REFUNDED, still not given back twice.
    refund(stub, payment.id, 0, "restock-rest", restock=True)
    apply_all_events(orders, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_REFUNDED"
    assert stock(order_db_url) == 50


def canceled_and_paid_late(app: App, stub: Any, order_stub: Any, quantity: int = 1) -> tuple[Any, Any]:
    order = checkout(order_stub, quantity)
    retry(order_stub, order.id, payment_pb2.PROVIDER_VNPAY)
    payment = current(stub, order.id)
    order_stub.CancelOrder(os_pb2.CancelOrderRequest(order_id=order.id), metadata=U1)
    pay(app, payment, order.total_amount, f"T-late-{order.order_code}")  # on the page still open
    return order, payment


def resolve(stub: Any, payment_id: str, action: int, key: str) -> Any:
    request = ps.ResolveReviewRequest(payment_id=payment_id, action=action, note="checked", request_id=key)
    return stub.ResolveReview(request)


@pytest.mark.parametrize("late", ["review"])
def test_review_resolved_honour_pays_the_order(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, payment = canceled_and_paid_late(app, stub, order_stub)
    apply_all_events(orders, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_NEEDS_REVIEW" and stock(order_db_url) == 50
    resolve(stub, payment.id, payment_pb2.REVIEW_ACTION_HONOUR, "h1")
    apply_all_events(orders, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_PAID"
    assert stock(order_db_url) == 49  # taken again, once


@pytest.mark.parametrize("late", ["review"])
def test_review_resolved_honour_without_stock_stays_in_review(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, payment = canceled_and_paid_late(app, stub, order_stub, quantity=3)
    apply_all_events(orders, db_url)
    rows(order_db_url, "UPDATE products SET stock = 2 WHERE variant_id = 'mug-blue' RETURNING stock")
    resolve(stub, payment.id, payment_pb2.REVIEW_ACTION_HONOUR, "h1")
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert (
        got.status == order_pb2.ORDER_STATUS_NEEDS_REVIEW and "stock no longer available" in got.status_reason
    )
    assert stock(order_db_url) == 2


@pytest.mark.parametrize("late", ["review"])
def test_review_resolved_refund_returns_the_order_to_canceled(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, payment = canceled_and_paid_late(app, stub, order_stub)
    apply_all_events(orders, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_NEEDS_REVIEW"
    answer = resolve(stub, payment.id, payment_pb2.REVIEW_ACTION_REFUND, "r1")
    assert [r.status for r in answer.refunds] == [payment_pb2.REFUND_STATUS_SUCCEEDED]
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert (got.status, got.refunded_amount) == (order_pb2.ORDER_STATUS_CANCELED, PRICE)
    assert stock(order_db_url) == 50  # given back by the cancel, never twice


def test_late_money_honoured_when_the_stock_is_there(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, _ = canceled_and_paid_late(app, stub, order_stub, quantity=2)
    assert stock(order_db_url) == 50
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert got.status == order_pb2.ORDER_STATUS_PAID and "stock taken again" in got.status_reason
    assert stock(order_db_url) == 48


def test_late_money_honoured_then_refunded_by_review_gives_the_stock_back(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    """The payment service keeps honoured late money flagged for review; an
    operator who refunds it there refunds the order, and its stock comes back once."""
    order, payment = canceled_and_paid_late(app, stub, order_stub, quantity=2)
    apply_all_events(orders, db_url)
    assert status(order_stub, order.id) == "ORDER_STATUS_PAID" and stock(order_db_url) == 48
    resolve(stub, payment.id, payment_pb2.REVIEW_ACTION_REFUND, "r1")
    resolve(stub, payment.id, payment_pb2.REVIEW_ACTION_REFUND, "r1")  # replayed: the same resolution
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert (got.status, got.refunded_amount) == (order_pb2.ORDER_STATUS_REFUNDED, 2 * PRICE)
    assert stock(order_db_url) == 50


def test_late_money_without_stock_needs_review_never_below_zero(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    """Two canceled orders paid late at once while one unit is left: one is
    PAID, the other NEEDS_REVIEW ("stock no longer available"), stock 0."""
    first, _ = canceled_and_paid_late(app, stub, order_stub)
    second, _ = canceled_and_paid_late(app, stub, order_stub)
    rows(order_db_url, "UPDATE products SET stock = 1 WHERE variant_id = 'mug-blue' RETURNING stock")
    use_cases = orders.app.use_cases
    events: list[PaymentEvent] = []
    total = (
        rows(db_url, "SELECT count(*) FROM outbox_events")[0][0]
        - rows(order_db_url, "SELECT count(*) FROM applied_payment_events")[0][0]
    )
    for event in use_cases.payment_events():
        events.append(event)
        if len(events) == total:
            break
    late = [e for e in events if e.type == "payment.late_success"]
    assert len(late) == 2
    for event in events:
        if event not in late:
            use_cases.apply_payment_event(event)
    barrier = threading.Barrier(2)

    def apply(event: PaymentEvent) -> None:
        barrier.wait(timeout=30)
        use_cases.apply_payment_event(event)

    threads = [threading.Thread(target=apply, args=(e,)) for e in late]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status(order_stub, o.id) for o in (first, second))
    assert statuses == ["ORDER_STATUS_NEEDS_REVIEW", "ORDER_STATUS_PAID"]
    assert stock(order_db_url) == 0
    reviewed = next(o for o in (first, second) if status(order_stub, o.id) == "ORDER_STATUS_NEEDS_REVIEW")
    assert "stock no longer available" in get(order_stub, reviewed.id).status_reason


@pytest.mark.parametrize("late", ["refund"])
def test_late_payment_policy_refund_keeps_the_order_closed(
    app: App, stub: Any, order_stub: Any, orders: Any, db_url: str, order_db_url: str
) -> None:
    order, _ = canceled_and_paid_late(app, stub, order_stub)
    assert app.refunds is not None and app.refunds.reconcile_due() == 1  # the payment service refunds it
    apply_all_events(orders, db_url)
    got = get(order_stub, order.id)
    assert got.status == order_pb2.ORDER_STATUS_CANCELED and "refunded" in got.status_reason
    assert got.refunded_amount == PRICE
    assert stock(order_db_url) == 50
    assert "order.paid" not in order_events(order_db_url, order.id)


def test_the_migration_backfills_orders_stored_before(empty_db_url: str) -> None:
    """refund_o0001 on orders of every kind: closed ones gave their stock
    back; one in review for money after it was closed too (and how it was
    closed, and the payment reviewed, come from its reason)."""
    from paykit import migrations

    migrations.upgrade(empty_db_url, "order", "money_o_0001")
    late_payment = "6f1c2a5e-0d1b-4c9e-9a57-2b8f0a3c4d5e"
    cases = {
        "PAID": None,
        "CANCELED": "canceled by the shopper",
        "EXPIRED": "not paid in time",
        "NEEDS_REVIEW": f"payment {late_payment} succeeded after the order was canceled: refund it",
    }
    for n, (state, reason) in enumerate(cases.items()):
        rows(
            empty_db_url,
            "INSERT INTO orders (id, user_id, status, status_reason, total_amount, currency, receiver_name,"
            " receiver_phone, shipping_address, note, create_time, update_time, expire_time)"
            " VALUES (gen_random_uuid(), %s, %s, %s, 1000, 'VND', 'A', '0901234567', 'x', '',"
            " now(), now(), now())"
            " RETURNING id",
            f"u{n}",
            state,
            reason,
        )
    migrations.upgrade(empty_db_url, "order")
    got = rows(
        empty_db_url,
        "SELECT status, stock_held, closed_as, review_payment_id::text, refunded_amount"
        " FROM orders ORDER BY user_id",
    )
    assert got == [
        ("PAID", True, None, None, 0),
        ("CANCELED", False, "CANCELED", None, 0),
        ("EXPIRED", False, "EXPIRED", None, 0),
        ("NEEDS_REVIEW", False, "CANCELED", late_payment, 0),
    ]
