"""The order service's own database: catalog, orders, their lines, the
payment events already applied, and its own outbox. The domain's Product,
Order and OrderItem are mapped onto their tables here; the other rows are
the adapters' own."""

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
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from order_service.domain import model
from order_service.domain.model import OrderStatus
from paykit.database import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata

products = Table(
    "products",
    metadata,
    Column("variant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stock", Integer, nullable=False),
    CheckConstraint("price > 0", name="price_positive"),
    # The last line of defence against overselling.
    CheckConstraint("stock >= 0", name="stock_not_negative"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("order_code", BigInteger, Identity(start=100_000), unique=True, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("status_reason", Text),
    Column("total_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("receiver_name", String(100), nullable=False),
    Column("receiver_phone", String(16), nullable=False),
    Column("shipping_address", String(500), nullable=False),
    Column("note", String(500), nullable=False),
    Column("payment_id", UUID(as_uuid=True)),
    # The current attempt's number: it never moves back (see Order.attach_payment).
    Column("payment_attempt", Integer, nullable=False, server_default=text("0")),
    # The payment whose money paid the order; others are extra payments.
    Column("paid_payment_id", UUID(as_uuid=True)),
    # The catalog's stock is taken for the order now; cleared when it is
    # given back (once per taking, under the order's row lock).
    Column("stock_held", Boolean, nullable=False, server_default=text("true")),
    # EXPIRED or CANCELED: how the order was closed, kept while late money is reviewed.
    Column("closed_as", String(32)),
    # The payment a person reviews (or that was refunded for a closed order).
    Column("review_payment_id", UUID(as_uuid=True)),
    # Money given back from the order's payment (refunds that succeeded).
    Column("refunded_amount", BigInteger, nullable=False, server_default=text("0")),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("expire_time", DateTime(timezone=True), nullable=False),
    CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in OrderStatus)})", name="status_known"),
    CheckConstraint("total_amount > 0", name="total_positive"),
    CheckConstraint("refunded_amount >= 0", name="refunded_not_negative"),
    # ListOrders: the caller's orders, newest first.
    Index("ix_orders_user_id_create_time", "user_id", "create_time"),
    # The expiry sweep reads only unpaid orders, oldest deadline first.
    Index(
        "ix_orders_unpaid_expire_time",
        "expire_time",
        postgresql_where=text("status IN ('PENDING_PAYMENT', 'PAYMENT_FAILED')"),
    ),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", ForeignKey("orders.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("variant_id", ForeignKey("products.variant_id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

# The domain's plain classes, mapped onto their tables (imperative mapping):
# the domain knows nothing of SQLAlchemy.
Base.registry.map_imperatively(model.Product, products)
Base.registry.map_imperatively(model.OrderItem, order_items)
Base.registry.map_imperatively(
    model.Order,
    orders,
    properties={
        "items": relationship(model.OrderItem, order_by=order_items.c.line_no, lazy="selectin"),
    },
)


class AppliedPaymentEvent(Base):
    """Payment events already applied: the idempotency record."""

    __tablename__ = "applied_payment_events"

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    version: Mapped[int]
    apply_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # Newest applied version per payment: older events are stale.
    __table_args__ = (
        Index("ix_applied_payment_events_payment_id_version", "payment_id", "version"),
        Index("ix_applied_payment_events_apply_time", "apply_time"),  # retention
    )


class StreamCheckpoint(Base):
    """How far the payment event stream has been applied."""

    __tablename__ = "stream_checkpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(64))
    txid: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderEvent(Base):
    """Outbox of the order service, in the same Debezium-compatible layout."""

    __tablename__ = "order_events"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    aggregatetype: Mapped[str] = mapped_column(String(64))
    aggregateid: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_order_events_create_time", "create_time"),)  # retention


# RetryPayment's rate limit, shared by every replica: one row per key and
# fixed window, counted up atomically; old windows are pruned.
rate_limit_hits = Table(
    "rate_limit_hits",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("hits", Integer, nullable=False),
    Index("ix_rate_limit_hits_window_start", "window_start"),
)
