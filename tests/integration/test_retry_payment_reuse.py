"""A "Pay again" on an order whose attempt is reusable costs a read and a
signature: no lock and no write in the payment service, and on the order
side one transaction (the order, read once with its items, and the
rate-limit counter). A client's idempotency key keeps its guarantees."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from order.v1 import order_service_pb2 as os_pb2
from payment.v1 import payment_pb2
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.integration.helpers import rows
from tests.integration.test_orders import U1, checkout

WRITES = ("INSERT", "UPDATE", "DELETE")


def statements(engines: dict[str, Engine], call: Callable[[], Any]) -> dict[str, list[str]]:
    """Every round trip each engine sends during `call` (as
    test_statement_count counts them), the first word of each."""
    seen: dict[str, list[str]] = {name: [] for name in engines}
    listeners: list[tuple[Engine, str, Any]] = []
    for name, engine in engines.items():
        log = seen[name]
        listeners += [
            (engine, "before_cursor_execute", lambda c, cur, stmt, *a, log=log: log.append(_verb(stmt))),
            (engine, "begin", lambda c, log=log: log.append("BEGIN")),
            (engine, "commit", lambda c, log=log: log.append("COMMIT")),
            (engine, "rollback", lambda c, log=log: log.append("ROLLBACK")),
        ]
    for engine, name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        call()
    finally:
        for engine, name, fn in listeners:
            event.remove(engine, name, fn)
    return seen


def _verb(statement: str) -> str:
    words = statement.split(None, 2)
    return "SELECT pg_advisory" if "pg_advisory" in statement else words[0]


def test_pay_again_on_a_reusable_attempt_writes_nothing_but_the_counter(
    order_server: Any, order_stub: Any, server: Any, order_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = checkout(order_stub)
    first = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    # Quiet first: the follower has applied payment.created, the stream waits.
    deadline = time.monotonic() + 10
    while rows(order_db_url, "SELECT count(*) FROM applied_payment_events") != [(1,)]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    engines = {"order": order_server.app.engine, "payment": server.app.engine}
    replies: list[Any] = []
    # The payment service's lock-free reads run in autocommit outside its
    # engine's events (payment_service/adapters/reads.py): counted here.
    reads = server.app.use_cases.reads
    read = reads._rows
    monkeypatch.setattr(
        reads, "_rows", lambda sql, params: (seen_reads.append(_verb(sql)), read(sql, params))[1]
    )
    seen_reads: list[str] = []
    seen = statements(
        engines,
        lambda: replies.append(
            order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
        ),
    )
    seen["payment"] += seen_reads
    again = replies[0]
    assert again.payment_id == first.payment_id and again.checkout_url
    print(f"\nSQL per reused RetryPayment: {seen}")
    # The payment service: reads only, no lock, no write, no commit.
    payment = seen["payment"]
    assert payment and not any(s in WRITES or s.startswith("SELECT pg_advisory") for s in payment), payment
    assert "COMMIT" not in payment
    # The order service: one transaction, the order read once (its items
    # joined) and the per-user rate-limit counter; no second read.
    assert seen["order"] == ["BEGIN", "SELECT", "INSERT", "COMMIT"]


def test_a_client_key_still_replays_and_refuses_changed_parameters(order_stub: Any) -> None:
    order = checkout(order_stub)
    keyed = [*U1, ("idempotency-key", "pay-1")]
    first = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=keyed)
    replay = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=keyed)
    assert replay.payment_id == first.payment_id
    with pytest.raises(grpc.RpcError) as info:
        order_stub.RetryPayment(
            os_pb2.RetryPaymentRequest(order_id=order.id, provider=payment_pb2.PROVIDER_COD), metadata=keyed
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pay-1" in (info.value.details() or "")


def test_pay_again_with_a_new_provider_attaches_the_new_attempt(order_stub: Any) -> None:
    """Not a reuse: the order records the new attempt as its current one."""
    order = checkout(order_stub)
    first = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    other = order_stub.RetryPayment(
        os_pb2.RetryPaymentRequest(order_id=order.id, provider=payment_pb2.PROVIDER_COD), metadata=U1
    )
    assert other.payment_id != first.payment_id
    assert other.order.payment_id == other.payment_id
    got = order_stub.GetOrder(os_pb2.GetOrderRequest(order_id=order.id), metadata=U1).order
    assert got.payment_id == other.payment_id
