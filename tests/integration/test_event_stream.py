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


def _wait_listening(server: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not server.servicer.doorbell.listening:
        assert time.monotonic() < deadline, "the outbox listener never connected"
        time.sleep(0.01)


def test_a_commit_wakes_the_stream_at_once(server: Any, stub: Any) -> None:
    """The fallback poll is 10 s: an event still arrives within 50 ms of its
    commit (NOTIFY from the outbox trigger), every time."""
    assert server.servicer.fallback_poll_seconds == 10.0
    _wait_listening(server)
    follower = Follower(stub)
    try:
        create(stub, "ORD-WAKE-0")
        follower.take(1)
        delays = []
        for i in range(1, 6):
            time.sleep(0.3)  # the stream is idle, waiting
            start = time.monotonic()
            created = create(stub, f"ORD-WAKE-{i}")
            got = follower.take(1, timeout=5)[0]
            delays.append(time.monotonic() - start)
            assert got.event.payment.id == created.id
        assert max(delays) < 0.05, delays
    finally:
        follower.close()


def test_events_are_stored_once_as_streamed(stub: Any, db_url: str) -> None:
    """The outbox row holds the serialized PaymentEvent the stream sends, and
    payload (what Debezium routes) is the same event in protobuf JSON."""
    created = create(stub, "ORD-BYTES")
    follower = Follower(stub)
    try:
        got = follower.take(1)[0]
    finally:
        follower.close()
    with psycopg.connect(libpq_url(db_url)) as conn:
        stored, payload = conn.execute("SELECT event, payload FROM outbox_events").fetchone()  # type: ignore[misc]
    assert got.event.SerializeToString() == bytes(stored)
    assert payload["payment"]["id"] == created.id == got.event.payment.id
    assert payload["id"] == got.event.id and payload["version"] == str(got.event.version)


def test_a_lost_listener_falls_back_to_polling(server: Any, stub: Any, db_url: str) -> None:
    """The LISTEN connection killed (as by a database restart): it comes
    back, and events flow meanwhile and after."""
    _wait_listening(server)
    follower = Follower(stub)
    try:
        with psycopg.connect(libpq_url(db_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'payment_service.outbox_listener' AND datname = current_database()"
            )
        a = create(stub, "ORD-LOST-A")
        assert follower.take(1)[0].event.payment.id == a.id
        _wait_listening(server)
        listener = server.listener
        deadline = time.monotonic() + 10
        while listener.connects < 2:
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.01)
        _wait_listening(server)
        time.sleep(0.3)
        start = time.monotonic()
        b = create(stub, "ORD-LOST-B")
        assert follower.take(1)[0].event.payment.id == b.id
        assert time.monotonic() - start < 0.05
    finally:
        follower.close()


def test_an_event_held_behind_a_transaction_without_events_comes_when_it_ends(
    server: Any, stub: Any, db_url: str
) -> None:
    """An older transaction that writes no event holds a committed event
    back, and its own commit sends no NOTIFY: the stream looks again by
    itself, long before the 10 s fallback poll."""
    _wait_listening(server)
    follower = Follower(stub)
    try:
        with psycopg.connect(libpq_url(db_url)) as blocker:
            blocker.execute("SELECT pg_current_xact_id()")  # holds a transaction id, writes nothing
            created = create(stub, "ORD-HELD")
            time.sleep(0.3)
            assert follower.items.empty(), "the event must wait for the older transaction"
            blocker.commit()
            ended = time.monotonic()
        got = follower.take(1, timeout=5)[0]
        assert got.event.payment.id == created.id
        assert time.monotonic() - ended < 0.5
    finally:
        follower.close()
