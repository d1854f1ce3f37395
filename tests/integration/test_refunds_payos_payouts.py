"""payOS refunds end to end: payouts to the payer's account. The payment
service (real PostgreSQL, its real payOS client) against the gateway
simulator, one clock for both: partial then the rest, a timeout after
acceptance reconciled with the same key (one payout at the simulator), a
rejected payout, the other refund faults, and our refund rows equal the
simulator's ledger. Without the payer's account, or without payout
credentials, the refund is a manual one, exactly as before."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway_simulator import SimConfig, Simulator
from payment_service.bootstrap import App, bootstrap
from payment_service.domain.errors import FailedPrecondition
from payment_service.domain.model import PaymentStatus, Policy, Provider
from payment_service.domain.refunds import Refund, ReviewAction
from payment_service.gateways import registry
from payment_service.gateways.cod import CodConfig
from payment_service.gateways.payos.protocol import PayosConfig, PayoutConfig
from payment_service.service_layer.refunds import RefundUseCases
from payment_service.service_layer.services import CreatePayment
from tests.conftest import FakeClock, make_settings

AMOUNT = 100_000
SAME = {"SUCCEEDED": "succeeded", "FAILED": "rejected"}

Stack = tuple[App, Simulator]


@pytest.fixture
def make_stack(db_url: str, clock: FakeClock) -> Iterator[Callable[[bool], Stack]]:
    made: list[Stack] = []

    def make(payouts: bool = True) -> Stack:
        # Callbacks go nowhere: payments are found paid by reconciliation's
        # query, whose answer names the payer's account as the webhook does.
        sim = Simulator(
            SimConfig(port=0, ingress_base_url="http://127.0.0.1:9", time_scale=0.001, callback_timeout=1.0),
            clock=clock,
        ).start()
        sim.add_fault("*", "drop", count=1000)
        c = sim.config.payos
        payout = PayoutConfig(
            client_id=c.payout_client_id, api_key=c.payout_api_key, checksum_key=c.payout_checksum_key
        )
        gateways: dict[Provider, Any] = {
            Provider.PAYOS: PayosConfig(
                client_id=c.client_id,
                api_key=c.api_key,
                checksum_key=c.checksum_key,
                base_url=sim.service_urls()["PAYOS_BASE_URL"],
                return_url="https://shop.example/r",
                cancel_url="https://shop.example/r",
                payout=payout if payouts else None,
            ),
            Provider.COD: CodConfig(),
        }
        settings = make_settings(
            policy=Policy(
                enabled_providers=frozenset(gateways),
                traits=registry.traits(gateways),
                default_provider=Provider.PAYOS,
            ),
            gateways=gateways,
            gateway_timeout_seconds=2.0,
        )
        app = bootstrap(settings, db_url, clock=clock)
        made.append((app, sim))
        return app, sim

    yield make
    for app, sim in made:
        app.close()
        sim.stop()


@pytest.fixture
def stack(make_stack: Callable[[bool], Stack]) -> Stack:
    return make_stack(True)


def refunds_of(app: App) -> RefundUseCases:
    assert app.refunds is not None
    return app.refunds


def paid(app: App, sim: Simulator, clock: FakeClock, *, payer_known: bool = True) -> Any:
    call = CreatePayment(
        f"ORD-{uuid.uuid4().hex[:10]}", "u1", AMOUNT, "", Provider.PAYOS, "", "127.0.0.1", "", "", ""
    )
    result = app.use_cases.create_or_get_payment(call)
    sim.engine.control_pay({"gateway": "payos", "url": result.checkout_url})
    if not payer_known:
        # As in payOS's sandbox: the transfer reports no counter account.
        with sim.engine.ctx.lock:
            txn = sim.engine.gateways["payos"].find(result.payment.provider_reference)
            assert txn is not None
            txn.extra["payer_account"] = ""
    clock.advance(minutes=2, seconds=1)
    app.callbacks.reconcile_due()
    payment = app.use_cases.get_payment(result.payment.id)
    assert payment.status == PaymentStatus.SUCCEEDED, payment
    return payment


def settle_all(app: App, clock: FakeClock, payment_id: uuid.UUID, rounds: int = 10) -> list[Refund]:
    for _ in range(rounds):
        mine = list(refunds_of(app).refunds_of(payment_id))
        if all(r.status != "PENDING" for r in mine):
            return mine
        clock.advance(minutes=5)
        refunds_of(app).reconcile_due()
    raise AssertionError(f"refunds still pending: {mine}")


def books(sim: Simulator, reference: str) -> dict[str, Any]:
    with sim.engine.ctx.lock:
        txn = sim.engine.gateways["payos"].find(reference)
        assert txn is not None
        return txn.summary(sim.engine.ctx.now())


def assert_same_books(app: App, sim: Simulator, payment: Any, mine: list[Refund]) -> dict[str, Any]:
    theirs = books(sim, payment.provider_reference)
    ours = sorted((r.amount, SAME[r.status], r.provider_refund_id) for r in mine)
    gateway = sorted((r["amount"], r["status"], r["gateway_refund_id"]) for r in theirs["refunds"])
    assert ours == gateway
    # The payout's referenceId is our refund's key.
    assert sorted(r.gateway_key for r in mine) == sorted(r["request_id"] for r in theirs["refunds"])
    fresh = app.use_cases.get_payment(payment.id)
    assert (fresh.refunded_amount, fresh.refund_pending_amount) == (theirs["refunded"], 0)
    assert theirs["captured"] == AMOUNT
    return theirs


def test_partial_then_the_rest_by_payout_matches_the_simulators_books(stack: Stack, clock: FakeClock) -> None:
    app, sim = stack
    payment = paid(app, sim, clock)
    refunds = refunds_of(app)
    first = refunds.refund_payment(payment.id, 40_000, "Tra hang mot phan", "part-1")
    assert (first.status, first.manual) == ("PENDING", False)  # a payout is processing
    settle_all(app, clock, payment.id)
    rest = refunds.refund_payment(payment.id, 0, "Tra lai phan con lai", "rest-1")
    assert rest.amount == 60_000
    mine = settle_all(app, clock, payment.id)
    assert [r.status for r in mine] == ["SUCCEEDED", "SUCCEEDED"]
    theirs = assert_same_books(app, sim, payment, mine)
    assert theirs["refunded"] == AMOUNT
    # Each payout went to the account this payment came from.
    with sim.engine.ctx.lock:
        txn = sim.engine.gateways["payos"].find(payment.provider_reference)
        assert txn is not None
        assert {r.request["toAccountNumber"] for r in txn.refunds} == {txn.extra["payer_account"]}
        account = txn.extra["payer_account"]
    # The refund exchanges are journaled with the account down to its last digits.
    with app.use_cases.uow_factory() as uow:
        exchanges = [
            e for _, e in uow.payments.journal_of(payment.id) if e.kind in ("refund", "refund_query")
        ]
    assert exchanges and all(account.encode() not in (e.raw_body or b"") for e in exchanges)
    assert any(account[-4:].encode() in (e.raw_body or b"") for e in exchanges)
    assert refunds.refund_payment(payment.id, 40_000, "Tra hang mot phan", "part-1").id == first.id
    assert len(books(sim, payment.provider_reference)["refunds"]) == 2


def test_timeout_after_accept_is_reconciled_with_the_same_key(stack: Stack, clock: FakeClock) -> None:
    app, sim = stack
    payment = paid(app, sim, clock)
    sim.add_fault("payos", "refund_timeout_after_accept", count=3)  # every HTTP attempt
    refund = refunds_of(app).refund_payment(payment.id, 0, "Huy don", "to-1")
    assert refund.status == "PENDING"
    assert len(books(sim, payment.provider_reference)["refunds"]) == 1  # accepted once
    mine = settle_all(app, clock, payment.id)
    assert [r.status for r in mine] == ["SUCCEEDED"]
    theirs = assert_same_books(app, sim, payment, mine)
    assert len(theirs["refunds"]) == 1 and theirs["refunded"] == AMOUNT
    assert sim.events(kind="refund_answer_dropped")


def test_a_rejected_payout_fails_and_opens_a_review(stack: Stack, clock: FakeClock) -> None:
    app, sim = stack
    payment = paid(app, sim, clock)
    sim.add_fault("payos", "refund_rejected")
    refund = refunds_of(app).refund_payment(payment.id, 30_000, "Huy don", "rj-1")
    assert refund.status == "FAILED"
    mine = settle_all(app, clock, payment.id)
    theirs = assert_same_books(app, sim, payment, mine)
    assert theirs["refunded"] == 0 and [r["status"] for r in theirs["refunds"]] == ["rejected"]
    fresh = app.use_cases.get_payment(payment.id)
    assert fresh.needs_review and fresh.refunded_amount == 0


@pytest.mark.parametrize("fault", ["refund_duplicate", "refund_lost"])
def test_duplicate_and_lost_payouts_end_as_one_payout(stack: Stack, clock: FakeClock, fault: str) -> None:
    app, sim = stack
    payment = paid(app, sim, clock)
    sim.add_fault("payos", fault, count=3)
    refunds_of(app).refund_payment(payment.id, 25_000, "Tra hang", "f-1")
    mine = settle_all(app, clock, payment.id)
    assert [r.status for r in mine] == ["SUCCEEDED"]
    theirs = assert_same_books(app, sim, payment, mine)
    assert len(theirs["refunds"]) == 1 and theirs["refunded"] == 25_000


def test_unknown_payer_account_asks_for_a_manual_refund(stack: Stack, clock: FakeClock) -> None:
    app, sim = stack
    payment = paid(app, sim, clock, payer_known=False)
    with pytest.raises(FailedPrecondition) as info:
        refunds_of(app).refund_payment(payment.id, 0, "Huy don", "m-1")
    assert info.value.type == "MANUAL_REFUND"
    assert "payer's bank account" in str(info.value) and "transfer_reference" in str(info.value)
    assert refunds_of(app).refunds_of(payment.id) == []  # nothing stored
    refund = refunds_of(app).refund_payment(payment.id, 0, "Huy don", "m-2", transfer_reference="FT26001")
    assert (refund.status, refund.manual, refund.provider_refund_id) == ("SUCCEEDED", True, "FT26001")
    assert books(sim, payment.provider_reference)["refunds"] == []


def test_past_raw_retention_the_payer_is_unknown_and_the_refund_manual(
    stack: Stack, clock: FakeClock
) -> None:
    """The journal's raw bytes (where the payer's account is read from) go
    after JOURNAL_RAW_RETENTION_DAYS; the audit view keeps only its last digits."""
    app, sim = stack
    payment = paid(app, sim, clock)
    clock.advance(days=31)
    assert app.retention.prune()["callback_journal_raw"] >= 1
    with pytest.raises(FailedPrecondition) as info:
        refunds_of(app).refund_payment(payment.id, 0, "Huy don", "r-1")
    assert info.value.type == "MANUAL_REFUND" and "retention" in str(info.value)
    assert books(sim, payment.provider_reference)["refunds"] == []


def test_a_review_refund_without_the_payers_account_asks_for_transfers(
    stack: Stack, clock: FakeClock
) -> None:
    app, sim = stack
    payment = paid(app, sim, clock)
    sim.add_fault("payos", "refund_rejected")
    assert refunds_of(app).refund_payment(payment.id, 30_000, "Huy don", "rv-1").status == "FAILED"
    assert app.use_cases.get_payment(payment.id).needs_review
    clock.advance(days=31)
    app.retention.prune()  # the raw webhook (and the payer's account) is gone
    with pytest.raises(FailedPrecondition) as info:
        refunds_of(app).resolve_review(payment.id, ReviewAction.REFUND, "", "rv-2")
    assert info.value.type == "MANUAL_REFUND" and "resolve with HONOUR" in str(info.value)
    fresh = app.use_cases.get_payment(payment.id)
    assert fresh.needs_review and [r.status for r in refunds_of(app).refunds_of(payment.id)] == ["FAILED"]
    assert len(books(sim, payment.provider_reference)["refunds"]) == 1  # only the rejected payout


def test_an_operator_may_still_record_a_hand_transfer(stack: Stack, clock: FakeClock) -> None:
    app, sim = stack
    payment = paid(app, sim, clock)
    refund = refunds_of(app).refund_payment(payment.id, 10_000, "Tra hang", "h-1", transfer_reference="FT9")
    assert (refund.status, refund.manual) == ("SUCCEEDED", True)
    assert books(sim, payment.provider_reference)["refunds"] == []  # never paid out twice


def test_without_payout_credentials_refunds_stay_manual(
    make_stack: Callable[[bool], Stack], clock: FakeClock
) -> None:
    app, sim = make_stack(False)
    payment = paid(app, sim, clock)
    with pytest.raises(FailedPrecondition) as info:
        refunds_of(app).refund_payment(payment.id, 0, "Huy don", "n-1")
    assert info.value.type == "MANUAL_REFUND" and "PAYOS has no refund API" in str(info.value)  # as before
    refund = refunds_of(app).refund_payment(payment.id, 0, "Huy don", "n-2", transfer_reference="FT1")
    assert (refund.status, refund.manual) == ("SUCCEEDED", True)
    assert books(sim, payment.provider_reference)["refunds"] == []
