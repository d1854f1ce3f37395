"""Pure domain rules (payment_service.domain.model): validation, fingerprints,
CreateOrGetPayment decisions, status transitions and ids. No DB, no network."""

from __future__ import annotations

import dataclasses
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payment_service.domain.errors import (
    AlreadyPaid,
    AttemptLimitReached,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    InvalidTransition,
    PermissionDenied,
    ProviderNotEnabled,
    RetryLater,
)
from payment_service.domain.model import (
    FINAL_STATUSES,
    Close,
    Create,
    PaymentRequest,
    PaymentStatus,
    Policy,
    Provider,
    Reuse,
    check_transition,
    decide,
    new_payment_intent_id,
    validate_ids,
    validate_request,
)
from payment_service.gateways import registry

NOW = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
POLICY = Policy(enabled_providers=frozenset({Provider.VNPAY, Provider.COD}), traits=registry.traits())
GRACE = POLICY.grace_for(Provider.VNPAY)  # VNPay: its 5-minute IPN retry is covered
S, F, E, C, P = (
    PaymentStatus.SUCCEEDED,
    PaymentStatus.FAILED,
    PaymentStatus.EXPIRED,
    PaymentStatus.CANCELED,
    PaymentStatus.PENDING,
)

VALID: dict[str, Any] = {
    "order_id": "ORD-123",
    "user_id": "user@example.com",
    "amount": 100_000,
    "currency": "VND",
    "provider": Provider.VNPAY,
    "description": "",
    "client_ip": "",
    "user_agent": "Mozilla/5.0",
    "return_url": "https://shop.example/return",
    "request_id": "req-1",
}


def make(**overrides: Any) -> PaymentRequest:
    return validate_request(**{**VALID, **overrides}, policy=POLICY)


def violations(**overrides: Any) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as exc:
        make(**overrides)
    return exc.value.violations


@dataclasses.dataclass(frozen=True)
class FakePayment:
    """Satisfies model.PaymentLike."""

    id: uuid.UUID
    user_id: str
    amount: int
    currency: str
    provider: str
    status: str
    attempt: int
    expire_time: datetime
    needs_review: bool = False


def pay(
    attempt: int,
    status: PaymentStatus = P,
    *,
    expire_time: datetime = NOW + timedelta(minutes=10),
    amount: int = VALID["amount"],
    provider: str = "VNPAY",
    currency: str = "VND",
    user_id: str = VALID["user_id"],
) -> FakePayment:
    return FakePayment(
        id=uuid.UUID(int=attempt),
        user_id=user_id,
        amount=amount,
        currency=currency,
        provider=provider,
        status=status,
        attempt=attempt,
        expire_time=expire_time,
    )


def history(*statuses: PaymentStatus, **last: Any) -> list[FakePayment]:
    """Attempts 1..n with the given statuses; keyword args apply to the last one."""
    out = [pay(i, s) for i, s in enumerate(statuses[:-1], start=1)]
    return [*out, pay(len(statuses), statuses[-1], **last)]


# --- validate_request -------------------------------------------------------


def test_valid_request_is_normalised() -> None:
    req = make(currency="", description="", client_ip="")
    assert req == PaymentRequest(
        order_id="ORD-123",
        user_id="user@example.com",
        amount=100_000,
        currency="VND",
        provider=Provider.VNPAY,
        description="Thanh toan don hang ORD-123",
        client_ip="127.0.0.1",
        user_agent="Mozilla/5.0",
        return_url="https://shop.example/return",
        request_id="req-1",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": 5_000},
        {"amount": 999_999_999},
        {"order_id": "o" * 64, "user_id": "u" * 64, "request_id": "r" * 64},
        {"order_id": "A.b_c:d-9", "user_id": "a.b_c:d@e-9"},
        {"description": "d" * 255},
        {"description": "Don 1, ma: A-B_C/D."},
        {"client_ip": "203.0.113.7"},
        {"client_ip": "2001:db8::1"},
        {"return_url": "http://shop.example/r"},
        {"return_url": "https://e.com/" + "a" * (255 - 14)},
        {"request_id": ""},
        {"provider": Provider.COD, "amount": 1},
    ],
)
def test_valid_edge_values_are_accepted(overrides: dict[str, Any]) -> None:
    req = make(**overrides)
    for name, value in overrides.items():
        assert getattr(req, name) == value


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"order_id": ""}, "order_id"),
        ({"user_id": ""}, "user_id"),
        ({"order_id": "o" * 65}, "order_id"),
        ({"user_id": "u" * 65}, "user_id"),
        ({"order_id": "ORD 1"}, "order_id"),
        ({"order_id": "ORD/1"}, "order_id"),
        ({"order_id": "a@b"}, "order_id"),
        ({"user_id": "u 1"}, "user_id"),
        ({"user_id": "u/1"}, "user_id"),
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": 4_999}, "amount"),
        ({"amount": 1_000_000_000}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "vnd"}, "currency"),
        ({"currency": "USD"}, "currency"),
        ({"provider": None}, "provider"),
        ({"description": "Thanh toán"}, "description"),
        ({"description": "a&b"}, "description"),
        ({"description": "a=b"}, "description"),
        ({"description": "50%"}, "description"),
        ({"description": "d" * 256}, "description"),
        ({"client_ip": "not an ip"}, "client_ip"),
        ({"client_ip": "1.2.3.4/24"}, "client_ip"),
        ({"client_ip": "1" * 46}, "client_ip"),
        ({"user_agent": "a" * 513}, "user_agent"),
        ({"return_url": "ftp://shop.example/r"}, "return_url"),
        ({"return_url": "javascript:alert(1)"}, "return_url"),
        ({"return_url": "shop.example/return"}, "return_url"),
        ({"return_url": "https://shop.example/a b"}, "return_url"),
        ({"return_url": "https://e.com/" + "a" * (256 - 14)}, "return_url"),
        ({"request_id": "req 1"}, "request_id"),
        ({"request_id": "req/1"}, "request_id"),
        ({"request_id": "r" * 65}, "request_id"),
    ],
)
def test_each_bad_field_is_named(overrides: dict[str, Any], field: str) -> None:
    assert [v.field for v in violations(**overrides)] == [field]


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"amount": 4_999}, "4999 is outside VNPAY's limits 5000..999999999"),
        ({"currency": "XYZ"}, "'XYZ' is not an ISO 4217 currency code"),
        ({"currency": "USD"}, "VNPAY accepts only VND"),
        ({"description": "Thanh toán"}, "contains 'á'"),
        ({"order_id": "o" * 65}, "is 65 characters; at most 64 allowed"),
        ({"order_id": "a b"}, "may contain only A-Za-z0-9._:-"),
    ],
)
def test_violation_descriptions(overrides: dict[str, Any], text: str) -> None:
    [v] = violations(**overrides)
    assert text in v.description


def test_all_problems_are_reported_at_once() -> None:
    err_fields = {
        v.field
        for v in violations(
            order_id="",
            user_id="a b",
            request_id="r/1",
            currency="XYZ",
            provider=None,
            amount=0,
            description="a&b",
            client_ip="x y",
            user_agent="a" * 513,
            return_url="ftp://x",
        )
    }
    assert err_fields == {
        "order_id",
        "user_id",
        "request_id",
        "currency",
        "provider",
        "amount",
        "description",
        "client_ip",
        "user_agent",
        "return_url",
    }


@pytest.mark.parametrize("client_ip", ["999.999.999.999", "cafe", "1.2.3", "::::::"])
def test_non_address_client_ip_is_rejected(client_ip: str) -> None:
    assert [v.field for v in violations(client_ip=client_ip)] == ["client_ip"]


def test_disabled_provider_is_a_failed_precondition() -> None:
    with pytest.raises(ProviderNotEnabled) as exc:
        make(provider=Provider.PAYOS)
    assert isinstance(exc.value, FailedPrecondition)
    assert exc.value.type == "PROVIDER_NOT_ENABLED"
    assert exc.value.subject == "providers/PAYOS"


def test_disabled_provider_is_checked_only_after_fields() -> None:
    assert [v.field for v in violations(provider=Provider.PAYOS, order_id="")] == ["order_id"]


# --- fingerprint ------------------------------------------------------------


def test_fingerprint_ignores_delivery_details() -> None:
    a = make()
    b = make(client_ip="203.0.113.9", user_agent="curl/8", request_id="other-request")
    assert re.fullmatch(r"[0-9a-f]{64}", a.fingerprint())
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 100_001},
        {"provider": Provider.COD},
        {"currency": "USD"},
        {"description": "Other"},
        {"return_url": "https://shop.example/other"},
        {"order_id": "ORD-124"},
        {"user_id": "someone-else"},
    ],
)
def test_fingerprint_covers_parameters(change: dict[str, Any]) -> None:
    base = make()
    assert dataclasses.replace(base, **change).fingerprint() != base.fingerprint()


# --- decide -----------------------------------------------------------------


def test_first_attempt_is_created() -> None:
    assert decide([], make(), NOW, POLICY) == Create(attempt=1, original_payment_id=None, close=None)


@pytest.mark.parametrize("expire_time", [NOW + timedelta(minutes=15), NOW + timedelta(microseconds=1)])
def test_pending_unexpired_matching_attempt_is_reused(expire_time: datetime) -> None:
    attempts = history(F, F, P, expire_time=expire_time)
    assert decide(attempts, make(), NOW, POLICY) == Reuse(attempts[-1])


@pytest.mark.parametrize(
    "since_expiry", [timedelta(0), timedelta(seconds=45), GRACE - timedelta(microseconds=1)]
)
def test_just_expired_attempt_asks_to_retry_after_grace(since_expiry: timedelta) -> None:
    attempts = history(P, expire_time=NOW - since_expiry)
    with pytest.raises(RetryLater) as exc:
        decide(attempts, make(), NOW, POLICY)
    assert exc.value.retry_after == GRACE - since_expiry


@pytest.mark.parametrize("since_expiry", [GRACE, timedelta(hours=3)])
def test_expired_attempt_after_grace_is_closed_and_replaced(since_expiry: timedelta) -> None:
    attempts = history(F, P, expire_time=NOW - since_expiry)
    assert decide(attempts, make(), NOW, POLICY) == Create(
        attempt=3,
        original_payment_id=uuid.UUID(int=1),
        close=Close(attempts[-1], PaymentStatus.EXPIRED, "expired before payment"),
    )


@pytest.mark.parametrize(
    ("pending", "changes", "reason"),
    [
        ({"amount": 50_000}, {}, "superseded: amount changed from 50000 to 100000"),
        ({}, {"provider": Provider.COD}, "superseded: provider changed from VNPAY to COD"),
        ({"currency": "USD"}, {}, "superseded: currency changed from USD to VND"),
        (
            {"amount": 50_000},
            {"provider": Provider.COD},
            "superseded: amount changed from 50000 to 100000, provider changed from VNPAY to COD",
        ),
        # Changed parameters win over the grace window: nothing to wait for.
        ({"amount": 50_000, "expire_time": NOW}, {}, "superseded: amount changed from 50000 to 100000"),
    ],
)
def test_changed_parameters_cancel_pending_attempt(
    pending: dict[str, Any], changes: dict[str, Any], reason: str
) -> None:
    attempts = history(P, **pending)
    assert decide(attempts, make(**changes), NOW, POLICY) == Create(
        attempt=2,
        original_payment_id=uuid.UUID(int=1),
        close=Close(attempts[0], PaymentStatus.CANCELED, reason),
    )


@pytest.mark.parametrize(
    "statuses",
    [(S,), (F, S), (S, F), (F, S, P), (F, F, F, F, S), (E, E, E, E, E, S)],
)
def test_succeeded_attempt_means_already_paid(statuses: tuple[PaymentStatus, ...]) -> None:
    with pytest.raises(AlreadyPaid) as exc:
        decide(history(*statuses), make(), NOW, POLICY)
    assert exc.value.type == "ALREADY_PAID"
    assert exc.value.subject == "orders/ORD-123"


@pytest.mark.parametrize(
    "attempts",
    [
        history(F, E, F, E, F),
        history(C, C, C, C, C),
        history(F, F, F, E, P, expire_time=NOW - GRACE),
        history(F, F, F, E, P, amount=1),
    ],
)
def test_attempt_limit(attempts: list[FakePayment]) -> None:
    with pytest.raises(AttemptLimitReached) as exc:
        decide(attempts, make(), NOW, POLICY)
    assert exc.value.type == "ATTEMPT_LIMIT"
    assert "limit of 5 payment attempts" in exc.value.message


def test_last_allowed_attempt_still_works() -> None:
    assert decide(history(F, F, F, F, P), make(), NOW, POLICY) == Reuse(pay(5))
    with pytest.raises(RetryLater):
        decide(history(F, F, F, F, P, expire_time=NOW), make(), NOW, POLICY)


@pytest.mark.parametrize("status", [F, P, PaymentStatus.EXPIRED, PaymentStatus.CANCELED])
def test_attempt_in_review_protects_the_order_from_pay_again(status: PaymentStatus) -> None:
    """Issue 11, item 5: money taken on an attempt under review (e.g. VNPay
    07) means no new attempt, whatever the attempt's status."""
    attempts = [dataclasses.replace(pay(1, status, expire_time=NOW - timedelta(hours=1)), needs_review=True)]
    with pytest.raises(FailedPrecondition, match="a payment of this order is being reviewed") as caught:
        decide(attempts, make(), NOW, POLICY)
    assert caught.value.type == "IN_REVIEW"


@pytest.mark.parametrize(
    "attempts",
    [
        history(P, user_id="intruder"),
        history(F, user_id="intruder"),
        # Checked before AlreadyPaid, so another user learns nothing about the order.
        history(S, user_id="intruder"),
        [pay(1, F, user_id="intruder"), pay(2, P)],
    ],
)
def test_attempt_of_another_user_is_denied(attempts: list[FakePayment]) -> None:
    with pytest.raises(PermissionDenied):
        decide(attempts, make(), NOW, POLICY)


@pytest.mark.parametrize("statuses", [(F,), (F, E), (F, C, F, E)])
def test_closed_attempts_lead_to_next_attempt(statuses: tuple[PaymentStatus, ...]) -> None:
    assert decide(history(*statuses), make(), NOW, POLICY) == Create(
        attempt=len(statuses) + 1, original_payment_id=uuid.UUID(int=1), close=None
    )


# --- check_transition -------------------------------------------------------


@pytest.mark.parametrize("to", sorted(FINAL_STATUSES))
def test_pending_may_become_any_final_status(to: PaymentStatus) -> None:
    check_transition(pay(1, P), to)


@pytest.mark.parametrize(
    ("current", "to"),
    [(cur, to) for cur in sorted(FINAL_STATUSES) for to in PaymentStatus] + [(P, P)],
)
def test_final_statuses_are_final(current: PaymentStatus, to: PaymentStatus) -> None:
    with pytest.raises(InvalidTransition) as exc:
        check_transition(pay(1, current), to)
    assert exc.value.type == "INVALID_TRANSITION"
    assert exc.value.subject == f"payments/{uuid.UUID(int=1)}"


# --- new_payment_intent_id --------------------------------------------------


def test_payment_intent_id_shape() -> None:
    pid = new_payment_intent_id(NOW)
    assert len(pid) == 28
    assert pid.startswith("pi")
    assert re.fullmatch(r"[a-z0-9]{28}", pid)  # VNPay vnp_TxnRef: alphanumeric, <= 100
    crockford = "0123456789abcdefghjkmnpqrstvwxyz"
    ms = 0
    for ch in pid[2:12]:
        ms = ms * 32 + crockford.index(ch)
    assert ms == int(NOW.timestamp() * 1000)


def test_payment_intent_ids_sort_by_time() -> None:
    steps = [timedelta(0), timedelta(milliseconds=1), timedelta(seconds=1), timedelta(days=1)]
    times = [NOW + sum(steps[: i + 1], timedelta()) for i in range(len(steps))]
    times += [datetime(2100, 1, 1, tzinfo=UTC)]
    for _ in range(50):
        ids = [new_payment_intent_id(t) for t in times]
        assert sorted(ids) == ids


def test_payment_intent_ids_are_unique_within_an_instant() -> None:
    assert len({new_payment_intent_id(NOW) for _ in range(1_000)}) == 1_000


# --- validate_ids -----------------------------------------------------------


def test_validate_ids_accepts_good_ids() -> None:
    validate_ids(order_id="ORD-1", user_id="user@example.com")


@pytest.mark.parametrize(
    ("ids", "fields"),
    [
        ({"order_id": ""}, ["order_id"]),
        ({"order_id": "a/b"}, ["order_id"]),
        ({"order_id": "a@b"}, ["order_id"]),
        ({"user_id": "u" * 65}, ["user_id"]),
        ({"order_id": "ok", "user_id": "a b"}, ["user_id"]),
        ({"order_id": "a b", "user_id": ""}, ["order_id", "user_id"]),
    ],
)
def test_validate_ids_names_the_field(ids: dict[str, str], fields: list[str]) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_ids(**ids)
    assert [v.field for v in exc.value.violations] == fields
