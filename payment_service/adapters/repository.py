"""Every query the payment service runs, on the domain's classes as mapped
in orm.py. Repositories never commit; the unit of work does, once per use
case."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, cast

import psycopg
from opentelemetry.trace import SpanKind
from psycopg.types.json import Jsonb
from sqlalchemy import DateTime, Table, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.orm import Session, attributes

from paykit import tracing
from paykit.tracing import current_traceparent
from payment_service.adapters.orm import (
    OutboxEvent,
    callback_journal,
    extra_payments,
    payment_request_keys,
    payments,
    refunds,
)
from payment_service.adapters.protobuf import event_payload, payment_event_message
from payment_service.domain.callbacks import ExtraPayment, JournalEntry, TimelineEntry
from payment_service.domain.model import Payment, RequestKey
from payment_service.domain.refunds import Capture, Refund

# Namespaces the advisory-lock key so other users of pg_advisory locks on the
# same database cannot collide with ours by accident.
_ORDER_LOCK_PREFIX = "payment_service.order:"


# Only casts that cannot change a value (never to a bounded varchar).
_CASTS: tuple[tuple[type[Any], str], ...] = (
    (UUID, "::uuid"),
    (DateTime, "::timestamptz"),
    (JSONB, "::jsonb"),
)


def _placeholder(table: Table, column: str, suffix: str = "") -> str:
    # Typed like SQLAlchemy renders them, so a replay of the logged SQL with
    # the values written in (bench/sql.py) still types its UUIDs.
    kind = table.c[column].type
    cast = next((c for t, c in _CASTS if isinstance(kind, t)), "")
    return f"%({column}{suffix})s{cast}"


def _insert_sql(table: Table, columns: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)})"  # noqa: S608 - names from the schema
        f" VALUES ({', '.join(_placeholder(table, c) for c in columns)})"
    )


# Payments and the rows written with them as fixed SQL on the session's
# connection, without the ORM: no flush machinery, statement compilation or
# result metadata (psycopg prepares each statement after a few uses).
# Payments are read with plain cursors into the domain's objects, which the
# repository keeps with the row as read; at commit (or before the next
# read of payments, or an insert) each changed one is written with an UPDATE
# of the columns that changed. Refunds and idempotency-key lookups remain
# the ORM session's.
_PAYMENT_COLUMNS = tuple(c.name for c in payments.columns)
_INSERT_PAYMENT = _insert_sql(payments, _PAYMENT_COLUMNS)
_SELECT_PAYMENTS = f"SELECT {', '.join(_PAYMENT_COLUMNS)} FROM payments"  # noqa: S608
_FOR_ORDER = f"{_SELECT_PAYMENTS} WHERE order_id = %(order_id)s ORDER BY attempt"
_BY_ID = f"{_SELECT_PAYMENTS} WHERE id = %(id)s"
_BY_REFERENCE = f"{_SELECT_PAYMENTS} WHERE provider = %(provider)s AND provider_reference = %(reference)s"
_DUE_FOR_EXPIRY = (
    f"{_SELECT_PAYMENTS} WHERE status = 'PENDING' AND expire_time < %(before)s"
    " ORDER BY expire_time LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
_DUE_FOR_RECONCILE = (
    f"{_SELECT_PAYMENTS} WHERE reconcile_time <= %(now)s AND paid_time IS NULL"
    " ORDER BY reconcile_time LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
_NEEDING_REVIEW = f"{_SELECT_PAYMENTS} WHERE needs_review IS true"
_NEEDING_REVIEW_AFTER = f"{_NEEDING_REVIEW} AND (create_time, id) > (%(time)s, %(id)s)"
_REVIEW_ORDER = " ORDER BY create_time, id LIMIT %(limit)s"
_SEARCH = (
    f"{_SELECT_PAYMENTS} WHERE order_id = %(query)s OR payment_intent_id = %(query)s"
    " OR provider_reference = %(query)s OR provider_transaction_id = %(query)s"
    " OR right(description, length(%(suffix)s)) = %(suffix)s"
    " ORDER BY create_time DESC LIMIT %(limit)s"
)
_OUTBOX_COLUMNS = (
    "id",
    "aggregatetype",
    "aggregateid",
    "type",
    "payload",
    "event",
    "create_time",
    "traceparent",
)
_INSERT_OUTBOX_INTO = f"INSERT INTO outbox_events ({', '.join(_OUTBOX_COLUMNS)})"
_JOURNAL_COLUMNS = tuple(c.name for c in callback_journal.columns if c.name != "id")
_INSERT_JOURNAL = _insert_sql(callback_journal, _JOURNAL_COLUMNS)
_KEY_COLUMNS = tuple(c.name for c in payment_request_keys.columns)
_INSERT_KEY = _insert_sql(payment_request_keys, _KEY_COLUMNS)
_JSONB_COLUMNS = {"payload", "headers", "audit"}
_LOCK_ORDER = "SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))"


def _new_payment() -> Payment:
    """An empty Payment for a row to fill (the class is mapped for the
    schema; the object is never the ORM session's)."""
    payment: Payment = attributes.manager_of_class(Payment).new_instance()
    return payment


def _row(obj: object, columns: Sequence[str]) -> dict[str, Any]:
    return {c: Jsonb(getattr(obj, c)) if c in _JSONB_COLUMNS else getattr(obj, c) for c in columns}


def traced(sql: str) -> AbstractContextManager[object]:
    """A client span per statement when tracing is on (as the engine's
    SQLAlchemy instrumentation makes for the statements it sees); nothing
    otherwise."""
    if not tracing.enabled():
        return nullcontext()
    return tracing.tracer("payment_service.sql").start_as_current_span(
        sql.split(None, 1)[0],
        kind=SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.statement": sql},
    )


def _update_sql(columns: Sequence[str]) -> str:
    assignments = ", ".join(f"{c} = {_placeholder(payments, c)}" for c in columns)
    return f"UPDATE payments SET {assignments} WHERE id = %(id)s"  # noqa: S608 - names from the schema


class PaymentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        # Outbox rows added in this transaction, written together at commit.
        self._events: list[dict[str, Any]] = []
        # Every payment this transaction read or added, with its row as stored.
        self._payments: dict[uuid.UUID, tuple[Payment, tuple[Any, ...]]] = {}

    def _execute(self, sql: str, params: dict[str, Any]) -> None:
        self._raw(sql, params, rows=False)

    def _raw(self, sql: str, params: dict[str, Any], *, rows: bool = True) -> list[tuple[Any, ...]]:
        """One statement on a plain cursor of the session's connection (in
        its transaction), its rows if any; errors as SQLAlchemy raises them
        (a broken connection is invalidated: unavailable)."""
        connection = self.session.connection()
        driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)
        try:
            with traced(sql), driver.cursor() as cursor:
                cursor.execute(sql, params)
                # (cursor.description would build a column object per column.)
                return cursor.fetchall() if rows else []
        except psycopg.Error as error:
            broken = connection.dialect.is_disconnect(cast(Any, error), connection.connection, None)
            if broken:
                connection.invalidate(error)
            raise sa_exc.DBAPIError.instance(
                sql, params, error, psycopg.Error, connection_invalidated=broken
            ) from error

    def _load(self, sql: str, params: dict[str, Any]) -> list[Payment]:
        """Payments as stored now: changes made here are written first (as
        the ORM's autoflush did), and a payment read before is the same
        object, refreshed."""
        self.write_changes()
        loaded = []
        for row in self._raw(sql, params):
            known = self._payments.get(row[0])
            payment = known[0] if known else _new_payment()
            payment.__dict__.update(zip(_PAYMENT_COLUMNS, row, strict=True))
            self._payments[row[0]] = (payment, tuple(row))
            loaded.append(payment)
        return loaded

    def write_changes(self) -> None:
        """One UPDATE per payment changed since it was read or written."""
        for payment_id, (payment, stored) in list(self._payments.items()):
            now = tuple(payment.__dict__.get(c) for c in _PAYMENT_COLUMNS)
            if now == stored:
                continue
            changed = [c for c, old, new in zip(_PAYMENT_COLUMNS, stored, now, strict=True) if old != new]
            params = {c: getattr(payment, c) for c in changed}
            self._execute(_update_sql(changed), {**params, "id": payment_id})
            self._payments[payment_id] = (payment, now)

    def lock_order(self, order_id: str) -> None:
        """Serialises writers of one order until the transaction ends."""
        self._execute(_LOCK_ORDER, {"key": _ORDER_LOCK_PREFIX + order_id})

    def for_order(self, order_id: str, *, for_update: bool = False) -> Sequence[Payment]:
        # Row locks as well as the order lock: callbacks and cancels lock
        # single payments, and must not be overwritten by a stale read.
        return self._load(_FOR_ORDER + (" FOR UPDATE" if for_update else ""), {"order_id": order_id})

    def due_for_expiry(self, before: datetime, limit: int) -> Sequence[Payment]:
        return self._load(_DUE_FOR_EXPIRY, {"before": before, "limit": limit})

    def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Payment | None:
        found = self._load(_BY_ID + (" FOR UPDATE" if for_update else ""), {"id": payment_id})
        return found[0] if found else None

    def add(self, payment: Payment) -> None:
        """Inserts the new attempt now. Changes to loaded attempts are
        written first, so an attempt closed in the same unit of work is
        written before the new pending row that the partial unique index
        would otherwise refuse."""
        self.write_changes()
        self._execute(_INSERT_PAYMENT, _row(payment, _PAYMENT_COLUMNS))
        self._payments[payment.id] = (payment, tuple(payment.__dict__.get(c) for c in _PAYMENT_COLUMNS))

    def request_key(self, order_id: str, request_id: str) -> RequestKey | None:
        return self.session.get(RequestKey, (order_id, request_id))

    def add_request_key(self, key: RequestKey) -> None:
        self._execute(_INSERT_KEY, _row(key, _KEY_COLUMNS))

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
        if after is None:
            return self._load(_NEEDING_REVIEW + _REVIEW_ORDER, {"limit": limit})
        params = {"time": after[0], "id": after[1], "limit": limit}
        return self._load(_NEEDING_REVIEW_AFTER + _REVIEW_ORDER, params)

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
        self._events.append(
            {
                "id": event_id,
                "aggregatetype": "payment",
                "aggregateid": str(payment.id),
                "type": event_type,
                "payload": Jsonb(event_payload(event)),
                "event": event.SerializeToString(),
                "create_time": now,
                "traceparent": current_traceparent() or None,
            }
        )

    def write_events(self) -> None:
        """Writes the events added since the last call, in one INSERT (the
        unit of work calls it before committing)."""
        if not self._events:
            return
        events, self._events = self._events, []
        outbox = OutboxEvent.__table__
        rows = ", ".join(
            f"({', '.join(_placeholder(outbox, c, str(i)) for c in _OUTBOX_COLUMNS)})"  # type: ignore[arg-type]
            for i in range(len(events))
        )
        params = {f"{c}{i}": event[c] for i, event in enumerate(events) for c in _OUTBOX_COLUMNS}
        self._execute(f"{_INSERT_OUTBOX_INTO} VALUES {rows}", params)

    def order_of_reference(self, provider: str, reference: str) -> str | None:
        """The order an attempt belongs to, by the gateway's reference (no lock)."""
        stmt = select(payments.c.order_id).where(
            payments.c.provider == provider, payments.c.provider_reference == reference
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def by_provider_reference(
        self, provider: str, reference: str, *, for_update: bool = False
    ) -> Payment | None:
        found = self._load(
            _BY_REFERENCE + (" FOR UPDATE" if for_update else ""),
            {"provider": provider, "reference": reference},
        )
        return found[0] if found else None

    def add_journal_entry(self, entry: JournalEntry) -> None:
        self._execute(_INSERT_JOURNAL, _row(entry, _JOURNAL_COLUMNS))

    # --- the operator console: reads by what an operator knows ---------------

    def search(self, query: str, limit: int) -> Sequence[Payment]:
        """Payments whose order number (the last word of the description the
        order service writes), order id, intent id, gateway reference or
        gateway transaction id is `query`, newest first."""
        return self._load(_SEARCH, {"query": query, "suffix": " " + query, "limit": limit})

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
        return self._load(_DUE_FOR_RECONCILE, {"now": now, "limit": limit})

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
