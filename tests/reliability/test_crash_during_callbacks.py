"""Issue 7.1: the payment service is SIGKILLed twice while VNPay IPNs for 200
payments arrive through the real Envoy, sent by a sender that retries like
VNPay (until RspCode 00 or 02). Nothing is lost, nothing is applied twice,
and every attempt that reached the service is in the journal.

(Issue 7.2, crash during event delivery, is tests/integration/test_replicas.py:
order replicas SIGKILLed while applying payment events, stock exact.)"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import TEST_VNPAY
from tests.integration.helpers import ServerProcess, rows
from tests.reliability.support import (
    VnpaySender,
    create_payment,
    free_port,
    ipn_target,
    kill_all,
    payment_stub,
    report,
    start_envoy,
    start_payment,
    wait_until,
)

PAYMENTS = 200
SENDERS = 8
KILLS = 2


def test_sigkill_twice_during_ipns_loses_nothing(db_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    port = free_port()
    processes: list[ServerProcess] = [start_payment(db_url, port)]
    envoy = None
    try:
        envoy = start_envoy(tmp_path / "envoy", port)
        ingress_port = envoy.ingress_port
        stub = payment_stub(processes[0].target)
        with ThreadPoolExecutor(SENDERS) as pool:
            created = list(
                pool.map(
                    lambda i: create_payment(stub, f"ORD-{i}", 100_000 + i, user_id=f"u{i}").payment,
                    range(PAYMENTS),
                )
            )
        amounts = {p.provider_reference: p.amount for p in created}
        assert len(amounts) == PAYMENTS

        sender = VnpaySender(lambda: ingress_port)
        with ThreadPoolExecutor(SENDERS) as pool:
            futures = [
                pool.submit(sender.deliver, ref, ipn_target(ref, amount, TEST_VNPAY.hash_secret))
                for ref, amount in amounts.items()
            ]
            kill_times = []
            for k in range(1, KILLS + 1):
                # In the middle: with IPNs in flight, after a third and two thirds are settled.
                threshold = PAYMENTS * k // (KILLS + 1)
                wait_until(lambda t=threshold: sum(f.done() for f in futures) >= t, 60, 0.005)
                processes[-1].kill()  # SIGKILL
                kill_times.append(round(time.monotonic() - started, 2))
                processes.append(start_payment(db_url, port))  # same port: Envoy's upstream
            finals = Counter(f.result() for f in futures)
        assert finals.keys() <= {"00", "02"}, f"IPNs never acknowledged: {finals}"

        # Every payment in its final state, one success event each.
        statuses = dict(rows(db_url, "SELECT status, count(*) FROM payments GROUP BY status"))
        assert statuses == {"SUCCEEDED": PAYMENTS}, statuses
        per_payment = rows(
            db_url,
            "SELECT p.id, count(e.id) FROM payments p LEFT JOIN outbox_events e"
            " ON e.aggregateid = p.id::text AND e.type = 'payment.succeeded' GROUP BY p.id",
        )
        assert sorted({n for _, n in per_payment}) == [1], per_payment

        # The journal holds every attempt the service answered (and those whose
        # answer the crash swallowed): per payment, at least as many rows as
        # answers, and exactly one that applied the success.
        answered = Counter(a.txn_ref for a in sender.attempts if a.rsp_code)
        journal = {
            ref: (total, applied)
            for ref, total, applied in rows(
                db_url,
                "SELECT provider_reference, count(*), count(*) FILTER (WHERE outcome = 'succeeded')"
                " FROM callback_journal GROUP BY provider_reference",
            )
        }
        unjournaled = {ref: n for ref, n in answered.items() if journal.get(ref, (0, 0))[0] < n}
        assert not unjournaled, unjournaled
        assert {applied for _total, applied in journal.values()} == {1}
        assert len(journal) == PAYMENTS
        acks = sum(1 for a in sender.attempts if a.rsp_code in ("00", "02"))
        journal_rows = sum(total for total, _ in journal.values())
        assert journal_rows >= acks
        oks = sum(1 for a in sender.attempts if a.rsp_code == "00")
        assert oks <= PAYMENTS  # a success applied once, acknowledged at most once
        for p in processes[:-1]:
            assert p.proc.returncode == -9  # really SIGKILLed
        assert processes[-1].proc.poll() is None

        tally = sender.tally()
        report(
            "crash_during_callbacks",
            payments=PAYMENTS,
            requests=len(sender.attempts),
            faults=f"{KILLS} SIGKILL+restart at {kill_times} s",
            answers=dict(sorted(tally.items())),
            max_attempts_for_one_ipn=max(Counter(a.txn_ref for a in sender.attempts).values()),
            journal_rows=journal_rows,
            acks=acks,
            succeeded_events=len(per_payment),
            losses=PAYMENTS - statuses.get("SUCCEEDED", 0) + len(unjournaled),
            seconds=round(time.monotonic() - started, 1),
        )
    finally:
        kill_all(envoy, *processes)
