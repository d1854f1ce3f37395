"""Issue 12, the order side, pure domain: refunds of the kept payment move
the order to PARTIALLY_REFUNDED / REFUNDED (refunds of extra payments never
do), a refund asking for the stock back returns it once and only while the
order holds it, a resolved review moves the order out of NEEDS_REVIEW, and
LATE_PAYMENT_POLICY decides money for a closed order."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

import pytest

from order_service.domain.errors import AlreadyPaid, OrderClosed
from order_service.domain.model import LatePaymentPolicy, Order, OrderStatus, check_payable, late_money_action
from order_service.domain.payments import PaymentEvent, RefundFact, RefundStatus, ReviewResolution
from tests.unit.order.test_order_money import FIRST, NOW, SECOND, event, new_order

HONOUR, REFUND, REVIEW = LatePaymentPolicy.HONOUR, LatePaymentPolicy.REFUND, LatePaymentPolicy.REVIEW


class Stock:
    """The reserve callback: takes the order's stock again when `available`."""

    def __init__(self, available: bool = True) -> None:
        self.available, self.calls = available, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.available


def paid_order() -> Order:
    order = new_order()
    order.apply_payment_event(event("payment.succeeded", order), NOW)
    assert order.status == OrderStatus.PAID
    return order


def refund_event(
    order: Order,
    type_: str,
    refunded: int,
    *,
    amount: int = 50_000,
    payment_id: str = FIRST,
    status: RefundStatus = RefundStatus.SUCCEEDED,
    restock: bool = False,
    own_capture: bool = True,
) -> PaymentEvent:
    fact = RefundFact(str(uuid.uuid4()), amount, status, restock, own_capture, "code 94")
    return event(type_, order, payment_id, refund=fact, refunded_amount=refunded)


def resolved(
    order: Order, resolution: ReviewResolution, payment_id: str = FIRST, refunded: int = 0
) -> PaymentEvent:
    return event(
        "payment.review_resolved", order, payment_id, review_resolution=resolution, refunded_amount=refunded
    )


def closed_order(status: OrderStatus = OrderStatus.EXPIRED) -> Order:
    order = new_order()
    assert order.close(status, "not paid in time", NOW)
    assert not order.stock_held and order.closed_as == status.value
    return order


def test_partial_then_full_refund_of_the_kept_payment() -> None:
    order = paid_order()
    total = order.total_amount
    assert order.apply_payment_event(refund_event(order, "payment.refund_requested", 0), NOW) is None
    assert order.status == OrderStatus.PAID
    change = order.apply_payment_event(refund_event(order, "payment.refunded", 50_000), NOW)
    assert change is not None and change.event == "order.partially_refunded" and not change.restock
    assert (order.status, order.refunded_amount) == (OrderStatus.PARTIALLY_REFUNDED, 50_000)
    change = order.apply_payment_event(
        refund_event(order, "payment.refunded", total, amount=total - 50_000), NOW
    )
    assert change is not None and change.event == "order.refunded"
    assert (order.status, order.refunded_amount) == (OrderStatus.REFUNDED, total)
    assert order.stock_held  # no restock asked: the goods were shipped, say
    with pytest.raises(OrderClosed):
        check_payable(order)


def test_refunds_of_extra_payments_leave_a_paid_order_paid() -> None:
    order = paid_order()
    # A second transaction on the kept attempt, refunded: not its own capture.
    extra_on_kept = refund_event(order, "payment.refunded", 0, own_capture=False, restock=True)
    assert order.apply_payment_event(extra_on_kept, NOW) is None
    # Money on another attempt, refunded in full (its own capture).
    other = refund_event(order, "payment.refunded", order.total_amount, payment_id=SECOND, restock=True)
    assert order.apply_payment_event(other, NOW) is None
    assert (order.status, order.refunded_amount, order.stock_held) == (OrderStatus.PAID, 0, True)
    # Its review closed by the payment service: still PAID.
    assert order.apply_payment_event(resolved(order, ReviewResolution.REFUND, SECOND), NOW) is None
    with pytest.raises(AlreadyPaid):
        check_payable(order)


def test_a_failed_refund_changes_only_the_reason() -> None:
    order = paid_order()
    failed = refund_event(order, "payment.refund_failed", 0, status=RefundStatus.FAILED, restock=True)
    change = order.apply_payment_event(failed, NOW)
    assert change is not None and change.event == "order.refund_failed" and not change.restock
    assert order.status == OrderStatus.PAID and "failed: code 94" in (order.status_reason or "")
    assert order.stock_held


def test_restock_returns_the_stock_once() -> None:
    order = paid_order()
    first = order.apply_payment_event(refund_event(order, "payment.refund_requested", 0, restock=True), NOW)
    assert first is not None and first.restock and first.event == "order.restocked"
    assert order.status == OrderStatus.PAID and not order.stock_held
    # The same refund done, and a second refund asking again: never twice.
    again = order.apply_payment_event(refund_event(order, "payment.refunded", 50_000, restock=True), NOW)
    assert again is not None and not again.restock and order.status == OrderStatus.PARTIALLY_REFUNDED
    rest = refund_event(order, "payment.refund_requested", 50_000, restock=True)
    assert order.apply_payment_event(rest, NOW) is None


def test_no_restock_for_an_order_whose_stock_was_given_back() -> None:
    order = closed_order(OrderStatus.CANCELED)
    late = replace(event("payment.late_success", order), refunded_amount=0)
    order.apply_payment_event(late, NOW, late_policy=REVIEW)
    assert order.status == OrderStatus.NEEDS_REVIEW and not order.stock_held
    change = order.apply_payment_event(refund_event(order, "payment.refund_requested", 0, restock=True), NOW)
    assert change is None and not order.stock_held


def test_restock_of_an_order_in_review_that_holds_its_stock() -> None:
    order = new_order()
    wrong = event("payment.succeeded", order, amount=1_000)
    order.apply_payment_event(wrong, NOW)
    assert order.status == OrderStatus.NEEDS_REVIEW and order.stock_held
    assert order.review_payment_id == uuid.UUID(FIRST)
    change = order.apply_payment_event(
        refund_event(order, "payment.refunded", 1_000, amount=1_000, restock=True), NOW
    )
    assert change is not None and change.restock and order.status == OrderStatus.NEEDS_REVIEW
    # The review closed with REFUND: REFUNDED, the stock already back.
    change = order.apply_payment_event(resolved(order, ReviewResolution.REFUND, refunded=1_000), NOW)
    assert change is not None and not change.restock
    assert (order.status, order.refunded_amount) == (OrderStatus.REFUNDED, 1_000)


@pytest.mark.parametrize("kind", ["payment.late_success", "payment.succeeded"])
def test_late_money_honoured_when_the_stock_can_be_taken_again(kind: str) -> None:
    order, stock = closed_order(), Stock()
    change = order.apply_payment_event(event(kind, order), NOW, late_policy=HONOUR, reserve=stock)
    assert change is not None and change.event == "order.paid" and stock.calls == 1
    assert (order.status, order.stock_held, order.paid_payment_id) == (
        OrderStatus.PAID,
        True,
        uuid.UUID(FIRST),
    )
    assert order.closed_as is None


def test_late_money_without_stock_needs_review() -> None:
    order, stock = closed_order(OrderStatus.CANCELED), Stock(available=False)
    change = order.apply_payment_event(
        event("payment.late_success", order), NOW, late_policy=HONOUR, reserve=stock
    )
    assert change is not None and change.event == "order.needs_review" and not change.restock
    assert order.status == OrderStatus.NEEDS_REVIEW and "stock no longer available" in (
        order.status_reason or ""
    )
    assert not order.stock_held and order.paid_payment_id is None


def test_late_money_by_policy_refund_or_review() -> None:
    order, stock = closed_order(), Stock()
    change = order.apply_payment_event(
        event("payment.late_success", order), NOW, late_policy=REFUND, reserve=stock
    )
    assert change is not None and order.status == OrderStatus.EXPIRED and stock.calls == 0
    assert "it is refunded" in (order.status_reason or "")
    # The payment service refunds it and closes its review: still EXPIRED, never PAID.
    refunded = refund_event(order, "payment.refunded", order.total_amount, amount=order.total_amount)
    order.apply_payment_event(refunded, NOW)
    order.apply_payment_event(resolved(order, ReviewResolution.REFUND, refunded=order.total_amount), NOW)
    assert order.status == OrderStatus.EXPIRED and order.refunded_amount == order.total_amount

    reviewed = closed_order()
    reviewed.apply_payment_event(
        event("payment.late_success", reviewed), NOW, late_policy=REVIEW, reserve=stock
    )
    assert reviewed.status == OrderStatus.NEEDS_REVIEW and stock.calls == 0


def test_late_money_action_needs_matching_money_for_a_closed_order() -> None:
    order = closed_order()
    assert (
        late_money_action(order, event("payment.late_success", order), "payment.late_success", HONOUR)
        == HONOUR
    )
    wrong = event("payment.late_success", order, amount=1)
    assert late_money_action(order, wrong, "payment.late_success", HONOUR) is None
    # Only a late success is refunded by the payment service.
    assert late_money_action(order, event("payment.succeeded", order), "payment.succeeded", REFUND) == REVIEW
    assert late_money_action(paid_order(), event("payment.late_success", order), "x", HONOUR) is None


def test_review_honour_takes_the_stock_again_or_says_it_is_short() -> None:
    order = closed_order()
    order.apply_payment_event(event("payment.late_success", order), NOW, late_policy=REVIEW)
    short = Stock(available=False)
    change = order.apply_payment_event(resolved(order, ReviewResolution.HONOUR), NOW, reserve=short)
    assert change is not None and order.status == OrderStatus.NEEDS_REVIEW
    assert "stock no longer available" in (order.status_reason or "") and short.calls == 1
    stock = Stock()
    change = order.apply_payment_event(resolved(order, ReviewResolution.HONOUR), NOW, reserve=stock)
    assert change is not None and change.event == "order.paid"
    assert (order.status, order.stock_held, order.paid_payment_id) == (
        OrderStatus.PAID,
        True,
        uuid.UUID(FIRST),
    )


def test_review_honour_of_an_order_holding_its_stock_takes_nothing() -> None:
    order = new_order()
    order.apply_payment_event(event("payment.succeeded", order, currency="USD"), NOW)
    stock = Stock()
    order.apply_payment_event(resolved(order, ReviewResolution.HONOUR), NOW, reserve=stock)
    assert order.status == OrderStatus.PAID and stock.calls == 0


def test_review_refund_returns_a_closed_order_to_how_it_was_closed() -> None:
    order = closed_order(OrderStatus.CANCELED)
    order.apply_payment_event(event("payment.late_success", order), NOW, late_policy=REVIEW)
    change = order.apply_payment_event(resolved(order, ReviewResolution.REFUND), NOW)
    assert change is not None and not change.restock
    assert order.status == OrderStatus.CANCELED and "refunded after review" in (order.status_reason or "")
    # HONOUR of money already refunded in full closes it too.
    other = closed_order()
    other.apply_payment_event(event("payment.late_success", other), NOW, late_policy=REVIEW)
    other.apply_payment_event(resolved(other, ReviewResolution.HONOUR, refunded=other.total_amount), NOW)
    assert other.status == OrderStatus.EXPIRED


def test_review_refund_of_an_order_holding_its_stock_returns_it() -> None:
    order = new_order()
    order.apply_payment_event(event("payment.succeeded", order, amount=1_000), NOW)
    change = order.apply_payment_event(resolved(order, ReviewResolution.REFUND), NOW)
    assert change is not None and change.restock and change.event == "order.refunded"
    assert order.status == OrderStatus.REFUNDED and not order.stock_held


def test_a_resolved_review_of_another_payment_leaves_the_review() -> None:
    order = closed_order()
    order.apply_payment_event(event("payment.late_success", order), NOW, late_policy=REVIEW)
    # A second payment for the order in review, refunded and resolved by itself.
    order.apply_payment_event(
        event("payment.late_success", order, SECOND, attempt=2), NOW, late_policy=REVIEW
    )
    assert order.apply_payment_event(resolved(order, ReviewResolution.REFUND, SECOND), NOW) is None
    assert order.status == OrderStatus.NEEDS_REVIEW and order.review_payment_id == uuid.UUID(FIRST)


def test_unresolved_review_event_changes_nothing() -> None:
    order = closed_order()
    order.apply_payment_event(event("payment.late_success", order), NOW, late_policy=REVIEW)
    assert order.apply_payment_event(resolved(order, ReviewResolution.NONE), NOW) is None


def test_late_payment_policy_is_read_like_the_payment_service_reads_it() -> None:
    from order_service.config import OrderSettings
    from paykit.settings import ConfigError
    from payment_service.config import Settings

    assert OrderSettings.from_env({}).policy.late_payment == HONOUR
    for value in ("honour", "refund", "review", " Refund "):
        order = OrderSettings.from_env({"LATE_PAYMENT_POLICY": value}).policy.late_payment
        payment = Settings.from_env({"LATE_PAYMENT_POLICY": value, "PAYMENTS_ENV": "development"})
        assert order.value == payment.policy.late_payment_policy.value == value.strip().lower()
    with pytest.raises(
        ConfigError, match=re.escape("LATE_PAYMENT_POLICY='honor': use honour | refund | review")
    ):
        OrderSettings.from_env({"LATE_PAYMENT_POLICY": "honor"})


@pytest.mark.parametrize("status", [OrderStatus.REFUNDED, OrderStatus.PARTIALLY_REFUNDED])
def test_refunded_orders_cannot_be_paid_again(status: OrderStatus) -> None:
    order = paid_order()
    order.status = status.value
    with pytest.raises(OrderClosed):
        check_payable(order)


def test_review_refund_of_the_kept_payment_refunds_the_order_and_its_stock() -> None:
    order, stock = closed_order(), Stock()
    order.apply_payment_event(event("payment.late_success", order), NOW, late_policy=HONOUR, reserve=stock)
    assert order.status == OrderStatus.PAID and order.stock_held
    # An extra payment of the kept payment refunded by itself closes its
    # review with REFUND: its own capture is untouched, the order stays PAID.
    extra = resolved(order, ReviewResolution.REFUND)
    assert order.apply_payment_event(extra, NOW) is None and order.status == OrderStatus.PAID
    # An operator refunds the kept payment itself by review (still pending).
    total = order.total_amount
    whole = replace(resolved(order, ReviewResolution.REFUND), refund_pending_amount=total)
    change = order.apply_payment_event(whole, NOW)
    assert change is not None and change.restock and change.event == "order.refunded"
    assert order.status == OrderStatus.REFUNDED and not order.stock_held
    # Its refund fails afterwards: the order does not go back to PAID.
    failed = refund_event(order, "payment.refund_failed", 0, amount=total, status=RefundStatus.FAILED)
    change = order.apply_payment_event(failed, NOW)
    assert change is not None and order.status == OrderStatus.REFUNDED and not change.restock
    again = replace(resolved(order, ReviewResolution.REFUND), refunded_amount=total)
    change = order.apply_payment_event(again, NOW)
    assert change is not None and not change.restock  # never twice


def test_honoured_without_stock_then_refunded_in_full_closes_the_order_as_it_was() -> None:
    # HONOUR when the stock is gone leaves the order in review with nothing
    # left to resolve at the payment service: the operator's full refund of
    # the money closes it, as REFUND would have.
    order = closed_order()
    order.apply_payment_event(
        event("payment.late_success", order), NOW, late_policy=HONOUR, reserve=Stock(False)
    )
    order.apply_payment_event(resolved(order, ReviewResolution.HONOUR), NOW, reserve=Stock(False))
    assert order.status == OrderStatus.NEEDS_REVIEW
    total = order.total_amount
    part = order.apply_payment_event(refund_event(order, "payment.refunded", 20_000, amount=20_000), NOW)
    assert order.status == OrderStatus.NEEDS_REVIEW and part is None
    rest = refund_event(order, "payment.refunded", total, amount=total - 20_000)
    change = order.apply_payment_event(rest, NOW)
    assert change is not None and change.event == "order.review_resolved" and not change.restock
    assert (order.status, order.refunded_amount, order.stock_held) == (OrderStatus.EXPIRED, total, False)


def test_an_order_in_review_holding_its_stock_refunded_in_full_returns_it_once() -> None:
    order = new_order()
    order.apply_payment_event(event("payment.succeeded", order, currency="USD"), NOW)  # mismatch: review
    assert order.status == OrderStatus.NEEDS_REVIEW and order.stock_held
    whole = refund_event(order, "payment.refunded", order.total_amount, amount=order.total_amount)
    change = order.apply_payment_event(whole, NOW)
    assert change is not None and change.restock and order.status == OrderStatus.REFUNDED
    assert order.apply_payment_event(whole, NOW) is None  # never twice
