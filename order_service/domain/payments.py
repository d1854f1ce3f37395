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
    # When the payment service wrote the event, and the trace it was written
    # in (an opaque W3C traceparent, "" if none): for lag and tracing only.
    create_time: datetime | None = None
    traceparent: str = ""


@dataclass(frozen=True)
class Checkout:
    """A payment attempt as CreateOrGetPayment hands it to "Pay again"."""

    payment_id: str
    checkout_url: str
    expire_time: datetime


@dataclass(frozen=True)
class PaymentAttempt:
    """What the order service asks the payment service to open for an order."""

    order_id: str
    user_id: str
    amount: int
    currency: str
    provider: PaymentProvider | None  # None: the payment service's default choice here, VNPay
    description: str
    client_ip: str
    user_agent: str
    return_url: str
    request_id: str
