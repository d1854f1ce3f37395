"""CreateOrGetPayment semantics over a real gRPC server and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from payment.v1 import payment_pb2
from payment.v1 import payment_service_pb2 as ps

from paykit.logs import JsonFormatter
from tests.conftest import TEST_VNPAY, FakeClock
from tests.integration.helpers import bad_request_fields, counts, independent_vnpay_check, rows

VNPAY = payment_pb2.PROVIDER_VNPAY
PENDING = payment_pb2.PAYMENT_STATUS_PENDING


def request(**overrides: Any) -> ps.CreateOrGetPaymentRequest:
    fields: dict[str, Any] = {
        "order_id": "ORD-1",
        "user_id": "user-1",
        "amount": 150_000,
        "provider": VNPAY,
        "client_ip": "203.0.113.7",
    }
    fields.update(overrides)
    return ps.CreateOrGetPaymentRequest(**fields)


def events(db_url: str) -> list[str]:
    return [r[0] for r in rows(db_url, "SELECT type FROM outbox_events ORDER BY seq")]


def status_code(stub: Any, req: ps.CreateOrGetPaymentRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateOrGetPayment(req)
    return info.value


def test_new_payment_gets_a_signed_vnpay_url_in_gmt7(stub: Any, db_url: str, clock: FakeClock) -> None:
    resp = stub.CreateOrGetPayment(request())
    p = resp.payment
    assert (p.status, p.attempt, p.amount, p.currency, resp.reused) == (PENDING, 1, 150_000, "VND", False)
    assert p.provider_reference == p.payment_intent_id and p.original_payment_id == ""

    params = independent_vnpay_check(resp.checkout_url, TEST_VNPAY.hash_secret)
    assert resp.checkout_url.startswith(TEST_VNPAY.pay_url + "?")
    assert params["vnp_Amount"] == "15000000"
    assert params["vnp_TxnRef"] == p.payment_intent_id
    assert params["vnp_TmnCode"] == "TESTTMN1"
    assert params["vnp_IpAddr"] == "203.0.113.7"
    assert params["vnp_OrderInfo"] == "Thanh toan don hang ORD-1"
    # The fake clock reads 2026-05-01 03:30 UTC: 10:30 in Ho Chi Minh City.
    assert params["vnp_CreateDate"] == "20260501103000"
    assert params["vnp_ExpireDate"] == "20260501104500"
    assert p.expire_time.ToDatetime().isoformat() == "2026-05-01T03:45:00"
    assert events(db_url) == ["payment.created"]


def test_pending_payment_is_reused_with_a_freshly_signed_url(
    stub: Any, db_url: str, clock: FakeClock
) -> None:
    first = stub.CreateOrGetPayment(request())
    clock.advance(minutes=3)
    second = stub.CreateOrGetPayment(request(client_ip="198.51.100.9"))
    assert second.reused is True
    assert second.payment.payment_intent_id == first.payment.payment_intent_id
    assert second.checkout_url != first.checkout_url
    params = independent_vnpay_check(second.checkout_url, TEST_VNPAY.hash_secret)
    # The payment's creation time, on every URL: querydr and refund must send
    # it back as vnp_TransactionDate, and VNPay finds the transaction by it.
    assert params["vnp_CreateDate"] == "20260501103000"
    assert params["vnp_ExpireDate"] == "20260501104500"  # the payment's own expiry, not extended
    assert params["vnp_IpAddr"] == "198.51.100.9"
    assert counts(db_url)["payments"] == 1 and events(db_url) == ["payment.created"]


def test_return_url_override_is_signed(stub: Any) -> None:
    resp = stub.CreateOrGetPayment(request(return_url="https://shop.example/thanks?x=1"))
    params = independent_vnpay_check(resp.checkout_url, TEST_VNPAY.hash_secret)
    assert params["vnp_ReturnUrl"] == "https://shop.example/thanks?x=1"


def test_expired_payment_is_closed_and_a_new_attempt_opened(stub: Any, db_url: str, clock: FakeClock) -> None:
    first = stub.CreateOrGetPayment(request())
    clock.advance(minutes=15, seconds=10)  # expired, but within VNPay's grace (its 5-minute IPN retry + 30 s)

    error = status_code(stub, request())
    assert error.code() == grpc.StatusCode.ABORTED
    status = rpc_status.from_call(error)
    retry = error_details_pb2.RetryInfo()
    assert status is not None and status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 320
    assert counts(db_url)["payments"] == 1

    clock.advance(seconds=321)
    second = stub.CreateOrGetPayment(request())
    assert second.reused is False
    assert second.payment.attempt == 2
    assert second.payment.original_payment_id == first.payment.id
    assert second.payment.payment_intent_id != first.payment.payment_intent_id
    old = stub.GetPayment(ps.GetPaymentRequest(payment_id=first.payment.id)).payment
    assert old.status == payment_pb2.PAYMENT_STATUS_EXPIRED
    assert old.failure_reason == "expired before payment"
    assert events(db_url) == ["payment.created", "payment.expired", "payment.created"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": 200_000}, "superseded: amount changed from 150000 to 200000"),
        ({"provider": payment_pb2.PROVIDER_COD}, "superseded: provider changed from VNPAY to COD"),
    ],
)
def test_changed_order_cancels_the_pending_attempt(
    stub: Any, db_url: str, change: dict[str, Any], reason: str
) -> None:
    first = stub.CreateOrGetPayment(request())
    second = stub.CreateOrGetPayment(request(**change))
    assert (second.payment.attempt, second.reused) == (2, False)
    assert second.payment.original_payment_id == first.payment.id
    old = stub.GetPayment(ps.GetPaymentRequest(payment_id=first.payment.id)).payment
    assert (old.status, old.failure_reason) == (payment_pb2.PAYMENT_STATUS_CANCELED, reason)
    if change.get("provider") == payment_pb2.PROVIDER_COD:
        assert second.checkout_url == ""
    assert rows(db_url, "SELECT count(*) FROM payments WHERE status = 'PENDING'") == [(1,)]
    assert events(db_url) == ["payment.created", "payment.canceled", "payment.created"]


def test_attempt_limit_refuses_and_writes_nothing(stub: Any, db_url: str) -> None:
    for i in range(5):
        stub.CreateOrGetPayment(request(amount=100_000 + i))
    before = counts(db_url)
    error = status_code(stub, request(amount=999_000))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "limit of 5 payment attempts" in error.details()
    assert counts(db_url) == before
    # The pending fifth attempt itself is still served.
    assert stub.CreateOrGetPayment(request(amount=100_004)).reused is True


def test_paid_order_is_refused(stub: Any, db_url: str) -> None:
    stub.CreateOrGetPayment(request())
    rows(db_url, "UPDATE payments SET status = 'SUCCEEDED', paid_time = now() RETURNING 1")
    before = counts(db_url)
    error = status_code(stub, request())
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "order ORD-1 is already paid"
    assert counts(db_url) == before


def test_another_users_order_is_refused(stub: Any, db_url: str) -> None:
    stub.CreateOrGetPayment(request())
    error = status_code(stub, request(user_id="intruder"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert counts(db_url)["payments"] == 1


def test_request_id_replays_the_first_result(stub: Any, db_url: str, clock: FakeClock) -> None:
    first = stub.CreateOrGetPayment(request(request_id="req-1"))
    clock.advance(minutes=1)
    again = stub.CreateOrGetPayment(request(request_id="req-1", client_ip="198.51.100.1"))
    assert again.payment.id == first.payment.id and again.reused is False
    independent_vnpay_check(again.checkout_url, TEST_VNPAY.hash_secret)
    # A second key for the same pending payment records that it reused it.
    other = stub.CreateOrGetPayment(request(request_id="req-2"))
    assert other.payment.id == first.payment.id and other.reused is True

    before = counts(db_url)
    error = status_code(stub, request(request_id="req-1", amount=1_000_000))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(error) == {"request_id"}
    assert counts(db_url) == before


def test_replayed_request_id_of_a_closed_payment_has_no_url(stub: Any, clock: FakeClock) -> None:
    first = stub.CreateOrGetPayment(request(request_id="req-1"))
    stub.CancelPayment(ps.CancelPaymentRequest(payment_id=first.payment.id, reason="shopper left"))
    again = stub.CreateOrGetPayment(request(request_id="req-1"))
    assert again.payment.status == payment_pb2.PAYMENT_STATUS_CANCELED
    assert again.checkout_url == ""


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"order_id": ""}, {"order_id"}),
        ({"user_id": ""}, {"user_id"}),
        ({"order_id": "x" * 65}, {"order_id"}),
        ({"user_id": "u" * 65}, {"user_id"}),
        ({"order_id": "ORD 1; DROP TABLE payments"}, {"order_id"}),
        ({"amount": 0}, {"amount"}),
        ({"amount": -1}, {"amount"}),
        ({"amount": 1_000_000_000}, {"amount"}),
        ({"amount": 4_999}, {"amount"}),
        ({"currency": "XYZ"}, {"currency"}),
        ({"currency": "USD"}, {"currency"}),
        ({"provider": 99}, {"provider"}),  # unknown (UNSPECIFIED means the default or the current one)
        ({"description": "Thanh toán đơn hàng"}, {"description"}),
        ({"description": "a&b=c"}, {"description"}),
        ({"description": "d" * 256}, {"description"}),
        ({"client_ip": "not an ip"}, {"client_ip"}),
        ({"return_url": "javascript:alert(1)"}, {"return_url"}),
        ({"request_id": "r" * 65}, {"request_id"}),
        ({"order_id": "", "amount": 0, "currency": "XYZ"}, {"order_id", "amount", "currency"}),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    stub: Any, db_url: str, overrides: dict[str, Any], fields: set[str]
) -> None:
    error = status_code(stub, request(**overrides))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(error) == fields
    assert set(counts(db_url).values()) == {0}


def test_provider_not_enabled(stub: Any, db_url: str) -> None:
    error = status_code(stub, request(provider=payment_pb2.PROVIDER_PAYOS))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "PAYOS is not enabled" in error.details()
    assert counts(db_url)["payments"] == 0


def test_get_payment_by_order_lists_attempts_for_the_owner_only(stub: Any) -> None:
    first = stub.CreateOrGetPayment(request())
    second = stub.CreateOrGetPayment(request(amount=160_000))
    resp = stub.GetPaymentByOrder(ps.GetPaymentByOrderRequest(order_id="ORD-1", user_id="user-1"))
    assert resp.payment.id == second.payment.id
    assert [a.id for a in resp.attempts] == [first.payment.id, second.payment.id]
    for user in ("someone-else", "user-2"):
        with pytest.raises(grpc.RpcError) as info:
            stub.GetPaymentByOrder(ps.GetPaymentByOrderRequest(order_id="ORD-1", user_id=user))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.GetPaymentByOrder(ps.GetPaymentByOrderRequest(order_id="", user_id="user-1"))
    assert bad_request_fields(info.value) == {"order_id"}


def test_get_payment_errors(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetPayment(ps.GetPaymentRequest(payment_id="nope"))
    assert bad_request_fields(info.value) == {"payment_id"}
    with pytest.raises(grpc.RpcError) as info:
        stub.GetPayment(ps.GetPaymentRequest(payment_id="00000000-0000-0000-0000-000000000000"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_cancel_payment(stub: Any, db_url: str) -> None:
    created = stub.CreateOrGetPayment(request()).payment
    canceled = stub.CancelPayment(
        ps.CancelPaymentRequest(payment_id=created.id, reason="order canceled")
    ).payment
    assert (canceled.status, canceled.failure_reason) == (
        payment_pb2.PAYMENT_STATUS_CANCELED,
        "order canceled",
    )
    again = stub.CancelPayment(ps.CancelPaymentRequest(payment_id=created.id, reason="twice")).payment
    assert again.failure_reason == "order canceled"
    assert events(db_url) == ["payment.created", "payment.canceled"]

    paid = stub.CreateOrGetPayment(request(order_id="ORD-2")).payment
    rows(db_url, "UPDATE payments SET status='SUCCEEDED', paid_time=now() WHERE id=%s RETURNING 1", paid.id)
    with pytest.raises(grpc.RpcError) as info:
        stub.CancelPayment(ps.CancelPaymentRequest(payment_id=paid.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as info:
        stub.CancelPayment(ps.CancelPaymentRequest(payment_id=paid.id, reason="r" * 256))
    assert bad_request_fields(info.value) == {"reason"}


def test_expiry_sweep_expires_due_payments(app: Any, stub: Any, db_url: str, clock: FakeClock) -> None:
    stub.CreateOrGetPayment(request(order_id="ORD-A"))
    clock.advance(minutes=10)
    stub.CreateOrGetPayment(request(order_id="ORD-B"))
    clock.advance(minutes=10, seconds=31)  # A is past expiry + VNPay grace (5 min 30 s); B is not
    assert app.use_cases.expire_due_payments() == 1
    assert rows(db_url, "SELECT order_id, status FROM payments ORDER BY order_id") == [
        ("ORD-A", "EXPIRED"),
        ("ORD-B", "PENDING"),
    ]
    assert events(db_url)[-1] == "payment.expired"


def test_no_checkout_url_or_secret_is_stored_or_logged(
    stub: Any, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = stub.CreateOrGetPayment(request(request_id="k1"))
    stub.CreateOrGetPayment(request())
    stub.CreateOrGetPayment(request(amount=170_000))
    signature = resp.checkout_url.rsplit("vnp_SecureHash=", 1)[1]
    dump = " ".join(
        r[0]
        for t in ("payments", "payment_request_keys", "outbox_events")
        for r in rows(db_url, f"SELECT row_to_json(x)::text FROM {t} x")
    )
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    for haystack in (dump, logged):
        for needle in ("vnp_SecureHash", signature, TEST_VNPAY.hash_secret, "vpcpay", "http"):
            assert needle not in haystack
    assert "CreateOrGetPayment" in logged  # the logs were captured at all
