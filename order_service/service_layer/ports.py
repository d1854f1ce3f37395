"""What the use cases need from the world outside the order database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from order_service.domain.payments import Checkout, PaymentAttempt, PaymentEvent


class Payments(Protocol):
    """payment.v1.PaymentService as the order service uses it; implemented
    by adapters.payment_client.PaymentClient. Failures are domain errors."""

    def create_or_get_payment(self, attempt: PaymentAttempt) -> Checkout: ...

    def cancel_payment(self, payment_id: str, reason: str) -> None: ...

    def stream_events(self, after_cursor: str) -> Iterator[PaymentEvent]: ...
