"""The system under test, started the way it is deployed: an embedded
PostgreSQL under /tmp, the payment and order services as separate
`payments serve` processes, Envoy with JWT in front of both."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from bench.load import SECRET, TMN
from ingress import auth
from paykit import database
from payments import stack

ROOT = Path(__file__).resolve().parent.parent
# The run lasts minutes: its own payments must not expire under it.
PAYMENT_TTL_MINUTES = "60"
# A few bench users place thousands of orders; the per-user RetryPayment
# limit (10 a minute) protects shops from a misbehaving page, not this.
RETRY_LIMIT = "1000000000"
LARGE_STOCK = 1_000_000_000


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_table() -> dict[int, tuple[float, float, int]]:
    """Every process: pid -> (own CPU seconds, all threads; CPU seconds of
    its children that exited and were waited for; parent pid)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Fields after the command name; fields[0] is field 3 (state).
            fields = stat.read_text().rsplit(")", 1)[1].split()
            own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
            table[int(stat.parent.name)] = (own, reaped, int(fields[1]))
        except (OSError, ValueError, IndexError):
            continue
    return table


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:120] or f"pid {pid}"


def child_pids(parent: int) -> list[int]:
    return [pid for pid, (_, _, ppid) in process_table().items() if ppid == parent]


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """Peak (VmHWM) and current (VmRSS) resident memory of a process, in kB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values


def _service_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VNPAY_TMN_CODE": TMN,
        "VNPAY_HASH_SECRET": SECRET,
        "PAYMENT_TTL_MINUTES": PAYMENT_TTL_MINUTES,
        "RETRY_PAYMENT_LIMIT_PER_MINUTE": RETRY_LIMIT,
        # The bench's 16 shoppers place thousands of orders: the per-user
        # limit on open orders (10 by default) would starve the runs of inputs.
        "ORDER_MAX_OPEN_PER_USER": "1000000",
        # Loopback only: reconciliation still runs, but its gateway queries
        # go to a closed local port instead of VNPay's sandbox.
        "VNPAY_QUERY_URL": "http://127.0.0.1:9/vnpay/querydr-not-reachable-from-the-bench",
        # Production mode needs both; the pay URL is only signed, never fetched.
        "VNPAY_SANDBOX": "1",
        "PUBLIC_BASE_URL": "https://shop.example",
        # What a deployment logs: one JSON line per callback, for instance.
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        # One process per service for the main runs; the payment paths are
        # run again on a second payment service with two (Bench.two_workers).
        "PAYMENT_WORKERS": "1",
        "ORDER_WORKERS": "1",
        **extra,
    }


def _serve(service: str, workdir: Path) -> list[str]:
    """`payments serve SERVICE`, through bench.gcshim, which records the
    process's garbage collections in workdir/gc-SERVICE.json at exit."""
    gc_log = workdir / f"gc-{service}.json"
    return [sys.executable, "-m", "bench.gcshim", str(gc_log), "payments.cli", "serve", service]


@dataclass
class Stack(stack.Stack):
    """The platform as `payments.stack` starts it, with the benchmark's
    settings: ephemeral ports, no simulator, a large stock, fresh JWT keys,
    every service under bench.gcshim."""

    ports: stack.Ports = field(default_factory=stack.Ports.ephemeral)
    env: Mapping[str, str] = field(default_factory=_service_env)
    simulator: bool = False
    keys: auth.DevKeys | None = field(default_factory=auth.generate_keys)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.argv = lambda service: _serve(service, self.data_dir)

    @property
    def workdir(self) -> Path:
        return self.data_dir

    @property
    def admin_url(self) -> str:
        return str(self.pg.get_uri())

    def _seed(self) -> None:
        super()._seed()
        engine = create_engine(database.sqlalchemy_url(self.order_url))
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE products SET stock = :stock"), {"stock": LARGE_STOCK})
        finally:
            engine.dispose()

    @property
    def ingress_target(self) -> str:
        assert self.envoy is not None
        return f"127.0.0.1:{self.envoy.ingress_port}"

    def spawn_other(self, name: str, argv: list[str], **env: str) -> stack.ServiceProcess:
        """Another server process (stopped with the stack); wait_serving() before use."""
        return self.spawn(name, argv, **env)

    def cpu_groups(self) -> dict[str, list[tuple[int, bool]]]:
        """The processes whose CPU time is accounted per run: (pid, with its
        children that exit meanwhile). PostgreSQL is the postmaster and its
        children (backends, autovacuum workers, checkpointer)."""
        groups: dict[str, list[tuple[int, bool]]] = {}
        for process in self.others:
            if process.alive():
                # A service with several workers: the supervisor and its workers.
                members = [process.pid, *child_pids(process.pid)]
                groups.setdefault(process.name, []).extend((pid, False) for pid in members)
        if self.envoy is not None:
            groups["envoy"] = [(self.envoy.pid, False)]
        if self.pg is not None:
            postmaster = int(self.pg.get_pid())
            groups["postgres"] = [(postmaster, True)] + [(pid, False) for pid in child_pids(postmaster)]
        return groups

    def payment_sql(self) -> psycopg.Connection[Any]:
        return psycopg.connect(database.libpq_url(self.payment_url), autocommit=True)

    def order_sql(self) -> psycopg.Connection[Any]:
        return psycopg.connect(database.libpq_url(self.order_url), autocommit=True)

    def wait_follower(self, timeout: float = 120) -> float:
        """Waits until the order service has applied every payment event
        (its checkpoint has reached the newest outbox row), so that one
        scenario's event backlog does not load the next; returns the wait."""
        started = time.monotonic()
        with self.payment_sql() as pay, self.order_sql() as orders:
            while True:
                newest = pay.execute(
                    "SELECT txid::text::bigint, seq FROM outbox_events ORDER BY txid DESC, seq DESC LIMIT 1"
                ).fetchone()
                done = orders.execute(
                    "SELECT txid, seq FROM stream_checkpoints WHERE name = 'payment_events'"
                ).fetchone()
                if newest is None or (done is not None and tuple(done) >= tuple(newest)):
                    return time.monotonic() - started
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"order service still behind after {timeout:g} s: {done} < {newest}")
                time.sleep(0.02)

    def gc_log(self) -> dict[str, list[tuple[int, float, float]]]:
        """Stops both services (gracefully) and returns their collections:
        (generation, pause s, time.time())."""
        logs = {}
        for process in (self.order, self.payment):
            if process is not None:
                process.stop()
                path = self.workdir / f"gc-{process.name}.json"
                if path.exists():
                    logs[process.name] = [tuple(c) for c in json.loads(path.read_text())["collections"]]
        return logs
