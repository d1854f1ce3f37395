"""PostgreSQL schema as SQLAlchemy 2 typed models. Alembic migrations are
generated from this metadata and a test checks they agree."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from paykit.database import NAMING_CONVENTION
from payment_service.domain.model import PaymentStatus, Provider


def _in(column: str, values: type[Provider] | type[PaymentStatus]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Payment(Base):
    """One payment attempt. Never holds a checkout URL: those are signed on
    demand from these columns."""

    __tablename__ = "payments"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    payment_intent_id: Mapped[str] = mapped_column(String(100), unique=True)
    order_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int]
    original_payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    provider_reference: Mapped[str] = mapped_column(String(100))
    provider_transaction_id: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(255))
    client_ip: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(512))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(default=1)
    needs_review: Mapped[bool] = mapped_column(default=False)
    review_reason: Mapped[str | None] = mapped_column(Text)
    # What the gateway reported, kept for support and reconciliation.
    provider_response_code: Mapped[str | None] = mapped_column(String(16))
    provider_pay_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bank_code: Mapped[str | None] = mapped_column(String(32))
    bank_transaction_no: Mapped[str | None] = mapped_column(String(64))
    card_type: Mapped[str | None] = mapped_column(String(32))
    # Reconciliation: when to ask the gateway next, and how often we have.
    reconcile_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reconcile_attempts: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        UniqueConstraint("order_id", "attempt"),
        # Callbacks find their payment by the gateway's reference.
        UniqueConstraint("provider", "provider_reference"),
        # The database itself refuses a second pending attempt for an order.
        Index(
            "uq_payments_one_pending_per_order",
            "order_id",
            unique=True,
            postgresql_where=text("status = 'PENDING'"),
        ),
        # The expiry sweep reads only pending rows, oldest deadline first.
        Index("ix_payments_pending_expire_time", "expire_time", postgresql_where=text("status = 'PENDING'")),
        # The reconciler reads only attempts it still has to ask about.
        Index(
            "ix_payments_reconcile_time",
            "reconcile_time",
            postgresql_where=text("reconcile_time IS NOT NULL"),
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        CheckConstraint(_in("status", PaymentStatus), name="status_known"),
        CheckConstraint(_in("provider", Provider), name="provider_known"),
        # paid_time may also be set on a closed attempt that was paid late.
        CheckConstraint("status <> 'SUCCEEDED' OR paid_time IS NOT NULL", name="succeeded_has_paid_time"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class PaymentRequestKey(Base):
    """CreateOrGetPayment idempotency keys, scoped to the order."""

    __tablename__ = "payment_request_keys"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    reused: Mapped[bool]
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Xid8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


# Reflection (Alembic's drift check) should know the type too.
ischema_names["xid8"] = Xid8


class OutboxEvent(Base):
    """Transactional outbox, written in the same transaction as the change it
    describes. Columns id, aggregatetype, aggregateid, type and payload are
    those Debezium's outbox event router reads, so the table can be streamed
    to Kafka unchanged; seq orders delivery for the built-in relay."""

    __tablename__ = "outbox_events"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    # The writing transaction: events are streamed in (txid, seq) order and
    # only once every older transaction has ended (see StreamPaymentEvents).
    txid: Mapped[str] = mapped_column(Xid8, server_default=text("pg_current_xact_id()"))
    aggregatetype: Mapped[str] = mapped_column(String(64))
    aggregateid: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    publish_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_outbox_events_unpublished", "seq", postgresql_where=text("publish_time IS NULL")),
        Index("ix_outbox_events_txid_seq", "txid", "seq"),
        Index("ix_outbox_events_aggregateid", "aggregateid"),
    )


class CallbackJournal(Base):
    """Every gateway callback, valid or not, exactly as received, with what we
    made of it. Append-only (a trigger refuses UPDATE and DELETE): the audit
    trail, and the input of a replay."""

    __tablename__ = "callback_journal"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    receive_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    provider: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    raw_query: Mapped[bytes] = mapped_column(LargeBinary)
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    verified: Mapped[bool]
    verify_error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    ack: Mapped[str] = mapped_column(Text)
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    provider_reference: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_callback_journal_payment_id", "payment_id"),)
