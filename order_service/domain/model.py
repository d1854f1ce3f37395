"""Orders: validation, the status machine, and what a payment event does to
an order. Pure: callers pass `now`; no I/O. Product, OrderItem and Order are
plain classes; adapters.orm maps them onto their tables, and only the
methods here change an order's state."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from order_service.domain.errors import (
    AlreadyPaid,
    CashOnDelivery,
    FieldViolation,
    InvalidArgument,
    NotCancelable,
    OrderClosed,
    OrderExpiring,
)
from order_service.domain.payments import (
    PaymentEvent,
    PaymentFact,
    PaymentProvider,
    RefundStatus,
    ReviewResolution,
)


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    AWAITING_DELIVERY_PAYMENT = "AWAITING_DELIVERY_PAYMENT"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"


class LatePaymentPolicy(StrEnum):
    """LATE_PAYMENT_POLICY, as the payment service reads it: money taken
    for an order that was already expired or canceled."""

    HONOUR = "honour"  # the order is PAID again when its stock can be reserved again
    REFUND = "refund"  # the payment service refunds it; the order stays closed
    REVIEW = "review"  # a person decides (NEEDS_REVIEW)


# Orders that may still be paid ("Pay again" works on them).
PAYABLE = frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_FAILED})
# Orders the shopper may still cancel (stock comes back).
CANCELABLE = PAYABLE | {OrderStatus.AWAITING_DELIVERY_PAYMENT}
# Orders whose stock has been given back.
RESTOCKED = frozenset({OrderStatus.CANCELED, OrderStatus.EXPIRED})
# Orders that still wait for their money (money arriving pays them).
UNPAID = PAYABLE | {OrderStatus.AWAITING_DELIVERY_PAYMENT}
# Orders whose money was kept (paid_payment_id), refunded in part or whole since.
SETTLED = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})
# Orders whose stock may be given back by a refund asking for it (restock),
# while the order still holds it (Order.stock_held).
RESTOCKABLE = SETTLED | {OrderStatus.NEEDS_REVIEW}

MAX_ITEMS = 50
MAX_QUANTITY = 100
VARIANT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
PHONE_RE = re.compile(r"\+?[0-9]{8,15}")
ORDER_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class OrderPolicy:
    """Business limits; built from configuration in bootstrap."""

    order_ttl: timedelta = timedelta(minutes=30)
    retry_limit: int = 10  # RetryPayment calls per user per window, over all replicas
    retry_window: timedelta = timedelta(minutes=1)
    max_open_orders: int = 10  # orders a user may have awaiting payment at once
    # "Pay again" is refused when less than this is left before the order
    # expires: the attempt is capped at the order's expiry.
    retry_min_remaining: timedelta = timedelta(seconds=120)
    # LATE_PAYMENT_POLICY: the same variable the payment service reads.
    late_payment: LatePaymentPolicy = LatePaymentPolicy.HONOUR


@dataclass(frozen=True)
class Line:
    variant_id: str
    quantity: int


@dataclass(frozen=True)
class NewOrder:
    """A validated CreateOrder call."""

    user_id: str
    lines: tuple[Line, ...]
    receiver_name: str
    receiver_phone: str
    shipping_address: str
    note: str


def _text(v: list[FieldViolation], name: str, value: str, maximum: int, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        v.append(FieldViolation(name, "is required"))
    elif len(value) > maximum:
        v.append(FieldViolation(name, f"is longer than {maximum} characters"))
    elif any(ord(c) < 32 and c not in "\n\t" for c in value):
        v.append(FieldViolation(name, "contains control characters"))
    return value


def _check_lines(v: list[FieldViolation], lines: list[tuple[str, int]]) -> None:
    if not lines:
        v.append(FieldViolation("items", "at least one item is required"))
    elif len(lines) > MAX_ITEMS:
        v.append(FieldViolation("items", f"at most {MAX_ITEMS} lines per order"))
    seen: set[str] = set()
    for i, (variant_id, quantity) in enumerate(lines[:MAX_ITEMS]):
        if not VARIANT_ID_RE.fullmatch(variant_id):
            v.append(FieldViolation(f"items[{i}].variant_id", "must be 1-64 characters of [A-Za-z0-9._:-]"))
        elif variant_id in seen:
            v.append(FieldViolation(f"items[{i}].variant_id", f"{variant_id} appears more than once"))
        seen.add(variant_id)
        if not 1 <= quantity <= MAX_QUANTITY:
            v.append(FieldViolation(f"items[{i}].quantity", f"must be between 1 and {MAX_QUANTITY}"))


def validate_new_order(
    *,
    user_id: str,
    lines: list[tuple[str, int]],
    receiver_name: str,
    receiver_phone: str,
    shipping_address: str,
    note: str,
) -> NewOrder:
    """Checks every field and reports all problems at once."""
    v: list[FieldViolation] = []
    _check_lines(v, lines)
    name = _text(v, "receiver_name", receiver_name, 100, required=True)
    phone = receiver_phone.strip().replace(" ", "")
    if not PHONE_RE.fullmatch(phone):
        v.append(FieldViolation("receiver_phone", "must be 8-15 digits, optionally starting with +"))
    address = _text(v, "shipping_address", shipping_address, 500, required=True)
    note = _text(v, "note", note, 500, required=False)
    if v:
        raise InvalidArgument(v)
    return NewOrder(
        user_id=user_id,
        lines=tuple(Line(variant, qty) for variant, qty in lines),
        receiver_name=name,
        receiver_phone=phone,
        shipping_address=address,
        note=note,
    )


class OrderLike(Protocol):
    """What the rules read of a stored order."""

    @property
    def id(self) -> object: ...
    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str | None: ...
    @property
    def payment_id(self) -> object: ...
    @property
    def user_id(self) -> str: ...
    @property
    def total_amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def expire_time(self) -> datetime: ...


class MoneyFact(Protocol):
    """What the rules read of a payment that took (or may take) money: a
    PaymentEvent or a PaymentFact."""

    @property
    def payment_id(self) -> str: ...
    @property
    def order_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...


def check_payable(
    order: OrderLike, now: datetime | None = None, min_remaining: timedelta = timedelta(0)
) -> None:
    """ "Pay again" is allowed only on an unpaid, open order with at least
    `min_remaining` left before it expires (an attempt never outlives its
    order, so a shorter one would expire under the shopper's hands)."""
    status = OrderStatus(order.status)
    if status == OrderStatus.AWAITING_DELIVERY_PAYMENT:
        raise CashOnDelivery(order.id)
    if status == OrderStatus.PAID:
        raise AlreadyPaid(order.id)
    if status not in PAYABLE:  # refunded, under review, canceled, expired
        raise OrderClosed(order.id, status.value)
    if now is not None:
        left = order.expire_time - now
        if left <= timedelta(0):
            raise OrderExpiring(order.id, "has expired")
        if left < min_remaining:
            raise OrderExpiring(
                order.id, f"expires in {int(left.total_seconds())} s, too soon to start a payment"
            )


def check_cancelable(order: OrderLike) -> None:
    status = OrderStatus(order.status)
    if status not in CANCELABLE:
        raise NotCancelable(order.id, status.value)


def fact_mismatch(order: OrderLike, payment: MoneyFact) -> str | None:
    """Why a payment is not money for this order as placed (amount,
    currency, order, user), or None when every fact matches."""
    problems = []
    if payment.order_id != str(order.id):
        problems.append(f"order {payment.order_id!r} is not {order.id}")
    if payment.user_id != order.user_id:
        problems.append(f"user {payment.user_id!r} is not {order.user_id!r}")
    if payment.amount != order.total_amount:
        problems.append(f"amount {payment.amount} is not {order.total_amount}")
    if payment.currency != order.currency:
        problems.append(f"currency {payment.currency!r} is not {order.currency!r}")
    return "; ".join(problems) or None


@dataclass(frozen=True)
class OrderChange:
    status: OrderStatus
    reason: str | None
    event: str  # order event type to emit
    # Give the order's stock back now (the order no longer holds it after).
    restock: bool = False


MONEY_EVENTS = frozenset({"payment.succeeded", "payment.late_success"})
CLOSED_EVENTS = frozenset({"payment.failed", "payment.canceled", "payment.expired"})


def on_money(order: OrderLike, payment: MoneyFact, *, paid_payment_id: object = None) -> OrderChange | None:
    """What money taken by `payment` does to the order, whichever attempt
    took it: an unpaid order is paid only when the payment's facts match
    it (otherwise a person reviews it, and its stock stays reserved); money
    for a closed order or a second payment for a paid one is never silently
    kept. Paid never regresses."""
    status = OrderStatus(order.status)
    if status in UNPAID:
        mismatch = fact_mismatch(order, payment)
        if mismatch is not None:
            return OrderChange(
                OrderStatus.NEEDS_REVIEW,
                f"payment {payment.payment_id} does not match the order ({mismatch}): "
                "check it before shipping or refunding",
                "order.needs_review",
            )
        return OrderChange(OrderStatus.PAID, None, "order.paid")
    if status in RESTOCKED:
        return OrderChange(
            OrderStatus.NEEDS_REVIEW,
            f"payment {payment.payment_id} succeeded after the order was {status.value.lower()}: "
            "refund it or honour the order",
            "order.needs_review",
        )
    if status in SETTLED and str(paid_payment_id or order.payment_id or "") in (
        "",
        payment.payment_id,
    ):
        return None  # the payment that paid the order, again
    # A second payment for a paid order (or one under review): keep the
    # status, make the extra money visible.
    reason = f"extra payment {payment.payment_id} received: refund it"
    if status == OrderStatus.NEEDS_REVIEW and order.status_reason:
        reason = f"{order.status_reason}; {reason}"
    return OrderChange(status, reason, "order.extra_payment")


def on_payment_event(
    order: OrderLike, event: PaymentEvent, *, current: bool | None = None, paid_payment_id: object = None
) -> OrderChange | None:
    """What a (new, in-order for its payment) payment event does to the
    order. Money counts whichever attempt took it (on_money); every other
    event changes the order only when it is about the order's current
    attempt (`current`; by default: the order has none, or it is this
    payment): an older attempt's news never moves the order."""
    if event.type in MONEY_EVENTS:
        return on_money(order, event, paid_payment_id=paid_payment_id)
    if current is None:
        current = str(order.payment_id or "") in ("", event.payment_id)
    if not current:
        return None
    status = OrderStatus(order.status)
    if event.type == "payment.created":
        if status not in UNPAID:
            return None
        if event.provider == PaymentProvider.COD:
            mismatch = fact_mismatch(order, event)
            if mismatch is not None:
                # The courier would collect the payment's amount: stop shipping.
                return OrderChange(
                    OrderStatus.NEEDS_REVIEW,
                    f"cash-on-delivery payment {event.payment_id} does not match the order ({mismatch})",
                    "order.needs_review",
                )
            if status != OrderStatus.AWAITING_DELIVERY_PAYMENT:
                return OrderChange(OrderStatus.AWAITING_DELIVERY_PAYMENT, None, "order.confirmed_cod")
            return None
        if status != OrderStatus.PENDING_PAYMENT:
            # A new online attempt, after a failed one or replacing cash on
            # delivery: the order waits for its money again.
            return OrderChange(OrderStatus.PENDING_PAYMENT, None, "order.payment_retried")
        return None
    if event.type == "payment.failed" and status == OrderStatus.PENDING_PAYMENT:
        return OrderChange(OrderStatus.PAYMENT_FAILED, event.failure_reason, "order.payment_failed")
    if event.type in CLOSED_EVENTS and status == OrderStatus.AWAITING_DELIVERY_PAYMENT:
        # The cash-on-delivery attempt closed without a replacement (yet):
        # the order is unpaid again and "Pay again" works on it.
        what = event.type.removeprefix("payment.")
        reason = f"the cash-on-delivery payment was {what}" + (
            f": {event.failure_reason}" if event.failure_reason else ""
        )
        return OrderChange(OrderStatus.PAYMENT_FAILED, reason, "order.payment_failed")
    return None


REFUND_EVENTS = frozenset({"payment.refund_requested", "payment.refunded", "payment.refund_failed"})


def late_money_action(
    order: OrderLike, payment: MoneyFact, event_type: str, policy: LatePaymentPolicy
) -> LatePaymentPolicy | None:
    """What money that matches a closed (expired or canceled) order does to
    it, by LATE_PAYMENT_POLICY; None when the order is not closed or the
    money does not match it (then a person looks at it: on_money). Only a
    late success is refunded by the payment service under `refund`: other
    money for a closed order (a success that raced the expiry) goes to a
    person instead of staying unseen."""
    if OrderStatus(order.status) not in RESTOCKED or fact_mismatch(order, payment) is not None:
        return None
    if policy == LatePaymentPolicy.REFUND and event_type != "payment.late_success":
        return LatePaymentPolicy.REVIEW
    return policy


_REFUND_EVENT = {
    OrderStatus.REFUNDED: "order.refunded",
    OrderStatus.PARTIALLY_REFUNDED: "order.partially_refunded",
}


_REFUND_ORDER = [OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED]


def refunded_status(refunded: int, amount: int) -> OrderStatus:
    """A kept payment's status once `refunded` of its `amount` went back."""
    if refunded >= amount:
        return OrderStatus.REFUNDED
    return OrderStatus.PARTIALLY_REFUNDED if refunded > 0 else OrderStatus.PAID


class ExpiryAction(StrEnum):
    NOTHING = "NOTHING"  # not due (any more): paid, closed or not yet expired
    WAIT = "WAIT"  # an attempt may still take money: ask again later
    EXPIRE = "EXPIRE"  # no money taken, none can land: expire and restock
    MONEY = "MONEY"  # money was taken: apply it instead of expiring


def expiry_action(order: OrderLike, payments: Sequence[PaymentFact], now: datetime) -> ExpiryAction:
    """What to do with an order past its deadline, given every payment
    attempt the payment service has for it. Stock is released only when no
    attempt took money and none may still take it."""
    if OrderStatus(order.status) not in PAYABLE or order.expire_time >= now:
        return ExpiryAction.NOTHING
    if any(p.paid for p in payments):
        return ExpiryAction.MONEY
    if any(p.may_take_money for p in payments):
        return ExpiryAction.WAIT
    return ExpiryAction.EXPIRE


class Product:
    """A catalog variant: its price and the stock left."""

    variant_id: str
    name: str
    price: int
    currency: str
    stock: int

    def __init__(self, *, variant_id: str, name: str, price: int, currency: str, stock: int) -> None:
        self.variant_id, self.name = variant_id, name
        self.price, self.currency, self.stock = price, currency, stock


class OrderItem:
    """One line of an order, priced when the order was placed."""

    line_no: int
    variant_id: str
    name: str
    quantity: int
    unit_price: int

    def __init__(self, *, line_no: int, variant_id: str, name: str, quantity: int, unit_price: int) -> None:
        self.line_no, self.variant_id, self.name = line_no, variant_id, name
        self.quantity, self.unit_price = quantity, unit_price

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


class Order:
    """An order and its lines. `order_code` is None until the order is first
    stored (the database numbers it)."""

    id: uuid.UUID
    order_code: int | None
    user_id: str
    status: str
    status_reason: str | None
    total_amount: int
    currency: str
    receiver_name: str
    receiver_phone: str
    shipping_address: str
    note: str
    payment_id: uuid.UUID | None  # the current (latest) payment attempt
    payment_attempt: int  # its attempt number: the current attempt never moves back
    paid_payment_id: uuid.UUID | None  # the payment whose money paid the order
    # The stock of the order's lines is taken from the catalog for it now:
    # it is given back only while this is true, and set false when it is,
    # under the order's row lock, so it comes back once per taking.
    stock_held: bool
    # EXPIRED or CANCELED: how the order was closed (its stock given back),
    # kept while late money for it is under review; None once it is paid.
    closed_as: str | None
    # The payment whose money a person reviews (NEEDS_REVIEW), or that was
    # refunded for a closed order: a resolved review of it moves the order.
    review_payment_id: uuid.UUID | None
    # Money given back from the order's payment (paid_payment_id's own
    # capture, or the reviewed payment's), refunds that succeeded.
    refunded_amount: int
    create_time: datetime
    update_time: datetime
    expire_time: datetime
    items: list[OrderItem]

    def __init__(
        self,
        *,
        id: uuid.UUID,
        user_id: str,
        total_amount: int,
        currency: str,
        receiver_name: str,
        receiver_phone: str,
        shipping_address: str,
        note: str,
        create_time: datetime,
        expire_time: datetime,
        items: Sequence[OrderItem],
        status: OrderStatus = OrderStatus.PENDING_PAYMENT,
    ) -> None:
        self.id, self.order_code, self.user_id = id, None, user_id
        self.status, self.status_reason = status.value, None
        self.total_amount, self.currency = total_amount, currency
        self.receiver_name, self.receiver_phone = receiver_name, receiver_phone
        self.shipping_address, self.note = shipping_address, note
        self.payment_id, self.payment_attempt, self.paid_payment_id = None, 0, None
        self.stock_held, self.closed_as, self.review_payment_id, self.refunded_amount = True, None, None, 0
        self.create_time, self.update_time, self.expire_time = create_time, create_time, expire_time
        self.items = list(items)

    def attach_payment(self, payment_id: str, attempt: int, now: datetime) -> bool:
        """Records a payment attempt of this order (opened by "Pay again",
        or seen in the events or at expiry) as the current one when it is
        newer than the current one: attempts are numbered per order, so the
        current attempt never moves back, whatever order the news arrives
        in, and whatever the order's status. True when the order changed."""
        if str(self.payment_id or "") == payment_id:
            return False
        current = self.payment_attempt or 0
        if self.payment_id is not None and attempt <= current and (attempt or current):
            return False  # an older attempt (or an unnumbered one after numbered ones)
        self.payment_id, self.payment_attempt = uuid.UUID(payment_id), attempt
        self.update_time = now
        return True

    def is_current(self, payment_id: str) -> bool:
        return str(self.payment_id or "") == payment_id

    def close(self, status: OrderStatus, reason: str, now: datetime) -> bool:
        """Cancel or expire. False (and no change) when the order is no
        longer open: the caller gives the stock back only on True, once."""
        if status not in RESTOCKED:
            raise ValueError(f"an order is closed as canceled or expired, not {status.value}")
        if self.status not in CANCELABLE:
            return False
        self.status, self.status_reason, self.update_time = status.value, reason, now
        self.stock_held, self.closed_as = False, status.value
        return True

    def _change(self, change: OrderChange | None, paying: str, now: datetime) -> OrderChange | None:
        if change is not None:
            if change.status == OrderStatus.PAID and self.status != OrderStatus.PAID:
                self.paid_payment_id = uuid.UUID(paying)
            if change.status == OrderStatus.NEEDS_REVIEW and self.status != OrderStatus.NEEDS_REVIEW:
                self.review_payment_id = uuid.UUID(paying)
            self._set(change, now)
        return change

    def _set(self, change: OrderChange, now: datetime) -> OrderChange:
        self.status, self.status_reason = change.status.value, change.reason
        if change.restock:
            self.stock_held = False
        self.update_time = now
        return change

    def _hold_stock(self, reserve: Callable[[], bool]) -> bool:
        """True when the order holds its stock, taking it again if it was
        given back (`reserve` takes every line's stock, or none)."""
        if not self.stock_held and reserve():
            self.stock_held = True
        return self.stock_held

    def _pay(self, payment_id: str) -> None:
        self.paid_payment_id, self.review_payment_id, self.closed_as = uuid.UUID(payment_id), None, None

    def apply_payment_event(
        self,
        event: PaymentEvent,
        now: datetime,
        *,
        late_policy: LatePaymentPolicy = LatePaymentPolicy.REVIEW,
        reserve: Callable[[], bool] = lambda: False,
    ) -> OrderChange | None:
        """What a (new, in-order) payment event does to this order; the
        change made, if any, names the order event to emit, and whether the
        caller gives the stock back (`restock`). `reserve` takes the
        order's stock again, all lines or none, in the caller's
        transaction: called only when honouring money for an order whose
        stock was given back."""
        self.attach_payment(event.payment_id, event.attempt, now)
        if event.type in MONEY_EVENTS:
            action = late_money_action(self, event, event.type, late_policy)
            if action is not None:
                self.update_time = now
                return self._late_money(event.payment_id, action, reserve, now)
        elif event.type in REFUND_EVENTS and event.refund is not None:
            self.update_time = now
            return self._refund_news(event, now)
        elif event.type == "payment.review_resolved":
            self.update_time = now
            return self._review_resolved(event, reserve, now)
        change = on_payment_event(
            self, event, current=self.is_current(event.payment_id), paid_payment_id=self.paid_payment_id
        )
        self.update_time = now
        return self._change(change, event.payment_id, now)

    def _late_money(
        self, payment_id: str, action: LatePaymentPolicy, reserve: Callable[[], bool], now: datetime
    ) -> OrderChange:
        """Money matching the order after it was closed (LATE_PAYMENT_POLICY)."""
        was = self.status.lower()
        if action == LatePaymentPolicy.HONOUR and self._hold_stock(reserve):
            self._pay(payment_id)
            reason = f"payment {payment_id} succeeded after the order was {was}: honoured, stock taken again"
            return self._set(OrderChange(OrderStatus.PAID, reason, "order.paid"), now)
        self.review_payment_id = uuid.UUID(payment_id)
        if action == LatePaymentPolicy.REFUND:
            reason = f"payment {payment_id} succeeded after the order was {was}: it is refunded"
            change = OrderChange(OrderStatus(self.status), reason, "order.late_payment_refunded")
            return self._set(change, now)
        why = "refund it or honour the order"
        if action == LatePaymentPolicy.HONOUR:
            why = "stock no longer available"
        reason = f"payment {payment_id} succeeded after the order was {was}: {why}"
        return self._set(OrderChange(OrderStatus.NEEDS_REVIEW, reason, "order.needs_review"), now)

    def _refund_news(self, event: PaymentEvent, now: datetime) -> OrderChange | None:
        """A refund requested, done or failed. Only refunds of the order's
        own money (the kept payment's capture, or the payment under review)
        count: refunds of extra payments never move the order. A refund
        asking for the stock back gives it back once, while the order holds it."""
        refund = event.refund
        assert refund is not None
        status = OrderStatus(self.status)
        kept = str(self.paid_payment_id or "") == event.payment_id and refund.own_capture
        reviewed = self.paid_payment_id is None and (
            str(self.review_payment_id or "") == event.payment_id
            or (self.review_payment_id is None and status == OrderStatus.NEEDS_REVIEW)
        )
        if not (kept or reviewed):
            return None
        self.refunded_amount = max(self.refunded_amount, event.refunded_amount)
        if (
            reviewed
            and status == OrderStatus.NEEDS_REVIEW
            and refund.own_capture
            and refund.status == RefundStatus.SUCCEEDED
            and event.refunded_amount >= event.amount
        ):
            # The reviewed money is all back (an operator refunded it without
            # closing a review: honoured, say, when the stock was gone).
            return self._closed_by_refund(event.payment_id, now)
        restock = (
            refund.restock
            and refund.status != RefundStatus.FAILED
            and self.stock_held
            and status in RESTOCKABLE
        )
        new = status
        if kept and status in SETTLED:
            # Forward only: an order refunded by a review stays REFUNDED
            # whatever its refunds' news (a failed one included).
            new = max(status, refunded_status(self.refunded_amount, event.amount), key=_REFUND_ORDER.index)
        if refund.status == RefundStatus.FAILED:
            failure = refund.failure_reason or "refused"
            reason = f"refund {refund.refund_id} of {refund.amount} failed: {failure}"
            return self._set(OrderChange(new, reason, "order.refund_failed"), now)
        if new == status and not restock:
            return None
        why = self.status_reason
        if new != status:
            why = f"{self.refunded_amount} of {event.amount} {event.currency} refunded"
        if restock:
            why = f"{why}; stock returned" if why else "stock returned"
        kind = _REFUND_EVENT.get(new, "order.restocked")
        return self._set(OrderChange(new, why, kind, restock=restock), now)

    def _review_resolved(
        self, event: PaymentEvent, reserve: Callable[[], bool], now: datetime
    ) -> OrderChange | None:
        """A person closed the review of the payment the order waits on:
        HONOUR pays the order when it can hold its stock (taken again if it
        was given back); REFUND (or HONOUR of money already refunded in
        full) closes it: back to how it was closed, or REFUNDED, giving the
        stock back if it held it. Reviews of other payments change nothing."""
        status = OrderStatus(self.status)
        payment_id = event.payment_id
        if (
            status in SETTLED
            and str(self.paid_payment_id or "") == payment_id
            and event.review_resolution == ReviewResolution.REFUND
            and event.refunded_amount + event.refund_pending_amount >= event.amount
        ):
            # The kept payment itself refunded by review (an order paid by
            # late money honoured, say): its goods do not ship, the stock
            # comes back once. A review closed by refunding only an extra
            # payment of it leaves its own capture, and the order, alone.
            self.refunded_amount = max(self.refunded_amount, event.refunded_amount)
            reason = f"payment {payment_id} refunded after review"
            if self.stock_held:
                reason += "; stock returned"
            change = OrderChange(OrderStatus.REFUNDED, reason, "order.refunded", restock=self.stock_held)
            return self._set(change, now)
        ours = str(self.review_payment_id or "") == payment_id or (
            self.review_payment_id is None
            and status == OrderStatus.NEEDS_REVIEW
            and str(self.paid_payment_id or "") != payment_id
        )
        if not ours or status not in RESTOCKED | {OrderStatus.NEEDS_REVIEW}:
            return None
        resolution = event.review_resolution
        if resolution == ReviewResolution.NONE:
            return None
        self.refunded_amount = max(self.refunded_amount, event.refunded_amount)
        if resolution == ReviewResolution.HONOUR and event.refunded_amount < event.amount:
            if self._hold_stock(reserve):
                self._pay(payment_id)
                new = refunded_status(self.refunded_amount, event.amount)
                reason = f"payment {payment_id} honoured by review"
                return self._set(OrderChange(new, reason, "order.paid"), now)
            reason = f"payment {payment_id} honoured by review, but stock no longer available: refund it"
            return self._set(OrderChange(OrderStatus.NEEDS_REVIEW, reason, "order.needs_review"), now)
        return self._closed_by_refund(payment_id, now)

    def _closed_by_refund(self, payment_id: str, now: datetime) -> OrderChange:
        """The money the order was reviewed for went back: it returns to how
        it was closed, or is REFUNDED (giving back the stock it held, once)."""
        status = OrderStatus(self.status)
        if self.closed_as is not None or status in RESTOCKED:
            closed = OrderStatus(self.closed_as or status)
            reason = f"payment {payment_id} refunded after review; the order stays {closed.value.lower()}"
            return self._set(OrderChange(closed, reason, "order.review_resolved"), now)
        reason = f"payment {payment_id} refunded after review"
        if self.stock_held:
            reason += "; stock returned"
        return self._set(
            OrderChange(OrderStatus.REFUNDED, reason, "order.refunded", restock=self.stock_held), now
        )

    def settle_expiry(
        self, payments: Sequence[PaymentFact], now: datetime
    ) -> tuple[ExpiryAction, OrderChange | None]:
        """An order past its deadline, given every attempt the payment
        service has for it: money taken pays it (or puts it up for review),
        an attempt that may still take money makes it wait, otherwise it
        expires. The caller restocks only on a change to EXPIRED."""
        action = expiry_action(self, payments, now)
        for payment in payments:
            self.attach_payment(payment.payment_id, payment.attempt, now)
        if action == ExpiryAction.MONEY:
            paying = min((p for p in payments if p.paid), key=lambda p: p.attempt)
            return action, self._change(
                on_money(self, paying, paid_payment_id=self.paid_payment_id), paying.payment_id, now
            )
        if action == ExpiryAction.EXPIRE and self.close(OrderStatus.EXPIRED, "not paid in time", now):
            return action, OrderChange(OrderStatus.EXPIRED, "not paid in time", "order.expired")
        return action, None


def place_order(
    new: NewOrder, products: Mapping[str, Product], *, order_id: uuid.UUID, now: datetime, ttl: timedelta
) -> Order:
    """A new, unpaid order for validated lines at the products' prices.
    `products` holds the products found for the lines' variants; every line
    needs one, all in one currency."""
    unknown = [
        FieldViolation(f"items[{i}].variant_id", f"unknown variant {line.variant_id}")
        for i, line in enumerate(new.lines)
        if line.variant_id not in products
    ]
    if unknown:
        raise InvalidArgument(unknown)
    currencies = {products[line.variant_id].currency for line in new.lines}
    if len(currencies) != 1:
        raise InvalidArgument.one("items", "all items must be priced in one currency")
    (currency,) = currencies
    return Order(
        id=order_id,
        user_id=new.user_id,
        total_amount=sum(products[line.variant_id].price * line.quantity for line in new.lines),
        currency=currency,
        receiver_name=new.receiver_name,
        receiver_phone=new.receiver_phone,
        shipping_address=new.shipping_address,
        note=new.note,
        create_time=now,
        expire_time=now + ttl,
        items=[
            OrderItem(
                line_no=i + 1,
                variant_id=line.variant_id,
                name=products[line.variant_id].name,
                quantity=line.quantity,
                unit_price=products[line.variant_id].price,
            )
            for i, line in enumerate(new.lines)
        ],
    )
