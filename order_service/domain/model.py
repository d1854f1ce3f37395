"""Orders: validation, the status machine, and what a payment event does to
an order. Pure: callers pass `now`; no I/O. Product, OrderItem and Order are
plain classes; adapters.orm maps them onto their tables, and only the
methods here change an order's state."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
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
    retry_limit: int = 10  # RetryPayment calls per user per window, over all replicas
    retry_window: timedelta = timedelta(minutes=1)
    max_open_orders: int = 10  # orders a user may have awaiting payment at once


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
    payment_id: uuid.UUID | None
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
        self.payment_id = None
        self.create_time, self.update_time, self.expire_time = create_time, create_time, expire_time
        self.items = list(items)

    def attach_payment(self, payment_id: str, now: datetime) -> bool:
        """Records the payment "Pay again" opened, if the order is still
        payable and it is a new one. True when the order changed."""
        if self.status not in PAYABLE or str(self.payment_id or "") == payment_id:
            return False
        self.payment_id = uuid.UUID(payment_id)
        self.update_time = now
        return True

    def close(self, status: OrderStatus, reason: str, now: datetime) -> bool:
        """Cancel or expire. False (and no change) when the order is no
        longer open: the caller gives the stock back only on True, once."""
        if status not in RESTOCKED:
            raise ValueError(f"an order is closed as canceled or expired, not {status.value}")
        if self.status not in CANCELABLE:
            return False
        self.status, self.status_reason, self.update_time = status.value, reason, now
        return True

    def apply_payment_event(self, event: PaymentEvent, now: datetime) -> OrderChange | None:
        """What a (new, in-order) payment event does to this order; the
        change made, if any, names the order event to emit."""
        if event.type == "payment.created" and self.status in PAYABLE:
            self.payment_id = uuid.UUID(event.payment_id)
        change = on_payment_event(self, event)
        if change is not None:
            self.status, self.status_reason = change.status.value, change.reason
        self.update_time = now
        return change


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
