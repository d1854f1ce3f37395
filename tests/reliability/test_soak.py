"""Issue 7.5: soak. Mixed load (CreateOrGetPayment new and reused over gRPC,
VNPay IPNs and GetOrder through Envoy) at half the measured maximum rate,
open loop, for SOAK_SECONDS (default 300): zero errors, the payment
service's RSS flat after warm-up (growth under 10 %), database connections
stable.

    SOAK_SECONDS=300 .venv/bin/python -m pytest tests/reliability/test_soak.py -s
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import TEST_VNPAY
from tests.integration.helpers import rows
from tests.reliability.support import (
    Stack,
    create_payment,
    http_request,
    ipn_target,
    payment_stub,
    pg_connections,
    process_stack,
    report,
    rss_kb,
)

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
WARMUP_SECONDS = min(30.0, SOAK_SECONDS / 4)
MEASURE_SECONDS = 5.0
WORKERS = 16
SAMPLE_SECONDS = 2.0
# The mix, in tickets out of 20.
MIX = ["reuse"] * 5 + ["new"] * 4 + ["ipn"] * 4 + ["get_order"] * 7
REUSE_ORDERS = 50
READ_ORDERS = 20


class Mix:
    """The operations of the mix; each returns normally or raises with what was wrong."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stub = payment_stub(stack.payment.target)
        self.ids = itertools.count()
        self.lock = threading.Lock()
        self.to_pay: list[tuple[str, int]] = []  # new payments awaiting their IPN
        self.paid: list[tuple[str, int]] = []
        self.reuse_orders = [(f"SOAK-REUSE-{i}", 20_000 + i) for i in range(REUSE_ORDERS)]
        for order_id, amount in self.reuse_orders:
            create_payment(self.stub, order_id, amount, user_id="soak")
        self.tokens = [stack.keys.token(f"soak-{i}") for i in range(4)]
        self.orders: list[tuple[str, str]] = []
        for i in range(READ_ORDERS):
            token = self.tokens[i % len(self.tokens)]
            body = (
                b'{"items":[{"variant_id":"sticker-pack","quantity":1}],"receiver_name":"Soak",'
                b'"receiver_phone":"0901234567","shipping_address":"HCMC"}'
            )
            reply = stack.api("POST", "/v1/orders", token, body)
            assert reply.status == 200, reply
            self.orders.append((token, reply.json_body()["order"]["id"]))

    def run(self, op: str) -> None:
        getattr(self, op)()

    def reuse(self) -> None:
        order_id, amount = random.choice(self.reuse_orders)
        reply = create_payment(self.stub, order_id, amount, user_id="soak", timeout=5)
        assert reply.reused, reply

    def new(self) -> None:
        order_id, amount = f"SOAK-{next(self.ids)}", 30_000 + random.randrange(1000)
        reply = create_payment(self.stub, order_id, amount, user_id="soak", timeout=5)
        assert not reply.reused, reply
        with self.lock:
            self.to_pay.append((reply.payment.provider_reference, amount))

    def ipn(self) -> None:
        with self.lock:
            fresh = bool(self.to_pay)
            ref, amount = self.to_pay.pop(0) if fresh else random.choice(self.paid or [("none", 1)])
        if ref == "none":
            return
        result = http_request(
            self.stack.port, "GET", ipn_target(ref, amount, TEST_VNPAY.hash_secret), timeout=5
        )
        assert result.rsp_code == ("00" if fresh else "02"), (result.status, result.body[:200])
        if fresh:
            with self.lock:
                self.paid.append((ref, amount))

    def get_order(self) -> None:
        token, order_id = random.choice(self.orders)
        reply = self.stack.api("GET", f"/v1/orders/{order_id}", token)
        assert reply.status == 200, (reply.status, reply.body[:200])


class Runner:
    def __init__(self, mix: Mix) -> None:
        self.mix = mix
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.done = Counter[str]()
        self.lock = threading.Lock()

    def one(self, op: str) -> None:
        started = time.monotonic()
        try:
            self.mix.run(op)
            error = None
        except (AssertionError, grpc.RpcError, OSError, ValueError, KeyError) as exc:
            error = f"{op}: {type(exc).__name__} {str(exc)[:200]}"
        with self.lock:
            self.latencies[op].append(time.monotonic() - started)
            self.done[op] += 1
            if error:
                self.errors.append(error)


def _measure_max(runner: Runner) -> float:
    """Closed loop, WORKERS callers, MEASURE_SECONDS: completed operations a second."""
    stop = time.monotonic() + MEASURE_SECONDS
    count = Counter[str]()
    lock = threading.Lock()

    def caller(seed: int) -> None:
        ops = itertools.cycle(MIX[seed % len(MIX) :] + MIX[: seed % len(MIX)])
        while time.monotonic() < stop:
            runner.one(next(ops))
            with lock:
                count["n"] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(WORKERS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count["n"] / (time.monotonic() - started)


@pytest.mark.slow
def test_soak_mixed_load(db_url: str, order_db_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    rows(order_db_url, "UPDATE products SET stock = 1000000 RETURNING 1")
    databases = (make_url(db_url).database or "", make_url(order_db_url).database or "")
    with process_stack(db_url, order_db_url, tmp_path / "envoy") as stack:
        admin_url = db_url
        mix = Mix(stack)
        runner = Runner(mix)
        max_rate = _measure_max(runner)
        assert not runner.errors, runner.errors[:10]
        rate = max_rate / 2
        measured = Runner(mix)

        samples: list[tuple[float, int, int, int]] = []  # (t, payment RSS kB, order RSS kB, connections)
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(SAMPLE_SECONDS):
                samples.append(
                    (
                        time.monotonic() - soak_start,
                        rss_kb(stack.payment.proc.pid),
                        rss_kb(stack.order.proc.pid),
                        pg_connections(admin_url, *databases),
                    )
                )

        lag = 0.0
        soak_start = time.monotonic()
        sampling = threading.Thread(target=sampler, daemon=True)
        sampling.start()
        with ThreadPoolExecutor(WORKERS) as pool:
            scheduled = soak_start
            for n in itertools.count():
                if scheduled - soak_start >= SOAK_SECONDS:
                    break
                delay = scheduled - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    lag = max(lag, -delay)
                pool.submit(measured.one, MIX[n % len(MIX)])
                scheduled += 1 / rate
        elapsed = time.monotonic() - soak_start
        stop.set()
        sampling.join(10)
        alive = stack.alive()

    assert alive
    assert not measured.errors, measured.errors[:10]
    after = [s for s in samples if s[0] >= WARMUP_SECONDS]
    assert len(after) >= 3, samples
    baseline = after[0][1]
    final = statistics.mean(s[1] for s in after[-3:])
    growth = (final - baseline) / baseline
    assert growth < 0.10, [(round(t), rss) for t, rss, _, _ in samples]
    # Stable: bounded by the two pools (10 + 10 overflow each, plus the event
    # stream and the sampler), and no upward trend from the first to the last third.
    connections = [c for *_, c in after]
    third = max(1, len(connections) // 3)
    early, late = statistics.median(connections[:third]), statistics.median(connections[-third:])
    assert late <= early + 2, [c for *_, c in samples]
    assert max(connections) <= 2 * 20 + 4, [c for *_, c in samples]
    total = sum(measured.done.values())
    p99 = {op: round(sorted(v)[int(len(v) * 0.99) - 1] * 1000, 1) for op, v in measured.latencies.items()}
    report(
        "soak",
        seconds=round(elapsed),
        requests=total,
        max_rate_per_s=round(max_rate),
        target_rate_per_s=round(rate),
        achieved_rate_per_s=round(total / elapsed),
        max_schedule_lag_ms=round(lag * 1000),
        mix=dict(measured.done),
        p99_ms=p99,
        errors=len(measured.errors),
        payment_rss_mb=f"{baseline / 1024:.1f}->{final / 1024:.1f} ({growth:+.1%})",
        payment_rss_trend_mb=[round(after[i * (len(after) - 1) // 5][1] / 1024, 1) for i in range(6)],
        order_rss_mb=f"{after[0][2] / 1024:.1f}->{after[-1][2] / 1024:.1f}",
        db_connections=f"median {early:g}->{late:g}, range {min(connections)}-{max(connections)}",
        losses=0,
        total_seconds=round(time.monotonic() - started),
    )
