"""What the order service knows of payments: the provider a shopper picks,
a payment's status, and one fact from the payment event stream. Plain
values; the payment client adapter builds them from payment.v1 messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class PaymentProvider(StrEnum):
    VNPAY = "VNPAY"
    PAYOS = "PAYOS"
    MOMO = "MOMO"
    ZALOPAY = "ZALOPAY"
    COD = "COD"


class PaymentStatus(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"  # also: a status this build does not know yet
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"


class RefundStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ReviewResolution(StrEnum):
    NONE = ""  # not resolved (or a resolution this build does not know)
    HONOUR = "HONOUR"  # the shop keeps the money: the order may count as paid
    REFUND = "REFUND"  # every captured amount of the payment goes back


@dataclass(frozen=True)
class RefundFact:
    """The refund a payment.refund_* event is about."""

    refund_id: str
    amount: int
    status: RefundStatus
    restock: bool  # the operator asked for the order's stock back
    own_capture: bool  # of the payment's own capture (not one of its extra payments)
    failure_reason: str = ""


@dataclass(frozen=True)
class PaymentEvent:
    """One event of PaymentService.StreamPaymentEvents, as the order sees it.
    Ids stay text: a malformed one is skipped by the use case, and the
    stream's checkpoint still moves past it."""

    cursor: str  # where the stream resumes after this event ("<txid>-<seq>")
    event_id: str
    type: str  # payment.created, payment.succeeded, payment.late_success, ...
    payment_id: str
    order_id: str
    user_id: str
    status: PaymentStatus
    provider: PaymentProvider | None  # None: a provider this build does not know
    amount: int
    currency: str
    version: int
    failure_reason: str = ""
    review_reason: str = ""
    attempt: int = 0  # 1-based attempt number within the order; 0 when not known
    # When the payment service wrote the event, and the trace it was written
    # in (an opaque W3C traceparent, "" if none): for lag and tracing only.
    create_time: datetime | None = None
    traceparent: str = ""
    # Money given back from the payment's own capture (refunds SUCCEEDED).
    refunded_amount: int = 0
    # Money being given back right now from the payment's own capture (refunds PENDING).
    refund_pending_amount: int = 0
    # payment.review_resolved: how the review was closed.
    review_resolution: ReviewResolution = ReviewResolution.NONE
    # payment.refund_requested, payment.refunded, payment.refund_failed.
    refund: RefundFact | None = None


@dataclass(frozen=True)
class PaymentFact:
    """One payment attempt of an order as the payment service reports it
    now (GetPaymentByOrder): what order expiry asks before releasing stock."""

    payment_id: str
    order_id: str
    user_id: str
    status: PaymentStatus
    provider: PaymentProvider | None
    amount: int
    currency: str
    attempt: int
    paid: bool  # money was taken for it (succeeded, or paid after it closed)

    @property
    def may_take_money(self) -> bool:
        """Still open at the payment service: money may yet land on it."""
        return not self.paid and self.status in (PaymentStatus.PENDING, PaymentStatus.UNSPECIFIED)


@dataclass(frozen=True)
class Checkout:
    """A payment attempt as CreateOrGetPayment hands it to "Pay again"."""

    payment_id: str
    checkout_url: str
    expire_time: datetime
    attempt: int = 0  # the attempt's number within the order; 0 when not known


@dataclass(frozen=True)
class PaymentAttempt:
    """What the order service asks the payment service to open for an order."""

    order_id: str
    user_id: str
    amount: int
    currency: str
    provider: PaymentProvider | None  # None: the payment service keeps the current attempt's provider
    description: str
    client_ip: str
    user_agent: str
    return_url: str
    request_id: str
    not_after: datetime | None = None  # the attempt never outlives this (the order's expiry)
