"""Issue 11, the order side: the order trusts facts, not events alone; its
current attempt never goes stale; cash on delivery replaced by an online
attempt; "Pay again" near expiry; expiry that asks about money. Pure
domain (order_service.domain.model), no DB."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from order_service.domain.errors import OrderExpiring
from order_service.domain.model import (
    ExpiryAction,
    Order,
    OrderStatus,
    Product,
    check_payable,
    place_order,
    validate_new_order,
)
from order_service.domain.payments import PaymentEvent, PaymentFact, PaymentProvider, PaymentStatus

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
MUG = Product(variant_id="mug-blue", name="Mug, blue", price=89_000, currency="VND", stock=50)
FIRST, SECOND, THIRD = (str(uuid.uuid4()) for _ in range(3))


def new_order() -> Order:
    new = validate_new_order(
        user_id="u1",
        lines=[("mug-blue", 2)],
        receiver_name="Nguyen Van A",
        receiver_phone="0901234567",
        shipping_address="1 Le Loi, Q1",
        note="",
    )
    return place_order(new, {"mug-blue": MUG}, order_id=uuid.uuid4(), now=NOW, ttl=timedelta(minutes=30))


def event(
    type_: str, order: Order, payment_id: str = FIRST, attempt: int = 1, **changes: object
) -> PaymentEvent:
    base = PaymentEvent(
        cursor="1-1",
        event_id=str(uuid.uuid4()),
        type=type_,
        payment_id=payment_id,
        order_id=str(order.id),
        user_id=order.user_id,
        status=PaymentStatus.PENDING,
        provider=PaymentProvider.VNPAY,
        amount=order.total_amount,
        currency=order.currency,
        version=1,
        attempt=attempt,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def fact(
    order: Order, payment_id: str, attempt: int, status: PaymentStatus, paid: bool = False
) -> PaymentFact:
    return PaymentFact(
        payment_id=payment_id,
        order_id=str(order.id),
        user_id=order.user_id,
        status=status,
        provider=PaymentProvider.VNPAY,
        amount=order.total_amount,
        currency=order.currency,
        attempt=attempt,
        paid=paid,
    )


# Finding 9: PAID only when the payment's facts match the order.


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"amount": 1_000}, "amount 1000 is not 178000"),
        ({"currency": "USD"}, "currency 'USD' is not 'VND'"),
        ({"order_id": "someone-elses-order"}, "order 'someone-elses-order'"),
        ({"user_id": "u2"}, "user 'u2' is not 'u1'"),
    ],
)
def test_money_that_does_not_match_the_order_goes_to_review_not_paid(
    changes: dict[str, object], named: str
) -> None:
    order = new_order()
    order.apply_payment_event(event("payment.created", order), NOW)
    change = order.apply_payment_event(event("payment.succeeded", order, **changes), NOW)
    assert change is not None and change.event == "order.needs_review"
    assert order.status == OrderStatus.NEEDS_REVIEW and named in (order.status_reason or "")
    assert order.paid_payment_id is None
    # In review the stock stays reserved: neither cancel nor expiry restock it.
    assert not order.close(OrderStatus.CANCELED, "by the shopper", NOW)
    assert order.settle_expiry([], NOW + timedelta(hours=1)) == (ExpiryAction.NOTHING, None)


def test_a_cash_on_delivery_attempt_that_does_not_match_is_not_shipped() -> None:
    order = new_order()
    cod = event("payment.created", order, provider=PaymentProvider.COD, amount=1)
    change = order.apply_payment_event(cod, NOW)
    assert change is not None and order.status == OrderStatus.NEEDS_REVIEW


# The current attempt is derived from the attempts' numbers: never stale.


def test_news_of_an_older_attempt_never_changes_the_current_one() -> None:
    order = new_order()
    # Attempt 2's creation is applied before attempt 1's (another replica,
    # a replay, or "Pay again" attaching first).
    assert order.attach_payment(SECOND, 2, NOW)
    order.apply_payment_event(event("payment.created", order, FIRST, 1), NOW)
    assert (str(order.payment_id), order.payment_attempt) == (SECOND, 2)
    # Attempt 1 failing (it was superseded) does not fail the order.
    assert order.apply_payment_event(event("payment.failed", order, FIRST, 1), NOW) is None
    assert order.status == OrderStatus.PENDING_PAYMENT
    order.apply_payment_event(event("payment.created", order, THIRD, 3), NOW)
    assert (str(order.payment_id), order.payment_attempt) == (THIRD, 3)


def test_money_on_an_older_attempt_pays_an_unpaid_order_once() -> None:
    order = new_order()
    order.attach_payment(SECOND, 2, NOW)
    change = order.apply_payment_event(event("payment.late_success", order, FIRST, 1), NOW)
    assert change is not None and change.event == "order.paid"
    assert order.status == OrderStatus.PAID and str(order.paid_payment_id) == FIRST
    assert str(order.payment_id) == SECOND  # the current attempt did not move back
    # The current attempt's own success now is a second payment: extra, PAID once.
    extra = order.apply_payment_event(event("payment.succeeded", order, SECOND, 2), NOW)
    assert extra is not None and extra.event == "order.extra_payment"
    assert order.status == OrderStatus.PAID and "extra payment" in (order.status_reason or "")
    assert str(order.paid_payment_id) == FIRST


# Finding 9: cash on delivery replaced by an online attempt.


def test_cash_on_delivery_replaced_by_an_online_attempt_waits_for_money_again() -> None:
    order = new_order()
    order.apply_payment_event(event("payment.created", order, FIRST, 1, provider=PaymentProvider.COD), NOW)
    assert order.status == OrderStatus.AWAITING_DELIVERY_PAYMENT
    # "Pay again" with VNPay supersedes the COD attempt: its cancel, then the new attempt.
    superseded = event(
        "payment.canceled", order, FIRST, 1, provider=PaymentProvider.COD, failure_reason="superseded"
    )
    order.apply_payment_event(superseded, NOW)
    change = order.apply_payment_event(event("payment.created", order, SECOND, 2), NOW)
    assert change is not None and change.event == "order.payment_retried"
    assert order.status == OrderStatus.PENDING_PAYMENT and str(order.payment_id) == SECOND
    # Paying the online attempt pays the order.
    order.apply_payment_event(event("payment.succeeded", order, SECOND, 2), NOW)
    assert order.status == OrderStatus.PAID


def test_cash_on_delivery_replaced_without_its_cancel_event() -> None:
    order = new_order()
    order.apply_payment_event(event("payment.created", order, FIRST, 1, provider=PaymentProvider.COD), NOW)
    order.apply_payment_event(event("payment.created", order, SECOND, 2), NOW)
    assert order.status == OrderStatus.PENDING_PAYMENT
    # The old COD attempt's late cancel changes nothing now.
    order.apply_payment_event(event("payment.canceled", order, FIRST, 1, provider=PaymentProvider.COD), NOW)
    assert order.status == OrderStatus.PENDING_PAYMENT


def test_a_canceled_cash_on_delivery_attempt_lets_the_shopper_pay_again() -> None:
    order = new_order()
    order.apply_payment_event(event("payment.created", order, FIRST, 1, provider=PaymentProvider.COD), NOW)
    canceled = event("payment.canceled", order, FIRST, 1, provider=PaymentProvider.COD, failure_reason="ops")
    change = order.apply_payment_event(canceled, NOW)
    assert change is not None and order.status == OrderStatus.PAYMENT_FAILED
    check_payable(order, NOW)


# Finding 4: "Pay again" near the order's expiry.


def test_pay_again_is_refused_on_an_order_past_or_near_its_expiry() -> None:
    order = new_order()  # expires at NOW + 30 min
    minimum = timedelta(seconds=120)
    check_payable(order, NOW + timedelta(minutes=27), minimum)
    with pytest.raises(OrderExpiring, match="expires in 119 s, too soon to start a payment"):
        check_payable(order, order.expire_time - timedelta(seconds=119), minimum)
    with pytest.raises(OrderExpiring, match="has expired; create a new order"):
        check_payable(order, order.expire_time + timedelta(seconds=1), minimum)


# Finding 5: expiry asks about money.


def test_expiry_of_an_order_whose_money_was_taken_pays_it() -> None:
    order = new_order()
    later = order.expire_time + timedelta(seconds=1)
    action, change = order.settle_expiry(
        [
            fact(order, FIRST, 1, PaymentStatus.SUCCEEDED, paid=True),
            fact(order, SECOND, 2, PaymentStatus.CANCELED),
        ],
        later,
    )
    assert action == ExpiryAction.MONEY and change is not None and change.event == "order.paid"
    assert order.status == OrderStatus.PAID and str(order.payment_id) == SECOND


def test_expiry_waits_while_an_attempt_may_still_take_money() -> None:
    order = new_order()
    later = order.expire_time + timedelta(seconds=1)
    pending = [fact(order, FIRST, 1, PaymentStatus.FAILED), fact(order, SECOND, 2, PaymentStatus.PENDING)]
    assert order.settle_expiry(pending, later) == (ExpiryAction.WAIT, None)
    assert order.status == OrderStatus.PENDING_PAYMENT
    closed = [fact(order, FIRST, 1, PaymentStatus.FAILED), fact(order, SECOND, 2, PaymentStatus.EXPIRED)]
    action, change = order.settle_expiry(closed, later)
    assert action == ExpiryAction.EXPIRE and change is not None and change.event == "order.expired"
    assert order.status == OrderStatus.EXPIRED
    # Not yet due: nothing.
    assert new_order().settle_expiry([], NOW) == (ExpiryAction.NOTHING, None)
