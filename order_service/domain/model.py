"""Orders: validation, the status machine, and what a payment event does to
an order. Pure: callers pass `now`; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from order_service.domain.errors import (
    AlreadyPaid,
    CashOnDelivery,
    FieldViolation,
    InvalidArgument,
    NotCancelable,
    OrderClosed,
)
from order_service.domain.payments import PaymentEvent, PaymentProvider


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    AWAITING_DELIVERY_PAYMENT = "AWAITING_DELIVERY_PAYMENT"


# Orders that may still be paid ("Pay again" works on them).
PAYABLE = frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_FAILED})
# Orders the shopper may still cancel (stock comes back).
CANCELABLE = PAYABLE | {OrderStatus.AWAITING_DELIVERY_PAYMENT}
# Orders whose stock has been given back.
RESTOCKED = frozenset({OrderStatus.CANCELED, OrderStatus.EXPIRED})

MAX_ITEMS = 50
MAX_QUANTITY = 100
VARIANT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
PHONE_RE = re.compile(r"\+?[0-9]{8,15}")
ORDER_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class OrderPolicy:
    """Business limits; built from configuration in bootstrap."""

    order_ttl: timedelta = timedelta(minutes=30)
    retry_limit: int = 10  # RetryPayment calls per user per window, per replica
    retry_window: timedelta = timedelta(minutes=1)


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
    def payment_id(self) -> object: ...


def check_payable(order: OrderLike) -> None:
    """ "Pay again" is allowed only on an unpaid, open order."""
    status = OrderStatus(order.status)
    if status in PAYABLE:
        return
    if status == OrderStatus.AWAITING_DELIVERY_PAYMENT:
        raise CashOnDelivery(order.id)
    if status == OrderStatus.PAID:
        raise AlreadyPaid(order.id)
    raise OrderClosed(order.id, status.value)


def check_cancelable(order: OrderLike) -> None:
    status = OrderStatus(order.status)
    if status not in CANCELABLE:
        raise NotCancelable(order.id, status.value)


@dataclass(frozen=True)
class OrderChange:
    status: OrderStatus
    reason: str | None
    event: str  # order event type to emit


def on_payment_event(order: OrderLike, event: PaymentEvent) -> OrderChange | None:
    """What a (new, in-order for its payment) payment event does to the order.
    Paid never regresses; money for a closed order is never silently accepted."""
    status = OrderStatus(order.status)
    money_arrived = event.type in ("payment.succeeded", "payment.late_success")
    if money_arrived:
        if status in PAYABLE or (
            status == OrderStatus.AWAITING_DELIVERY_PAYMENT and str(order.payment_id) == event.payment_id
        ):
            return OrderChange(OrderStatus.PAID, None, "order.paid")
        if status in RESTOCKED:
            return OrderChange(
                OrderStatus.NEEDS_REVIEW,
                f"payment {event.payment_id} succeeded after the order was {status.value.lower()}: "
                "refund it or honour the order",
                "order.needs_review",
            )
        if (
            status in (OrderStatus.PAID, OrderStatus.AWAITING_DELIVERY_PAYMENT)
            and str(order.payment_id) != event.payment_id
        ):
            # A second payment for a paid order: keep it paid, make the extra
            # money visible.
            return OrderChange(
                status, f"extra payment {event.payment_id} received: refund it", "order.extra_payment"
            )
        return None
    if event.type == "payment.created":
        if status in PAYABLE and event.provider == PaymentProvider.COD:
            return OrderChange(OrderStatus.AWAITING_DELIVERY_PAYMENT, None, "order.confirmed_cod")
        if status == OrderStatus.PAYMENT_FAILED:
            return OrderChange(OrderStatus.PENDING_PAYMENT, None, "order.payment_retried")
        return None
    if event.type == "payment.failed" and status == OrderStatus.PENDING_PAYMENT:
        if str(order.payment_id) in ("", "None", event.payment_id):
            return OrderChange(OrderStatus.PAYMENT_FAILED, event.failure_reason, "order.payment_failed")
    return None
