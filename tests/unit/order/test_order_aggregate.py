"""The Order as a plain domain object (order_service.domain.model): placing
it, attaching a payment, closing it, applying payment events. No DB."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from order_service.domain.errors import InvalidArgument
from order_service.domain.model import (
    Order,
    OrderStatus,
    Product,
    on_payment_event,
    place_order,
    validate_new_order,
)
from order_service.domain.payments import PaymentEvent, PaymentProvider, PaymentStatus

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
PAYMENT = str(uuid.uuid4())
MUG = Product(variant_id="mug-blue", name="Mug, blue", price=89_000, currency="VND", stock=50)
SHIRT = Product(variant_id="tshirt-black-m", name="T-shirt", price=150_000, currency="VND", stock=100)


def new_order(*lines: tuple[str, int]) -> Order:
    new = validate_new_order(
        user_id="u1",
        lines=list(lines) or [("mug-blue", 2), ("tshirt-black-m", 1)],
        receiver_name="Nguyen Van A",
        receiver_phone="0901234567",
        shipping_address="1 Le Loi, Q1",
        note="",
    )
    products = {p.variant_id: p for p in (MUG, SHIRT)}
    return place_order(new, products, order_id=uuid.uuid4(), now=NOW, ttl=timedelta(minutes=30))


def event(type_: str, order: Order, payment_id: str = PAYMENT) -> PaymentEvent:
    return PaymentEvent(
        cursor="1-1",
        event_id=str(uuid.uuid4()),
        type=type_,
        payment_id=payment_id,
        order_id=str(order.id),
        user_id="u1",
        status=PaymentStatus.PENDING,
        provider=PaymentProvider.VNPAY,
        amount=order.total_amount,
        currency="VND",
        version=1,
    )


def test_a_placed_order_is_priced_unpaid_and_unnumbered() -> None:
    order = new_order()
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.total_amount == 2 * 89_000 + 150_000
    assert [(i.line_no, i.variant_id, i.line_total) for i in order.items] == [
        (1, "mug-blue", 178_000),
        (2, "tshirt-black-m", 150_000),
    ]
    assert order.order_code is None and order.payment_id is None
    assert (order.create_time, order.update_time, order.expire_time) == (
        NOW,
        NOW,
        NOW + timedelta(minutes=30),
    )


def test_placing_names_unknown_variants_and_mixed_currencies() -> None:
    with pytest.raises(InvalidArgument) as info:
        new_order(("mug-blue", 1), ("nope", 1))
    assert [v.field for v in info.value.violations] == ["items[1].variant_id"]
    usd = Product(variant_id="tshirt-black-m", name="T-shirt", price=7, currency="USD", stock=1)
    new = validate_new_order(
        user_id="u1",
        lines=[("mug-blue", 1), ("tshirt-black-m", 1)],
        receiver_name="A",
        receiver_phone="0901234567",
        shipping_address="B",
        note="",
    )
    with pytest.raises(InvalidArgument, match="one currency"):
        place_order(
            new, {"mug-blue": MUG, "tshirt-black-m": usd}, order_id=uuid.uuid4(), now=NOW, ttl=timedelta()
        )


def test_attach_payment_keeps_the_newest_attempt_whatever_the_status() -> None:
    order = new_order()
    assert order.attach_payment(PAYMENT, 1, LATER)
    assert (str(order.payment_id), order.payment_attempt, order.update_time) == (PAYMENT, 1, LATER)
    assert not order.attach_payment(PAYMENT, 1, LATER + timedelta(1))
    assert order.close(OrderStatus.CANCELED, "changed my mind", LATER)
    # An attempt opened while the order was being canceled is still the
    # current one (so it can be released); an older one never is.
    newer, older = str(uuid.uuid4()), str(uuid.uuid4())
    assert order.attach_payment(newer, 2, LATER)
    assert not order.attach_payment(older, 1, LATER)
    assert (str(order.payment_id), order.payment_attempt) == (newer, 2)


def test_close_happens_once_and_only_as_canceled_or_expired() -> None:
    order = new_order()
    with pytest.raises(ValueError, match="canceled or expired"):
        order.close(OrderStatus.PAID, "", LATER)
    assert order.close(OrderStatus.EXPIRED, "not paid in time", LATER)
    assert (order.status, order.status_reason, order.update_time) == ("EXPIRED", "not paid in time", LATER)
    assert not order.close(OrderStatus.CANCELED, "again", LATER + timedelta(1))
    assert order.status == "EXPIRED"


def test_apply_payment_event_changes_the_order_as_the_rules_say() -> None:
    order = new_order()
    created = event("payment.created", order)
    assert order.apply_payment_event(created, LATER) is None
    assert str(order.payment_id) == PAYMENT  # a new payment for a payable order is attached
    succeeded = event("payment.succeeded", order)
    expected = on_payment_event(order, succeeded)
    change = order.apply_payment_event(succeeded, LATER)
    assert change == expected and change is not None and change.event == "order.paid"
    assert (order.status, order.status_reason, order.update_time) == ("PAID", None, LATER)


def test_money_after_close_puts_the_order_up_for_review() -> None:
    order = new_order()
    order.close(OrderStatus.CANCELED, "by the shopper", NOW)
    change = order.apply_payment_event(event("payment.succeeded", order), LATER)
    assert change is not None and change.event == "order.needs_review"
    assert order.status == "NEEDS_REVIEW" and "refund it" in (order.status_reason or "")
