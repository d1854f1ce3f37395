"""Use cases of the order service. One transaction each; the payment
service is called outside any transaction so no lock waits on the network."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from order_service.domain import model
from order_service.domain.errors import DomainError, InvalidArgument, NotFound, OutOfStock, ResourceExhausted
from order_service.domain.model import Order, OrderPolicy, OrderStatus, Product
from order_service.domain.payments import Checkout, PaymentAttempt, PaymentEvent, PaymentProvider
from order_service.service_layer.ports import Payments
from order_service.service_layer.unit_of_work import UnitOfWork
from paykit.cursor import parse_cursor
from paykit.text import check_text

log = logging.getLogger("order_service")
Clock = Callable[[], datetime]
STREAM_NAME = "payment_events"


def _page_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _read_page_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.one("page_token", "is not a token this service issued") from None


def _page_size(value: int, default: int) -> int:
    if value < 0 or value > 100:
        raise InvalidArgument.one("page_size", "must be between 0 and 100")
    return value or default


@dataclass(frozen=True)
class Retention:
    """How long the order service keeps what it only needs for a while."""

    applied_events: timedelta = timedelta(days=30)  # APPLIED_EVENTS_RETENTION_DAYS
    outbox: timedelta = timedelta(days=7)  # OUTBOX_RETENTION_DAYS


def _window(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The fixed window `now` falls in, aligned on the epoch: (start, end)."""
    size = window.total_seconds()
    start = datetime.fromtimestamp(now.timestamp() // size * size, tz=UTC)
    return start, start + window


def _take_stock(uow: UnitOfWork, new: model.NewOrder) -> None:
    # A fixed order (by variant) over the row locks the UPDATEs take,
    # so concurrent checkouts of overlapping carts cannot deadlock.
    for line in sorted(new.lines, key=lambda line: line.variant_id):
        if not uow.orders.take_stock(line.variant_id, line.quantity):
            raise OutOfStock(line.variant_id, line.quantity)


def _take_again(uow: UnitOfWork, order: Order) -> bool:
    """Takes every line's stock again for an order whose stock was given
    back, or none: True when all of it was there. Each take is one
    conditional UPDATE (never below zero, whatever runs at the same time);
    lines already taken are given back when a later one is short, in the
    same transaction."""
    taken: list[model.OrderItem] = []
    for item in sorted(order.items, key=lambda item: item.variant_id):
        if not uow.orders.take_stock(item.variant_id, item.quantity):
            for done in taken:
                uow.orders.return_stock(done.variant_id, done.quantity)
            return False
        taken.append(item)
    return True


def _give_back(uow: UnitOfWork, order: Order) -> None:
    for item in sorted(order.items, key=lambda item: item.variant_id):
        uow.orders.return_stock(item.variant_id, item.quantity)


class OrderUseCases:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        payments: Payments,
        clock: Clock,
        policy: OrderPolicy,
    ) -> None:
        self._uow_factory = uow_factory
        self._payments = payments
        self._clock = clock
        self._policy = policy

    def list_products(self, page_size: int, page_token: str) -> tuple[Sequence[Product], str]:
        limit = _page_size(page_size, 50)
        after = _read_page_token(page_token) if page_token else ""
        with self._uow_factory() as uow:
            products = uow.orders.products(after, limit + 1)
        more = len(products) > limit
        products = products[:limit]
        return products, _page_token(products[-1].variant_id) if more else ""

    def create_order(self, new: model.NewOrder) -> Order:
        now = self._clock()
        with self._uow_factory() as uow:
            uow.orders.lock_user(new.user_id)
            limit = self._policy.max_open_orders
            if uow.orders.open_orders(new.user_id) >= limit:
                raise ResourceExhausted(
                    f"you already have {limit} orders awaiting payment; pay or cancel one first",
                    self._policy.order_ttl,
                )
            products = uow.orders.products_by_id([line.variant_id for line in new.lines])
            order = model.place_order(
                new, products, order_id=uuid.uuid4(), now=now, ttl=self._policy.order_ttl
            )
            _take_stock(uow, new)
            uow.orders.add(order)
            uow.orders.add_event("order.created", order, now)
            uow.commit()
        return order

    def _own_order(self, uow: UnitOfWork, user_id: str, order_id: str, *, for_update: bool = False) -> Order:
        if not model.ORDER_ID_RE.fullmatch(order_id):
            raise NotFound(f"order {order_id} not found")
        order = uow.orders.get(uuid.UUID(order_id), for_update=for_update)
        # Another user's order is indistinguishable from a missing one.
        if order is None or order.user_id != user_id:
            raise NotFound(f"order {order_id} not found")
        return order

    def get_order(self, user_id: str, order_id: str) -> Order:
        with self._uow_factory() as uow:
            return self._own_order(uow, user_id, order_id)

    def list_orders(self, user_id: str, page_size: int, page_token: str) -> tuple[Sequence[Order], str]:
        limit = _page_size(page_size, 20)
        before = None
        if page_token:
            stamp, _, last_id = _read_page_token(page_token).partition("|")
            try:
                before = (datetime.fromisoformat(stamp), uuid.UUID(last_id))
            except ValueError:
                raise InvalidArgument.one("page_token", "is not a token this service issued") from None
        with self._uow_factory() as uow:
            orders = uow.orders.for_user(user_id, before, limit + 1)
        more = len(orders) > limit
        orders = orders[:limit]
        token = _page_token(f"{orders[-1].create_time.isoformat()}|{orders[-1].id}") if more else ""
        return orders, token

    def retry_payment(
        self,
        user_id: str,
        order_id: str,
        *,
        provider: PaymentProvider | None,
        return_url: str,
        client_ip: str,
        user_agent: str,
        idempotency_key: str,
    ) -> tuple[Order, Checkout]:
        now = self._clock()
        with self._uow_factory() as uow:
            # One transaction: the order (with its items, one SELECT), and the
            # call counted only when the order is payable.
            order = self._own_order(uow, user_id, order_id)
            model.check_payable(order, now, self._policy.retry_min_remaining)
            self._count_retry(uow, user_id, now)
            uow.commit()
        checkout = self._payments.create_or_get_payment(
            PaymentAttempt(
                order_id=str(order.id),
                user_id=user_id,
                amount=order.total_amount,
                currency=order.currency,
                provider=provider,
                description=f"Thanh toan don hang {order.order_code}",
                client_ip=client_ip,
                user_agent=user_agent,
                return_url=return_url,
                # No key from the client, none sent: the payment service then
                # hands out a reusable pending attempt on one read, no lock
                # and no write (and opens a new one under the order's lock
                # otherwise, so concurrent calls still get one attempt).
                request_id=idempotency_key,
                not_after=order.expire_time,
            )
        )
        if order.is_current(checkout.payment_id):
            # The attempt the order already has (reused): nothing to record.
            # A cancel or expiry racing this call releases that attempt itself.
            return order, checkout
        now = self._clock()
        with self._uow_factory() as uow:
            order = self._own_order(uow, user_id, order_id, for_update=True)
            # The newest attempt is the current one, whatever the order's
            # status: a cancel that raced this call releases it below.
            if order.attach_payment(checkout.payment_id, checkout.attempt, now):
                uow.commit()
        if OrderStatus(order.status) in model.UNPAID:
            return order, checkout
        # The order was paid, canceled or expired while the attempt opened:
        # the shopper gets no checkout for it, and it is closed.
        if not (order.paid_payment_id and str(order.paid_payment_id) == checkout.payment_id):
            self._release(checkout.payment_id, f"order {order.status.lower()}", order)
        model.check_payable(order)
        raise AssertionError("unreachable: check_payable refuses a closed order")  # pragma: no cover

    def _count_retry(self, uow: UnitOfWork, user_id: str, now: datetime) -> None:
        """At most policy.retry_limit RetryPayment calls per user and window,
        counted in PostgreSQL so the limit holds over every replica."""
        start, end = _window(now, self._policy.retry_window)
        if not uow.orders.hit(f"retry_payment:{user_id}", start, self._policy.retry_limit):
            raise ResourceExhausted("too many payment retries; wait a moment", end - now)

    def _close_unpaid(
        self, uow: UnitOfWork, order: Order, status: OrderStatus, reason: str, now: datetime
    ) -> None:
        """Cancel or expire: the one place stock comes back, guarded by the
        status check under the order's row lock, so it happens once."""
        if not order.close(status, reason, now):
            return
        _give_back(uow, order)
        uow.orders.add_event(f"order.{status.value.lower()}", order, now)

    def cancel_order(self, user_id: str, order_id: str, reason: str) -> Order:
        check_text("reason", reason, 255)
        now = self._clock()
        with self._uow_factory() as uow:
            order = self._own_order(uow, user_id, order_id, for_update=True)
            model.check_cancelable(order)
            self._close_unpaid(uow, order, OrderStatus.CANCELED, reason or "canceled by the shopper", now)
            uow.commit()
        self._release_payment(order, "order canceled")
        return order

    def _release_payment(self, order: Order, reason: str) -> None:
        if order.payment_id is not None:
            self._release(str(order.payment_id), reason, order)

    def _release(self, payment_id: str, reason: str, order: Order) -> None:
        """Best effort: an uncanceled payment expires by itself (never after
        the order), and money that still arrives for it puts the order up
        for review."""
        try:
            self._payments.cancel_payment(payment_id, reason)
        except Exception:  # noqa: BLE001 - see docstring
            log.info("could not cancel the payment of a closed order", extra={"order_id": str(order.id)})

    def expire_due_orders(self, limit: int = 100) -> int:
        """Settles every unpaid order past its deadline, `limit` at a time.
        Before releasing an order's stock it asks the payment service about
        its money (outside any transaction): money taken pays the order, an
        attempt that may still take money (or no answer) leaves the order
        for the next sweep. Returns how many orders changed."""
        now = self._clock()
        changed = 0
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            with self._uow_factory() as uow:
                due = uow.orders.due_for_expiry(now, limit, after)
            for order in due:
                changed += self._settle_due(order, now)
            if len(due) < limit:
                return changed
            after = (due[-1].expire_time, due[-1].id)

    def _settle_due(self, due: Order, now: datetime) -> int:
        try:
            payments = self._payments.payments_of_order(str(due.id), due.user_id)
        except DomainError:
            log.warning(
                "cannot ask the payment service about an expiring order; it waits",
                extra={"order_id": str(due.id)},
            )
            return 0
        with self._uow_factory() as uow:
            order = uow.orders.get(due.id, for_update=True)
            if order is None:
                return 0
            action, change = order.settle_expiry(payments, now)
            if action == model.ExpiryAction.WAIT:
                log.info(
                    "an expiring order has an attempt that may still take money; it waits",
                    extra={"order_id": str(order.id)},
                )
            if change is not None:
                if change.status == OrderStatus.EXPIRED:
                    _give_back(uow, order)
                uow.orders.add_event(change.event, order, now)
            uow.commit()
        if change is not None and change.status == OrderStatus.EXPIRED:
            self._release_payment(order, "order expired")
        return int(change is not None)

    def prune(self, retention: Retention, batch: int = 1000) -> dict[str, int]:
        """Drops what the order service no longer needs, in short batches
        (one transaction each, so no lock is held long): rate-limit windows
        past, applied-event records older than retention.applied_events (each
        payment's newest kept), its own outbox older than retention.outbox."""
        now = self._clock()
        counts = {"rate_limit_hits": 0, "applied_payment_events": 0, "order_events": 0}
        with self._uow_factory() as uow:
            counts["rate_limit_hits"] = uow.orders.prune_rate_limits(now - 2 * self._policy.retry_window)
            uow.commit()
        steps: list[tuple[str, Callable[[UnitOfWork], int]]] = [
            (
                "applied_payment_events",
                lambda u: u.orders.prune_applied_events(now - retention.applied_events, batch),
            ),
            ("order_events", lambda u: u.orders.prune_events(now - retention.outbox, batch)),
        ]
        for name, step in steps:
            while True:
                with self._uow_factory() as uow:
                    deleted = step(uow)
                    uow.commit()
                counts[name] += deleted
                if deleted < batch:
                    break
        return counts

    def stream_cursor(self) -> str:
        with self._uow_factory() as uow:
            return uow.orders.checkpoint(STREAM_NAME) or ""

    def payment_events(self) -> Iterator[PaymentEvent]:
        """The payment events after the stored checkpoint, as they come."""
        return self._payments.stream_events(self.stream_cursor())

    def apply_payment_event(self, event: PaymentEvent) -> bool:
        """Applies one payment event at most once (by event id), ignoring
        versions older than one already applied for its payment, and moves
        the stream checkpoint in the same transaction."""
        return self.apply_payment_events([event])[0]

    def apply_payment_events(
        self,
        events: Sequence[PaymentEvent],
        around: Callable[[PaymentEvent], AbstractContextManager[object]] | None = None,
    ) -> list[bool]:
        """apply_payment_event for a batch, in stream order, in one
        transaction with the checkpoint of its last event: each event still
        at most once (by event id) and never over a newer version. When the
        batch fails it is applied again one event per transaction, so one
        bad event cannot hold back the others (it raises on its own, its
        checkpoint not moved). `around(event)`, when given, wraps each
        event's work (a trace span) and sends its SQL inside it; otherwise
        the batch's order changes go out together at commit. Returns
        whether each event changed something."""
        wrap = around or (lambda event: nullcontext())
        now = self._clock()
        try:
            with self._uow_factory() as uow:
                if len(events) > 1:
                    # Every order of the batch, locked and read at once.
                    uow.orders.lock(
                        [uuid.UUID(e.order_id) for e in events if model.ORDER_ID_RE.fullmatch(e.order_id)]
                    )
                applied = []
                for event in events:
                    with wrap(event):
                        applied.append(self._apply_event(uow, event, now))
                        if around is not None:
                            uow.flush()  # its SQL runs now, inside its span
                if cursor := next((e.cursor for e in reversed(events) if e.cursor), ""):
                    txid, seq = parse_cursor(cursor)
                    uow.orders.advance_checkpoint(STREAM_NAME, cursor, txid, seq, now)
                uow.commit()
            return applied
        except Exception:
            if len(events) == 1:
                raise
            log.warning("a batch of payment events failed; applying them one by one", exc_info=True)
        return [self.apply_payment_events([event], around)[0] for event in events]

    def _apply_event(self, uow: UnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        event_id: uuid.UUID | None = None
        payment_id: uuid.UUID | None = None
        try:
            event_id, payment_id = uuid.UUID(event.event_id), uuid.UUID(event.payment_id)
        except ValueError:
            # Not an event about a payment we could act on; never let one
            # malformed row stop the stream behind it.
            log.error(
                "skipping malformed payment event", extra={"event_id": event.event_id, "cursor": event.cursor}
            )
            return False
        return uow.orders.claim_newer(event_id, payment_id, event.version, now) and self._apply(
            uow, event, now
        )

    def _apply(self, uow: UnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        if not model.ORDER_ID_RE.fullmatch(event.order_id):
            return False  # a payment for an order some other system placed
        order = uow.orders.get(uuid.UUID(event.order_id), for_update=True)
        if order is None:
            return False
        change = order.apply_payment_event(
            event, now, late_policy=self._policy.late_payment, reserve=lambda: _take_again(uow, order)
        )
        if change is not None:
            if change.restock:
                # Under the order's row lock, decided on its stock_held flag
                # (cleared in this transaction): once per taking.
                _give_back(uow, order)
            uow.orders.add_event(change.event, order, now)
        return True
