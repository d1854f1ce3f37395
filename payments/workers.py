"""Several server processes for one service on one port (SO_REUSEPORT: the
kernel spreads new connections over them), each with its own pool: Python
answers on one core per process. `payments serve SERVICE` runs this
supervisor when PAYMENT_WORKERS / ORDER_WORKERS is above 1 (default: 1 in
development, the number of cores otherwise).

The supervisor picks the port (a port of 0 becomes one free port for all),
starts
each worker as `payments serve SERVICE` with the worker count 1 and its
index, and stops them by PID: on SIGTERM/SIGINT it passes SIGTERM on and
waits for them; when one worker exits on its own it stops the others and
exits with an error, so whatever supervises it sees the failure. Workers die
with the supervisor (PR_SET_PDEATHSIG).

Only worker 0 runs the jobs that must run once per service (the order
service's payment-event follower and its expiry sweep) and serves /metrics
(with PROMETHEUS_MULTIPROC_DIR set it shows every worker's counters); every
payment-service worker runs the expiry, reconciliation and refund sweeps,
which take their rows with SKIP LOCKED (retention's batched deletes may
overlap harmlessly)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from paykit.process import dying_with_parent
from paykit.settings import DEFAULT_PORTS, env_int, grpc_bind_from_env, is_development

log = logging.getLogger("payments.workers")

WORKERS_VARIABLE = {"payment": "PAYMENT_WORKERS", "order": "ORDER_WORKERS"}
PORT_VARIABLE = {"payment": "PAYMENT_GRPC_PORT", "order": "ORDER_GRPC_PORT"}
METRICS_VARIABLE = {"payment": "PAYMENT_METRICS_PORT", "order": "ORDER_METRICS_PORT"}
# Set in each worker: its index (0 is the one that runs the once-per-service jobs).
INDEX_VARIABLE = "PAYMENTS_WORKER_INDEX"


def worker_count(service: str, env: Mapping[str, str]) -> int:
    """PAYMENT_WORKERS / ORDER_WORKERS; default 1 in development, else the
    number of cores. Raises ConfigError (a ValueError) on a bad value."""
    default = 1 if is_development(env) else _cores()
    count = env_int(env, WORKERS_VARIABLE[service], default)
    if count < 1:
        raise ValueError(f"{WORKERS_VARIABLE[service]} must be at least 1, got {count}")
    return count


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a
    container's cpuset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_index(env: Mapping[str, str]) -> int:
    return int(env.get(INDEX_VARIABLE, "0") or 0)


def _free_port(host: str) -> int:
    """A port free on host now, for every worker to bind (they share it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])


def serve_workers(service: str, count: int) -> int:
    """Runs `count` workers until a signal (returns 0) or until one exits on
    its own (returns 1)."""
    env = dict(os.environ)
    bind = grpc_bind_from_env(env, service.upper(), DEFAULT_PORTS[service])
    port = bind.port or _free_port(bind.host)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(count):
            worker_env = {
                **env,
                WORKERS_VARIABLE[service]: "1",
                PORT_VARIABLE[service]: str(port),
                INDEX_VARIABLE: str(index),
            }
            if index:
                worker_env[METRICS_VARIABLE[service]] = "off"
            workers.append(
                subprocess.Popen(
                    dying_with_parent([sys.executable, "-m", "payments.cli", "serve", service]),
                    env=worker_env,
                    stdin=subprocess.DEVNULL,
                )
            )
        log.info("workers", extra={"service": service, "port": port, "pids": [w.pid for w in workers]})
        while not stopping.wait(0.2):
            if any(w.poll() is not None for w in workers):
                exited = [(w.pid, w.returncode) for w in workers if w.returncode is not None]
                log.error(
                    "a worker exited; stopping the others", extra={"service": service, "exited": exited}
                )
                return 1
        return 0
    finally:
        _stop(workers)


def _stop(workers: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM to each worker by PID (they drain in parallel), SIGKILL to
    any still running after `timeout`."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    deadline = time.monotonic() + timeout
    for worker in workers:
        try:
            worker.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
