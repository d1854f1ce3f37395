"""PostgreSQL schema as SQLAlchemy tables, and the mapping of the domain's
classes onto them (imperative: the domain imports nothing of SQLAlchemy).
Alembic migrations are generated from this metadata and a test checks they
agree."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column
from sqlalchemy.types import UserDefinedType

from paykit.database import NAMING_CONVENTION
from payment_service.domain import model
from payment_service.domain.callbacks import JournalEntry
from payment_service.domain.model import PaymentStatus, Provider
from payment_service.domain.refunds import Refund, RefundStatus


def _in(column: str, values: type[Provider] | type[PaymentStatus] | type[RefundStatus]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# The tables of the domain's classes, mapped imperatively below: the domain
# stays plain Python, the session's identity map and SQL stay as they were.
payments = Table(
    "payments",
    Base.metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("payment_intent_id", String(100), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_reason", Text),
    Column("attempt", Integer, nullable=False),
    Column("original_payment_id", UUID(as_uuid=True), ForeignKey("payments.id")),
    Column("provider_reference", String(100), nullable=False),
    Column("provider_transaction_id", String(100)),
    Column("description", String(255), nullable=False),
    Column("client_ip", String(45), nullable=False),
    Column("user_agent", String(512), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("expire_time", DateTime(timezone=True), nullable=False),
    Column("paid_time", DateTime(timezone=True)),
    Column("version", Integer, nullable=False, default=1),
    Column("needs_review", Boolean, nullable=False, default=False),
    Column("review_reason", Text),
    # What the gateway reported, kept for support and reconciliation.
    Column("provider_response_code", String(16)),
    Column("provider_pay_time", DateTime(timezone=True)),
    Column("bank_code", String(32)),
    Column("bank_transaction_no", String(64)),
    Column("card_type", String(32)),
    # Reconciliation: when to ask the gateway next, and how often we have.
    Column("reconcile_time", DateTime(timezone=True)),
    Column("reconcile_attempts", Integer, nullable=False, default=0),
    # A closed attempt whose gateway session may still take money (no cancel
    # API, or the cancel did not go through): watched until this moment.
    Column("closing_until", DateTime(timezone=True)),
    # Refunds of the attempt's own capture, kept with the payment's row lock.
    Column("refunded_amount", BigInteger, nullable=False, default=0, server_default="0"),
    Column("refund_pending_amount", BigInteger, nullable=False, default=0, server_default="0"),
    # How the last review was resolved (HONOUR, REFUND) and by which request.
    Column("review_resolution", String(16)),
    Column("review_note", Text),
    Column("review_request_id", String(64)),
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
    CheckConstraint(
        "refunded_amount >= 0 AND refund_pending_amount >= 0"
        " AND refunded_amount + refund_pending_amount <= amount",
        name="refunds_within_amount",
    ),
)

# CreateOrGetPayment idempotency keys, scoped to the order.
payment_request_keys = Table(
    "payment_request_keys",
    Base.metadata,
    Column("order_id", String(64), primary_key=True),
    Column("request_id", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payments.id"), nullable=False),
    Column("reused", Boolean, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Index("ix_payment_request_keys_create_time", "create_time"),  # retention
)


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
    # The PaymentEvent serialized, as StreamPaymentEvents sends it (payload
    # is the same event in protobuf JSON, for Debezium); NULL on older rows.
    event: Mapped[bytes | None] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    publish_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # W3C trace context of the writing transaction's span ("" or NULL when
    # untraced): the stream hands it on, so the consumer continues the trace.
    traceparent: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_outbox_events_unpublished", "seq", postgresql_where=text("publish_time IS NULL")),
        Index("ix_outbox_events_txid_seq", "txid", "seq"),
        Index("ix_outbox_events_aggregateid", "aggregateid"),
        Index("ix_outbox_events_create_time", "create_time"),  # retention
    )


# Every gateway callback, valid or not, exactly as received, with what we
# made of it. Append-only (a trigger refuses UPDATE and DELETE): the audit
# trail, and the input of a replay.
callback_journal = Table(
    "callback_journal",
    Base.metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("receive_time", DateTime(timezone=True), nullable=False),
    Column("provider", String(16)),
    Column("kind", String(16)),
    Column("path", Text, nullable=False),
    # NULL once JOURNAL_RAW_RETENTION_DAYS have passed (see retention).
    Column("raw_query", LargeBinary),
    Column("raw_body", LargeBinary),
    Column("headers", JSONB, nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("verify_error", Text),
    Column("outcome", String(32), nullable=False),
    Column("ack", Text, nullable=False),
    Column("payment_id", UUID(as_uuid=True)),
    Column("provider_reference", String(100)),
    Column("body_sha256", String(64), nullable=False, server_default=""),
    Column("audit", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_callback_journal_payment_id", "payment_id"),
    Index("ix_callback_journal_receive_time", "receive_time"),  # retention
)

# The confirmed position of each named reader of StreamPaymentEvents: the
# outbox keeps every event after the slowest one (see retention).
outbox_consumers = Table(
    "outbox_consumers",
    Base.metadata,
    Column("name", String(64), primary_key=True),
    Column("txid", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

# Money beyond the order's kept payment (see domain.callbacks.ExtraPayment):
# one row per gateway transaction, so a repeated notification adds nothing.
extra_payments = Table(
    "extra_payments",
    Base.metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payments.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("provider_transaction_id", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("receive_time", DateTime(timezone=True), nullable=False),
    UniqueConstraint("payment_id", "provider_transaction_id"),
)

# Money given back from a capture (domain.refunds.Refund). request_id is the
# caller's idempotency key, scoped to the payment.
refunds = Table(
    "refunds",
    Base.metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payments.id"), nullable=False),
    Column("extra_payment_id", BigInteger, ForeignKey("extra_payments.id")),
    Column("provider_transaction_id", String(100), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(255), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("manual", Boolean, nullable=False),
    # The operator asked for the order's stock back with this refund.
    Column("restock", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("provider_refund_id", String(100)),
    Column("failure_reason", Text),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("reconcile_time", DateTime(timezone=True)),
    Column("reconcile_attempts", Integer, nullable=False, default=0),
    UniqueConstraint("payment_id", "request_id"),
    Index("ix_refunds_reconcile_time", "reconcile_time", postgresql_where=text("reconcile_time IS NOT NULL")),
    CheckConstraint("amount > 0", name="refund_amount_positive"),
    CheckConstraint(_in("status", RefundStatus), name="refund_status_known"),
)

Base.registry.map_imperatively(model.Payment, payments)
Base.registry.map_imperatively(Refund, refunds)
Base.registry.map_imperatively(model.RequestKey, payment_request_keys)
Base.registry.map_imperatively(JournalEntry, callback_journal)
# Now rather than at the first ORM query: the repository and the hot reads
# fill mapped objects from plain rows, whose attributes need the mapping
# configured (a first request that only reads would find them unset).
configure_mappers()
