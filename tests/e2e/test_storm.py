"""The money storm (issue 11, item 9): seeded random shopper actions over
every gateway, then settle, then the books against the simulator's ledger.

Route: in process, as `sim_stack`: the real payment and order gRPC servers,
the real Envoy in front (every shopper call and every gateway callback goes
through it) and the real simulator over HTTP, all reading one FakeClock
(the simulator's gateways too). Time then moves only when the storm says so,
and a sweep runs right after each move, as `payments clock advance` does on
the process stack; sweeps and expiries happen at the same logical instants
on every run of a seed, and hours of clock pass in seconds.

    STORM_SEED=123 STORM_ACTIONS=1000 .venv/bin/python -m pytest tests/e2e/test_storm.py -s

Prints the seed, the action counts and the ledger comparison. Asserts:
no order PAID without money taken for it; per order at most one kept
payment; every other captured payment recorded as extra and flagged for
review; no money taken that our books do not show; stock exact."""

from __future__ import annotations

import json
import os
import random
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from gateway_simulator.state import SimError
from ingress.envoy import EnvoyError
from payment_service.entrypoints.server import sweep_once
from tests.e2e.client import send
from tests.e2e.conftest import SimStack, _start_sim_stack
from tests.integration.helpers import rows

GATEWAYS = ("vnpay", "payos", "momo", "zalopay")
PROVIDERS = ("PROVIDER_VNPAY", "PROVIDER_PAYOS", "PROVIDER_MOMO", "PROVIDER_ZALOPAY", None)
VARIANTS = ("tshirt-black-m", "tshirt-white-l", "mug-blue", "sticker-pack")
FAULTS = ("duplicate", "delay", "drop", "out_of_order", "before_return")
REFUND_FAULTS = ("refund_timeout_after_accept", "refund_rejected", "refund_duplicate", "refund_lost")
# payOS refunds are payouts (development has payout keys); COD's are manual (a bank transfer).
REFUND_GATEWAYS = ("vnpay", "payos", "momo", "zalopay")
KEPT = ("PAID", "PARTIALLY_REFUNDED")
OPEN_ORDERS = ("PENDING_PAYMENT", "PAYMENT_FAILED")
RESTOCKED = ("CANCELED", "EXPIRED")
IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\b(?:pi|\d+_pi)[0-9a-z]{20,}|\b\d{9,}\b")
ACTIONS = {  # weight of each shopper (or world) action
    "create_order": 10,
    "pay_again": 20,
    "pay_session": 22,
    "fail_session": 6,
    "cancel_session": 5,
    "cancel_order": 5,
    "advance_clock": 8,
    "fault": 10,
    "look": 4,
    "operator_refund": 6,
    "resolve_review": 4,
    "refund_fault": 3,
}


@pytest.fixture
def storm_stack(db_url: str, order_db_url: str, clock: Any, tmp_path: Path) -> Iterator[SimStack]:
    clock.now = datetime.now(UTC)
    for attempt in range(3):
        stops: list[Any] = []
        try:
            yield _start_sim_stack(
                db_url, order_db_url, clock, tmp_path / f"envoy-{attempt}", stops, share_clock=True
            )
            return
        except EnvoyError as error:
            if "Address already in use" not in str(error) or attempt == 2:
                raise
        finally:
            for stop in reversed(stops):
                stop()


@dataclass
class Storm:
    stack: SimStack
    clock: Any
    rng: random.Random
    db_url: str
    order_db_url: str
    users: list[str]
    orders: list[tuple[str, str]] = field(default_factory=list)  # (order id, user)
    sessions: list[tuple[str, str]] = field(default_factory=list)  # (gateway, checkout url)
    counts: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # 4xx answers, by message
    errors: list[str] = field(default_factory=list)
    channel: Any = None

    @property
    def payments(self) -> Any:
        """The operator's internal gRPC client of the payment service."""
        if self.channel is None:
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.stack.payment.port}")
        return payment_service_pb2_grpc.PaymentServiceStub(self.channel)

    def operator(self, method: str, request: Any) -> Any:
        """An operator's call; refusals (4xx-like codes) are counted, not raised."""
        try:
            return getattr(self.payments, method)(request, timeout=30)
        except grpc.RpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                self.errors.append(f"{method}: {code.name} {error.details()}")
            else:
                self.refusals[f"{method} {code.name}: {IDS.sub('<id>', str(error.details()))[:60]}"] += 1
            return None

    # --- the shopper's and the world's calls ---

    def api(self, method: str, path: str, user: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        reply = send(
            self.stack.envoy,
            method,
            path,
            data,
            {"Authorization": f"Bearer {self.stack.keys.token(user)}", "Content-Type": "application/json"},
        )
        if reply.status >= 500 and reply.status != 503:
            self.errors.append(f"{method} {path}: {reply.status} {reply.body[:300]!r}")
        try:
            answer = reply.json()
        except ValueError:
            answer = None
        if 400 <= reply.status < 500 and isinstance(answer, dict):
            self.refusals[
                f"{path.rsplit(':', 1)[-1] if ':' in path else path.split('/')[2]} {reply.status}: "
                f"{IDS.sub('<id>', str(answer.get('message', '')))[:60]}"
            ] += 1
        return reply.status, answer

    def control(self, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.stack.sim.base_url}{path}",
            data=data,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read() or b"{}")
            self.refusals[f"sim {error.code}: {IDS.sub('<id>', str(answer.get('error', '')))[:50]}"] += 1
            return error.code, answer

    def sweep(self) -> None:
        sweep_once(self.stack.payment.app)
        if self.stack.payment.app.refunds is not None:
            self.stack.payment.app.refunds.reconcile_due(limit=1000)
        self.stack.order.app.use_cases.expire_due_orders()

    # --- actions ---

    def create_order(self) -> str:
        items = [
            {"variant_id": v, "quantity": self.rng.randint(1, 3)}
            for v in self.rng.sample(VARIANTS, self.rng.randint(1, 2))
        ]
        user = self.rng.choice(self.users)
        body = {
            "items": items,
            "receiver_name": "Nguyen Van A",
            "receiver_phone": "0901234567",
            "shipping_address": "1 Le Loi, HCMC",
        }
        status, answer = self.api("POST", "/v1/orders", user, body)
        if status == 200:
            self.orders.append((answer["order"]["id"], user))
        return str(status)

    def _an_order(self) -> tuple[str, str] | None:
        if not self.orders:
            return None
        # Recent orders are the busy ones; old ones still get visits.
        return self.orders[-1 - min(int(self.rng.expovariate(0.4)), len(self.orders) - 1)]

    def pay_again(self) -> str:
        picked = self._an_order()
        if picked is None:
            return "no order"
        order_id, user = picked
        provider = self.rng.choice(PROVIDERS)
        body = {"provider": provider} if provider else {}
        status, answer = self.api("POST", f"/v1/orders/{order_id}:retryPayment", user, body)
        if status == 200 and answer.get("checkout_url"):
            url = answer["checkout_url"]
            gateway = self._gateway_of(url)
            if gateway is None:
                return "cod"
            self.sessions.append((gateway, url))
        return str(status)

    def _gateway_of(self, url: str) -> str | None:
        for name in GATEWAYS:
            try:
                if self.stack.sim.engine.gateways[name].reference_from_url(url):
                    return name
            except SimError:  # VNPay checks the URL as its page would: it is VNPay's
                return name
        return None

    def act_on_session(self, action: str) -> str:
        if not self.sessions:
            return "no session"
        # Mostly the newest tab, sometimes any tab ever shown.
        index = -1 if self.rng.random() < 0.6 else self.rng.randrange(len(self.sessions))
        gateway, url = self.sessions[index]
        status, _ = self.control("/_control/pay", {"gateway": gateway, "url": url, "action": action})
        return str(status)

    def cancel_order(self) -> str:
        picked = self._an_order()
        if picked is None:
            return "no order"
        order_id, user = picked
        status, _ = self.api("POST", f"/v1/orders/{order_id}:cancel", user, {"reason": "storm"})
        return str(status)

    def advance_clock(self) -> str:
        minutes = self.rng.choice([1, 2, 5, 10, 16, 20, 31])
        self.clock.advance(minutes=minutes)
        self.sweep()
        return f"{minutes}m"

    def fault(self) -> str:
        kind = self.rng.choice(FAULTS)
        gateways = [
            g
            for g in GATEWAYS
            if kind != "out_of_order" or self.stack.sim.engine.gateways[g].has_failure_callback
        ]
        spec: dict[str, Any] = {"gateway": self.rng.choice(gateways), "fault": kind, "count": 1}
        if kind == "delay":
            spec["seconds"] = self.rng.choice([30, 120, 600])  # x time_scale 0.001: real ms
        status, _ = self.control("/_control/faults", spec)
        return f"{kind} {status}"

    def look(self) -> str:
        picked = self._an_order()
        if picked is None:
            return "no order"
        status, _ = self.api("GET", f"/v1/orders/{picked[0]}", picked[1])
        return str(status)

    def operator_refund(self) -> str:
        """An operator gives money back from a paid order: all of what is left
        or a part, sometimes with the stock."""
        paid = rows(
            self.order_db_url,
            "SELECT paid_payment_id::text, total_amount - refunded_amount FROM orders"
            " WHERE status = ANY(%s) AND paid_payment_id IS NOT NULL ORDER BY create_time",
            list(KEPT),
        )
        if not paid:
            return "no paid order"
        payment_id, left = paid[-1 - min(int(self.rng.expovariate(0.3)), len(paid) - 1)]
        amount = (
            0 if left < 2_000 or self.rng.random() < 0.5 else self.rng.randrange(1, left // 1_000) * 1_000
        )
        provider = rows(self.db_url, "SELECT provider FROM payments WHERE id = %s", payment_id)[0][0]
        answer = self.operator(
            "RefundPayment",
            ps.RefundPaymentRequest(
                payment_id=payment_id,
                amount=amount,
                reason="Tra hang",
                request_id=f"op-{self.rng.getrandbits(48):x}",
                restock=self.rng.random() < 0.5,
                # payOS: a payout, or half the time a transfer the operator made by hand.
                transfer_reference=f"FT{self.rng.getrandbits(32)}"
                if provider == "COD" or (provider == "PAYOS" and self.rng.random() < 0.5)
                else "",
            ),
        )
        if answer is None:
            return "refused"
        return payment_pb2.RefundStatus.Name(answer.refund.status).removeprefix("REFUND_STATUS_")

    def resolve_review(self, action: Any = None) -> str:
        queue = self.operator("ListPaymentsNeedingReview", ps.ListPaymentsNeedingReviewRequest(page_size=50))
        if queue is None or not queue.payments:
            return "empty queue"
        payment = self.rng.choice(list(queue.payments))
        return self._resolve(payment, action)

    def _resolve(self, payment: Any, action: Any = None) -> str:
        if action is None:
            action = self.rng.choice([payment_pb2.REVIEW_ACTION_HONOUR, payment_pb2.REVIEW_ACTION_REFUND])
        if action == payment_pb2.REVIEW_ACTION_REFUND and payment.provider in (
            payment_pb2.PROVIDER_PAYOS,
            payment_pb2.PROVIDER_COD,
        ):
            # No refund API: the operator transfers what is left and records
            # it, then closes the review.
            for refund_left in self._captures_left(payment.id):
                self.operator(
                    "RefundPayment",
                    ps.RefundPaymentRequest(
                        payment_id=payment.id,
                        request_id=f"op-{self.rng.getrandbits(48):x}",
                        provider_transaction_id=refund_left,
                        transfer_reference=f"FT{self.rng.getrandbits(32)}",
                    ),
                )
            action = payment_pb2.REVIEW_ACTION_HONOUR
        answer = self.operator(
            "ResolveReview",
            ps.ResolveReviewRequest(
                payment_id=payment.id,
                action=action,
                note="storm operator",
                request_id=f"rv-{self.rng.getrandbits(48):x}",
            ),
        )
        return (
            "refused"
            if answer is None
            else payment_pb2.ReviewAction.Name(action).removeprefix("REVIEW_ACTION_")
        )

    def _captures_left(self, payment_id: str) -> list[str]:
        """The payment's captured transactions with money not yet refunded
        ("" is its own capture)."""
        own = rows(
            self.db_url,
            "SELECT paid_time IS NOT NULL AND amount > refunded_amount + refund_pending_amount"
            " FROM payments WHERE id = %s",
            payment_id,
        )
        extras = rows(
            self.db_url,
            "SELECT e.provider_transaction_id FROM extra_payments e WHERE e.payment_id = %s AND e.amount >"
            " (SELECT coalesce(sum(r.amount), 0) FROM refunds r WHERE r.extra_payment_id = e.id"
            " AND r.status <> 'FAILED')",
            payment_id,
        )
        return ([""] if own and own[0][0] else []) + [e[0] for e in extras]

    def refund_fault(self) -> str:
        kind = self.rng.choice(REFUND_FAULTS)
        spec = {"gateway": self.rng.choice(REFUND_GATEWAYS), "fault": kind, "count": 1}
        status, _ = self.control("/_control/faults", spec)
        return f"{kind} {status}"

    def step(self) -> None:
        action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        if action in ("pay_session", "fail_session", "cancel_session"):
            outcome = self.act_on_session(action.removesuffix("_session"))
        else:
            outcome = getattr(self, action)()
        self.counts[action] += 1
        self.counts[f"{action}:{outcome}"] += 1

    # --- settle ---

    def follower_caught_up(self) -> bool:
        checkpoint = rows(self.order_db_url, "SELECT cursor FROM stream_checkpoints")
        cursor = checkpoint[0][0] if checkpoint else ""
        return not self.stack.payment.app.use_cases.events_after(cursor, 1)

    def unsettled(self) -> dict[str, int]:
        now = self.clock()
        left = {
            "pending payments": rows(self.db_url, "SELECT count(*) FROM payments WHERE status = 'PENDING'")[
                0
            ][0],
            "closing attempts": rows(
                self.db_url, "SELECT count(*) FROM payments WHERE closing_until >= %s", now
            )[0][0],
            "reconciliation scheduled": rows(
                self.db_url,
                "SELECT count(*) FROM payments WHERE reconcile_time IS NOT NULL AND paid_time IS NULL",
            )[0][0],
            "open orders": rows(
                self.order_db_url, "SELECT count(*) FROM orders WHERE status = ANY(%s)", list(OPEN_ORDERS)
            )[0][0],
            "pending refunds": rows(self.db_url, "SELECT count(*) FROM refunds WHERE status = 'PENDING'")[0][
                0
            ],
            "follower behind": 0 if self.follower_caught_up() else 1,
        }
        return {k: v for k, v in left.items() if v}

    def settle(self, rounds: int = 80) -> int:
        """Advances the clock (10 minutes, then an hour at a time) with a sweep
        after each move until nothing is left to reconcile; returns the rounds."""
        for done in range(rounds):
            self.stack.sim.wait_idle(10)
            if not self.unsettled():
                # The follower may still be applying the last events: once more.
                time.sleep(0.3)
                if not self.unsettled():
                    return done
            self.clock.advance(minutes=10 if done < 12 else 60)
            self.sweep()
            deadline = time.monotonic() + 5
            while not self.follower_caught_up() and time.monotonic() < deadline:
                time.sleep(0.05)
        raise AssertionError(f"the storm did not settle: {self.unsettled()}")

    def close_reviews(self) -> int:
        """The operator works through the review queue until it is empty
        (a review may open another: a refund that fails); returns how many."""
        closed = 0
        for _ in range(10):
            queue = self.operator(
                "ListPaymentsNeedingReview", ps.ListPaymentsNeedingReviewRequest(page_size=500)
            )
            if queue is None or not queue.payments:
                return closed
            for payment in queue.payments:
                if self._resolve(payment) == "refused":
                    # HONOUR refused (extra money to refund first): refund it all.
                    self._resolve(payment, payment_pb2.REVIEW_ACTION_REFUND)
                closed += 1
            self.settle()
        left = [f"{p.id} {p.review_reason}" for p in queue.payments] if queue else []
        raise AssertionError(
            "the review queue does not empty:\n" + "\n".join(left[:10]) + f"\nrefusals: {self.refusals}"
        )

    def refund_orders_in_review(self) -> int:
        """Orders still in review with no payment left to resolve (honoured
        when the stock was gone): the operator gives their money back."""
        waiting = rows(
            self.order_db_url,
            "SELECT review_payment_id::text FROM orders WHERE status = 'NEEDS_REVIEW'"
            " AND review_payment_id IS NOT NULL",
        )
        for (payment_id,) in waiting:
            provider = rows(self.db_url, "SELECT provider FROM payments WHERE id = %s", payment_id)[0][0]
            for capture in self._captures_left(payment_id):
                self.operator(
                    "RefundPayment",
                    ps.RefundPaymentRequest(
                        payment_id=payment_id,
                        request_id=f"op-{self.rng.getrandbits(48):x}",
                        provider_transaction_id=capture,
                        transfer_reference=f"FT{self.rng.getrandbits(32)}"
                        if provider in ("PAYOS", "COD")
                        else "",
                    ),
                )
        if waiting:
            self.settle()
        return len(waiting)


def _ledger_check(storm: Storm) -> tuple[dict[str, int], list[str]]:
    """Our books against the simulator's ledger; (figures, differences)."""
    status, answer = storm.control("/_control/transactions")
    assert status == 200
    txns = answer["transactions"]
    payments = rows(
        storm.db_url,
        "SELECT id, order_id, lower(provider), provider_reference, status, amount, needs_review,"
        " provider_transaction_id, paid_time IS NOT NULL FROM payments",
    )
    refunded = {r[0] for r in rows(storm.db_url, "SELECT payment_id FROM refunds")}
    extras = rows(storm.db_url, "SELECT payment_id, amount, provider_transaction_id FROM extra_payments")
    orders = rows(storm.order_db_url, "SELECT id::text, status, total_amount, paid_payment_id FROM orders")
    by_ref = {(p[2], p[3]): p for p in payments}
    paid_by = {o[3] for o in orders if o[1] == "PAID" and o[3] is not None}
    extra_keys = {(e[0], e[2]) for e in extras}
    problems: list[str] = []
    kept: Counter[str] = Counter()
    kept_payment_ids: set[Any] = set()
    captured = [t for t in txns if t["status"] == "PAID"]
    for t in captured:
        refs = [t["reference"], *t["aliases"]]
        payment = next((by_ref[(t["gateway"], r)] for r in refs if (t["gateway"], r) in by_ref), None)
        if payment is None:
            problems.append(f"money taken on {t['gateway']} {t['reference']} for no payment of ours")
            continue
        pid, order_id, _prov, _ref, pstatus, amount, review, txn_id, paid = payment
        # Kept: the order's money in our books (paid in time, or late and
        # held for a person to honour or refund).
        is_kept = (
            txn_id == t["gateway_txn_id"]
            and pid not in kept_payment_ids
            and (pstatus == "SUCCEEDED" or pid in paid_by or paid)
        )
        is_extra = (pid, t["gateway_txn_id"]) in extra_keys
        if is_kept:
            kept[order_id] += 1
            kept_payment_ids.add(pid)
            if amount != t["amount"]:
                problems.append(f"kept payment {pid} is {amount}, the gateway took {t['amount']}")
        if is_kept and is_extra:
            problems.append(
                f"double-booked: {t['gateway']} {t['reference']} ({t['amount']} VND) pays order {order_id}"
                f" (PAID by payment {pid}, {pstatus}) and is also an extra payment to refund"
            )
        elif is_extra:
            if not review and pid not in refunded:
                problems.append(
                    f"extra payment on {pid} ({t['gateway']} {t['reference']}) neither flagged nor refunded"
                )
        elif not is_kept:
            problems.append(
                f"money taken that our books do not show: {t['gateway']} {t['reference']}"
                f" txn {t['gateway_txn_id']} {t['amount']} VND; payment {pid} is {pstatus}"
                f" (transaction {txn_id})"
            )
    for order_id, count in kept.items():
        if count > 1:
            problems.append(f"order {order_id} keeps {count} payments")
    for p in payments:
        if p[4] == "SUCCEEDED" and p[0] not in kept_payment_ids:
            problems.append(f"payment {p[0]} SUCCEEDED with no money taken at {p[2]} for it")
    given_back = {
        r[0]
        for r in rows(
            storm.db_url, "SELECT id FROM payments WHERE paid_time IS NOT NULL AND refunded_amount >= amount"
        )
    }
    for order_id, ostatus, total, paid_payment_id in orders:
        if ostatus in KEPT:
            if paid_payment_id not in kept_payment_ids:
                problems.append(f"order {order_id} PAID without money taken for it ({paid_payment_id})")
            elif next(p for p in payments if p[0] == paid_payment_id)[5] != total:
                problems.append(f"order {order_id} PAID by a payment of another amount")
        elif kept[order_id] and ostatus not in ("NEEDS_REVIEW", "REFUNDED"):
            kept_here = [p[0] for p in payments if p[1] == str(order_id) and p[0] in kept_payment_ids]
            if not all(pid in given_back for pid in kept_here):
                problems.append(f"order {order_id} is {ostatus} but keeps a payment")
    figures = {
        "simulator transactions": len(txns),
        "captured at the simulator": len(captured),
        "captured amount": sum(t["amount"] for t in captured),
        "our payments": len(payments),
        "kept (SUCCEEDED)": len(kept_payment_ids),
        "extra payments": len(extras),
        "books amount": sum(p[5] for p in payments if p[0] in kept_payment_ids) + sum(e[1] for e in extras),
        "orders": len(orders),
        "orders PAID": sum(1 for o in orders if o[1] == "PAID"),
        "differences": len(problems),
    }
    return figures, problems


def _refund_check(storm: Storm) -> tuple[dict[str, int], list[str]]:
    """Both sets of books after refunds: every refund final, ours equal to the
    gateway's per transaction, and every order has taken exactly its amount
    (net of the operator's partial refunds) or nothing."""
    status, answer = storm.control("/_control/transactions")
    assert status == 200
    payments = rows(storm.db_url, "SELECT id, order_id, lower(provider), provider_reference FROM payments")
    by_ref = {(p[2], p[3]): p for p in payments}
    order_of = {p[0]: p[1] for p in payments}
    ours = rows(
        storm.db_url, "SELECT payment_id, provider_transaction_id, amount, status, manual FROM refunds"
    )
    problems = [f"refund of {r[2]} on payment {r[0]} still {r[3]}" for r in ours if r[3] == "PENDING"]
    captured: Counter[str] = Counter()
    refunded: Counter[str] = Counter()
    gateway_refunds = 0
    for t in answer["transactions"]:
        refs = [t["reference"], *t["aliases"]]
        payment = next((by_ref[(t["gateway"], r)] for r in refs if (t["gateway"], r) in by_ref), None)
        if not t["captured"]:
            if t["refunds"]:
                problems.append(f"{t['gateway']} {t['reference']} refunded but never captured")
            continue
        if payment is None:
            continue  # reported by the ledger check
        pid, order_id = payment[0], payment[1]
        captured[order_id] += t["captured"]
        refunded[order_id] += t["refunded"]
        gateway_refunds += len(t["refunds"])
        problems += [
            f"{t['gateway']} refund {r['request_id']} of {t['reference']} is still {r['status']}"
            for r in t["refunds"]
            if not r["final"]
        ]
        mine = [r for r in ours if r[0] == pid and r[1] == t["gateway_txn_id"] and r[3] == "SUCCEEDED"]
        if any(r[4] for r in mine) and t["refunds"]:
            problems.append(f"{t['gateway']} {t['reference']}: refunded both by the gateway and by hand")
        theirs = [r for r in t["refunds"] if r["status"] == "succeeded"]
        if not any(r[4] for r in mine) and (
            sum(r[2] for r in mine) != t["refunded"] or len(mine) != len(theirs)
        ):
            problems.append(
                f"{t['gateway']} {t['reference']}: the gateway refunded {t['refunded']} in {len(theirs)},"
                f" our books {sum(r[2] for r in mine)} in {len(mine)}"
            )
    for pid, _txn, amount, rstatus, manual in ours:
        if manual and rstatus == "SUCCEEDED":
            refunded[order_of[pid]] += amount  # a bank transfer: the gateway never saw it
    orders = rows(storm.order_db_url, "SELECT id::text, status, total_amount, refunded_amount FROM orders")
    by_status: Counter[str] = Counter()
    for order_id, ostatus, total, order_refunded in orders:
        by_status[ostatus] += 1
        net = captured[order_id] - refunded[order_id]
        if ostatus == "PAID":
            expected = total
        elif ostatus == "PARTIALLY_REFUNDED":
            expected = total - order_refunded
            if not 0 < order_refunded < total:
                problems.append(f"order {order_id} PARTIALLY_REFUNDED with {order_refunded} of {total} back")
        elif ostatus == "NEEDS_REVIEW":
            problems.append(f"order {order_id} still in review after the operator's pass")
            continue
        else:
            expected = 0
        if net != expected:
            problems.append(
                f"order {order_id} is {ostatus} and has taken {net} net"
                f" ({captured[order_id]} captured, {refunded[order_id]} refunded), expected {expected}"
            )
    figures = {
        "refunds (ours)": len(ours),
        "refunds at the gateways": gateway_refunds,
        "refunded amount": sum(refunded.values()),
        **{f"orders {k}": v for k, v in sorted(by_status.items())},
        "differences": len(problems),
    }
    return figures, problems


def _stock_check(storm: Storm, initial: dict[str, int]) -> list[str]:
    """Stock is conserved: what left the shelves is exactly what the orders
    holding their stock (stock_held) ordered; a restock returned it once.
    Open orders hold theirs, closed ones do not."""
    now = dict(rows(storm.order_db_url, "SELECT variant_id, stock FROM products"))
    held: Counter[str] = Counter()
    problems = []
    for order_id, status, variant_id, quantity, flag in rows(
        storm.order_db_url,
        "SELECT o.id::text, o.status, i.variant_id, i.quantity, o.stock_held"
        " FROM order_items i JOIN orders o ON o.id = i.order_id",
    ):
        if flag:
            held[variant_id] += quantity
        if (flag and status in RESTOCKED) or (
            not flag and status in (*OPEN_ORDERS, "AWAITING_DELIVERY_PAYMENT")
        ):
            problems.append(f"order {order_id} is {status} and stock_held is {flag}")
    return problems + [
        f"stock of {v}: {now[v]}, expected {initial[v] - held.get(v, 0)}"
        for v in initial
        if now[v] != initial[v] - held.get(v, 0)
    ]


@pytest.mark.slow
def test_money_storm(storm_stack: SimStack, clock: Any, db_url: str, order_db_url: str) -> None:
    seed = int(os.environ.get("STORM_SEED") or random.SystemRandom().randrange(1, 10**6))
    actions = int(os.environ.get("STORM_ACTIONS") or 300)
    print(f"\nSTORM_SEED={seed} STORM_ACTIONS={actions}")
    storm = Storm(
        storm_stack,
        clock,
        random.Random(seed),
        db_url,
        order_db_url,
        users=[f"storm-{seed}-{i}" for i in range(6)],
    )
    initial = dict(rows(order_db_url, "SELECT variant_id, stock FROM products"))
    started = time.monotonic()
    for _ in range(actions):
        storm.step()
    rounds = storm.settle()
    # The operator works through what is left in review.
    reviews = storm.close_reviews() + storm.refund_orders_in_review()
    figures, problems = _ledger_check(storm)
    refund_figures, refund_problems = _refund_check(storm)
    problems += refund_problems + _stock_check(storm, initial)
    elapsed = time.monotonic() - started
    print(f"storm seed {seed}: {actions} actions, settled in {rounds} clock rounds, {elapsed:.1f} s")
    print("actions: " + ", ".join(f"{k}={v}" for k, v in sorted(storm.counts.items()) if ":" not in k))
    print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(storm.counts.items()) if ":" in k))
    print("refusals: " + ", ".join(f"{k}={v}" for k, v in storm.refusals.most_common()))
    print("ledger: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    print(f"reviews closed after settling: {reviews}")
    print("refunds: " + ", ".join(f"{k}={v}" for k, v in refund_figures.items()))
    if problems and os.environ.get("STORM_DEBUG"):
        _dump(storm)
    assert not storm.errors, f"seed {seed}: server errors:\n" + "\n".join(storm.errors[:20])
    assert not problems, f"seed {seed}:\n" + "\n".join(problems)


def _dump(storm: Storm) -> None:
    """STORM_DEBUG=1: every order, payment, extra payment and simulator transaction."""
    for o in rows(
        storm.order_db_url, "SELECT id, status, status_reason, total_amount, paid_payment_id FROM orders"
    ):
        print("ORDER", o)
    for p in rows(
        storm.db_url,
        "SELECT id, order_id, provider, provider_reference, status, amount, needs_review,"
        " provider_transaction_id, failure_reason FROM payments ORDER BY order_id, attempt",
    ):
        print("PAYMENT", p)
    for e in rows(storm.db_url, "SELECT * FROM extra_payments"):
        print("EXTRA", e)
    for r in rows(
        storm.db_url,
        "SELECT payment_id, extra_payment_id, provider_transaction_id, amount, status, request_id, manual,"
        " failure_reason FROM refunds ORDER BY create_time",
    ):
        print("REFUND", r)
    for j in rows(
        storm.db_url,
        "SELECT payment_id, kind, outcome FROM callback_journal WHERE payment_id IS NOT NULL ORDER BY id",
    ):
        print("JOURNAL", j)
    print("SIM", json.dumps(storm.control("/_control/transactions")[1]))
