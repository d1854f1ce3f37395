"""HandleCallback for VNPay over gRPC, as the ingress calls it: the raw
request target in x-envoy-original-path. IPNs are signed by test code."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import psycopg
import pytest
from google.api import httpbody_pb2
from google.protobuf import json_format
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from paykit.database import libpq_url
from tests.conftest import TEST_VNPAY, FakeClock
from tests.integration.helpers import counts, rows, signed_vnpay_query, vnpay_ipn_params

SECRET = TEST_VNPAY.hash_secret


def create(stub: Any, order_id: str = "ORD-1", amount: int = 150_000) -> Any:
    return stub.CreateOrGetPayment(
        ps.CreateOrGetPaymentRequest(
            order_id=order_id, user_id="user-1", amount=amount, provider=payment_pb2.PROVIDER_VNPAY
        )
    ).payment


def call(stub: Any, target: str, body: bytes = b"") -> tuple[dict[str, str], str, bytes]:
    reply, info = stub.HandleCallback.with_call(
        httpbody_pb2.HttpBody(content_type="", data=body), metadata=[("x-envoy-original-path", target)]
    )
    return dict(info.initial_metadata()), reply.content_type, reply.data


def ipn(stub: Any, query: str) -> str:
    headers, content_type, body = call(stub, "/webhooks/vnpay/ipn?" + query)
    assert content_type == "application/json" and "x-http-status" not in headers
    answer = json.loads(body)
    assert set(answer) == {"RspCode", "Message"}
    return str(answer["RspCode"])


def payment_row(db_url: str, payment_id: str) -> dict[str, Any]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        cur = conn.execute("SELECT * FROM payments WHERE id = %s", (payment_id,))
        names = [d.name for d in cur.description or []]
        row = cur.fetchone()
        assert row is not None
        return dict(zip(names, row, strict=True))


def events(db_url: str) -> list[tuple[str, int]]:
    # protobuf JSON writes int64 as a string.
    return [
        (t, int(p["version"]))
        for t, p in rows(db_url, "SELECT type, payload FROM outbox_events ORDER BY seq")
    ]


def journal(db_url: str) -> list[tuple[Any, ...]]:
    return rows(db_url, "SELECT kind, verified, outcome, ack FROM callback_journal ORDER BY id")


def test_valid_success_marks_the_payment_paid(stub: Any, db_url: str) -> None:
    p = create(stub)
    assert ipn(stub, signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET)) == "00"
    row = payment_row(db_url, p.id)
    assert row["status"] == "SUCCEEDED" and row["paid_time"] is not None
    assert (row["provider_transaction_id"], row["bank_code"], row["card_type"]) == ("14226112", "NCB", "ATM")
    assert (row["bank_transaction_no"], row["provider_response_code"]) == ("VNP14226112", "00")
    assert row["provider_pay_time"].isoformat() == "2026-05-01T03:35:12+00:00"  # 10:35:12 GMT+7
    assert events(db_url) == [("payment.created", 1), ("payment.succeeded", 2)]
    assert journal(db_url) == [("ipn", True, "succeeded", '{"RspCode":"00","Message":"Confirm Success"}')]
    # The outbox payload is a PaymentEvent in protobuf JSON.
    payload = rows(db_url, "SELECT payload FROM outbox_events ORDER BY seq DESC LIMIT 1")[0][0]
    event = json_format.ParseDict(payload, payment_pb2.PaymentEvent())
    assert event.payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED and event.version == 2

    # The same IPN again: acknowledged as already confirmed, nothing changes.
    assert ipn(stub, signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET)) == "02"
    assert len(events(db_url)) == 2


def test_valid_failure_marks_the_payment_failed_with_a_reason(stub: Any, db_url: str) -> None:
    p = create(stub)
    query = signed_vnpay_query(
        vnpay_ipn_params(p.provider_reference, 150_000, response_code="24", status="02"), SECRET
    )
    assert ipn(stub, query) == "00"
    row = payment_row(db_url, p.id)
    assert row["status"] == "FAILED"
    assert row["failure_reason"].startswith("Customer cancelled the transaction")
    assert events(db_url)[-1] == ("payment.failed", 2)
    assert ipn(stub, query) == "02"


def test_response_code_00_alone_is_not_success(stub: Any, db_url: str) -> None:
    p = create(stub)
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000, status="01"), SECRET)
    assert ipn(stub, query) == "00"
    # Status 01 (not completed) is not final: nothing changes, reconciliation asks later.
    assert payment_row(db_url, p.id)["status"] == "PENDING"


def test_twenty_concurrent_copies_apply_once(server: Any, stub: Any, db_url: str) -> None:
    p = create(stub)
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET)
    barrier = threading.Barrier(20)

    def send(_: int) -> str:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            s = payment_service_pb2_grpc.PaymentServiceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            barrier.wait(timeout=30)
            return ipn(s, query)

    with ThreadPoolExecutor(20) as pool:
        answers = sorted(pool.map(send, range(20)))
    assert answers == ["00"] + ["02"] * 19
    assert [e for e in events(db_url) if e[0] == "payment.succeeded"] == [("payment.succeeded", 2)]
    assert len(journal(db_url)) == 20


def test_amount_mismatch_flags_for_review_without_transition(stub: Any, db_url: str) -> None:
    p = create(stub)
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 15_000), SECRET)
    assert ipn(stub, query) == "04"
    row = payment_row(db_url, p.id)
    assert (row["status"], row["needs_review"]) == ("PENDING", True)
    assert row["review_reason"] == "gateway reported amount 15000 VND, payment is 150000"
    assert events(db_url)[-1] == ("payment.review_required", 2)
    assert ipn(stub, query) == "04"  # VNPay retries; still 04, no second event
    assert len(events(db_url)) == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("vnp_Amount=15000000", "vnp_Amount=15000100"),
        lambda q: q.replace("vnp_ResponseCode=24", "vnp_ResponseCode=00"),
        lambda q: q.rsplit("&vnp_SecureHash=", 1)[0],
        lambda q: q[:-4] + "0000",
        lambda q: q + "&vnp_TxnRef=other",
        lambda q: "",
    ],
    ids=["amount", "response-code", "no-hash", "wrong-hash", "duplicate-key", "empty"],
)
def test_bad_signature_is_97_and_changes_nothing(stub: Any, db_url: str, tamper: Any) -> None:
    p = create(stub)
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000, response_code="24"), SECRET)
    before = counts(db_url)
    assert ipn(stub, tamper(query)) == "97"
    assert payment_row(db_url, p.id)["status"] == "PENDING"
    after = counts(db_url)
    assert after["callback_journal"] == before["callback_journal"] + 1
    assert {k: v for k, v in after.items() if k != "callback_journal"} == {
        k: v for k, v in before.items() if k != "callback_journal"
    }
    assert journal(db_url)[-1][:3] == ("ipn", False, "invalid_signature")


def test_other_merchants_signature_is_97(stub: Any, db_url: str) -> None:
    p = create(stub)
    assert (
        ipn(stub, signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), "another-secret"))
        == "97"
    )


def test_unknown_txn_ref_is_01(stub: Any, db_url: str) -> None:
    assert (
        ipn(stub, signed_vnpay_query(vnpay_ipn_params("pi0000000000000000000000000", 150_000), SECRET))
        == "01"
    )
    assert journal(db_url) == [
        ("ipn", True, "unknown_payment", '{"RspCode":"01","Message":"Order not found"}')
    ]


def test_unexpected_failure_is_99_and_journaled(
    stub: Any, db_url: str, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = create(stub)

    def broken(*_: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("payment_service.service_layer.callbacks.apply_notification", broken)
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET)
    assert ipn(stub, query) == "99"
    assert payment_row(db_url, p.id)["status"] == "PENDING"
    assert journal(db_url)[-1][:3] == ("ipn", True, "error")
    monkeypatch.undo()
    assert ipn(stub, query) == "00"  # VNPay's retry then succeeds


@pytest.mark.parametrize("close", ["expire", "cancel"])
def test_success_for_a_closed_payment_is_kept_for_review(
    stub: Any, db_url: str, clock: FakeClock, close: str
) -> None:
    p = create(stub)
    if close == "expire":
        clock.advance(minutes=22)
        create(stub)  # expires the first attempt, opens a second
        closed_status = "EXPIRED"
    else:
        stub.CancelPayment(ps.CancelPaymentRequest(payment_id=p.id, reason="shopper changed mind"))
        closed_status = "CANCELED"
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET)
    assert ipn(stub, query) == "00"
    row = payment_row(db_url, p.id)
    # Nothing else of the order paid: the order's money, late
    # (LATE_PAYMENT_POLICY honour keeps it for review), never refunded by itself.
    assert (row["status"], row["needs_review"]) == (closed_status, True)
    assert row["paid_time"] is not None and row["provider_transaction_id"] == "14226112"
    assert "refund it or honour the order" in row["review_reason"]
    # The order's first money, on a closed attempt: kept (late_success), not
    # an extra payment; the order's other open checkout closes.
    kinds = [e[0] for e in events(db_url)]
    assert "payment.late_success" in kinds and "payment.extra_received" not in kinds
    assert rows(db_url, "SELECT count(*) FROM extra_payments") == [(0,)]
    assert rows(db_url, "SELECT count(*) FROM payments WHERE status = 'PENDING'") == [(0,)]
    assert ipn(stub, query) == "02"
    assert [e[0] for e in events(db_url)].count("payment.late_success") == 1


def test_money_on_a_second_attempt_of_a_paid_order_is_an_extra_payment(
    stub: Any, db_url: str, clock: FakeClock
) -> None:
    """One order, one kept payment: the first money wins, any later money on
    another attempt is recorded, announced and flagged, never kept."""
    first = create(stub)
    clock.advance(minutes=22)
    second = create(stub)  # the first expired; a second attempt opens
    assert ipn(stub, signed_vnpay_query(vnpay_ipn_params(second.provider_reference, 150_000), SECRET)) == "00"
    late = signed_vnpay_query(
        {**vnpay_ipn_params(first.provider_reference, 150_000), "vnp_TransactionNo": "99887766"}, SECRET
    )
    assert ipn(stub, late) == "00"
    row = payment_row(db_url, first.id)
    assert (row["status"], row["paid_time"]) == ("EXPIRED", None)
    assert "already paid by another attempt" in row["review_reason"]
    # EXTRA_PAYMENT_POLICY=refund (the default): a full refund is queued and
    # the review closed as REFUND, to be sent by refund reconciliation.
    assert row["needs_review"] is False
    assert rows(db_url, "SELECT amount, status FROM refunds") == [(150_000, "PENDING")]
    assert rows(db_url, "SELECT amount, provider_transaction_id FROM extra_payments") == [
        (150_000, "99887766")
    ]
    kinds = [e[0] for e in events(db_url)]
    assert kinds.count("payment.extra_received") == 1 and "payment.late_success" not in kinds
    assert ipn(stub, late) == "02"  # the same money again is a duplicate
    assert rows(db_url, "SELECT count(*) FROM extra_payments") == [(1,)]


def test_return_url_shows_the_result_and_changes_nothing(stub: Any, db_url: str) -> None:
    p = create(stub)
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET)
    before = counts(db_url)
    headers, content_type, body = call(stub, "/webhooks/vnpay/return?" + query)
    assert content_type.startswith("text/html") and "x-http-status" not in headers
    assert b"ORD-1" in body and b'data-status="processing"' in body
    assert "150.000 ₫".encode() in body and "Đang xác nhận".encode() in body  # Vietnamese by default
    assert payment_row(db_url, p.id)["status"] == "PENDING"
    assert counts(db_url)["outbox_events"] == before["outbox_events"]
    assert journal(db_url)[-1][:3] == ("return", True, "return_shown")

    ipn(stub, query)
    _, _, body = call(stub, "/webhooks/vnpay/return?" + query + "&lang=en")
    assert b'data-status="paid"' in body and b"Payment received" in body and b"<script" not in body

    tampered = query.replace("vnp_Amount=", "vnp_Amount=1")
    headers, _, body = call(stub, "/webhooks/vnpay/return?" + tampered + "&lang=en")
    assert headers["x-http-status"] == "400" and b"could not verify" in body


def test_return_url_redirects_to_the_front_end_when_configured(stub: Any, server: Any) -> None:
    from payment_service.entrypoints.pages import return_renderer

    server.servicer.render_return = return_renderer("https://shop.example/result")
    p = create(stub)
    query = signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET)
    headers, _, _ = call(stub, "/webhooks/vnpay/return?" + query)
    assert headers["x-http-status"] == "303"
    assert headers["location"] == "https://shop.example/result?order_id=ORD-1&status=processing"


def test_other_routes(stub: Any, db_url: str) -> None:
    for path, code in (
        ("/webhooks/payos", grpc.StatusCode.FAILED_PRECONDITION),
        ("/webhooks/momo/ipn", grpc.StatusCode.FAILED_PRECONDITION),
        ("/webhooks/zalopay/callback", grpc.StatusCode.FAILED_PRECONDITION),
        ("/webhooks/unknown", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(stub, path, b'{"data":{}}')
        assert info.value.code() == code
    with pytest.raises(grpc.RpcError) as info:
        stub.HandleCallback(httpbody_pb2.HttpBody())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    outcomes = [r[2] for r in journal(db_url)]
    assert outcomes == ["not_enabled", "not_enabled", "not_enabled", "unknown_route"]
    assert counts(db_url)["payments"] == 0


def test_journal_is_append_only(stub: Any, db_url: str) -> None:
    ipn(stub, "vnp_TxnRef=x")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        rows(db_url, "UPDATE callback_journal SET outcome = 'forged' RETURNING 1")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        rows(db_url, "DELETE FROM callback_journal RETURNING 1")
    raw = rows(db_url, "SELECT raw_query FROM callback_journal")[0][0]
    assert bytes(raw) == b"vnp_TxnRef=x"
