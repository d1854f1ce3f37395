"""Payment events applied in batches (one transaction per batch, with the
checkpoint), on real PostgreSQL: each event once by id, never over a newer
version, and one bad event never loses the others."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from order_service.domain.model import Line, NewOrder
from order_service.domain.payments import PaymentEvent, PaymentProvider, PaymentStatus
from paykit.cursor import format_cursor
from tests.conftest import FakeClock, make_order_settings
from tests.integration.helpers import rows

_seq = iter(range(1, 10_000))


@pytest.fixture
def orders_app(order_db_url: str, clock: FakeClock) -> Iterator[Any]:
    """The order service's use cases on a real database; no follower runs
    (the payment service is never called here)."""
    from order_service.bootstrap import bootstrap

    app = bootstrap(make_order_settings(1), order_db_url, clock=clock)
    yield app
    app.close()


def new_order(app: Any) -> Any:
    return app.use_cases.create_order(
        NewOrder("u1", (Line("mug-blue", 1),), "Nguyen Van A", "+84901234567", "1 Le Loi, HCMC", "")
    )


def event(order: Any, payment_id: str, type_: str, version: int, **changes: Any) -> PaymentEvent:
    values: dict[str, Any] = {
        "cursor": format_cursor(1000, next(_seq)),
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "payment_id": payment_id,
        "order_id": str(order.id),
        "user_id": "u1",
        "status": PaymentStatus.SUCCEEDED if type_ == "payment.succeeded" else PaymentStatus.PENDING,
        "provider": PaymentProvider.VNPAY,
        "amount": order.total_amount,
        "currency": order.currency,
        "version": version,
        "attempt": 1,
    }
    values.update(changes)
    return PaymentEvent(**values)


def status(order_db_url: str, order: Any) -> str:
    return str(rows(order_db_url, "SELECT status FROM orders WHERE id = %s", order.id)[0][0])


def checkpoint(order_db_url: str) -> list[Any]:
    return rows(order_db_url, "SELECT cursor FROM stream_checkpoints")


def paid_events(order_db_url: str) -> int:
    return int(rows(order_db_url, "SELECT count(*) FROM order_events WHERE type = 'order.paid'")[0][0])


def test_a_batch_applies_once_with_its_checkpoint(orders_app: Any, order_db_url: str) -> None:
    a, b = new_order(orders_app), new_order(orders_app)
    pa, pb = str(uuid.uuid4()), str(uuid.uuid4())
    a_created = event(a, pa, "payment.created", 1)
    batch = [
        a_created,
        event(b, pb, "payment.created", 1),
        event(a, pa, "payment.succeeded", 2),
        replace(a_created, cursor=format_cursor(1000, next(_seq))),  # the same event again
    ]
    assert orders_app.use_cases.apply_payment_events(batch) == [True, True, True, False]
    assert status(order_db_url, a) == "PAID" and status(order_db_url, b) == "PENDING_PAYMENT"
    assert paid_events(order_db_url) == 1
    assert checkpoint(order_db_url) == [(batch[-1].cursor,)]
    # Redelivered (a reconnect from an older checkpoint): nothing changes.
    assert orders_app.use_cases.apply_payment_events(batch[:3]) == [False, False, False]
    assert paid_events(order_db_url) == 1
    assert checkpoint(order_db_url) == [(batch[-1].cursor,)], "the checkpoint never moves back"
    assert rows(order_db_url, "SELECT count(*) FROM applied_payment_events") == [(3,)]


def test_an_older_version_later_in_the_batch_is_ignored(orders_app: Any, order_db_url: str) -> None:
    order = new_order(orders_app)
    payment = str(uuid.uuid4())
    failed = event(
        order, payment, "payment.failed", 3, status=PaymentStatus.FAILED, failure_reason="declined"
    )
    created = event(order, payment, "payment.created", 1)
    # Version 3 first, then version 1: the older one changes nothing.
    assert orders_app.use_cases.apply_payment_events([failed, created]) == [True, False]
    assert status(order_db_url, order) == "PAYMENT_FAILED"
    # Versions in order across two batches: the newest wins again.
    other = new_order(orders_app)
    second = str(uuid.uuid4())
    orders_app.use_cases.apply_payment_events([event(other, second, "payment.created", 1)])
    applied = orders_app.use_cases.apply_payment_events(
        [
            event(other, second, "payment.succeeded", 2),
            event(other, second, "payment.created", 1),
        ]
    )
    assert applied == [True, False]
    assert status(order_db_url, other) == "PAID"


def test_a_poisoned_event_does_not_lose_the_others(orders_app: Any, order_db_url: str) -> None:
    """The batch's transaction fails on one event: the events before it are
    applied one by one (and checkpointed), the bad one raises with the
    checkpoint before it, and those after it wait for the retry: none is
    lost, none is applied out of order."""
    a, b = new_order(orders_app), new_order(orders_app)
    pa, pb = str(uuid.uuid4()), str(uuid.uuid4())
    good = event(a, pa, "payment.succeeded", 2)
    poison = event(b, pb, "payment.created", 2**40)  # out of the column's range
    after = event(b, pb, "payment.succeeded", 2)
    with pytest.raises(Exception, match="out of range"):
        orders_app.use_cases.apply_payment_events([good, poison, after])
    assert status(order_db_url, a) == "PAID"
    assert status(order_db_url, b) == "PENDING_PAYMENT"
    assert checkpoint(order_db_url) == [(good.cursor,)]
    # The retry from the checkpoint, past a fixed event this time.
    fixed = event(b, pb, "payment.created", 1, cursor=poison.cursor, event_id=poison.event_id)
    assert orders_app.use_cases.apply_payment_events([fixed, after]) == [True, True]
    assert status(order_db_url, b) == "PAID"
    assert checkpoint(order_db_url) == [(after.cursor,)]
    assert paid_events(order_db_url) == 2


def test_the_follower_applies_a_backlog_in_few_transactions(
    server: Any, stub: Any, db_url: str, order_db_url: str, clock: FakeClock
) -> None:
    """Events that piled up while the order service was down arrive in a
    burst: the follower applies them in batches, far fewer transactions than
    events, every one applied, the checkpoint at the newest."""
    import threading

    from payment.v1 import payment_pb2
    from payment.v1 import payment_service_pb2 as ps
    from sqlalchemy import event as sa_event

    from order_service.bootstrap import bootstrap
    from order_service.entrypoints import server as order_grpc

    count = 60
    for i in range(count):
        stub.CreateOrGetPayment(
            ps.CreateOrGetPaymentRequest(
                order_id=f"ORD-BACKLOG-{i}", user_id="u1", amount=150_000, provider=payment_pb2.PROVIDER_VNPAY
            )
        )
    app = bootstrap(make_order_settings(server.port), order_db_url, clock=clock)
    commits: list[str] = []

    def on_commit(conn: Any) -> None:
        if threading.current_thread().name == "events":
            commits.append("COMMIT")

    sa_event.listen(app.engine, "commit", on_commit)
    running = order_grpc.start(app, port=0, sweep=False)
    try:
        deadline = time.monotonic() + 20
        while rows(order_db_url, "SELECT count(*) FROM applied_payment_events") != [(count,)]:
            assert time.monotonic() < deadline, "the backlog was not applied"
            time.sleep(0.02)
    finally:
        running.stop(grace=0)
    assert 1 <= len(commits) <= count // 3, f"{len(commits)} transactions for {count} events"
    newest = rows(
        db_url, "SELECT txid::text || '-' || seq FROM outbox_events ORDER BY txid DESC, seq DESC LIMIT 1"
    )
    assert rows(order_db_url, "SELECT cursor FROM stream_checkpoints") == newest
