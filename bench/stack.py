"""The system under test, started the way it is deployed: an embedded
PostgreSQL under /tmp, the payment and order services as separate
`payments serve` processes, Envoy with JWT in front of both."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from bench.load import SECRET, TMN
from ingress import auth
from ingress import envoy as ingress
from paykit import database, migrations

ROOT = Path(__file__).resolve().parent.parent
# The run lasts minutes: its own payments must not expire under it.
PAYMENT_TTL_MINUTES = "60"
# A few bench users place thousands of orders; the per-user RetryPayment
# limit (10 a minute) protects shops from a misbehaving page, not this.
RETRY_LIMIT = "1000000000"
LARGE_STOCK = 1_000_000_000


class ServiceProcess:
    """A server process whose stderr (JSON log lines) goes to a file; ready
    when it logs "serving" with its port. Stopped by its own PID."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT
            )
        self.port = 0
        self.serving: dict[str, Any] = {}  # the "serving" log line

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, timeout: float = 60) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"event": "serving"' in line:
                    self.serving = json.loads(line)
                    self.port = int(self.serving["port"])
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PAYMENTS_AUTO_MIGRATE": "0",
        "PAYMENT_GRPC_PORT": "0",
        "ORDER_GRPC_PORT": "0",
        "VNPAY_TMN_CODE": TMN,
        "VNPAY_HASH_SECRET": SECRET,
        "PAYMENT_TTL_MINUTES": PAYMENT_TTL_MINUTES,
        "RETRY_PAYMENT_LIMIT_PER_MINUTE": RETRY_LIMIT,
        # Loopback only: reconciliation still runs, but its gateway queries
        # go to a closed local port instead of VNPay's sandbox.
        "VNPAY_QUERY_URL": "http://127.0.0.1:9/vnpay/querydr-not-reachable-from-the-bench",
        # What a deployment logs: one JSON line per callback, for instance.
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        **extra,
    }


def _serve(service: str, workdir: Path) -> list[str]:
    """`payments serve SERVICE`, through bench.gcshim, which records the
    process's garbage collections in workdir/gc-SERVICE.json at exit."""
    gc_log = workdir / f"gc-{service}.json"
    return [sys.executable, "-m", "bench.gcshim", str(gc_log), "payments.cli", "serve", service]


@dataclass
class Stack:
    workdir: Path
    pg: Any = None
    admin_url: str = ""
    payment_url: str = ""  # SQLAlchemy URLs
    order_url: str = ""
    payment: ServiceProcess | None = None
    order: ServiceProcess | None = None
    envoy: ingress.EnvoyProcess | None = None
    keys: auth.DevKeys | None = None
    others: list[ServiceProcess] = field(default_factory=list)

    def start(self) -> Stack:
        self.pg = database.start_embedded(self.workdir / "pgdata")
        self.admin_url = self.pg.get_uri()
        self.payment_url = database.ensure_database(self.admin_url, "payments")
        self.order_url = database.ensure_database(self.admin_url, "orders")
        migrations.upgrade(self.payment_url, "payment")
        # The order service needs the payment service's address before that
        # one is up: a free port picked here lets both boot at once.
        payment_port = free_port()
        self.payment = ServiceProcess(
            "payment",
            _serve("payment", self.workdir),
            _service_env(DATABASE_URL=self.payment_url, PAYMENT_GRPC_PORT=str(payment_port)),
            self.workdir,
        )
        migrations.upgrade(self.order_url, "order")
        self._seed_catalog()
        self.order = ServiceProcess(
            "order",
            _serve("order", self.workdir),
            _service_env(ORDER_DATABASE_URL=self.order_url, PAYMENT_TARGET=f"127.0.0.1:{payment_port}"),
            self.workdir,
        )
        self.keys = auth.generate_keys()
        self.payment.wait_serving()
        self.order.wait_serving()
        settings = ingress.IngressSettings(
            ingress_port=0,
            admin_port=0,
            payment_upstream_port=self.payment.port,
            order_upstream_port=self.order.port,
        ).with_jwks(self.keys.jwks)
        self.envoy = ingress.EnvoyProcess(settings, self.workdir / "envoy").start()
        self.envoy.wait_healthy(ingress.PAYMENT_CLUSTER, timeout=20)
        self.envoy.wait_healthy(ingress.ORDER_CLUSTER, timeout=20)
        return self

    def _seed_catalog(self) -> None:
        from order_service.adapters import catalog

        engine = create_engine(database.sqlalchemy_url(self.order_url))
        try:
            catalog.seed(engine)
            with engine.begin() as conn:
                conn.execute(text("UPDATE products SET stock = :stock"), {"stock": LARGE_STOCK})
        finally:
            engine.dispose()

    @property
    def ingress_target(self) -> str:
        assert self.envoy is not None
        return f"127.0.0.1:{self.envoy.ingress_port}"

    def spawn_other(self, name: str, argv: list[str], **env: str) -> ServiceProcess:
        """Another server process (stopped with the stack); wait_serving() before use."""
        process = ServiceProcess(name, argv, _service_env(**env), self.workdir)
        self.others.append(process)
        return process

    def cpu_groups(self) -> dict[str, list[tuple[int, bool]]]:
        """The processes whose CPU time is accounted per run: (pid, with its
        children that exit meanwhile). PostgreSQL is the postmaster and its
        children (backends, autovacuum workers, checkpointer)."""
        groups: dict[str, list[tuple[int, bool]]] = {}
        for process in (self.payment, self.order, *self.others):
            if process is not None and process.proc.poll() is None:
                groups[process.name] = [(process.pid, False)]
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

    def stop(self) -> None:
        for process in [*self.others, self.order, self.payment]:
            if process is not None:
                process.stop()
        if self.envoy is not None:
            self.envoy.stop()
        if self.pg is not None:
            self.pg.cleanup()
