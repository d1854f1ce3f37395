"""The whole platform as processes on this machine, the way it is deployed:
PostgreSQL (embedded in DATA_DIR, or DATABASE_URL), the payment and order
services as `payments serve` processes, the gateway simulator, and Envoy in
front. `payments dev`, the benchmark and the tests all start it from here.

Every process is stopped by its own PID, last started first, and the
embedded PostgreSQL with them. Children die with the process that started
them (PR_SET_PDEATHSIG), so a supervisor killed with SIGKILL leaves no
service holding a port; the embedded server it attached to is stopped by the
next run (see `paykit.database.forget_dead_handles`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from ingress import auth
from ingress import envoy as ingress
from paykit import database, migrations
from paykit.process import dying_with_parent
from paykit.settings import DEFAULT_PORTS, env_int


class StartupError(RuntimeError):
    """A part of the stack did not start; the message is one line."""


def _last_line(lines: deque[str]) -> str:
    """The most telling line of a child's stderr: its last error, else its last line."""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            return str(entry.get("event", line))
    return lines[-1].strip() if lines else "(no output)"


class ServiceProcess:
    """A server process whose stderr is read line by line: kept (the last
    200 lines), copied to `echo` and/or a log file, and watched for the JSON
    line `"event": "serving"` that carries its port."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        *,
        echo: IO[str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
        keep_lines: int | None = 200,
    ) -> None:
        self.name = name
        self.lines: deque[str] = deque(maxlen=keep_lines)  # the last ones, without their newline
        self.serving: dict[str, Any] = {}
        self.port = 0
        self.log_path = log_path
        self._echo = echo
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            dying_with_parent(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._drain, name=f"{name}-stderr", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        log = self.log_path.open("a", encoding="utf-8") if self.log_path else None
        try:
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if log is not None:
                    log.write(line)
                    log.flush()
                if self._echo is not None:
                    self._echo.write(line)
                    self._echo.flush()
                if not self._ready.is_set() and '"event": "serving"' in line:
                    self.serving = json.loads(line)
                    self.port = int(self.serving["port"])
                    self._ready.set()
        finally:
            if log is not None:
                log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_serving(self, timeout: float = 60) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise StartupError(f"{self.name} exited with status {self.proc.returncode}: {self.cause()}")
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name} not serving after {timeout:g} s: {self.cause()}")
        return self

    def cause(self) -> str:
        return _last_line(self.lines)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(list(self.lines)[-lines:])

    def stop(self, timeout: float = 8) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        return self.proc.returncode


@dataclass(frozen=True)
class Ports:
    """Where each part listens; 0 lets the system pick (the stack reports it)."""

    payment: int = DEFAULT_PORTS["payment"]
    order: int = DEFAULT_PORTS["order"]
    ingress: int = DEFAULT_PORTS["ingress"]
    admin: int = DEFAULT_PORTS["admin"]
    sim: int = DEFAULT_PORTS["sim"]
    web: int = DEFAULT_PORTS["web"]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ports:
        return cls(**{name: env_int(env, var, DEFAULT_PORTS[name]) for name, var in PORT_VARIABLES.items()})

    @classmethod
    def ephemeral(cls) -> Ports:
        return cls(payment=0, order=0, ingress=0, admin=0, sim=0, web=0)


PORT_VARIABLES = {
    "payment": "PAYMENT_GRPC_PORT",
    "order": "ORDER_GRPC_PORT",
    "ingress": "INGRESS_PORT",
    "admin": "ENVOY_ADMIN_PORT",
    "sim": "SIM_PORT",
    "web": "WEB_PORT",
}


def serve_argv(service: str) -> list[str]:
    return [sys.executable, "-m", "payments.cli", "serve", service]


@dataclass
class Stack:
    """Start with `start()` (everything already started is stopped again if a
    part fails), stop with `stop()`; or use it as a context manager."""

    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    simulator: bool = True
    seed_catalog: bool = True
    # Default: JWT_JWKS_URL/JWT_JWKS_FILE, else (development only) the keys kept in data_dir.
    keys: auth.DevKeys | None = None
    echo: IO[str] | None = None  # where the children's log lines go (besides data_dir/logs)
    keep_lines: int | None = 200  # of each child's stderr, in memory (None: all)
    argv: Callable[[str], list[str]] = serve_argv
    database_url: str = ""  # default: env DATABASE_URL, else the embedded server
    order_database_url: str = ""
    pg: Any = None
    payment_url: str = ""
    order_url: str = ""
    payment: ServiceProcess | None = None
    order: ServiceProcess | None = None
    sim: ServiceProcess | None = None
    web: ServiceProcess | None = None
    envoy: ingress.EnvoyProcess | None = None
    others: list[ServiceProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.log_dir = self.data_dir / "logs"

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> Stack:
        try:
            self._start_databases()
            self._start_services()
            self._start_ingress()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_databases(self) -> None:
        external = self.database_url or self.env.get("DATABASE_URL", "")
        if external:
            self.payment_url = database.sqlalchemy_url(external)
            self.order_url = (
                database.sqlalchemy_url(self.order_database_url or self.env.get("ORDER_DATABASE_URL", ""))
                if self.order_database_url or self.env.get("ORDER_DATABASE_URL")
                else database.ensure_database(external, "orders")
            )
        else:
            self.pg = database.start_embedded(self.data_dir / "postgres")
            admin = self.pg.get_uri()
            self.payment_url = database.ensure_database(admin, "payments")
            self.order_url = database.ensure_database(admin, "orders")
        migrations.upgrade(self.payment_url, "payment")
        migrations.upgrade(self.order_url, "order")
        if self.seed_catalog:
            self._seed()

    def _seed(self) -> None:
        from sqlalchemy import create_engine

        from order_service.adapters import catalog

        engine = create_engine(database.sqlalchemy_url(self.order_url))
        try:
            catalog.seed(engine)
        finally:
            engine.dispose()

    def child_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, "PAYMENTS_AUTO_MIGRATE": "0", "DATA_DIR": str(self.data_dir), **extra}

    def spawn(self, name: str, argv: list[str], **env: str) -> ServiceProcess:
        """Starts a child of the stack (stopped with it); wait_serving() before use."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        process = ServiceProcess(
            name,
            argv,
            self.child_env(**env),
            echo=self.echo,
            log_path=self.log_dir / f"{name}.log",
            keep_lines=self.keep_lines,
        )
        self.others.append(process)
        return process

    def _start_services(self) -> None:
        ports = self.ports
        if self.simulator:
            self.sim = self.spawn(
                "simulator",
                [sys.executable, "-m", "gateway_simulator"],
                SIM_PORT=str(ports.sim),
                INGRESS_PORT=str(ports.ingress),
            )
        self.payment = self.spawn(
            "payment",
            self.argv("payment"),
            DATABASE_URL=self.payment_url,
            PAYMENT_GRPC_PORT=str(ports.payment),
            INGRESS_PORT=str(ports.ingress),
            SIM_PORT=str(ports.sim),
        )
        self.payment.wait_serving()
        self.order = self.spawn(
            "order",
            self.argv("order"),
            ORDER_DATABASE_URL=self.order_url,
            ORDER_GRPC_PORT=str(ports.order),
            PAYMENT_TARGET=self.payment.target,
        )
        self.order.wait_serving()
        # The shop's pages and the console (web/), behind the ingress.
        self.web = self.spawn("web", [sys.executable, "-m", "web"], WEB_PORT=str(ports.web))
        if self.sim is not None:
            self.sim.wait_serving()
        self.web.wait_serving()

    def _start_ingress(self) -> None:
        assert self.payment is not None and self.order is not None
        try:
            settings = replace(
                ingress.IngressSettings.from_env(self.env),
                ingress_port=self.ports.ingress,
                admin_port=self.ports.admin,
                payment_upstream_port=self.payment.port,
                order_upstream_port=self.order.port,
                web_upstream_port=self.web.port if self.web is not None else self.ports.web,
            )
            # Keys given to the stack (tests, bench) win; then JWT_JWKS_URL or
            # JWT_JWKS_FILE; the development keys only in development.
            if self.keys is not None:
                settings = settings.with_jwks(self.keys.jwks)
            elif settings.needs_development_keys:
                self.keys = auth.load_or_create(self.data_dir)
                settings = settings.with_jwks(self.keys.jwks)
            ingress.render_config(settings)  # refuses an unsafe configuration before anything starts
        except ValueError as error:  # ConfigError
            raise StartupError(f"configuration error: {error}") from None
        self.envoy = ingress.EnvoyProcess(settings, self.data_dir / "envoy", die_with_parent=True)
        try:
            self.envoy.start()
            self.envoy.wait_healthy(ingress.PAYMENT_CLUSTER, timeout=20)
            self.envoy.wait_healthy(ingress.ORDER_CLUSTER, timeout=20)
        except ingress.EnvoyError as error:
            raise StartupError(f"envoy: {error.summary}") from error

    # --- running --------------------------------------------------------------------------------

    @property
    def ingress_port(self) -> int:
        assert self.envoy is not None
        return self.envoy.ingress_port

    def pids(self) -> list[int]:
        """Every process of the stack: children, Envoy, the PostgreSQL postmaster."""
        pids = [p.pid for p in self.others]
        if self.envoy is not None and self.envoy.started:
            pids.append(self.envoy.pid)
        if self.pg is not None and self.pg.get_pid():
            pids.append(int(self.pg.get_pid()))
        return pids

    def exited(self) -> str:
        """'' while every child runs; else which one exited, and why (one line)."""
        for process in self.others:
            if not process.alive():
                return f"{process.name} exited with status {process.proc.returncode}: {process.cause()}"
        if self.envoy is not None and self.envoy.exit_status() is not None:
            return f"envoy exited with status {self.envoy.exit_status()}"
        return ""

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stops everything, last started first, PostgreSQL last."""
        if self.envoy is not None:
            self.envoy.stop()
        for process in self.others:  # all at once: each drains in parallel
            if process.alive():
                process.proc.terminate()
        for process in reversed(self.others):
            process.stop()
        if self.pg is not None:
            database.stop_embedded(self.pg)
            self.pg = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
