"""StreamPaymentEvents: every outbox event, once per cursor, resumable, and
never skipping an event whose transaction commits late."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from payment.v1 import payment_pb2
from payment.v1 import payment_service_pb2 as ps

from paykit.database import libpq_url


def create(stub: Any, order_id: str) -> Any:
    return stub.CreateOrGetPayment(
        ps.CreateOrGetPaymentRequest(
            order_id=order_id, user_id="user-1", amount=150_000, provider=payment_pb2.PROVIDER_VNPAY
        )
    ).payment


class Follower:
    """Reads a stream in a thread into a queue."""

    def __init__(self, stub: Any, cursor: str = "") -> None:
        self.items: queue.Queue[Any] = queue.Queue()
        self.call = stub.StreamPaymentEvents(ps.StreamPaymentEventsRequest(after_cursor=cursor), timeout=30)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.call:
                self.items.put(item)
        except grpc.RpcError:
            pass

    def take(self, n: int, timeout: float = 10) -> list[Any]:
        return [self.items.get(timeout=timeout) for _ in range(n)]

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def test_stream_delivers_and_resumes(stub: Any) -> None:
    a = create(stub, "ORD-A")
    follower = Follower(stub)
    try:
        first = follower.take(1)[0]
        assert (first.event.type, first.event.payment.id, first.event.version) == ("payment.created", a.id, 1)
        b = create(stub, "ORD-B")  # arrives on the open stream
        second = follower.take(1)[0]
        assert second.event.payment.id == b.id
    finally:
        follower.close()
    resumed = Follower(stub, cursor=first.cursor)
    try:
        assert [r.event.payment.id for r in resumed.take(1)] == [b.id]
        with pytest.raises(queue.Empty):
            resumed.items.get(timeout=0.5)
    finally:
        resumed.close()


def test_a_late_committing_transaction_is_not_skipped(stub: Any, db_url: str) -> None:
    follower = Follower(stub)
    try:
        with psycopg.connect(libpq_url(db_url)) as slow:
            # A transaction that writes an event, then stays open while a
            # newer one commits.
            slow_id = uuid.uuid4()
            slow.execute(
                "INSERT INTO outbox_events (id, aggregatetype, aggregateid, type, payload, create_time)"
                " VALUES (%s, 'payment', 'slow', 'test.slow', %s, now())",
                (slow_id, json.dumps({"id": str(slow_id), "type": "test.slow"})),
            )
            fast = create(stub, "ORD-FAST")
            time.sleep(0.5)
            assert follower.items.empty(), "the newer event must wait for the older transaction"
            slow.commit()
        got = follower.take(2)
        assert [g.event.type for g in got] == ["test.slow", "payment.created"]
        assert got[1].event.payment.id == fast.id
    finally:
        follower.close()


def test_bad_cursor_is_invalid_argument(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        next(iter(stub.StreamPaymentEvents(ps.StreamPaymentEventsRequest(after_cursor="nope"), timeout=5)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
