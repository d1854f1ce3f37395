"""The order service's own database: catalog, orders, their lines, the
payment events already applied, and its own outbox."""

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
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from order_service.domain.model import OrderStatus
from paykit.database import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Product(Base):
    __tablename__ = "products"

    variant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int]

    __table_args__ = (
        CheckConstraint("price > 0", name="price_positive"),
        # The last line of defence against overselling.
        CheckConstraint("stock >= 0", name="stock_not_negative"),
    )


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_code: Mapped[int] = mapped_column(BigInteger, Identity(start=100_000), unique=True)
    user_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    receiver_name: Mapped[str] = mapped_column(String(100))
    receiver_phone: Mapped[str] = mapped_column(String(16))
    shipping_address: Mapped[str] = mapped_column(String(500))
    note: Mapped[str] = mapped_column(String(500))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.line_no", lazy="selectin"
    )

    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in OrderStatus)})", name="status_known"),
        CheckConstraint("total_amount > 0", name="total_positive"),
        # ListOrders: the caller's orders, newest first.
        Index("ix_orders_user_id_create_time", "user_id", "create_time"),
        # The expiry sweep reads only unpaid orders, oldest deadline first.
        Index(
            "ix_orders_unpaid_expire_time",
            "expire_time",
            postgresql_where=text("status IN ('PENDING_PAYMENT', 'PAYMENT_FAILED')"),
        ),
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[str] = mapped_column(ForeignKey("products.variant_id"))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_price: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(back_populates="items")

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)


class AppliedPaymentEvent(Base):
    """Payment events already applied: the idempotency record."""

    __tablename__ = "applied_payment_events"

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    version: Mapped[int]
    apply_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # Newest applied version per payment: older events are stale.
    __table_args__ = (Index("ix_applied_payment_events_payment_id_version", "payment_id", "version"),)


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
