"""Issue 7.3: PostgreSQL is stopped for ~3 s and started again (same data
directory, same socket) while a load of CreateOrGetPayment, IPNs and order
calls runs against a payment and an order service process. Callers get
UNAVAILABLE (or the IPN RspCode 99, which VNPay retries) promptly, never a hang
past their deadline; both services recover without being restarted; nothing
half-written remains."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import httpbody_pb2
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc
from sqlalchemy import create_engine

from order_service.adapters import catalog
from paykit import database, migrations
from tests.conftest import TEST_VNPAY
from tests.integration.helpers import ServerProcess, rows
from tests.reliability.support import (
    create_payment,
    dedicated_postgres,
    healthy,
    ipn_target,
    kill_all,
    payment_stub,
    report,
    start_order,
    wait_until,
)

OUTAGE_SECONDS = 3.0
PAYMENT_DEADLINE = 5.0  # what the order service gives CreateOrGetPayment
ORDER_DEADLINE = 8.0  # RetryPayment: its own database work plus the payment call
LOAD_THREADS = 3
STOCK = 1_000_000
# What a caller may see while the database is away: a retryable refusal.
ALLOWED = {"OK", "UNAVAILABLE", "RSP00", "RSP02", "RSP99"}


@dataclass
class Call:
    op: str
    start: float
    seconds: float
    outcome: str  # OK, a gRPC status name, or RSPxx for IPNs


def _order_request(i: int) -> Any:
    return os_pb2.CreateOrderRequest(
        items=[os_pb2.CreateOrderItem(variant_id="mug-blue", quantity=1)],
        receiver_name=f"Receiver {i}",
        receiver_phone="0901234567",
        shipping_address="1 Le Loi, HCMC",
    )


class Load:
    """Threads cycling through the calls a shop and a gateway make."""

    def __init__(self, payment: ServerProcess, order: ServerProcess) -> None:
        self.payment_stub = payment_stub(payment.target)
        self.order_stub = order_service_pb2_grpc.OrderServiceStub(grpc.insecure_channel(order.target))
        self.calls: list[Call] = []
        self.created: dict[str, int] = {}  # provider_reference -> amount, of payments made over gRPC
        self.ipn_answers: dict[str, str] = {}
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)]
        self.threads.append(threading.Thread(target=self._gateway, daemon=True))

    def _timed(self, op: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Calls fn(*args, **kwargs), recording how long it took and how it ended."""
        started = time.monotonic()
        result, outcome = None, "OK"
        try:
            result = fn(*args, **kwargs)
            if op == "ipn":
                outcome = "RSP" + json.loads(result.data)["RspCode"]
        except grpc.RpcError as error:
            outcome = error.code().name
        with self._lock:
            self.calls.append(Call(op, started, time.monotonic() - started, outcome))
        return result if outcome in ("OK",) or outcome.startswith("RSP") else None

    def _run(self) -> None:
        pay, orders = self.payment_stub, self.order_stub
        while not self.stop.is_set():
            i = next(self._ids)
            order_id, amount = f"LOAD-{i}", 10_000 + i
            # A new payment, then "Pay again" for it (the reuse path).
            made = self._timed(
                "create_payment", create_payment, pay, order_id, amount, timeout=PAYMENT_DEADLINE
            )
            if made is not None:
                self._timed("reuse_payment", create_payment, pay, order_id, amount, timeout=PAYMENT_DEADLINE)
                # Only now may the gateway pay it (a paid order is not reused).
                with self._lock:
                    self.created[made.payment.provider_reference] = amount
            # The shop's side: an order, its payment through the order service, a read.
            user = (("x-user-id", f"load-user-{i}"),)
            order = self._timed(
                "create_order", orders.CreateOrder, _order_request(i), metadata=user, timeout=ORDER_DEADLINE
            )
            if order is not None:
                oid = order.order.id
                self._timed(
                    "retry_payment",
                    orders.RetryPayment,
                    os_pb2.RetryPaymentRequest(order_id=oid),
                    metadata=user,
                    timeout=ORDER_DEADLINE,
                )
                self._timed(
                    "get_order",
                    orders.GetOrder,
                    os_pb2.GetOrderRequest(order_id=oid),
                    metadata=user,
                    timeout=ORDER_DEADLINE,
                )

    def _gateway(self) -> None:
        """VNPay's side: an IPN for every payment made, re-sent until 00/02;
        with nothing new to confirm, a copy of an old one (answered 02)."""
        sent = itertools.count()
        while not self.stop.is_set():
            with self._lock:
                open_refs = [r for r in self.created if self.ipn_answers.get(r) not in ("00", "02")]
                refs = open_refs or list(self.created)
            if not refs:
                time.sleep(0.01)
                continue
            ref = refs[next(sent) % len(refs)]
            reply = self._timed("ipn", self._ipn, ref, self.created[ref])
            if reply is not None:
                with self._lock:
                    self.ipn_answers[ref] = json.loads(reply.data)["RspCode"]
            time.sleep(0.01)

    def _ipn(self, ref: str, amount: int) -> Any:
        target = ipn_target(ref, amount, TEST_VNPAY.hash_secret)
        return self.payment_stub.HandleCallback(
            httpbody_pb2.HttpBody(), metadata=[("x-envoy-original-path", target)], timeout=PAYMENT_DEADLINE
        )

    def ok_since(self, since: float) -> set[str]:
        with self._lock:
            return {c.op for c in self.calls if c.start >= since and c.outcome in ("OK", "RSP00", "RSP02")}


# Queries that must find nothing once the dust has settled.
HALF_WRITTEN = {
    "payment without its payment.created event": "SELECT p.id FROM payments p WHERE NOT EXISTS"
    " (SELECT 1 FROM outbox_events e WHERE e.aggregateid = p.id::text AND e.type = 'payment.created')",
    "order with two pending payments": "SELECT order_id FROM payments WHERE status = 'PENDING'"
    " GROUP BY order_id HAVING count(*) > 1",
    "success without its event, or event without success": "SELECT p.id FROM payments p"
    " WHERE (p.status = 'SUCCEEDED') <> EXISTS (SELECT 1 FROM outbox_events e"
    " WHERE e.aggregateid = p.id::text AND e.type = 'payment.succeeded')",
    "two success events": "SELECT aggregateid FROM outbox_events WHERE type = 'payment.succeeded'"
    " GROUP BY aggregateid HAVING count(*) > 1",
    "event without its payment": "SELECT e.id FROM outbox_events e WHERE NOT EXISTS"
    " (SELECT 1 FROM payments p WHERE p.id::text = e.aggregateid)",
}


def test_database_restart_under_load() -> None:
    started = time.monotonic()
    with dedicated_postgres() as pg:
        pay_url = database.ensure_database(pg.admin_url, "payments")
        migrations.upgrade(pay_url, "payment")
        order_url = database.ensure_database(pg.admin_url, "orders")
        migrations.upgrade(order_url, "order")
        engine = create_engine(database.sqlalchemy_url(order_url))
        catalog.seed(engine)
        engine.dispose()
        rows(order_url, "UPDATE products SET stock = %s WHERE variant_id = 'mug-blue' RETURNING 1", STOCK)

        payment = order = None
        try:
            payment = ServerProcess(pay_url)
            order = start_order(order_url, payment.target)
            pids = (payment.proc.pid, order.proc.pid)
            load = Load(payment, order)
            for t in load.threads:
                t.start()
            wait_until(lambda: len(load.ok_since(0)) == 6, 30, what="every call succeeding before the outage")
            time.sleep(1.0)

            outage_start = time.monotonic()
            pg.stop("fast")  # every server connection is cut
            stopped = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            pg.start()  # same data directory, same socket
            outage_end = time.monotonic()
            recovery = wait_until(
                lambda: len(load.ok_since(outage_end)) == 6, 30, 0.05, what="every call succeeding again"
            )
            time.sleep(1.0)
            load.stop.set()
            for t in load.threads:
                t.join(ORDER_DEADLINE + 5)

            calls = list(load.calls)
            during = [c for c in calls if outage_start <= c.start < outage_end]
            outcomes = Counter(c.outcome for c in calls)
            during_outcomes = Counter(c.outcome for c in during)
            assert set(outcomes) <= ALLOWED, Counter((c.op, c.outcome) for c in calls)
            assert during_outcomes["UNAVAILABLE"] and during_outcomes["RSP99"], f"outage not seen: {during}"
            max_during = max(c.seconds for c in during)
            max_all = max(c.seconds for c in calls)
            deadlines = {"retry_payment": ORDER_DEADLINE, "create_order": ORDER_DEADLINE}
            late = [c for c in calls if c.seconds >= deadlines.get(c.op, PAYMENT_DEADLINE)]
            assert not late, late
            # Refusals are prompt: nobody waits anywhere near the deadline for a "no".
            slow_refusals = [c for c in calls if c.outcome in ("UNAVAILABLE", "RSP99") and c.seconds > 2.0]
            assert not slow_refusals, slow_refusals

            # Recovered without a restart.
            assert payment.proc.poll() is None and order.proc.poll() is None
            assert (payment.proc.pid, order.proc.pid) == pids
            assert healthy(payment.target) and healthy(order.target)

            # VNPay retries what was not acknowledged with 00/02.
            resent = 0
            for ref, amount in load.created.items():
                if load.ipn_answers.get(ref) not in ("00", "02"):
                    resent += 1
                    reply = load._ipn(ref, amount)
                    assert json.loads(reply.data)["RspCode"] in ("00", "02")

            # Nothing half-written in the payment database.
            problems = {name: rows(pay_url, query) for name, query in HALF_WRITTEN.items()}
            assert problems == {name: [] for name in HALF_WRITTEN}, problems
            paid = rows(pay_url, "SELECT provider_reference FROM payments WHERE status = 'SUCCEEDED'")
            assert set(load.created) <= {ref for (ref,) in paid}

            # Nor in the order database: stock adds up, every order has its event,
            # and the event follower caught up (every order linked to its payment).
            n_orders, reserved = rows(
                order_url, "SELECT count(*), coalesce(sum(quantity), 0) FROM order_items"
            )[0]
            stock = rows(order_url, "SELECT stock FROM products WHERE variant_id = 'mug-blue'")[0][0]
            assert stock + reserved == STOCK
            assert rows(order_url, "SELECT count(*) FROM order_events WHERE type = 'order.created'") == [
                (n_orders,)
            ]
            payments_for_orders = dict(
                rows(pay_url, "SELECT order_id, id::text FROM payments WHERE order_id NOT LIKE 'LOAD-%%'")
            )

            def linked() -> bool:
                orders = dict(rows(order_url, "SELECT id::text, payment_id::text FROM orders"))
                return all(orders.get(o) == p for o, p in payments_for_orders.items())

            follower_catch_up = wait_until(linked, 20, 0.2, what="orders linked to their payments")

            report(
                "database_restart",
                requests=len(calls) + resent,
                faults=f"PostgreSQL stopped {outage_end - outage_start:.1f} s (fast shutdown)",
                outcomes=dict(sorted(outcomes.items())),
                refused_during_outage=sum(during_outcomes[k] for k in ("UNAVAILABLE", "RSP99")),
                max_latency_during_outage_ms=round(max_during * 1000),
                max_latency_ms=round(max_all * 1000),
                stop_seconds=round(stopped - outage_start, 2),
                recovered_after_start_s=round(recovery, 2),
                follower_caught_up_s=round(follower_catch_up, 2),
                ipns_resent=resent,
                payments=len(load.created) + len(payments_for_orders),
                orders=n_orders,
                service_restarts=0,
                losses=0,
                seconds=round(time.monotonic() - started, 1),
            )
        finally:
            kill_all(order, payment)
