"""Every query the payment service runs, on the domain's classes as mapped
in orm.py. Repositories never commit; the unit of work does, once per use
case."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from paykit.tracing import current_traceparent
from payment_service.adapters.orm import OutboxEvent, callback_journal, extra_payments, payments, refunds
from payment_service.adapters.protobuf import event_payload, payment_event_message
from payment_service.domain.callbacks import ExtraPayment, JournalEntry, TimelineEntry
from payment_service.domain.model import Payment, RequestKey
from payment_service.domain.refunds import Capture, Refund

# Namespaces the advisory-lock key so other users of pg_advisory locks on the
# same database cannot collide with ours by accident.
_ORDER_LOCK_PREFIX = "payment_service.order:"


class PaymentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_order(self, order_id: str) -> None:
        """Serialises writers of one order until the transaction ends."""
        key = func.hashtextextended(_ORDER_LOCK_PREFIX + order_id, 0)
        self.session.execute(select(func.pg_advisory_xact_lock(key)))

    def for_order(self, order_id: str, *, for_update: bool = False) -> Sequence[Payment]:
        stmt = select(Payment).where(payments.c.order_id == order_id).order_by(payments.c.attempt)
        if for_update:
            # Row locks as well as the order lock: callbacks and cancels lock
            # single payments, and must not be overwritten by a stale read.
            stmt = stmt.with_for_update()
        # populate_existing: a second read after taking the order lock must see
        # what other transactions committed, not this session's cached rows.
        return self.session.scalars(stmt.execution_options(populate_existing=True)).all()

    def due_for_expiry(self, before: datetime, limit: int) -> Sequence[Payment]:
        stmt = (
            select(Payment)
            .where(payments.c.status == "PENDING", payments.c.expire_time < before)
            .order_by(payments.c.expire_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.scalars(stmt).all()

    def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Payment | None:
        stmt = select(Payment).where(payments.c.id == payment_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def add(self, payment: Payment) -> None:
        # SQLAlchemy flushes a mapper's UPDATEs before its INSERTs, so an
        # attempt closed in the same unit of work is written before the new
        # pending row that the partial unique index would otherwise refuse.
        self.session.add(payment)

    def request_key(self, order_id: str, request_id: str) -> RequestKey | None:
        return self.session.get(RequestKey, (order_id, request_id))

    def add_request_key(self, key: RequestKey) -> None:
        self.session.add(key)

    def add_extra_payment(self, extra: ExtraPayment) -> bool:
        """Stores an extra payment; False when this transaction was stored before."""
        stmt = (
            insert(extra_payments)
            .values(
                payment_id=extra.payment_id,
                amount=extra.amount,
                currency=extra.currency,
                provider_transaction_id=extra.provider_transaction_id,
                reason=extra.reason,
                receive_time=extra.receive_time,
            )
            .on_conflict_do_nothing(index_elements=["payment_id", "provider_transaction_id"])
            .returning(extra_payments.c.id)
        )
        return self.session.execute(stmt).first() is not None

    def extra_captures(self, payment_id: uuid.UUID) -> list[Capture]:
        """The payment's extra payments as captures, oldest first."""
        rows = self.session.execute(
            select(extra_payments.c.id, extra_payments.c.provider_transaction_id, extra_payments.c.amount)
            .where(extra_payments.c.payment_id == payment_id)
            .order_by(extra_payments.c.id)
        )
        return [Capture(r.provider_transaction_id, r.amount, r.id) for r in rows]

    def refunds_of(self, payment_id: uuid.UUID) -> Sequence[Refund]:
        stmt = (
            select(Refund)
            .where(refunds.c.payment_id == payment_id)
            .order_by(refunds.c.create_time, refunds.c.id)
            .execution_options(populate_existing=True)
        )
        return self.session.scalars(stmt).all()

    def get_refund(self, refund_id: uuid.UUID, *, for_update: bool = False) -> Refund | None:
        stmt = select(Refund).where(refunds.c.id == refund_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()

    def add_refund(self, refund: Refund) -> None:
        self.session.add(refund)

    def due_refunds(self, now: datetime, limit: int) -> Sequence[Refund]:
        stmt = (
            select(Refund)
            .where(refunds.c.reconcile_time <= now, refunds.c.status == "PENDING")
            .order_by(refunds.c.reconcile_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.scalars(stmt).all()

    def needing_review(self, after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[Payment]:
        """Payments flagged for review, oldest first, after (create_time, id)."""
        stmt = select(Payment).where(payments.c.needs_review.is_(True))
        if after is not None:
            stmt = stmt.where(
                (payments.c.create_time > after[0])
                | ((payments.c.create_time == after[0]) & (payments.c.id > after[1]))
            )
        stmt = stmt.order_by(payments.c.create_time, payments.c.id).limit(limit)
        return self.session.scalars(stmt).all()

    def add_event(
        self,
        event_type: str,
        payment: Payment,
        now: datetime,
        extra: ExtraPayment | None = None,
        refund: Refund | None = None,
    ) -> None:
        event_id = uuid.uuid4()
        event = payment_event_message(event_id, event_type, payment, now, extra, refund)
        self.session.add(
            OutboxEvent(
                id=event_id,
                aggregatetype="payment",
                aggregateid=str(payment.id),
                type=event_type,
                payload=event_payload(event),
                event=event.SerializeToString(),
                create_time=now,
                traceparent=current_traceparent() or None,
            )
        )

    def order_of_reference(self, provider: str, reference: str) -> str | None:
        """The order an attempt belongs to, by the gateway's reference (no lock)."""
        stmt = select(payments.c.order_id).where(
            payments.c.provider == provider, payments.c.provider_reference == reference
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def by_provider_reference(
        self, provider: str, reference: str, *, for_update: bool = False
    ) -> Payment | None:
        stmt = select(Payment).where(
            payments.c.provider == provider, payments.c.provider_reference == reference
        )
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def add_journal_entry(self, entry: JournalEntry) -> None:
        self.session.add(entry)

    # --- the operator console: reads by what an operator knows ---------------

    def search(self, query: str, limit: int) -> Sequence[Payment]:
        """Payments whose order number (the last word of the description the
        order service writes), order id, intent id, gateway reference or
        gateway transaction id is `query`, newest first."""
        stmt = (
            select(Payment)
            .where(
                or_(
                    payments.c.order_id == query,
                    payments.c.payment_intent_id == query,
                    payments.c.provider_reference == query,
                    payments.c.provider_transaction_id == query,
                    payments.c.description.endswith(" " + query, autoescape=True),
                )
            )
            .order_by(payments.c.create_time.desc())
            .limit(limit)
        )
        return self.session.scalars(stmt).all()

    def journal_of(self, payment_id: uuid.UUID) -> Sequence[tuple[int, JournalEntry]]:
        """Every journaled callback about the payment, oldest first, with its id."""
        stmt = (
            select(callback_journal.c.id, JournalEntry)
            .where(callback_journal.c.payment_id == payment_id)
            .order_by(callback_journal.c.id)
        )
        return [(row[0], row[1]) for row in self.session.execute(stmt)]

    def journal_entry(self, entry_id: int) -> JournalEntry | None:
        stmt = select(JournalEntry).where(callback_journal.c.id == entry_id)
        return self.session.scalars(stmt).one_or_none()

    def timeline(self, payment_id: uuid.UUID) -> Sequence[TimelineEntry]:
        """The payment's outbox events still kept, oldest first."""
        stmt = (
            select(OutboxEvent.type, OutboxEvent.create_time, OutboxEvent.payload)
            .where(OutboxEvent.aggregateid == str(payment_id))
            .order_by(OutboxEvent.seq)
        )
        return [
            TimelineEntry(
                type=row.type,
                create_time=row.create_time,
                status=str(row.payload.get("payment", {}).get("status", "")).removeprefix("PAYMENT_STATUS_"),
                version=int(row.payload.get("version", 0) or 0),
            )
            for row in self.session.execute(stmt)
        ]

    def due_for_reconcile(self, now: datetime, limit: int) -> Sequence[Payment]:
        stmt = (
            select(Payment)
            .where(payments.c.reconcile_time <= now, payments.c.paid_time.is_(None))
            .order_by(payments.c.reconcile_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.scalars(stmt).all()

    def events_after(
        self, txid: int, seq: int, limit: int
    ) -> Sequence[tuple[int, int, bytes | dict[str, Any], str]]:
        """Outbox events after (txid, seq), oldest first, but only from
        transactions older than every transaction still running: those can
        no longer gain rows, so a reader that resumes after the last row it
        saw misses nothing that commits later. Each event as stored: the
        serialized PaymentEvent, or its protobuf JSON on rows written
        without one (the JSON is not even read when the bytes are there)."""
        rows = self.session.execute(
            text(
                "SELECT txid::text::bigint, seq, event, CASE WHEN event IS NULL THEN payload END, traceparent"
                " FROM outbox_events"
                " WHERE (txid, seq) > (CAST(CAST(:txid AS text) AS xid8), :seq)"
                " AND txid < pg_snapshot_xmin(pg_current_snapshot())"
                " ORDER BY txid, seq LIMIT :limit"
            ),
            {"txid": txid, "seq": seq, "limit": limit},
        )
        return [(r[0], r[1], r[2] if r[2] is not None else r[3], r[4] or "") for r in rows]

    def events_held(self, txid: int, seq: int) -> bool:
        """Whether committed events after (txid, seq) exist that an
        events_after call just now did not return: held back behind an
        older transaction still open, or become visible since (a statement
        of its own sees a newer snapshot). Either way, look again soon."""
        return bool(
            self.session.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM outbox_events"
                    " WHERE (txid, seq) > (CAST(CAST(:txid AS text) AS xid8), :seq))"
                ),
                {"txid": txid, "seq": seq},
            ).scalar()
        )

    # --- retention: the only code that removes rows or raw bytes -------------

    def confirm_consumer(self, name: str, txid: int, seq: int, now: datetime) -> None:
        """Records a stream consumer's confirmed position; never moves it back."""
        self.session.execute(
            text(
                "INSERT INTO outbox_consumers (name, txid, seq, update_time) VALUES (:n, :t, :s, :now)"
                " ON CONFLICT (name) DO UPDATE SET txid = :t, seq = :s, update_time = :now"
                " WHERE (outbox_consumers.txid, outbox_consumers.seq) <= (:t, :s)"
            ),
            {"n": name, "t": txid, "s": seq, "now": now},
        )

    def consumer_positions(self) -> dict[str, tuple[int, int]]:
        rows = self.session.execute(text("SELECT name, txid, seq FROM outbox_consumers"))
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def prune_outbox(self, before: datetime, upto: tuple[int, int] | None, limit: int) -> int:
        """Deletes up to `limit` outbox events created before `before` and,
        when `upto` is given, at or below that (txid, seq) position."""
        txid, seq = upto if upto is not None else (2**63 - 1, 2**63 - 1)
        result = self.session.execute(
            text(
                "DELETE FROM outbox_events WHERE id IN (SELECT id FROM outbox_events"
                " WHERE create_time < :before AND (txid, seq) <= (CAST(CAST(:txid AS text) AS xid8), :seq)"
                " ORDER BY create_time LIMIT :limit)"
            ),
            {"before": before, "limit": limit, "txid": txid, "seq": seq},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def prune_request_keys(self, before: datetime, limit: int) -> int:
        result = self.session.execute(
            text(
                "DELETE FROM payment_request_keys WHERE (order_id, request_id) IN"
                " (SELECT order_id, request_id FROM payment_request_keys WHERE create_time < :before"
                " LIMIT :limit)"
            ),
            {"before": before, "limit": limit},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def _journal_retention(self) -> None:
        # The append-only trigger lets this transaction, and only it, delete
        # rows or drop raw bytes (see the ret_0001 migration).
        self.session.execute(text("SET LOCAL payments.journal_retention = 'on'"))

    def prune_journal(self, before: datetime, limit: int) -> int:
        self._journal_retention()
        result = self.session.execute(
            text(
                "DELETE FROM callback_journal WHERE id IN (SELECT id FROM callback_journal"
                " WHERE receive_time < :before ORDER BY id LIMIT :limit)"
            ),
            {"before": before, "limit": limit},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def expire_journal_raw(self, before: datetime, limit: int) -> int:
        self._journal_retention()
        result = self.session.execute(
            text(
                "UPDATE callback_journal SET raw_body = NULL, raw_query = NULL WHERE id IN"
                " (SELECT id FROM callback_journal WHERE receive_time < :before"
                " AND (raw_body IS NOT NULL OR raw_query IS NOT NULL) ORDER BY id LIMIT :limit)"
            ),
            {"before": before, "limit": limit},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
