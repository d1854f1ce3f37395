"""Pure order rules (order_service.domain.model): validation, what may be
paid or canceled, and what a payment event does to an order. No DB, no network."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from order_service.domain.errors import (
    AlreadyPaid,
    CashOnDelivery,
    InvalidArgument,
    NotCancelable,
    OrderClosed,
)
from order_service.domain.model import (
    MAX_ITEMS,
    OrderStatus,
    check_cancelable,
    check_payable,
    on_payment_event,
    validate_new_order,
)
from order_service.domain.payments import PaymentEvent, PaymentProvider, PaymentStatus

PAYMENT = str(uuid.uuid4())
OTHER_PAYMENT = str(uuid.uuid4())


@dataclass
class FakeOrder:
    status: str
    payment_id: object = None
    id: object = "o-1"
    user_id: str = "u1"
    total_amount: int = 150_000
    currency: str = "VND"
    status_reason: str | None = None
    expire_time: datetime = datetime(2025, 1, 1, 12, 30, tzinfo=UTC)


def event(type_: str, payment_id: str = PAYMENT, **changes: object) -> PaymentEvent:
    base = PaymentEvent(
        cursor="1-1",
        event_id=str(uuid.uuid4()),
        type=type_,
        payment_id=payment_id,
        order_id="o-1",
        user_id="u1",
        status=PaymentStatus.PENDING,
        provider=PaymentProvider.VNPAY,
        amount=150_000,
        currency="VND",
        version=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def valid(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "user_id": "u1",
        "lines": [("mug-blue", 2)],
        "receiver_name": " Nguyen Van A ",
        "receiver_phone": "+84 901 234 567",
        "shipping_address": "1 Le Loi, Q1",
        "note": "",
    }
    values.update(changes)
    return values


def violated(**changes: object) -> set[str]:
    with pytest.raises(InvalidArgument) as info:
        validate_new_order(**valid(**changes))  # type: ignore[arg-type]
    return {v.field for v in info.value.violations}


def test_a_valid_order_is_trimmed_and_normalised() -> None:
    new = validate_new_order(**valid())  # type: ignore[arg-type]
    assert new.receiver_name == "Nguyen Van A"
    assert new.receiver_phone == "+84901234567"
    assert [(line.variant_id, line.quantity) for line in new.lines] == [("mug-blue", 2)]


def test_every_problem_is_reported_at_once() -> None:
    assert violated(
        lines=[("bad id!", 0), ("mug-blue", 1), ("mug-blue", 101)],
        receiver_name="",
        receiver_phone="12",
        shipping_address="x" * 501,
        note="a\x01b",
    ) == {
        "items[0].variant_id",
        "items[0].quantity",
        "items[2].variant_id",
        "items[2].quantity",
        "receiver_name",
        "receiver_phone",
        "shipping_address",
        "note",
    }


def test_line_count_limits() -> None:
    assert violated(lines=[]) == {"items"}
    assert violated(lines=[(f"v{i}", 1) for i in range(MAX_ITEMS + 1)]) == {"items"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (OrderStatus.AWAITING_DELIVERY_PAYMENT, CashOnDelivery),
        (OrderStatus.PAID, AlreadyPaid),
        (OrderStatus.CANCELED, OrderClosed),
        (OrderStatus.EXPIRED, OrderClosed),
        (OrderStatus.NEEDS_REVIEW, OrderClosed),
    ],
)
def test_only_open_unpaid_orders_are_payable(status: OrderStatus, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_payable(FakeOrder(status.value))


def test_payable_and_cancelable() -> None:
    for status in (OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_FAILED):
        check_payable(FakeOrder(status.value))
        check_cancelable(FakeOrder(status.value))
    check_cancelable(FakeOrder(OrderStatus.AWAITING_DELIVERY_PAYMENT.value))
    with pytest.raises(NotCancelable, match="paid and cannot be canceled"):
        check_cancelable(FakeOrder(OrderStatus.PAID.value))


def test_money_pays_an_open_order() -> None:
    for type_ in ("payment.succeeded", "payment.late_success"):
        change = on_payment_event(FakeOrder("PENDING_PAYMENT", PAYMENT), event(type_))
        assert change is not None and change.status == OrderStatus.PAID and change.event == "order.paid"


def test_money_for_a_closed_order_needs_review_and_extra_money_is_visible() -> None:
    change = on_payment_event(FakeOrder("CANCELED", PAYMENT), event("payment.succeeded"))
    assert change is not None and change.status == OrderStatus.NEEDS_REVIEW
    extra = on_payment_event(FakeOrder("PAID", OTHER_PAYMENT), event("payment.succeeded"))
    assert extra is not None and extra.status == OrderStatus.PAID and extra.event == "order.extra_payment"
    assert on_payment_event(FakeOrder("PAID", PAYMENT), event("payment.succeeded")) is None


def test_cash_on_delivery_created_awaits_delivery() -> None:
    cod = event("payment.created", provider=PaymentProvider.COD)
    change = on_payment_event(FakeOrder("PENDING_PAYMENT"), cod)
    assert change is not None and change.status == OrderStatus.AWAITING_DELIVERY_PAYMENT
    assert on_payment_event(FakeOrder("PENDING_PAYMENT"), event("payment.created")) is None
    retried = on_payment_event(FakeOrder("PAYMENT_FAILED"), event("payment.created"))
    assert retried is not None and retried.status == OrderStatus.PENDING_PAYMENT


def test_a_failed_payment_fails_only_its_own_pending_order() -> None:
    failed = event("payment.failed", failure_reason="card declined")
    change = on_payment_event(FakeOrder("PENDING_PAYMENT", PAYMENT), failed)
    assert change is not None and change.status == OrderStatus.PAYMENT_FAILED
    assert change.reason == "card declined"
    assert on_payment_event(FakeOrder("PENDING_PAYMENT", OTHER_PAYMENT), failed) is None
