"""What the use cases need from the world outside the domain: the order
database (as `Orders`, inside a unit of work) and the payment service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from order_service.domain.model import Order, Product
from order_service.domain.payments import Checkout, PaymentAttempt, PaymentEvent, PaymentFact


class Orders(Protocol):
    """The order database, in the caller's transaction; implemented by
    adapters.repository.OrderRepository. Never commits."""

    def products(self, after: str, limit: int) -> Sequence[Product]: ...

    def products_by_id(self, variant_ids: list[str]) -> dict[str, Product]: ...

    def take_stock(self, variant_id: str, quantity: int) -> bool:
        """Reserves stock atomically; False when there is not enough."""
        ...

    def return_stock(self, variant_id: str, quantity: int) -> None: ...

    def add(self, order: Order) -> None:
        """Stores a new order; its order_code is set on return."""
        ...

    def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None: ...

    def lock(self, order_ids: Sequence[uuid.UUID]) -> None:
        """Locks these orders for the transaction, in one round trip (a
        batch's orders: get(..., for_update=True) then costs no query)."""
        ...

    def for_user(
        self, user_id: str, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[Order]: ...

    def due_for_expiry(
        self, now: datetime, limit: int, after: tuple[datetime, uuid.UUID] | None = None
    ) -> Sequence[Order]:
        """Unpaid orders past their deadline, by (expire_time, id) after
        `after`; not locked (the caller asks the payment service before it
        locks one)."""
        ...

    def claim_newer(self, event_id: uuid.UUID, payment_id: uuid.UUID, version: int, now: datetime) -> bool:
        """Records that an event is being applied (once: by id). True when it
        was not applied before and its version is newer than every other
        version applied for its payment; False otherwise."""
        ...

    def checkpoint(self, name: str) -> str | None: ...

    def advance_checkpoint(self, name: str, cursor: str, txid: int, seq: int, now: datetime) -> None: ...

    def add_event(self, event_type: str, order: Order, now: datetime) -> None:
        """An order event in the outbox."""
        ...

    def lock_user(self, user_id: str) -> None:
        """Serialises the user's order creation until the transaction ends."""
        ...

    def open_orders(self, user_id: str) -> int:
        """How many of the user's orders still await payment."""
        ...

    def hit(self, key: str, window_start: datetime, limit: int) -> bool:
        """Counts a hit in the window, atomically for every replica; False
        when the window is full (the hit is not counted)."""
        ...

    def prune_rate_limits(self, before: datetime) -> int: ...

    def prune_applied_events(self, before: datetime, limit: int) -> int:
        """Deletes up to `limit` applied-event records older than `before`,
        keeping each payment's newest (the version guard needs it)."""
        ...

    def prune_events(self, before: datetime, limit: int) -> int:
        """Deletes up to `limit` outbox rows older than `before`."""
        ...


class Payments(Protocol):
    """payment.v1.PaymentService as the order service uses it; implemented
    by adapters.payment_client.PaymentClient. Failures are domain errors."""

    def create_or_get_payment(self, attempt: PaymentAttempt) -> Checkout: ...

    def cancel_payment(self, payment_id: str, reason: str) -> None: ...

    def payments_of_order(self, order_id: str, user_id: str) -> Sequence[PaymentFact]:
        """Every attempt the payment service has for the order, now."""
        ...

    def stream_events(self, after_cursor: str) -> Iterator[PaymentEvent]:
        """The events after the cursor as they come; the iterator may have
        a cancel() that ends it from another thread (the follower calls it
        when it stops reading)."""
        ...
