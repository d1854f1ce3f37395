""" "Pay again" pressed many times at once: real threads and real processes
against one PostgreSQL database must yield exactly one pending payment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
import pytest
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from paykit.database import libpq_url
from payment_service.gateways.vnpay.protocol import parse_vnpay_time
from tests.conftest import TEST_VNPAY, FakeClock
from tests.integration.helpers import ServerProcess, independent_vnpay_check, rows

CALLERS = 50


def request(amount: int = 150_000) -> ps.CreateOrGetPaymentRequest:
    return ps.CreateOrGetPaymentRequest(
        order_id="ORD-RACE", user_id="user-1", amount=amount, provider=payment_pb2.PROVIDER_VNPAY
    )


def stampede(targets: list[str], make_request: Callable[[], ps.CreateOrGetPaymentRequest]) -> list[Any]:
    """CALLERS calls released together by a barrier, spread over the targets,
    each caller on its own channel (its own HTTP/2 connection)."""
    barrier = threading.Barrier(CALLERS)

    def call(i: int) -> Any:
        with grpc.insecure_channel(targets[i % len(targets)]) as channel:
            stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            barrier.wait(timeout=30)
            return stub.CreateOrGetPayment(make_request(), timeout=30)

    with ThreadPoolExecutor(CALLERS) as pool:
        return list(pool.map(call, range(CALLERS)))


def assert_one_pending(db_url: str, responses: list[Any], attempts: int) -> None:
    intents = {r.payment.payment_intent_id for r in responses}
    assert len(intents) == 1, f"callers saw {len(intents)} different payments"
    assert sum(not r.reused for r in responses) == 1, "exactly one caller creates, the rest reuse"
    assert rows(db_url, "SELECT count(*) FROM payments WHERE status = 'PENDING'") == [(1,)]
    assert rows(db_url, "SELECT count(*) FROM payments") == [(attempts,)]
    assert rows(db_url, "SELECT count(*) FROM outbox_events WHERE type = 'payment.created'") == [(attempts,)]
    for r in responses:
        independent_vnpay_check(r.checkout_url, TEST_VNPAY.hash_secret)


def test_threads_create_exactly_one_payment(server: Any, db_url: str) -> None:
    responses = stampede([f"127.0.0.1:{server.port}"], request)
    assert_one_pending(db_url, responses, attempts=1)


def test_threads_replace_an_expired_payment_exactly_once(
    server: Any, stub: Any, db_url: str, clock: FakeClock
) -> None:
    stub.CreateOrGetPayment(request())
    clock.advance(minutes=22)
    responses = stampede([f"127.0.0.1:{server.port}"], request)
    assert_one_pending(db_url, responses, attempts=2)
    assert rows(db_url, "SELECT count(*) FROM outbox_events WHERE type = 'payment.expired'") == [(1,)]


def test_threads_with_a_changed_amount_open_exactly_one_new_attempt(
    server: Any, stub: Any, db_url: str
) -> None:
    stub.CreateOrGetPayment(request())
    responses = stampede([f"127.0.0.1:{server.port}"], lambda: request(amount=175_000))
    assert_one_pending(db_url, responses, attempts=2)
    assert {r.payment.amount for r in responses} == {175_000}


@pytest.mark.slow
def test_two_server_processes_create_exactly_one_payment(db_url: str) -> None:
    # The two processes also run under different TZ settings: VNPay dates must
    # come out in GMT+7 from both.
    servers = [ServerProcess(db_url, TZ="UTC"), ServerProcess(db_url, TZ="America/New_York")]
    try:
        before = datetime.now(UTC)
        responses = stampede([s.target for s in servers], request)
        assert_one_pending(db_url, responses, attempts=1)
        stamps = {
            independent_vnpay_check(r.checkout_url, TEST_VNPAY.hash_secret)["vnp_CreateDate"]
            for r in responses
        }
        for stamp in stamps:
            assert abs((parse_vnpay_time(stamp) - before).total_seconds()) < 30
        with_errors = [line for s in servers for line in s.lines if '"code": "INTERNAL"' in line]
        assert with_errors == []
        served = [sum('"rpc": "CreateOrGetPayment"' in line for line in s.lines) for s in servers]
        assert all(served), f"both processes must take calls: {served}"
    finally:
        codes = [s.terminate() for s in servers]
    assert codes == [0, 0], "graceful shutdown exits 0"
    assert all(any('"event": "stopped"' in line for line in s.lines) for s in servers)


def test_a_payment_paid_while_the_order_is_edited_is_not_overwritten(
    server: Any, stub: Any, db_url: str
) -> None:
    """A callback holds the payment's row lock and marks it paid while a
    CreateOrGetPayment with a new amount waits: the waiting call must see the
    payment paid ("already paid"), not cancel it over the top."""
    first = stub.CreateOrGetPayment(request()).payment
    with psycopg.connect(libpq_url(db_url)) as conn:
        conn.execute("SELECT 1 FROM payments WHERE id = %s FOR UPDATE", (first.id,))
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(lambda: stub.CreateOrGetPayment(request(amount=175_000), timeout=20))
            time.sleep(0.5)  # the call is now waiting for the row lock
            assert not pending.done()
            conn.execute(
                "UPDATE payments SET status = 'SUCCEEDED', paid_time = now() WHERE id = %s", (first.id,)
            )
            conn.commit()
            with pytest.raises(grpc.RpcError) as info:
                pending.result(timeout=20)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rows(db_url, "SELECT status FROM payments") == [("SUCCEEDED",)]
