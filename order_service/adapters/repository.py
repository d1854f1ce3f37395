"""Every query the order service runs; the use cases reach it through the
service layer's `Orders` port. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, joinedload

from order_service.adapters.orm import (
    AppliedPaymentEvent,
    OrderEvent,
    StreamCheckpoint,
    orders,
    products,
    rate_limit_hits,
)
from order_service.domain.model import PAYABLE, Order, Product

# Namespaces the advisory-lock key of a user's order creation.
_USER_LOCK_PREFIX = "order_service.user:"


class OrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        # Orders this transaction holds locked (FOR UPDATE): until it ends no
        # one else can change them, so the loaded object is the row.
        self._locked: dict[uuid.UUID, Order] = {}

    def products(self, after: str, limit: int) -> Sequence[Product]:
        stmt = (
            select(Product).where(products.c.variant_id > after).order_by(products.c.variant_id).limit(limit)
        )
        return self.session.scalars(stmt).all()

    def products_by_id(self, variant_ids: list[str]) -> dict[str, Product]:
        stmt = select(Product).where(products.c.variant_id.in_(variant_ids))
        return {p.variant_id: p for p in self.session.scalars(stmt)}

    def take_stock(self, variant_id: str, quantity: int) -> bool:
        """Atomically reserves stock; False when there is not enough. No
        read-then-write window: the check and the decrement are one UPDATE."""
        stmt = (
            update(products)
            .where(products.c.variant_id == variant_id, products.c.stock >= quantity)
            .values(stock=products.c.stock - quantity)
            .returning(products.c.variant_id)
        )
        return self.session.execute(stmt).first() is not None

    def return_stock(self, variant_id: str, quantity: int) -> None:
        self.session.execute(
            update(products)
            .where(products.c.variant_id == variant_id)
            .values(stock=products.c.stock + quantity)
        )

    def add(self, order: Order) -> None:
        """Stores a new order; the database assigns its order_code now."""
        self.session.add(order)
        self.session.flush()

    def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        if for_update and order_id in self._locked:
            return self._locked[order_id]
        # The order and its items in one round trip.
        stmt = select(Order).where(orders.c.id == order_id).options(joinedload(Order.items))  # type: ignore[arg-type]
        if for_update:
            stmt = stmt.with_for_update(of=orders)
        order = self.session.scalars(stmt.execution_options(populate_existing=True)).unique().one_or_none()
        if for_update and order is not None:
            self._locked[order_id] = order
        return order

    def lock(self, order_ids: Sequence[uuid.UUID]) -> None:
        """Locks and loads these orders (those that exist) in one round trip,
        in id order; get(..., for_update=True) then reads none of them again."""
        todo = sorted(set(order_ids) - self._locked.keys())
        if not todo:
            return
        stmt = (
            select(Order)
            .where(orders.c.id.in_(todo))
            .options(joinedload(Order.items))  # type: ignore[arg-type]
            .order_by(orders.c.id)
            .with_for_update(of=orders)
            .execution_options(populate_existing=True)
        )
        for order in self.session.scalars(stmt).unique():
            self._locked[order.id] = order

    def for_user(
        self, user_id: str, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[Order]:
        stmt = select(Order).where(orders.c.user_id == user_id)
        if before is not None:
            stmt = stmt.where(func.row(orders.c.create_time, orders.c.id) < func.row(*before))
        return self.session.scalars(
            stmt.order_by(orders.c.create_time.desc(), orders.c.id.desc()).limit(limit)
        ).all()

    def due_for_expiry(
        self, now: datetime, limit: int, after: tuple[datetime, uuid.UUID] | None = None
    ) -> Sequence[Order]:
        stmt = select(Order).where(
            orders.c.status.in_(("PENDING_PAYMENT", "PAYMENT_FAILED")), orders.c.expire_time < now
        )
        if after is not None:
            stmt = stmt.where(func.row(orders.c.expire_time, orders.c.id) > func.row(*after))
        return self.session.scalars(stmt.order_by(orders.c.expire_time, orders.c.id).limit(limit)).all()

    def claim_newer(self, event_id: uuid.UUID, payment_id: uuid.UUID, version: int, now: datetime) -> bool:
        """Records that an event is being applied, and whether it is new and
        newer than every other version applied for its payment: one round
        trip (the statement does not see its own insert, and excludes it).
        On the transaction's connection: pending order changes stay pending."""
        row = (
            self.session.connection()
            .execute(
                text(
                    "WITH claimed AS (INSERT INTO applied_payment_events"
                    " (event_id, payment_id, version, apply_time)"
                    " VALUES (:e, :p, :v, :now) ON CONFLICT DO NOTHING RETURNING event_id)"
                    " SELECT EXISTS (SELECT 1 FROM claimed) AND NOT EXISTS"
                    " (SELECT 1 FROM applied_payment_events"
                    " WHERE payment_id = :p AND version >= :v AND event_id <> :e)"
                ),
                {"e": event_id, "p": payment_id, "v": version, "now": now},
            )
            .scalar()
        )
        return bool(row)

    def checkpoint(self, name: str) -> str | None:
        """The stored cursor of a stream, None before its first event."""
        checkpoint = self.session.get(StreamCheckpoint, name)
        return checkpoint.cursor if checkpoint else None

    def advance_checkpoint(self, name: str, cursor: str, txid: int, seq: int, now: datetime) -> None:
        """Moves the checkpoint forward only: replicas that follow the same
        stream never move it back."""
        stmt = insert(StreamCheckpoint).values(name=name, cursor=cursor, txid=txid, seq=seq, update_time=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[StreamCheckpoint.name],
            set_={"cursor": cursor, "txid": txid, "seq": seq, "update_time": now},
            where=func.row(StreamCheckpoint.txid, StreamCheckpoint.seq) < func.row(txid, seq),
        )
        self.session.execute(stmt)

    def lock_user(self, user_id: str) -> None:
        """Serialises this user's order creation until the transaction ends,
        so that concurrent CreateOrder calls cannot all pass the limit."""
        key = func.hashtextextended(_USER_LOCK_PREFIX + user_id, 0)
        self.session.execute(select(func.pg_advisory_xact_lock(key)))

    def open_orders(self, user_id: str) -> int:
        stmt = select(func.count()).where(
            orders.c.user_id == user_id, orders.c.status.in_([s.value for s in PAYABLE])
        )
        return int(self.session.scalar(stmt) or 0)

    def hit(self, key: str, window_start: datetime, limit: int) -> bool:
        """Counts one hit in the window; False (and nothing counted) when the
        window already holds `limit` hits. One statement: atomic across replicas."""
        stmt = (
            insert(rate_limit_hits)
            .values(key=key, window_start=window_start, hits=1)
            .on_conflict_do_update(
                index_elements=[rate_limit_hits.c.key, rate_limit_hits.c.window_start],
                set_={"hits": rate_limit_hits.c.hits + 1},
                where=rate_limit_hits.c.hits < limit,
            )
            .returning(rate_limit_hits.c.hits)
        )
        return self.session.execute(stmt).first() is not None

    def prune_rate_limits(self, before: datetime) -> int:
        result = self.session.execute(delete(rate_limit_hits).where(rate_limit_hits.c.window_start < before))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def prune_applied_events(self, before: datetime, limit: int) -> int:
        newer = AppliedPaymentEvent.__table__.alias("newer")
        doomed = (
            select(AppliedPaymentEvent.event_id)
            .where(
                AppliedPaymentEvent.apply_time < before,
                select(newer.c.event_id)
                .where(
                    newer.c.payment_id == AppliedPaymentEvent.payment_id,
                    newer.c.version > AppliedPaymentEvent.version,
                )
                .exists(),
            )
            .limit(limit)
        )
        stmt = delete(AppliedPaymentEvent).where(AppliedPaymentEvent.event_id.in_(doomed.scalar_subquery()))
        return int(self.session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]

    def prune_events(self, before: datetime, limit: int) -> int:
        doomed = select(OrderEvent.id).where(OrderEvent.create_time < before).limit(limit)
        stmt = delete(OrderEvent).where(OrderEvent.id.in_(doomed.scalar_subquery()))
        return int(self.session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]

    def add_event(self, event_type: str, order: Order, now: datetime) -> None:
        """An order event in the outbox, in the caller's transaction: a Core
        INSERT sent at once on the transaction's connection (not through the
        session, so the order's own changes are not flushed for it: a batch
        of events sends them together)."""
        self.session.connection().execute(
            _insert_order_event,
            {
                "id": uuid.uuid4(),
                "aggregatetype": "order",
                "aggregateid": str(order.id),
                "type": event_type,
                "payload": order_payload(order),
                "create_time": now,
            },
        )


_insert_order_event = insert(cast(Table, OrderEvent.__table__))


def order_payload(order: Order) -> dict[str, Any]:
    """The outbox payload of an order event."""
    return {
        "order_id": str(order.id),
        "order_code": order.order_code,
        "user_id": order.user_id,
        "status": order.status,
        "status_reason": order.status_reason,
        "total_amount": order.total_amount,
        "currency": order.currency,
        "payment_id": str(order.payment_id or ""),
        "refunded_amount": order.refunded_amount,
    }
