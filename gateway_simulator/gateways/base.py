"""What every simulated gateway shares: its transactions, settling one when
the shopper clicks a checkout button, and the hooks the engine calls."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar
from urllib.parse import quote, unquote, urlsplit

from gateway_simulator.config import SimConfig
from gateway_simulator.delivery import Callback
from gateway_simulator.state import (
    ACTION_STATUS,
    REFUND_FAULT_KINDS,
    EventLog,
    FaultBook,
    Refund,
    Txn,
)
from gateway_simulator.web import Request, Response
from paykit.clock import Clock, OffsetClock


@dataclass
class Context:
    """What the gateways share with the engine."""

    config: SimConfig
    events: EventLog
    faults: FaultBook = field(default_factory=FaultBook)
    lock: threading.RLock = field(default_factory=threading.RLock)
    base_url: str = ""  # http://127.0.0.1:<port>, once bound
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # The gateways' time (session deadlines, expiry): real time plus the
    # offset `POST /_control/clock` moves, or a test's own clock.
    clock: Clock = field(default_factory=OffsetClock)

    def now(self) -> datetime:
        return self.clock()

    def callback_url(self, path: str) -> str:
        return f"{self.config.ingress}{path}"

    def serial(self) -> int:
        """A process-wide increasing number for gateway transaction ids."""
        with self.lock:
            return next(self._counter)


@dataclass(frozen=True)
class RefundFaults:
    """The scripted faults one refund request meets."""

    timeout: bool = False
    drop_after: float = 0.0
    rejected: bool = False
    duplicate: bool = False
    lost: bool = False
    ids: tuple[int, ...] = ()

    def names(self) -> list[str]:
        flags = (self.timeout, self.rejected, self.duplicate, self.lost)
        return [k for k, on in zip(REFUND_FAULT_KINDS, flags, strict=True) if on]


class GatewaySim:
    name: ClassVar[str]
    label: ClassVar[str]
    # The checkout actions after which the real gateway sends a callback.
    callback_actions: ClassVar[frozenset[str]] = frozenset({"pay", "fail", "cancel"})
    # Whether a failure callback exists to send before the success one.
    has_failure_callback: ClassVar[bool] = True
    # Whether the gateway has a refund API (payOS does not).
    has_refunds: ClassVar[bool] = False

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.txns: dict[str, Txn] = {}

    @property
    def config(self) -> SimConfig:
        return self.ctx.config

    # --- transactions (call with ctx.lock held) ---

    def find(self, reference: str) -> Txn | None:
        txn = self.txns.get(reference)
        if txn is not None:
            return txn
        return next((t for t in self.txns.values() if reference in t.aliases), None)

    def add(self, txn: Txn) -> Txn:
        self.txns[txn.reference] = txn
        return txn

    def reset(self) -> None:
        self.txns.clear()

    def settle(self, txn: Txn, action: str, now: datetime) -> None:
        txn.status = ACTION_STATUS[action]
        txn.action = action
        txn.finished_at = now
        self.on_settle(txn, action, now)

    # --- refunds (call with ctx.lock held) ---

    def refund_faults(self, txn: Txn, *, new: bool) -> RefundFaults:
        """Takes the faults scripted for this transaction's next refund
        request. A refusal applies to a new refund only; a repeated request
        can still time out or be answered "duplicate"."""
        kinds = REFUND_FAULT_KINDS if new else ("refund_timeout_after_accept", "refund_duplicate")
        taken = self.ctx.faults.take(self.name, {txn.reference, *txn.aliases}, kinds=kinds)
        by_kind = {f.kind: f for f in taken}
        timeout = by_kind.get("refund_timeout_after_accept")
        return RefundFaults(
            timeout=timeout is not None,
            drop_after=timeout.seconds if timeout is not None else 0.0,
            rejected="refund_rejected" in by_kind,
            duplicate="refund_duplicate" in by_kind,
            lost="refund_lost" in by_kind,
            ids=tuple(f.id for f in taken),
        )

    def record_refund(self, txn: Txn, refund: Refund, faults: RefundFaults) -> Refund:
        txn.refunds.append(refund)
        self.ctx.events.record(
            "refund",
            self.name,
            txn.reference,
            request_id=refund.request_id,
            gateway_refund_id=refund.gateway_refund_id,
            amount=refund.amount,
            outcome=refund.outcome,
            faults=faults.names(),
        )
        return refund

    def lose_refund_request(self, txn: Txn, faults: RefundFaults) -> Response:
        """The refund_lost fault: the connection closes before the gateway
        records anything."""
        self.ctx.events.record("refund_request_lost", self.name, txn.reference, faults=faults.names())
        return Response(0, drop_after=0.0)

    def deliver_refund_answer(self, txn: Txn, response: Response, faults: RefundFaults) -> Response:
        """The answer as sent, or a connection closed without one."""
        if faults.timeout:
            response.drop_after = faults.drop_after
            self.ctx.events.record(
                "refund_answer_dropped", self.name, txn.reference, seconds=faults.drop_after
            )
        return response

    # --- hooks ---

    # The payment service's variables that point this gateway at the
    # simulator, and the path under the simulator's base URL each one takes
    # (from the gateway's settings module).
    endpoints: ClassVar[tuple[tuple[str, str], ...]] = ()

    @classmethod
    def service_urls(cls, base_url: str) -> dict[str, str]:
        return {variable: base_url + path for variable, path in cls.endpoints}

    # A gateway with a create API, a query API and a checkout page under one
    # path prefix (MoMo, ZaloPay) sets these and gets handle() and
    # reference_from_url() as they are; the others override both.
    create_path: ClassVar[str] = ""
    query_path: ClassVar[str] = ""
    pay_path: ClassVar[str] = ""

    def handle(self, request: Request) -> Response | None:
        """This gateway's own API and pages; None when the path is not one of them."""
        if not self.pay_path:
            raise NotImplementedError
        if request.path == self.create_path and request.method == "POST":
            return self.create(request)
        if request.path == self.query_path and request.method == "POST":
            return self.query(request)
        if request.path.startswith(self.pay_path) and request.method == "GET":
            return self.web(unquote(request.path.removeprefix(self.pay_path)))
        return None

    def reference_from_url(self, url: str) -> str | None:
        """The reference of a checkout URL this gateway handed out (for /_control/pay)."""
        if not self.pay_path:
            raise NotImplementedError
        path = urlsplit(url).path
        return unquote(path.rsplit(self.pay_path, 1)[1]).strip("/") if self.pay_path in path else None

    def create(self, request: Request) -> Response:
        raise NotImplementedError

    def query(self, request: Request) -> Response:
        raise NotImplementedError

    def web(self, reference: str) -> Response:
        raise NotImplementedError

    def on_settle(self, txn: Txn, action: str, now: datetime) -> None:
        """Assigns the gateway's ids for the outcome (lock held)."""

    def redirect_url(self, txn: Txn) -> str | None:
        """Where the browser goes once the shopper acted; None: a result page."""
        raise NotImplementedError

    def callback(self, txn: Txn, result: str, amount: int, bad_signature: bool) -> Callback:
        """The signed server-to-server callback reporting ``result`` for ``amount``."""
        raise NotImplementedError

    def checkout_path(self, txn: Txn) -> str:
        """Where the checkout page's buttons POST: ``{path}/pay|fail|cancel``."""
        return f"/{self.name}/checkout/{quote(txn.reference, safe='')}"


def corrupt(signature: str) -> str:
    """Same length and alphabet, one hex digit different: a wrong signature."""
    if not signature:
        return "0"
    last = signature[-1]
    return signature[:-1] + ("0" if last != "0" else "1")
