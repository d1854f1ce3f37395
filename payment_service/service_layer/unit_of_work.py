"""What the use cases need of storage: one transaction per use case, and
the queries of the payment repository. The SQLAlchemy implementation is in
adapters/unit_of_work.py; bootstrap chooses it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from payment_service.domain.callbacks import ExtraPayment, JournalEntry, TimelineEntry
from payment_service.domain.model import Payment, RequestKey
from payment_service.domain.refunds import Capture, Refund


class PaymentRepository(Protocol):
    def lock_order(self, order_id: str) -> None:
        """Serialises writers of one order until the transaction ends."""

    def for_order(self, order_id: str, *, for_update: bool = False) -> Sequence[Payment]:
        """Every attempt of the order, oldest first, as committed now."""

    def due_for_expiry(self, before: datetime, limit: int) -> Sequence[Payment]: ...
    def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Payment | None: ...
    def add(self, payment: Payment) -> None: ...
    def request_key(self, order_id: str, request_id: str) -> RequestKey | None: ...
    def add_request_key(self, key: RequestKey) -> None: ...
    def add_event(
        self,
        event_type: str,
        payment: Payment,
        now: datetime,
        extra: ExtraPayment | None = None,
        refund: Refund | None = None,
    ) -> None: ...
    def extra_captures(self, payment_id: uuid.UUID) -> list[Capture]: ...
    def refunds_of(self, payment_id: uuid.UUID) -> Sequence[Refund]:
        """The payment's refunds, oldest first, as committed now."""

    def get_refund(self, refund_id: uuid.UUID, *, for_update: bool = False) -> Refund | None: ...
    def add_refund(self, refund: Refund) -> None: ...
    def due_refunds(self, now: datetime, limit: int) -> Sequence[Refund]:
        """Pending refunds whose gateway is due to be asked, locked (skip locked)."""

    def needing_review(self, after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[Payment]: ...
    def add_extra_payment(self, extra: ExtraPayment) -> bool:
        """Stores an extra payment; False when this transaction was stored before."""

    def order_of_reference(self, provider: str, reference: str) -> str | None: ...
    def by_provider_reference(
        self, provider: str, reference: str, *, for_update: bool = False
    ) -> Payment | None: ...
    def add_journal_entry(self, entry: JournalEntry) -> None: ...
    def search(self, query: str, limit: int) -> Sequence[Payment]: ...
    def journal_of(self, payment_id: uuid.UUID) -> Sequence[tuple[int, JournalEntry]]: ...
    def journal_entry(self, entry_id: int) -> JournalEntry | None: ...
    def timeline(self, payment_id: uuid.UUID) -> Sequence[TimelineEntry]: ...
    def due_for_reconcile(self, now: datetime, limit: int) -> Sequence[Payment]: ...
    def events_after(
        self, txid: int, seq: int, limit: int
    ) -> Sequence[tuple[int, int, bytes | dict[str, Any], str]]:
        """Outbox events after (txid, seq) that can no longer be overtaken,
        each as stored (serialized, or protobuf JSON on older rows) with
        the trace context it was written in ("" if none)."""

    def events_held(self, txid: int, seq: int) -> bool:
        """Whether events after (txid, seq) wait behind an open transaction."""

    # Retention (service_layer/retention.py): the only deletes.
    def confirm_consumer(self, name: str, txid: int, seq: int, now: datetime) -> None: ...
    def consumer_positions(self) -> dict[str, tuple[int, int]]: ...
    def prune_outbox(self, before: datetime, upto: tuple[int, int] | None, limit: int) -> int: ...
    def prune_request_keys(self, before: datetime, limit: int) -> int: ...
    def prune_journal(self, before: datetime, limit: int) -> int: ...
    def expire_journal_raw(self, before: datetime, limit: int) -> int: ...


class PaymentReads(Protocol):
    """The hot paths' reads: one statement each, no transaction, no lock.
    What they return is for reading and answering only; changes go through
    a unit of work (adapters/reads.py)."""

    def for_order(self, order_id: str) -> Sequence[Payment]:
        """Every attempt of the order, oldest first, as committed now."""

    def get(self, payment_id: uuid.UUID) -> Payment | None: ...
    def order_of_reference(self, provider: str, reference: str) -> str | None: ...
    def request_key(self, order_id: str, request_id: str) -> RequestKey | None: ...


class UnitOfWorkReads:
    """PaymentReads through a unit of work each (fakes, tools)."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.uow_factory = uow_factory

    def for_order(self, order_id: str) -> Sequence[Payment]:
        with self.uow_factory() as uow:
            return uow.payments.for_order(order_id)

    def get(self, payment_id: uuid.UUID) -> Payment | None:
        with self.uow_factory() as uow:
            return uow.payments.get(payment_id)

    def order_of_reference(self, provider: str, reference: str) -> str | None:
        with self.uow_factory() as uow:
            return uow.payments.order_of_reference(provider, reference)

    def request_key(self, order_id: str, request_id: str) -> RequestKey | None:
        with self.uow_factory() as uow:
            return uow.payments.request_key(order_id, request_id)


class UnitOfWork(Protocol):
    """`with uow:` opens a transaction; `uow.commit()` commits; leaving the
    block without committing rolls back."""

    @property
    def payments(self) -> PaymentRepository: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def commit(self) -> None: ...
