"""Refunds against PostgreSQL: what is left, idempotency, concurrency, the
gateway's answer applied outside the lock, reconciliation of an unknown
answer with the same gateway key, manual refunds, events, reviews, and
extra payments refunded by policy."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import grpc
import pytest
from payment.v1 import payment_pb2, payment_service_pb2

from paykit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from payment_service.bootstrap import App, bootstrap
from payment_service.domain.callbacks import Notification
from payment_service.domain.model import ExtraPaymentPolicy, LatePaymentPolicy, Payment, Provider
from payment_service.domain.refunds import ReviewAction
from payment_service.gateways.port import RefundAnswer, RefundOrder, RefundState
from payment_service.service_layer.refunds import RefundUseCases
from payment_service.service_layer.services import CreatePayment
from tests.conftest import FakeClock, make_settings
from tests.integration.helpers import rows

AMOUNT = 100_000


class FakeRefunds:
    """A gateway's refund API: answers with `state` (or raises), remembers
    every key it was sent, and refunds each key once."""

    def __init__(self) -> None:
        self.state = RefundState.SUCCEEDED
        self.fail_with: Exception | None = None
        self.sent: list[RefundOrder] = []
        self.accepted: dict[str, int] = {}
        self.lock = threading.Lock()

    def manual_refund_reason(self, payment: Any, transaction_id: str, callbacks: Any) -> str:
        return ""  # gives the money back to where it came from

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        with self.lock:
            self.sent.append(order)
            self.accepted.setdefault(order.key, order.amount)
        if self.fail_with is not None:
            raise self.fail_with
        return RefundAnswer(self.state, provider_refund_id=f"gw-{order.key[:8]}", code="0", message="ok")

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        if order.key not in self.accepted:
            return RefundAnswer(RefundState.NOT_FOUND)
        return RefundAnswer(self.state, provider_refund_id=f"gw-{order.key[:8]}")

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


@pytest.fixture
def gateway() -> FakeRefunds:
    return FakeRefunds()


@pytest.fixture
def refunds(app: App, gateway: FakeRefunds) -> RefundUseCases:
    uc = app.use_cases
    return RefundUseCases(uc.uow_factory, {Provider.VNPAY: gateway}, uc.policy, uc.clock)  # type: ignore[dict-item]


def create(app: App, order_id: str, provider: Provider = Provider.VNPAY) -> Payment:
    call = CreatePayment(order_id, "u1", AMOUNT, "", provider, "", "", "", "", "")
    return app.use_cases.create_or_get_payment(call).payment


def pay(app: App, payment: Payment, transaction_id: str = "T1", amount: int = AMOUNT) -> None:
    app.callbacks.apply_answer(
        Provider.VNPAY,
        Notification(payment.provider_reference, amount, True, transaction_id, "00", ""),
        app.use_cases.clock(),
    )


def paid(app: App, order_id: str) -> Payment:
    payment = create(app, order_id)
    pay(app, payment)
    return payment


def test_partial_then_the_rest(app: App, refunds: RefundUseCases, gateway: FakeRefunds, db_url: str) -> None:
    payment = paid(app, "R-1")
    first = refunds.refund_payment(payment.id, 30_000, "part", "k1")
    assert (first.status, first.amount, first.provider_refund_id) == (
        "SUCCEEDED",
        30_000,
        f"gw-{first.id.hex[:8]}",
    )
    rest = refunds.refund_payment(payment.id, 0, "", "k2")
    assert (rest.status, rest.amount) == ("SUCCEEDED", 70_000)
    assert gateway.sent[0].key == first.id.hex and not gateway.sent[0].full
    assert rows(db_url, "SELECT refunded_amount, refund_pending_amount FROM payments") == [(AMOUNT, 0)]
    types = rows(db_url, "SELECT type, (payload->>'version')::int FROM outbox_events ORDER BY seq")
    assert [t for t, _ in types][-4:] == [
        "payment.refund_requested",
        "payment.refunded",
        "payment.refund_requested",
        "payment.refunded",
    ]
    versions = [v for _, v in types]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    journal = rows(db_url, "SELECT kind, outcome FROM callback_journal WHERE kind = 'refund'")
    assert journal == [("refund", "succeeded"), ("refund", "succeeded")]


def test_above_what_is_left_or_unpaid_writes_nothing(app: App, refunds: RefundUseCases, db_url: str) -> None:
    unpaid = create(app, "R-2")
    with pytest.raises(FailedPrecondition) as info:
        refunds.refund_payment(unpaid.id, 0, "", "k1")
    assert info.value.type == "NOT_CAPTURED"
    payment = paid(app, "R-3")
    refunds.refund_payment(payment.id, 60_000, "", "k1")
    before = rows(db_url, "SELECT count(*) FROM outbox_events")
    with pytest.raises(FailedPrecondition) as info:
        refunds.refund_payment(payment.id, 40_001, "", "k2")
    assert info.value.type == "REFUND_EXCEEDS_CAPTURED"
    assert rows(db_url, "SELECT count(*) FROM refunds") == [(1,)]
    assert rows(db_url, "SELECT count(*) FROM outbox_events") == before
    with pytest.raises(NotFound):
        refunds.refund_payment(uuid.uuid4(), 0, "", "k3")


def test_request_id_replays_or_is_refused(app: App, refunds: RefundUseCases, gateway: FakeRefunds) -> None:
    payment = paid(app, "R-4")
    first = refunds.refund_payment(payment.id, 10_000, "x", "same")
    again = refunds.refund_payment(payment.id, 10_000, "x", "same")
    assert again.id == first.id and len(gateway.sent) == 1
    with pytest.raises(InvalidArgument):
        refunds.refund_payment(payment.id, 20_000, "x", "same")


def test_restock_is_stored_carried_and_part_of_the_parameters(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, db_url: str
) -> None:
    payment = paid(app, "R-4b")
    first = refunds.refund_payment(payment.id, 10_000, "x", "rs", restock=True)
    again = refunds.refund_payment(payment.id, 10_000, "x", "rs", restock=True)
    assert first.restock and again.id == first.id
    with pytest.raises(InvalidArgument, match="different parameters"):
        refunds.refund_payment(payment.id, 10_000, "x", "rs")  # the same key without restock
    plain = refunds.refund_payment(payment.id, 10_000, "x", "plain")
    with pytest.raises(InvalidArgument, match="different parameters"):
        refunds.refund_payment(payment.id, 10_000, "x", "plain", restock=True)
    assert rows(db_url, "SELECT request_id, restock FROM refunds ORDER BY request_id") == [
        ("plain", False),
        ("rs", True),
    ]
    assert not plain.restock and len(gateway.sent) == 2
    carried = rows(
        db_url,
        "SELECT payload->'refund'->>'restock', payload->'refund'->>'id' FROM outbox_events"
        " WHERE type = 'payment.refunded' ORDER BY seq",
    )
    assert carried == [("true", str(first.id)), (None, str(plain.id))]  # proto3 JSON leaves false out


def test_concurrent_refunds_never_exceed_the_capture(app: App, gateway: FakeRefunds, db_url: str) -> None:
    # A gateway that takes several refunds of a transaction at once (MoMo,
    # ZaloPay): only the row lock stands between them and the capture.
    uc = app.use_cases
    traits = {
        **uc.policy.traits,
        Provider.VNPAY: replace(uc.policy.traits[Provider.VNPAY], one_refund_at_a_time=False),
    }
    policy = replace(uc.policy, traits=traits)
    refunds = RefundUseCases(uc.uow_factory, {Provider.VNPAY: gateway}, policy, uc.clock)  # type: ignore[dict-item]
    payment = paid(app, "R-5")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def one(i: int) -> None:
        barrier.wait()
        try:
            refunds.refund_payment(payment.id, 30_000, "", f"c{i}")
            results.append("ok")
        except FailedPrecondition:
            results.append("refused")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 3 and results.count("refused") == 5
    assert rows(db_url, "SELECT sum(amount) FROM refunds WHERE status <> 'FAILED'") == [(90_000,)]
    assert rows(db_url, "SELECT refunded_amount FROM payments") == [(90_000,)]


def test_vnpay_takes_one_refund_of_a_transaction_at_a_time(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, clock: FakeClock, db_url: str
) -> None:
    payment = paid(app, "R-5b")
    gateway.state = RefundState.PENDING  # accepted, in progress
    first = refunds.refund_payment(payment.id, 30_000, "", "one")
    assert first.status == "PENDING"
    with pytest.raises(FailedPrecondition, match="in progress at VNPAY") as refused:
        refunds.refund_payment(payment.id, 20_000, "", "two")
    assert refused.value.type == "REFUND_IN_PROGRESS"
    assert rows(db_url, "SELECT count(*) FROM refunds") == [(1,)]
    gateway.state = RefundState.SUCCEEDED
    clock.advance(hours=1)
    refunds.reconcile_due()
    assert refunds.refund_payment(payment.id, 20_000, "", "two").status == "SUCCEEDED"
    assert rows(db_url, "SELECT refunded_amount FROM payments") == [(50_000,)]


def test_a_timeout_after_accept_is_reconciled_with_the_same_key(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, clock: FakeClock, db_url: str
) -> None:
    payment = paid(app, "R-6")
    gateway.fail_with = Unavailable("timeout")
    refund = refunds.refund_payment(payment.id, 50_000, "", "k1")
    assert refund.status == "PENDING" and refund.reconcile_time is not None
    assert rows(db_url, "SELECT refund_pending_amount FROM payments") == [(50_000,)]
    gateway.fail_with = None
    gateway.state = RefundState.PENDING
    clock.advance(minutes=3)
    assert refunds.reconcile_due() == 0  # accepted, still processing
    gateway.state = RefundState.SUCCEEDED
    clock.advance(hours=1)
    assert refunds.reconcile_due() == 1
    assert len(gateway.accepted) == 1 and len(gateway.sent) == 1  # never a second refund
    assert rows(db_url, "SELECT status FROM refunds") == [("SUCCEEDED",)]
    assert rows(db_url, "SELECT refunded_amount, refund_pending_amount FROM payments") == [(50_000, 0)]
    kinds = rows(db_url, "SELECT kind, outcome FROM callback_journal WHERE kind LIKE 'refund%%' ORDER BY id")
    assert kinds == [("refund", "unreachable"), ("refund_query", "pending"), ("refund_query", "succeeded")]


def test_a_refund_never_received_is_sent_again_by_reconciliation(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, clock: FakeClock
) -> None:
    payment = paid(app, "R-7")
    gateway.fail_with = Unavailable("connect")
    refund = refunds.refund_payment(payment.id, 0, "", "k1")
    gateway.accepted.clear()  # it never arrived
    gateway.fail_with = None
    clock.advance(minutes=3)
    assert refunds.reconcile_due() == 1
    assert [o.key for o in gateway.sent] == [refund.id.hex, refund.id.hex]


def test_a_refused_refund_fails_and_flags_the_payment(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, db_url: str
) -> None:
    payment = paid(app, "R-8")
    gateway.state = RefundState.FAILED
    refund = refunds.refund_payment(payment.id, 0, "", "k1")
    assert refund.status == "FAILED"
    assert rows(db_url, "SELECT needs_review, refunded_amount, refund_pending_amount FROM payments") == [
        (True, 0, 0)
    ]
    gateway.state = RefundState.SUCCEEDED
    assert refunds.refund_payment(payment.id, 0, "", "k2").status == "SUCCEEDED"  # may be refunded again


def test_cod_refund_is_a_manual_record(app: App, refunds: RefundUseCases, stub: Any) -> None:
    payment = create(app, "R-9", Provider.COD)
    app.use_cases.confirm_cod_payment(payment.id, AMOUNT, "courier 7")
    with pytest.raises(grpc.RpcError) as info:
        stub.RefundPayment(
            payment_service_pb2.RefundPaymentRequest(payment_id=str(payment.id), request_id="m1")
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    response = stub.RefundPayment(
        payment_service_pb2.RefundPaymentRequest(
            payment_id=str(payment.id), amount=40_000, request_id="m2", transfer_reference="FT123"
        )
    )
    assert response.refund.status == payment_pb2.REFUND_STATUS_SUCCEEDED
    assert response.refund.manual and response.refund.provider_refund_id == "FT123"
    got = stub.GetPayment(payment_service_pb2.GetPaymentRequest(payment_id=str(payment.id)))
    assert got.payment.refunded_amount == 40_000 and [r.amount for r in got.refunds] == [40_000]
    with pytest.raises(grpc.RpcError) as info:
        stub.RefundPayment(
            payment_service_pb2.RefundPaymentRequest(payment_id=str(payment.id), amount=-1, request_id="m3")
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_review_queue_and_resolution(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, clock: FakeClock, stub: Any, db_url: str
) -> None:
    paid_twice = create(app, "R-10")
    pay(app, paid_twice, "T-first")
    pay(app, paid_twice, "T-second")  # a second transaction: extra, refunded by itself (not in review)
    honoured = create(app, "R-11")
    clock.advance(minutes=30)
    app.use_cases.expire_due_payments()
    pay(app, honoured, "T-exp")  # late: LATE_PAYMENT_POLICY honour keeps it for review
    page = stub.ListPaymentsNeedingReview(payment_service_pb2.ListPaymentsNeedingReviewRequest(page_size=1))
    assert [p.order_id for p in page.payments] == ["R-11"] and not page.next_page_token
    resolved = stub.ResolveReview(
        payment_service_pb2.ResolveReviewRequest(
            payment_id=str(honoured.id), action=payment_pb2.REVIEW_ACTION_HONOUR, note="ok", request_id="r1"
        )
    )
    assert not resolved.payment.needs_review
    assert resolved.payment.review_resolution == payment_pb2.REVIEW_ACTION_HONOUR
    again = stub.ResolveReview(
        payment_service_pb2.ResolveReviewRequest(
            payment_id=str(honoured.id), action=payment_pb2.REVIEW_ACTION_HONOUR, note="ok", request_id="r1"
        )
    )
    assert again.payment.version == resolved.payment.version
    with pytest.raises(grpc.RpcError) as info:
        stub.ResolveReview(
            payment_service_pb2.ResolveReviewRequest(
                payment_id=str(honoured.id), action=payment_pb2.REVIEW_ACTION_REFUND, request_id="r2"
            )
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        rows(db_url, "SELECT count(*) FROM outbox_events WHERE type = 'payment.review_resolved'")[0][0] >= 2
    )


def test_resolve_with_refund_returns_the_late_money(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, clock: FakeClock, db_url: str
) -> None:
    payment = create(app, "R-12")
    clock.advance(minutes=30)
    app.use_cases.expire_due_payments()
    pay(app, payment, "T-late")
    result = refunds.resolve_review(payment.id, ReviewAction.REFUND, "shop closed", "r1")
    assert [(r.amount, r.status) for r in result.refunds] == [(AMOUNT, "SUCCEEDED")]
    assert not result.payment.needs_review and result.payment.review_resolution == "REFUND"
    assert rows(db_url, "SELECT refunded_amount FROM payments") == [(AMOUNT,)]


def test_extra_payment_policy_refunds_by_itself(
    app: App, refunds: RefundUseCases, gateway: FakeRefunds, clock: FakeClock, db_url: str
) -> None:
    payment = paid(app, "R-13")
    pay(app, payment, "T-second")  # a second distinct transaction on a paid attempt
    queued = rows(db_url, "SELECT provider_transaction_id, amount, status FROM refunds")
    assert queued == [("T-second", AMOUNT, "PENDING")]
    assert rows(db_url, "SELECT needs_review, review_resolution FROM payments") == [(False, "REFUND")]
    assert refunds.reconcile_due() == 1  # sent by reconciliation, not in the callback
    assert rows(db_url, "SELECT status FROM refunds") == [("SUCCEEDED",)]
    assert rows(db_url, "SELECT refunded_amount FROM payments") == [(0,)]  # its own capture is kept
    types = [t for (t,) in rows(db_url, "SELECT type FROM outbox_events ORDER BY seq")]
    assert types[-4:] == [
        "payment.extra_received",
        "payment.refund_requested",
        "payment.review_resolved",
        "payment.refunded",
    ]


@pytest.fixture
def extra_review_app(db_url: str, clock: FakeClock) -> Iterator[App]:
    base = make_settings()
    settings = make_settings(policy=replace(base.policy, extra_payment_policy=ExtraPaymentPolicy.REVIEW))
    application = bootstrap(settings, db_url, clock=clock)
    yield application
    application.close()


def test_extra_money_is_refunded_before_a_review_is_honoured(
    extra_review_app: App, gateway: FakeRefunds, db_url: str
) -> None:
    app = extra_review_app
    uc = app.use_cases
    refunds = RefundUseCases(uc.uow_factory, {Provider.VNPAY: gateway}, uc.policy, uc.clock)  # type: ignore[dict-item]
    payment = paid(app, "R-13b")
    pay(app, payment, "T-second")  # EXTRA_PAYMENT_POLICY=review: flagged, not refunded
    assert rows(db_url, "SELECT needs_review FROM payments") == [(True,)]
    with pytest.raises(FailedPrecondition, match="extra money not refunded") as refused:
        refunds.resolve_review(payment.id, ReviewAction.HONOUR, "keep it", "h1")
    assert refused.value.type == "EXTRA_MONEY_NOT_REFUNDED"
    assert rows(db_url, "SELECT needs_review, review_resolution FROM payments") == [(True, None)]
    refunds.refund_payment(payment.id, 0, "", "x1", provider_transaction_id="T-second")
    resolved = refunds.resolve_review(payment.id, ReviewAction.HONOUR, "keep the first", "h1")
    assert not resolved.payment.needs_review and resolved.payment.review_resolution == "HONOUR"
    assert rows(db_url, "SELECT refunded_amount FROM payments") == [(0,)]  # its own capture is kept


@pytest.fixture
def late_refund_app(db_url: str, clock: FakeClock) -> Iterator[App]:
    base = make_settings()
    settings = make_settings(policy=replace(base.policy, late_payment_policy=LatePaymentPolicy.REFUND))
    application = bootstrap(settings, db_url, clock=clock)
    yield application
    application.close()


def test_late_payment_policy_refund(
    late_refund_app: App, gateway: FakeRefunds, clock: FakeClock, db_url: str
) -> None:
    app = late_refund_app
    payment = create(app, "R-14")
    clock.advance(minutes=30)
    app.use_cases.expire_due_payments()
    pay(app, payment, "T-late")
    assert rows(db_url, "SELECT amount, status FROM refunds") == [(AMOUNT, "PENDING")]
    uc = app.use_cases
    refunds = RefundUseCases(uc.uow_factory, {Provider.VNPAY: gateway}, uc.policy, uc.clock)  # type: ignore[dict-item]
    assert refunds.reconcile_due() == 1
    assert rows(db_url, "SELECT refunded_amount FROM payments") == [(AMOUNT,)]


def test_the_cli_records_a_manual_refund(
    app: App, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from payments.cli import main

    payment = create(app, "R-15", Provider.COD)
    app.use_cases.confirm_cod_payment(payment.id, AMOUNT, "courier 7")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PAYMENTS_ENV", "development")
    argv = [
        "refund",
        str(payment.id),
        "--amount",
        "25000",
        "--transfer-reference",
        "FT9",
        "--request-id",
        "c1",
    ]
    main(argv)
    main(argv)  # the same request id: the same refund
    out = capsys.readouterr().out
    assert '"status": "SUCCEEDED"' in out and '"restock": false' in out
    with pytest.raises(SystemExit, match="different parameters"):
        main([*argv, "--restock"])
    main(["refund", str(payment.id), "--amount", "1000", "--transfer-reference", "FT8", "--restock"])
    assert '"restock": true' in capsys.readouterr().out
    assert rows(db_url, "SELECT count(*) FROM refunds WHERE restock") == [(1,)]
    assert rows(db_url, "SELECT amount, provider_refund_id FROM refunds WHERE NOT restock") == [
        (25_000, "FT9")
    ]
    with pytest.raises(SystemExit, match="above the 74000 left"):
        main(["refund", str(payment.id), "--amount", "80000", "--transfer-reference", "FT10"])
