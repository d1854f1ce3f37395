"""Domain errors of the order service: the shared kinds, and the specific
preconditions of orders."""

from __future__ import annotations

from paykit.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AlreadyPaid",
    "CashOnDelivery",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotCancelable",
    "NotFound",
    "OrderClosed",
    "OrderExpiring",
    "OutOfStock",
    "PaymentRefused",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class OutOfStock(FailedPrecondition):
    def __init__(self, variant_id: str, quantity: int) -> None:
        super().__init__(
            f"variant {variant_id} is out of stock for quantity {quantity}",
            subject=f"products/{variant_id}",
            type_="OUT_OF_STOCK",
        )


class CashOnDelivery(FailedPrecondition):
    def __init__(self, order_id: object) -> None:
        super().__init__(
            f"order {order_id} is confirmed for cash on delivery",
            subject=f"orders/{order_id}",
            type_="CASH_ON_DELIVERY",
        )


class AlreadyPaid(FailedPrecondition):
    def __init__(self, order_id: object) -> None:
        super().__init__(
            f"order {order_id} is already paid", subject=f"orders/{order_id}", type_="ALREADY_PAID"
        )


class OrderClosed(FailedPrecondition):
    def __init__(self, order_id: object, status: str) -> None:
        super().__init__(
            f"order {order_id} is {status.lower()}; create a new order",
            subject=f"orders/{order_id}",
            type_="ORDER_CLOSED",
        )


class OrderExpiring(FailedPrecondition):
    """ "Pay again" on an order that has expired or is about to."""

    def __init__(self, order_id: object, when: str) -> None:
        super().__init__(
            f"order {order_id} {when}; create a new order",
            subject=f"orders/{order_id}",
            type_="ORDER_EXPIRING",
        )


class NotCancelable(FailedPrecondition):
    def __init__(self, order_id: object, status: str) -> None:
        super().__init__(
            f"order {order_id} is {status.lower()} and cannot be canceled",
            subject=f"orders/{order_id}",
            type_="NOT_CANCELABLE",
        )


class PaymentRefused(FailedPrecondition):
    """The payment service refused a call for this order; `details` is its reason."""

    def __init__(self, details: str) -> None:
        super().__init__(details, subject="payments", type_="PAYMENT_REFUSED")
