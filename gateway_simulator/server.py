"""The gateway simulator: one HTTP server on loopback serving the four
gateways under /vnpay, /payos, /momo and /zalopay, their checkout pages, and
a JSON control API under /_control that scripts faults and clicks buttons."""

from __future__ import annotations

import html
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, TypeGuard
from urllib.parse import unquote

from gateway_simulator.config import SimConfig
from gateway_simulator.delivery import Deliverer, Plan
from gateway_simulator.gateways import simulated_gateways
from gateway_simulator.gateways.base import Context, GatewaySim
from gateway_simulator.state import (
    ACTIONS,
    EXPIRED,
    FAULT_KINDS,
    GATEWAYS,
    MAX_DELAY_SECONDS,
    MAX_FAULT_COUNT,
    MAX_REFUND_DROP_SECONDS,
    PAYMENT_FAULT_KINDS,
    PENDING,
    REFUND_FAULT_KINDS,
    AppliedFaults,
    EventLog,
    Fault,
    FaultBook,
    SimError,
)
from gateway_simulator.web import Request, Response, html_response, json_response, page, redirect
from gateway_simulator.web import message_page as _message
from paykit.clock import Clock, OffsetClock, check_advance, format_duration, parse_duration

log = logging.getLogger("gateway_simulator")

MAX_BODY_BYTES: Final = 1024 * 1024
WRONG_AMOUNT_DELTA: Final = 1_000  # VND added when wrong_amount names no amount


@dataclass(frozen=True)
class PayResult:
    """What clicking a checkout button did."""

    gateway: str
    reference: str
    action: str
    status: str
    redirect_url: str | None  # where the browser is sent; None: a result page
    faults: tuple[str, ...]
    callbacks: int  # callback requests scheduled (before retries)

    def to_json(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "reference": self.reference,
            "action": self.action,
            "status": self.status,
            "redirect_url": self.redirect_url,
            "faults": list(self.faults),
            "callbacks": self.callbacks,
        }


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class Engine:
    """Everything but the socket: routing, state, faults and callbacks."""

    def __init__(self, config: SimConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.events = EventLog()
        self.faults = FaultBook()
        self.ctx = Context(
            config, self.events, faults=self.faults, clock=OffsetClock() if clock is None else clock
        )
        self.deliverer = Deliverer(self.events, time_scale=config.time_scale, timeout=config.callback_timeout)
        gateways: list[GatewaySim] = [sim(self.ctx) for sim in simulated_gateways()]
        self.gateways: dict[str, GatewaySim] = {g.name: g for g in gateways}

    def _gateway(self, name: object) -> GatewaySim:
        if not isinstance(name, str) or name not in self.gateways:
            raise SimError(400, f"gateway must be one of {', '.join(GATEWAYS)}")
        return self.gateways[name]

    # --- faults ---

    def add_fault(self, spec: Mapping[str, Any]) -> Fault:
        gateway, kind = spec.get("gateway"), spec.get("fault")
        if gateway != "*":
            self._gateway(gateway)
        if kind not in FAULT_KINDS:
            raise SimError(400, f"fault must be one of {', '.join(FAULT_KINDS)}")
        assert isinstance(gateway, str) and isinstance(kind, str)
        if kind in REFUND_FAULT_KINDS and gateway != "*" and not self.gateways[gateway].has_refunds:
            raise SimError(400, f"{gateway} has no refund API: there is no refund to fault")
        if kind == "out_of_order" and gateway != "*" and not self.gateways[gateway].has_failure_callback:
            raise SimError(400, f"{gateway} calls back only on success: there is no failure to send first")
        reference = spec.get("reference")
        if _is_int(reference):
            reference = str(reference)  # payOS orderCode
        if reference is not None and (not isinstance(reference, str) or not reference):
            raise SimError(400, "reference must be a non-empty string")
        count = spec.get("count", 1)
        if not _is_int(count) or not 1 <= count <= MAX_FAULT_COUNT:
            raise SimError(400, f"count must be an integer from 1 to {MAX_FAULT_COUNT}")
        seconds = spec.get("seconds", 0)
        if kind == "delay" and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds <= MAX_DELAY_SECONDS
        ):
            raise SimError(400, f"delay needs seconds, a number from 0 to {MAX_DELAY_SECONDS:.0f}")
        if kind == "refund_timeout_after_accept" and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_REFUND_DROP_SECONDS
        ):
            raise SimError(
                400,
                f"refund_timeout_after_accept takes seconds from 0 to {MAX_REFUND_DROP_SECONDS:.0f}",
            )
        amount = spec.get("amount")
        if amount is not None and (not _is_int(amount) or amount <= 0):
            raise SimError(400, "amount must be a positive integer number of VND")
        fault = self.faults.add(
            gateway,
            kind,
            reference=reference,
            count=count,
            seconds=float(seconds) if kind in ("delay", "refund_timeout_after_accept") else 0.0,
            amount=amount if kind == "wrong_amount" else None,
        )
        self.events.record(
            "fault_scripted", None if gateway == "*" else gateway, reference, fault=fault.to_json()
        )
        return fault

    # --- the checkout buttons ---

    def act(
        self, gateway: str, reference: str, action: str, *, force: bool = False
    ) -> tuple[PayResult, Plan | None, bool]:
        """Settles a pending transaction as the shopper's click would.
        Returns the result, the callbacks to send and whether they go before
        the browser is redirected. ``force`` pays an expired session too."""
        gw = self._gateway(gateway)
        if action not in ACTIONS:
            raise SimError(400, f"action must be one of {', '.join(ACTIONS)}")
        now = self.ctx.now()
        with self.ctx.lock:
            txn = gw.find(reference)
            if txn is None:
                raise SimError(404, f"{gateway} has no transaction {reference!r}")
            status = txn.refresh(now)
            if status != PENDING and not (force and status == EXPIRED):
                raise SimError(409, f"{gateway} transaction {txn.reference} is already {status}")
            gw.settle(txn, action, now)
            redirect_url = gw.redirect_url(txn)
            faults: list[Fault] = []
            if action in gw.callback_actions:
                kinds = [
                    k
                    for k in PAYMENT_FAULT_KINDS
                    if k != "out_of_order" or (action == "pay" and gw.has_failure_callback)
                ]
                faults = self.faults.take(gateway, {txn.reference, *txn.aliases}, kinds=kinds)
            applied = AppliedFaults.of(faults)
            plan = self._plan(gw, txn.reference, action, applied)
            result = PayResult(
                gateway,
                txn.reference,
                action,
                txn.status,
                redirect_url,
                tuple(applied.names()),
                sum(len(step) for step in plan.steps) if plan else 0,
            )
        self.events.record(
            "checkout",
            gateway,
            txn.reference,
            action=action,
            status=result.status,
            redirect_url=result.redirect_url,
            faults=list(result.faults),
            callbacks=result.callbacks,
        )
        return result, plan, applied.before_return

    def _plan(self, gw: GatewaySim, reference: str, action: str, applied: AppliedFaults) -> Plan | None:
        txn = gw.find(reference)
        assert txn is not None
        if action not in gw.callback_actions:
            self.events.record(
                "no_callback", gw.name, reference, reason=f"{gw.label} sends no callback after {action}"
            )
            return None
        if applied.drop:
            self.events.record("callback_dropped", gw.name, reference, faults=applied.names())
            return None
        amount = txn.amount
        if applied.wrong_amount:
            amount = applied.amount if applied.amount is not None else txn.amount + WRONG_AMOUNT_DELTA
        copies = 2 if applied.duplicate else 1
        steps = []
        if applied.out_of_order:
            steps.append([gw.callback(txn, "fail", amount, applied.bad_signature)] * copies)
        steps.append([gw.callback(txn, action, amount, applied.bad_signature)] * copies)
        return Plan(gw.name, reference, steps, delay=applied.delay * self.config.time_scale)

    def deliver(self, plan: Plan | None, before_return: bool) -> Callable[[], None] | None:
        """Starts the callbacks now when they must precede the redirect (and
        waits for their first answers); otherwise returns the starter to run
        once the redirect is on the wire."""
        if plan is None:
            return None
        if before_return:
            self.deliverer.start(plan)
            plan.first_round_done.wait(plan.delay + 2 * self.config.callback_timeout + 5)
            return None
        gate = threading.Event()
        self.deliverer.start(plan, gate)
        return gate.set

    def reset(self) -> None:
        self.deliverer.reset()
        # Let the abandoned callbacks finish (an in-flight request at most
        # callback_timeout) so nothing of the old run lands in the new log.
        self.deliverer.wait_idle(self.config.callback_timeout)
        with self.ctx.lock:
            for gw in self.gateways.values():
                gw.reset()
        self.faults.clear()
        self.events.clear()
        self.events.record("reset")

    # --- HTTP ---

    def dispatch(self, request: Request) -> Response:
        try:
            if request.path.startswith("/_control/"):
                return self.control(request)
            parts = request.path.strip("/").split("/")
            if len(parts) == 4 and parts[1] == "checkout" and parts[0] in self.gateways:
                if request.method != "POST":
                    return _message("Method not allowed", "Use the checkout page's buttons.", 405)
                return self.checkout(parts[0], unquote(parts[2]), parts[3])
            for gw in self.gateways.values():
                response = gw.handle(request)
                if response is not None:
                    return response
            if request.path == "/" and request.method == "GET":
                return self.index()
            return json_response({"error": f"no route for {request.method} {request.path}"}, 404)
        except SimError as error:
            return json_response({"error": error.message}, error.status)

    def checkout(self, gateway: str, reference: str, action: str) -> Response:
        """A checkout page button: settle, then redirect the browser."""
        try:
            result, plan, before_return = self.act(gateway, reference, action)
        except SimError as error:
            return _message(f"{self.gateways[gateway].label} (simulator)", error.message, error.status)
        after = self.deliver(plan, before_return)
        if result.redirect_url:
            response = redirect(result.redirect_url)
        else:
            response = _message(
                f"{self.gateways[gateway].label} (simulator)",
                f"Payment {result.reference}: {result.status}. You may close this page.",
                200,
            )
        response.after = after
        return response

    def control(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/_control/health"):
            return json_response({"ok": True, "base_url": self.ctx.base_url})
        if route == ("POST", "/_control/faults"):
            return json_response({"fault": self.add_fault(request.json_object()).to_json()}, 201)
        if route == ("GET", "/_control/faults"):
            return json_response({"faults": self.faults.pending()})
        if route == ("GET", "/_control/events"):
            q = request.query_params()
            since = q.get("since", "0")
            if not since.isdigit():
                raise SimError(400, "since must be a sequence number")
            events = self.events.query(
                gateway=q.get("gateway"), reference=q.get("reference"), kind=q.get("kind"), since=int(since)
            )
            return json_response({"events": events})
        if route == ("GET", "/_control/transactions"):
            gateway = request.query_params().get("gateway")
            with self.ctx.lock:
                now = self.ctx.now()
                txns = [
                    t.summary(now)
                    for gw in self.gateways.values()
                    if gateway in (None, gw.name)
                    for t in gw.txns.values()
                    if t.refresh(now) or True
                ]
            return json_response({"transactions": txns})
        if route == ("POST", "/_control/pay"):
            return self.control_pay(request.json_object())
        if route == ("GET", "/_control/clock"):
            return json_response(self.clock_json())
        if route == ("POST", "/_control/clock"):
            return json_response(self.advance_clock(request.json_object()))
        if route == ("POST", "/_control/reset"):
            self.reset()
            return json_response({"ok": True})
        return json_response({"error": f"no control route {request.method} {request.path}"}, 404)

    def clock_json(self) -> dict[str, Any]:
        clock = self.ctx.clock
        offset = clock.offset.total_seconds() if isinstance(clock, OffsetClock) else None
        return {"now": self.ctx.now().isoformat(), "offset_seconds": offset}

    def advance_clock(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`{"advance": "15m"}` or `{"seconds": 900}`: moves the gateways'
        time forward (session deadlines), as `payments clock advance` does."""
        clock = self.ctx.clock
        if not isinstance(clock, OffsetClock):
            raise SimError(409, "this simulator's clock is a test's own: move it there")
        raw, seconds = body.get("advance"), body.get("seconds")
        try:
            if isinstance(raw, str):
                by = parse_duration(raw)
            elif isinstance(seconds, int | float) and not isinstance(seconds, bool):
                by = timedelta(seconds=seconds)
            else:
                raise ValueError('give "advance" (e.g. "15m") or "seconds"')
            check_advance(by)
        except ValueError as error:
            raise SimError(400, str(error)) from None
        clock.advance(by)
        self.events.record("clock_advanced", None, None, by=format_duration(by))
        with self.ctx.lock:  # sessions past their deadline read EXPIRED at once
            for gw in self.gateways.values():
                for txn in gw.txns.values():
                    txn.refresh(self.ctx.now())
        return self.clock_json()

    def control_pay(self, body: Mapping[str, Any]) -> Response:
        gw = self._gateway(body.get("gateway"))
        reference, url = body.get("reference"), body.get("url")
        if _is_int(reference):
            reference = str(reference)
        if url is not None:
            if not isinstance(url, str):
                raise SimError(400, "url must be a string")
            reference = gw.reference_from_url(url)
            if reference is None:
                raise SimError(400, f"not a {gw.label} checkout URL of this simulator: {url}")
        if not isinstance(reference, str) or not reference:
            raise SimError(400, "reference (or url) is required")
        action = body.get("action", "pay")
        force = body.get("force", False)
        if not isinstance(action, str) or not isinstance(force, bool):
            raise SimError(400, "action must be a string and force a boolean")
        result, plan, before_return = self.act(gw.name, reference, action, force=force)
        response = json_response(result.to_json())
        response.after = self.deliver(plan, before_return)
        return response

    def index(self) -> Response:
        base = self.ctx.base_url
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(url)}</code></td></tr>"
            for name, url in service_urls(base).items()
        )
        body = (
            "<h1>Payments gateway simulator</h1>"
            f"<p>Callbacks go to <code>{html.escape(self.config.ingress)}</code>; "
            f"time scale {self.config.time_scale:g}.</p>"
            f"<table>{rows}</table>"
            "<p>Control API: <code>POST /_control/faults</code>, <code>GET /_control/events</code>, "
            "<code>POST /_control/pay</code>, <code>GET /_control/transactions</code>, "
            "<code>GET|POST /_control/clock</code>, "
            "<code>POST /_control/reset</code>.</p>"
        )
        return html_response(page("Payments gateway simulator", body))


def service_urls(base_url: str) -> dict[str, str]:
    """The payment service's settings that point each gateway at this simulator."""
    urls: dict[str, str] = {}
    for sim in simulated_gateways():
        urls.update(sim.service_urls(base_url))
    return urls


# --- the socket -----------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a browser's idle connection

    def __init__(self, address: tuple[str, int], engine: Engine, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.engine = engine
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "payments-sim"
    # Keep-alive, as the real gateways' HTTPS APIs do (every reply has a Content-Length).
    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 30  # seconds a client may take to send its request

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _reply(self, response: Response) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        if self.headers.get("Transfer-Encoding"):
            self._reply(json_response({"error": "send a Content-Length, not a chunked body"}, 411))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._reply(json_response({"error": f"the body must be 0-{MAX_BODY_BYTES} bytes"}, 413))
            return
        body = self.rfile.read(length) if length else b""
        method = "GET" if self.command == "HEAD" else self.command
        request = Request(method, path, query, {k.lower(): v for k, v in self.headers.items()}, body)
        try:
            response = self.server.engine.dispatch(request)
        except Exception:
            log.exception("simulator request failed", extra={"path": path})
            response = json_response({"error": "internal simulator error"}, 500)
        if response.drop_after is not None:
            # The gateway did the work; its answer never reaches the merchant.
            time.sleep(response.drop_after)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            self._reply(response)
        finally:
            if response.after is not None:
                response.after()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sim http: " + format, *args)


class Simulator:
    """The gateway simulator. ``start()`` binds and serves in a daemon thread,
    ``stop()`` shuts it down; also a context manager:

        with Simulator(SimConfig(port=0, ingress_base_url="http://127.0.0.1:8080")) as sim:
            env = sim.service_urls()  # VNPAY_API_URL, PAYOS_BASE_URL, ... on sim.port
    """

    def __init__(self, config: SimConfig | None = None, clock: Clock | None = None) -> None:
        """`clock`: the gateways' time; default real time plus the offset
        `POST /_control/clock` moves."""
        self.config = config or SimConfig()
        self.engine = Engine(self.config, clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        host = "127.0.0.1" if self.config.host == "localhost" else self.config.host
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        server = _Server((host, self.config.port), self.engine, family)
        port = int(server.server_address[1])
        self.engine.ctx.base_url = f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="payments-sim", daemon=True
        )
        self._thread.start()
        log.info("gateway simulator listening", extra={"url": self.base_url, "ingress": self.config.ingress})
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stops serving and abandons pending retries; joins every thread
        for at most about ``timeout`` seconds (they are daemons regardless)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self.engine.deliverer.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return self.engine.ctx.base_url

    def service_urls(self) -> dict[str, str]:
        """Environment for the payment service: each gateway's URL on this simulator."""
        return service_urls(self.base_url)

    # --- the control API, from Python ---

    def add_fault(
        self,
        gateway: str,
        fault: str,
        *,
        reference: str | None = None,
        count: int = 1,
        seconds: float | None = None,
        amount: int | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"gateway": gateway, "fault": fault, "reference": reference, "count": count}
        if seconds is not None:
            spec["seconds"] = seconds
        if amount is not None:
            spec["amount"] = amount
        return self.engine.add_fault(spec).to_json()

    def pay(self, gateway: str, reference: str, action: str = "pay", *, force: bool = False) -> PayResult:
        """Clicks a checkout button; callbacks start at once (or, with
        before_return, have had their first answer when this returns)."""
        result, plan, before_return = self.engine.act(gateway, reference, action, force=force)
        start = self.engine.deliver(plan, before_return)
        if start is not None:
            start()
        return result

    def events(
        self, *, gateway: str | None = None, reference: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        return self.engine.events.query(gateway=gateway, reference=reference, kind=kind)

    def reset(self) -> None:
        self.engine.reset()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once no callback is in flight or waiting to be retried."""
        return self.engine.deliverer.wait_idle(timeout)
