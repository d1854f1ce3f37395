"""The order use cases (order_service.service_layer.services) on an
in-memory unit of work and payment service: the service layer runs with no
database and no network, through its UnitOfWork, Orders and Payments ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import pytest

from order_service.domain.errors import NotFound, OrderClosed, OrderExpiring, OutOfStock, Unavailable
from order_service.domain.model import NewOrder, Order, OrderPolicy, Product, validate_new_order
from order_service.domain.payments import (
    Checkout,
    PaymentAttempt,
    PaymentEvent,
    PaymentFact,
    PaymentProvider,
    PaymentStatus,
)
from order_service.service_layer.services import OrderUseCases


class FakeOrders:
    def __init__(self) -> None:
        self.stock = {"mug-blue": 5, "sticker-pack": 100}
        self.catalog = {
            "mug-blue": Product(variant_id="mug-blue", name="Mug", price=89_000, currency="VND", stock=0),
            "sticker-pack": Product(
                variant_id="sticker-pack", name="Stickers", price=25_000, currency="VND", stock=0
            ),
        }
        self.orders: dict[uuid.UUID, Order] = {}
        self.events: list[tuple[str, uuid.UUID]] = []
        self.applied: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
        self.cursors: dict[str, str] = {}
        self.hits: dict[tuple[str, datetime], int] = {}

    def products(self, after: str, limit: int) -> Sequence[Product]:
        return [p for k, p in sorted(self.catalog.items()) if k > after][:limit]

    def products_by_id(self, variant_ids: list[str]) -> dict[str, Product]:
        return {v: self.catalog[v] for v in variant_ids if v in self.catalog}

    def take_stock(self, variant_id: str, quantity: int) -> bool:
        if self.stock[variant_id] < quantity:
            return False
        self.stock[variant_id] -= quantity
        return True

    def return_stock(self, variant_id: str, quantity: int) -> None:
        self.stock[variant_id] += quantity

    def add(self, order: Order) -> None:
        order.order_code = 100_000 + len(self.orders)
        self.orders[order.id] = order

    def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        return self.orders.get(order_id)

    def for_user(
        self, user_id: str, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[Order]:
        mine = sorted((o for o in self.orders.values() if o.user_id == user_id), key=lambda o: o.create_time)
        return [o for o in reversed(mine) if before is None or (o.create_time, o.id) < before][:limit]

    def due_for_expiry(
        self, now: datetime, limit: int, after: tuple[datetime, uuid.UUID] | None = None
    ) -> Sequence[Order]:
        due = [o for o in self.orders.values() if o.status in ("PENDING_PAYMENT", "PAYMENT_FAILED")]
        due = sorted((o for o in due if o.expire_time < now), key=lambda o: (o.expire_time, o.id))
        return [o for o in due if after is None or (o.expire_time, o.id) > after][:limit]

    def lock(self, order_ids: Sequence[uuid.UUID]) -> None:
        pass

    def claim_newer(self, event_id: uuid.UUID, payment_id: uuid.UUID, version: int, now: datetime) -> bool:
        if event_id in self.applied:
            return False
        self.applied[event_id] = (payment_id, version)
        newest = max(
            (v for e, (p, v) in self.applied.items() if p == payment_id and e != event_id), default=0
        )
        return version > newest

    def checkpoint(self, name: str) -> str | None:
        return self.cursors.get(name)

    def advance_checkpoint(self, name: str, cursor: str, txid: int, seq: int, now: datetime) -> None:
        self.cursors[name] = cursor

    def add_event(self, event_type: str, order: Order, now: datetime) -> None:
        self.events.append((event_type, order.id))

    def lock_user(self, user_id: str) -> None:
        pass

    def open_orders(self, user_id: str) -> int:
        payable = ("PENDING_PAYMENT", "PAYMENT_FAILED")
        return sum(1 for o in self.orders.values() if o.user_id == user_id and o.status in payable)

    def hit(self, key: str, window_start: datetime, limit: int) -> bool:
        count = self.hits.get((key, window_start), 0)
        if count >= limit:
            return False
        self.hits[(key, window_start)] = count + 1
        return True

    def prune_rate_limits(self, before: datetime) -> int:
        old = [k for k in self.hits if k[1] < before]
        for k in old:
            del self.hits[k]
        return len(old)

    def prune_applied_events(self, before: datetime, limit: int) -> int:
        return 0

    def prune_events(self, before: datetime, limit: int) -> int:
        return 0


class FakeUnitOfWork:
    def __init__(self, orders: FakeOrders) -> None:
        self.orders = orders
        self.commits = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    def commit(self) -> None:
        self.commits += 1

    def flush(self) -> None:
        pass


class FakePayments:
    def __init__(self) -> None:
        self.attempts: list[PaymentAttempt] = []
        self.canceled: list[str] = []
        self.facts: dict[str, list[PaymentFact]] = {}
        self.down = False
        self.during_create: Callable[[], None] = lambda: None

    def create_or_get_payment(self, attempt: PaymentAttempt) -> Checkout:
        self.attempts.append(attempt)
        self.during_create()
        n = len(self.attempts)
        return Checkout(
            str(uuid.UUID(int=n)), "https://pay.example/x", NOW + timedelta(minutes=15), attempt=n
        )

    def cancel_payment(self, payment_id: str, reason: str) -> None:
        self.canceled.append(payment_id)

    def payments_of_order(self, order_id: str, user_id: str) -> Sequence[PaymentFact]:
        if self.down:
            raise Unavailable("the payment service is unavailable; retry shortly")
        return self.facts.get(order_id, [])

    def stream_events(self, after_cursor: str) -> Iterator[PaymentEvent]:
        return iter(())


NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world() -> tuple[OrderUseCases, FakeUnitOfWork, FakePayments, Clock]:
    uow, payments, clock = FakeUnitOfWork(FakeOrders()), FakePayments(), Clock()
    return OrderUseCases(lambda: uow, payments, clock, OrderPolicy()), uow, payments, clock


def cart(*lines: tuple[str, int]) -> NewOrder:
    return validate_new_order(
        user_id="u1",
        lines=list(lines),
        receiver_name="A",
        receiver_phone="0901234567",
        shipping_address="B",
        note="",
    )


World = tuple[OrderUseCases, FakeUnitOfWork, FakePayments, Clock]


def test_create_order_takes_stock_stores_and_emits(world: World) -> None:
    use_cases, uow, _, _ = world
    order = use_cases.create_order(cart(("mug-blue", 2), ("sticker-pack", 3)))
    assert order.order_code == 100_000 and order.total_amount == 2 * 89_000 + 3 * 25_000
    assert uow.orders.stock == {"mug-blue": 3, "sticker-pack": 97}
    assert uow.orders.events == [("order.created", order.id)] and uow.commits == 1
    with pytest.raises(OutOfStock):
        use_cases.create_order(cart(("mug-blue", 4)))
    assert uow.commits == 1


def test_pay_again_attaches_the_payment_and_cancel_restocks_once(world: World) -> None:
    use_cases, uow, payments, _ = world
    order = use_cases.create_order(cart(("mug-blue", 2)))
    with pytest.raises(NotFound):
        use_cases.get_order("someone-else", str(order.id))
    paid_again, checkout = use_cases.retry_payment(
        "u1",
        str(order.id),
        provider=PaymentProvider.MOMO,
        return_url="",
        client_ip="",
        user_agent="",
        idempotency_key="k1",
    )
    assert str(paid_again.payment_id) == checkout.payment_id
    assert payments.attempts[0].description.endswith(str(order.order_code))
    canceled = use_cases.cancel_order("u1", str(order.id), "")
    assert canceled.status == "CANCELED" and canceled.status_reason == "canceled by the shopper"
    assert uow.orders.stock["mug-blue"] == 5
    assert payments.canceled == [checkout.payment_id]


def test_expiry_closes_due_orders_once(world: World) -> None:
    use_cases, uow, _, clock = world
    order = use_cases.create_order(cart(("mug-blue", 1)))
    clock.now += timedelta(minutes=31)
    assert use_cases.expire_due_orders() == 1
    assert order.status == "EXPIRED" and uow.orders.stock["mug-blue"] == 5
    assert use_cases.expire_due_orders() == 0
    assert [e for e, _ in uow.orders.events] == ["order.created", "order.expired"]


def test_a_payment_event_applies_once_and_moves_the_checkpoint(world: World) -> None:
    use_cases, uow, _, _ = world
    order = use_cases.create_order(cart(("mug-blue", 1)))
    paid = PaymentEvent(
        cursor="7-1",
        event_id=str(uuid.uuid4()),
        type="payment.succeeded",
        payment_id=str(uuid.uuid4()),
        order_id=str(order.id),
        user_id="u1",
        status=PaymentStatus.SUCCEEDED,
        provider=PaymentProvider.VNPAY,
        amount=order.total_amount,
        currency="VND",
        version=2,
    )
    assert use_cases.apply_payment_event(paid) is True
    assert use_cases.apply_payment_event(paid) is False
    assert order.status == "PAID" and use_cases.stream_cursor() == "7-1"
    assert [e for e, _ in uow.orders.events] == ["order.created", "order.paid"]


def retry(use_cases: OrderUseCases, order: Order, provider: PaymentProvider | None = None) -> Checkout:
    return use_cases.retry_payment(
        "u1",
        str(order.id),
        provider=provider,
        return_url="",
        client_ip="",
        user_agent="",
        idempotency_key="",
    )[1]


def test_pay_again_sends_the_order_expiry_as_the_cap_and_no_default_provider(world: World) -> None:
    """Findings 3 and 4: no provider means "keep the current one" (not
    VNPay), and the attempt never outlives the order."""
    use_cases, _, payments, clock = world
    order = use_cases.create_order(cart(("mug-blue", 1)))
    retry(use_cases, order)
    assert payments.attempts[0].provider is None
    assert payments.attempts[0].not_after == order.expire_time
    clock.now = order.expire_time - timedelta(seconds=90)
    with pytest.raises(OrderExpiring, match="too soon to start a payment"):
        retry(use_cases, order, PaymentProvider.MOMO)
    assert len(payments.attempts) == 1


def test_pay_again_racing_a_cancel_hands_out_no_checkout_and_closes_the_attempt(world: World) -> None:
    use_cases, uow, payments, _ = world
    order = use_cases.create_order(cart(("mug-blue", 2)))
    retry(use_cases, order)
    # The shopper cancels in another tab while the second attempt opens.
    payments.during_create = lambda: use_cases.cancel_order("u1", str(order.id), "")
    with pytest.raises(OrderClosed):
        retry(use_cases, order)
    second = str(uuid.UUID(int=2))
    assert str(order.payment_id) == second and order.payment_attempt == 2  # not stale
    assert second in payments.canceled
    assert order.status == "CANCELED" and uow.orders.stock["mug-blue"] == 5


def test_expiry_asks_about_money_before_restocking(world: World) -> None:
    """Finding 5: with the event stream stalled, a paid order is paid at
    expiry, an order whose attempt may still take money waits, and nothing
    expires while the payment service cannot answer."""
    use_cases, uow, payments, clock = world
    paid, pending, unpaid = (use_cases.create_order(cart(("mug-blue", 1))) for _ in range(3))

    def attempt(order: Order, status: PaymentStatus, paid: bool = False) -> list[PaymentFact]:
        return [
            PaymentFact(
                payment_id=str(uuid.uuid4()),
                order_id=str(order.id),
                user_id="u1",
                status=status,
                provider=PaymentProvider.VNPAY,
                amount=order.total_amount,
                currency="VND",
                attempt=1,
                paid=paid,
            )
        ]

    payments.facts = {
        str(paid.id): attempt(paid, PaymentStatus.SUCCEEDED, paid=True),
        str(pending.id): attempt(pending, PaymentStatus.PENDING),
    }
    clock.now += timedelta(minutes=31)
    payments.down = True
    assert use_cases.expire_due_orders() == 0
    assert uow.orders.stock["mug-blue"] == 2
    payments.down = False
    assert use_cases.expire_due_orders(limit=1) == 2  # pages through all three
    assert (paid.status, pending.status, unpaid.status) == ("PAID", "PENDING_PAYMENT", "EXPIRED")
    assert uow.orders.stock["mug-blue"] == 3
    assert sorted(e for e, _ in uow.orders.events if e != "order.created") == ["order.expired", "order.paid"]
