"""What the simulator remembers: its transactions, the faults scripted for
the next payments, and the log of everything it did."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

VN_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")  # every gateway's local time (GMT+7)
GATEWAYS: Final = ("vnpay", "payos", "momo", "zalopay")
ACTIONS: Final = ("pay", "fail", "cancel")
PAYMENT_FAULT_KINDS: Final = (
    "duplicate",  # the callback twice, concurrently
    "delay",  # the callback `seconds` (x time_scale) later
    "before_return",  # the callback answered before the browser is redirected
    "drop",  # no callback at all
    "wrong_amount",  # a correctly signed callback for another amount
    "bad_signature",  # a callback whose signature does not verify
    "out_of_order",  # a failure callback, then the success one
)
REFUND_FAULT_KINDS: Final = (
    # The gateway records the refund, then its answer never arrives: the
    # connection is closed (after `seconds`, default at once).
    "refund_timeout_after_accept",
    "refund_rejected",  # the gateway refuses the refund (VNPay 95, MoMo 1088, ZaloPay fails it)
    # The gateway records the refund but answers "duplicate / already in
    # progress" (VNPay 94, MoMo 1080, ZaloPay 2/-68): the merchant must query.
    "refund_duplicate",
    # The request never reaches the gateway: the connection closes and
    # nothing is recorded (the merchant's query finds no refund).
    "refund_lost",
)
FAULT_KINDS: Final = PAYMENT_FAULT_KINDS + REFUND_FAULT_KINDS
MAX_REFUND_DROP_SECONDS: Final = 60.0
MAX_FAULT_COUNT: Final = 1000
MAX_DELAY_SECONDS: Final = 86_400.0

# Transaction states (payOS's names; each gateway maps them to its own codes).
PENDING: Final = "PENDING"
PAID: Final = "PAID"
FAILED: Final = "FAILED"
CANCELLED: Final = "CANCELLED"
EXPIRED: Final = "EXPIRED"
ACTION_STATUS: Final = {"pay": PAID, "fail": FAILED, "cancel": CANCELLED}


class SimError(Exception):
    """A request the simulator refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- refunds --------------------------------------------------------------

# A refund's progress (each gateway maps these to its own codes).
REFUND_PROCESSING: Final = "processing"
REFUND_SENT_TO_BANK: Final = "sent_to_bank"
REFUND_SUCCEEDED: Final = "succeeded"
REFUND_REJECTED: Final = "rejected"
REFUND_FINAL: Final = frozenset({REFUND_SUCCEEDED, REFUND_REJECTED})


@dataclass
class Refund:
    """One refund the gateway accepted (or refused) for a paid transaction.
    ``schedule`` is its progress: (seconds after creation, state) pairs on
    the simulator's clock, so a test moves it with ``/_control/clock``."""

    request_id: str  # the merchant's key (vnp_RequestId, MoMo requestId, m_refund_id)
    gateway_refund_id: str
    amount: int
    created_at: datetime
    schedule: tuple[tuple[float, str], ...]
    request: dict[str, Any] = field(default_factory=dict)  # as received, without its signature
    extra: dict[str, Any] = field(default_factory=dict)  # gateway-specific (MoMo's refund orderId)

    def status(self, now: datetime) -> str:
        elapsed = (now - self.created_at).total_seconds()
        current = self.schedule[0][1]
        for after, state in self.schedule:
            if elapsed >= after:
                current = state
        return current

    @property
    def outcome(self) -> str:
        """What it ends as."""
        return self.schedule[-1][1]

    def summary(self, now: datetime) -> dict[str, Any]:
        status = self.status(now)
        return {
            "amount": self.amount,
            "status": status,
            "final": status in REFUND_FINAL,
            "gateway_refund_id": self.gateway_refund_id,
            "request_id": self.request_id,
            "created_at": self.created_at.isoformat(),
            **self.extra,
        }


# --- transactions ---------------------------------------------------------


@dataclass
class Txn:
    """One checkout session at one gateway. ``reference`` is the merchant's
    id (vnp_TxnRef, payOS orderCode, MoMo orderId, ZaloPay app_trans_id)."""

    gateway: str
    reference: str
    amount: int  # VND, never VNPay's x100
    description: str
    created_at: datetime
    expires_at: datetime | None
    status: str = PENDING
    action: str | None = None  # the checkout button that settled it
    gateway_txn_id: str = ""  # the gateway's own id once the shopper acted
    finished_at: datetime | None = None
    aliases: set[str] = field(default_factory=set)  # other ids it is found by
    request: dict[str, Any] = field(default_factory=dict)  # the create request, as received
    extra: dict[str, Any] = field(default_factory=dict)  # gateway-specific state
    refunds: list[Refund] = field(default_factory=list)

    def refunded(self, now: datetime) -> int:
        """Money given back so far (refunds that succeeded)."""
        return sum(r.amount for r in self.refunds if r.status(now) == REFUND_SUCCEEDED)

    def refundable(self) -> int:
        """What is left to refund: the capture less every refund that is not
        (going to be) rejected. Zero unless paid."""
        if self.status != PAID:
            return 0
        return self.amount - sum(r.amount for r in self.refunds if r.outcome != REFUND_REJECTED)

    def refund_of(self, request_id: str) -> Refund | None:
        return next((r for r in self.refunds if r.request_id == request_id), None)

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def refresh(self, now: datetime) -> str:
        """The current status, turning a pending session past its expiry into EXPIRED."""
        if self.status == PENDING and self.is_expired(now):
            self.status = EXPIRED
            self.finished_at = self.expires_at
        return self.status

    def summary(self, now: datetime) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "reference": self.reference,
            "aliases": sorted(self.aliases),
            "amount": self.amount,
            "description": self.description,
            "status": self.status,
            "action": self.action,
            "gateway_txn_id": self.gateway_txn_id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            # The ledger's view: when money was taken, until when the session takes it.
            "paid_at": self.finished_at.isoformat() if self.status == PAID and self.finished_at else None,
            "session_deadline": self.expires_at.isoformat() if self.expires_at else None,
            # The gateway's books: what it captured and gave back.
            "captured": self.amount if self.status == PAID else 0,
            "refunded": self.refunded(now),
            "refunds": [r.summary(now) for r in self.refunds],
        }


# --- faults ---------------------------------------------------------------


@dataclass
class Fault:
    id: int
    gateway: str  # one of GATEWAYS, or "*"
    kind: str
    reference: str | None
    remaining: int  # how many more payments it applies to
    seconds: float = 0.0  # delay
    amount: int | None = None  # wrong_amount: the amount to report (default: amount + 1,000)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "gateway": self.gateway,
            "fault": self.kind,
            "reference": self.reference,
            "count": self.remaining,
        }
        if self.kind in ("delay", "refund_timeout_after_accept"):
            out["seconds"] = self.seconds
        if self.kind == "wrong_amount":
            out["amount"] = self.amount
        return out


@dataclass(frozen=True)
class AppliedFaults:
    """The faults one payment's callback is sent with."""

    duplicate: bool = False
    delay: float = 0.0  # seconds, before time_scale
    before_return: bool = False
    drop: bool = False
    wrong_amount: bool = False
    amount: int | None = None
    bad_signature: bool = False
    out_of_order: bool = False
    ids: tuple[int, ...] = ()

    @classmethod
    def of(cls, faults: Iterable[Fault]) -> AppliedFaults:
        kwargs: dict[str, Any] = {}
        ids = []
        for f in faults:
            ids.append(f.id)
            if f.kind == "delay":
                kwargs["delay"] = f.seconds
            elif f.kind == "wrong_amount":
                kwargs["wrong_amount"] = True
                kwargs["amount"] = f.amount
            else:
                kwargs[f.kind] = True
        return cls(ids=tuple(ids), **kwargs)

    def names(self) -> list[str]:
        return [k for k in PAYMENT_FAULT_KINDS if (self.delay > 0 if k == "delay" else getattr(self, k))]


class FaultBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(
        self,
        gateway: str,
        kind: str,
        *,
        reference: str | None = None,
        count: int = 1,
        seconds: float = 0.0,
        amount: int | None = None,
    ) -> Fault:
        with self._lock:
            fault = Fault(self._next_id, gateway, kind, reference, count, seconds, amount)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, gateway: str, references: Collection[str], *, kinds: Collection[str]) -> list[Fault]:
        """The faults for one payment: per kind, the oldest one naming this
        payment, else the oldest one for any payment of this gateway (or "*")."""
        taken: list[Fault] = []
        with self._lock:
            for kind in kinds:
                candidates = [
                    f
                    for f in self._faults
                    if f.kind == kind
                    and f.gateway in (gateway, "*")
                    and (f.reference is None or f.reference in references)
                ]
                if not candidates:
                    continue
                chosen = next((f for f in candidates if f.reference is not None), candidates[0])
                chosen.remaining -= 1
                if chosen.remaining <= 0:
                    self._faults.remove(chosen)
                taken.append(chosen)
        return taken

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


# --- event log ------------------------------------------------------------


class EventLog:
    """Everything the simulator did, oldest first, with a sequence number a
    reader can resume from. Bounded: the oldest entries go first."""

    def __init__(self, limit: int = 10_000) -> None:
        self._cond = threading.Condition()
        self._events: deque[dict[str, Any]] = deque(maxlen=limit)
        self._seq = 0

    def record(
        self, kind: str, gateway: str | None = None, reference: str | None = None, **fields: Any
    ) -> None:
        with self._cond:
            self._seq += 1
            event: dict[str, Any] = {
                "seq": self._seq,
                "time": utcnow().isoformat(timespec="milliseconds"),
                "monotonic": time.monotonic(),
                "kind": kind,
                "gateway": gateway,
                "reference": reference,
            }
            event.update(fields)
            self._events.append(event)
            self._cond.notify_all()

    def query(
        self,
        *,
        gateway: str | None = None,
        reference: str | None = None,
        kind: str | None = None,
        since: int = 0,
    ) -> list[dict[str, Any]]:
        with self._cond:
            return [
                dict(e)
                for e in self._events
                if e["seq"] > since
                and (gateway is None or e["gateway"] == gateway)
                and (reference is None or e["reference"] == reference)
                and (kind is None or e["kind"] == kind)
            ]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        """Blocks until predicate(all events) holds, or timeout seconds pass."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._events)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def clear(self) -> None:
        with self._cond:
            self._events.clear()
