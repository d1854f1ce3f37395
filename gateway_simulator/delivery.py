"""Server-to-server callbacks: sent from daemon threads, retried on each
gateway's own schedule (compressed by time_scale), every attempt logged."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from gateway_simulator.state import EventLog

log = logging.getLogger("gateway_simulator")

_MAX_ANSWER_BYTES: Final = 64 * 1024


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def vnpay_acknowledged(status: int | None, body: bytes) -> bool:
    """VNPay stops on RspCode 00 or 02; anything else (01, 04, 97, 99, a
    timeout, a non-JSON answer) is retried."""
    answer = _json(body)
    return status == 200 and isinstance(answer, dict) and answer.get("RspCode") in ("00", "02")


def payos_acknowledged(status: int | None, body: bytes) -> bool:
    return status is not None and 200 <= status < 300


def momo_acknowledged(status: int | None, body: bytes) -> bool:
    return status == 204


def zalopay_acknowledged(status: int | None, body: bytes) -> bool:
    answer = _json(body)
    return status == 200 and isinstance(answer, dict) and answer.get("return_code") == 1


@dataclass(frozen=True)
class Schedule:
    attempts: int  # in all, the first one included
    interval: float  # seconds between attempts, before time_scale
    acknowledged: Callable[[int | None, bytes], bool]


# VNPay: 10 attempts 5 minutes apart unless RspCode 00/02 (GATEWAYS.md §1.3).
VNPAY_SCHEDULE: Final = Schedule(10, 300.0, vnpay_acknowledged)
# payOS: no retry documented; any 2xx acknowledges (§2.3).
PAYOS_SCHEDULE: Final = Schedule(1, 0.0, payos_acknowledged)
# MoMo: one IPN, HTTP 204 acknowledges (§3.3).
MOMO_SCHEDULE: Final = Schedule(1, 0.0, momo_acknowledged)
# ZaloPay: re-sent up to 3 times while return_code != 1 (§4.3). The interval
# is not documented; 5 s is the simulator's choice.
ZALOPAY_SCHEDULE: Final = Schedule(4, 5.0, zalopay_acknowledged)


@dataclass(frozen=True)
class Callback:
    """One server-to-server request a gateway sends."""

    gateway: str
    reference: str
    result: str  # the outcome it reports: "pay", "fail" or "cancel"
    method: str
    url: str
    body: bytes | None
    content_type: str | None
    schedule: Schedule
    notes: dict[str, Any] = field(default_factory=dict)  # logged with every attempt


@dataclass
class Plan:
    """The callbacks of one payment: steps one after another (each starts
    once every copy of the previous one had its first answer), the copies of
    one step at the same instant."""

    gateway: str
    reference: str
    steps: list[list[Callback]]
    delay: float = 0.0  # real seconds, already scaled
    first_round_done: threading.Event = field(default_factory=threading.Event)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A gateway does not follow redirects from a merchant's callback URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxies: callbacks go to the configured ingress and nowhere else.
_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def send(callback: Callback, timeout: float) -> tuple[int | None, bytes, str | None]:
    """(HTTP status or None, answer body, error) of one attempt."""
    headers = {"User-Agent": f"payments-sim/{callback.gateway}"}
    if callback.content_type:
        headers["Content-Type"] = callback.content_type
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in SimConfig
        callback.url, data=callback.body, method=callback.method, headers=headers
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), response.read(_MAX_ANSWER_BYTES), None
    except urllib.error.HTTPError as error:
        try:
            body = error.read(_MAX_ANSWER_BYTES)
        except OSError:
            body = b""
        return error.code, body, None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return None, b"", f"{type(error).__name__}: {reason}"


def _text(body: bytes | None) -> str | None:
    return None if body is None else body.decode("utf-8", "replace")


class Deliverer:
    def __init__(self, events: EventLog, *, time_scale: float, timeout: float) -> None:
        self.events = events
        self.time_scale = time_scale
        self.timeout = timeout
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._cancel = threading.Event()  # replaced on reset; set on stop
        self._stopped = False

    # --- threads ---

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread | None:
        def run() -> None:
            try:
                target()
            except Exception:
                log.exception("simulator delivery failed")
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            if self._stopped:
                return None
            self._threads.add(thread)
            thread.start()
        return thread

    def start(self, plan: Plan, gate: threading.Event | None = None) -> None:
        """Sends the plan's callbacks from a new daemon thread, once ``gate``
        (if any) is set: the caller's way to let its redirect leave first
        while wait_idle already counts the plan."""
        cancel = self._cancel
        if self._spawn(lambda: self._run(plan, cancel, gate), f"sim-{plan.gateway}-{plan.reference}") is None:
            plan.first_round_done.set()

    def wait_idle(self, timeout: float) -> bool:
        """True once no callback is in flight or waiting for a retry."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return True
            for thread in threads:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                thread.join(remaining)

    def reset(self) -> None:
        """Abandons every pending retry and delay (in-flight requests finish)."""
        with self._lock:
            self._cancel.set()
            self._cancel = threading.Event()

    def stop(self, timeout: float) -> None:
        with self._lock:
            self._stopped = True
            self._cancel.set()
        self.wait_idle(timeout)

    # --- one payment ---

    def _run(self, plan: Plan, cancel: threading.Event, gate: threading.Event | None) -> None:
        try:
            deadline = time.monotonic() + self.timeout + 30
            while gate is not None and not gate.wait(0.02):
                if cancel.is_set() or time.monotonic() > deadline:
                    break
            if plan.delay > 0:
                self.events.record("callback_delayed", plan.gateway, plan.reference, seconds=plan.delay)
                if cancel.wait(plan.delay):
                    self._aborted(plan.gateway, plan.reference)
                    return
            copies: list[threading.Thread] = []
            for index, step in enumerate(plan.steps):
                last = index == len(plan.steps) - 1
                answered = threading.Barrier(len(step) + 1)
                together = threading.Barrier(len(step))
                for copy, callback in enumerate(step, start=1):

                    def deliver(
                        cb: Callback = callback,
                        n: int = copy,
                        of: int = len(step),
                        together: threading.Barrier = together,
                        answered: threading.Barrier = answered,
                    ) -> None:
                        self._deliver(cb, n, of, cancel, together, answered)

                    thread = self._spawn(deliver, f"sim-{callback.gateway}-{callback.reference}-{copy}")
                    if thread is None:  # stopping: release the copies already started
                        answered.abort()
                        return
                    copies.append(thread)
                # Wait for every copy's first answer before the next step.
                try:
                    answered.wait(timeout=self.timeout * 2 + 5)
                except threading.BrokenBarrierError:
                    pass
                if last:
                    plan.first_round_done.set()
                if cancel.is_set():
                    return
            for thread in copies:
                thread.join()
        finally:
            plan.first_round_done.set()

    def _aborted(self, gateway: str, reference: str) -> None:
        self.events.record("callback_aborted", gateway, reference, reason="simulator reset or stopped")

    def _deliver(
        self,
        callback: Callback,
        copy: int,
        copies: int,
        cancel: threading.Event,
        together: threading.Barrier,
        answered: threading.Barrier,
    ) -> None:
        """One copy of a callback, retried on the gateway's schedule until acknowledged."""
        schedule = callback.schedule
        wait = schedule.interval * self.time_scale
        first = True
        try:
            if copies > 1:
                _wait_quietly(together, 5)  # duplicates leave at the same instant
            for attempt in range(1, schedule.attempts + 1):
                if cancel.is_set():
                    self._aborted(callback.gateway, callback.reference)
                    return
                acknowledged = self._attempt(callback, copy, copies, attempt, wait)
                if first:
                    first = False
                    _wait_quietly(answered, self.timeout * 2 + 5)
                if acknowledged:
                    return
                if attempt == schedule.attempts:
                    self._gave_up(callback, copy, attempt)
                    return
                if cancel.wait(wait):
                    self._aborted(callback.gateway, callback.reference)
                    return
        finally:
            if first:  # never got to answer: release the plan anyway
                answered.abort()

    def _attempt(self, callback: Callback, copy: int, copies: int, attempt: int, wait: float) -> bool:
        """Sends the callback once and records it; True when the gateway's
        acknowledgement came back."""
        schedule = callback.schedule
        started = time.monotonic()
        status, answer, error = send(callback, self.timeout)
        acknowledged = schedule.acknowledged(status, answer)
        retry = not acknowledged and attempt < schedule.attempts
        self.events.record(
            "callback",
            callback.gateway,
            callback.reference,
            result=callback.result,
            copy=copy,
            copies=copies,
            attempt=attempt,
            max_attempts=schedule.attempts,
            method=callback.method,
            url=callback.url,
            body=_text(callback.body),
            status=status,
            answer=_text(answer),
            error=error,
            acknowledged=acknowledged,
            next_attempt_in=wait if retry else None,
            elapsed=round(time.monotonic() - started, 4),
            **callback.notes,
        )
        return acknowledged

    def _gave_up(self, callback: Callback, copy: int, attempts: int) -> None:
        if callback.schedule.attempts > 1:
            self.events.record(
                "callback_gave_up",
                callback.gateway,
                callback.reference,
                result=callback.result,
                copy=copy,
                attempts=attempts,
            )


def _wait_quietly(barrier: threading.Barrier, timeout: float) -> None:
    """Waits at the barrier; a broken or timed-out barrier just lets this thread go on."""
    try:
        barrier.wait(timeout=timeout)
    except threading.BrokenBarrierError:
        pass
