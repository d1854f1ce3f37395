"""Issue 11, finding 6: before an expired attempt is replaced, its gateway
is asked (outside any transaction). Paid: the old attempt is settled, no new
one (FAILED_PRECONDITION already paid). Pending, or the gateway cannot be
asked: the replacement goes ahead and the old attempt is watched (closing)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest

from paykit.errors import Unavailable
from payment_service.bootstrap import App
from payment_service.domain.callbacks import Notification
from payment_service.domain.errors import AlreadyPaid
from payment_service.domain.model import PaymentStatus, Provider
from payment_service.gateways.port import PaymentView
from payment_service.service_layer.services import CreatePayment
from tests.conftest import FakeClock


class AskedGateway:
    """The real VNPay adapter, but its query answers as the test says."""

    def __init__(self, real: Any, answer: str) -> None:
        self.real = real
        self.answer = answer
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def query(self, payment: PaymentView, now: datetime) -> Notification | None:
        self.asked.append(payment.provider_reference)
        if self.answer == "unreachable":
            raise Unavailable("VNPay cannot be reached right now; retry shortly")
        if self.answer == "paid":
            return Notification(
                provider_reference=payment.provider_reference,
                amount=payment.amount,
                succeeded=True,
                transaction_id="14226112",
                response_code="00",
                failure_reason="",
            )
        return None  # pending: nothing final yet


def request(order_id: str) -> CreatePayment:
    return CreatePayment(
        order_id=order_id,
        user_id="u1",
        amount=150_000,
        currency="",
        provider=Provider.VNPAY,
        description="",
        client_ip="",
        user_agent="",
        return_url="",
        request_id="",
    )


def ask_with(app: App, answer: str) -> AskedGateway:
    gateway = AskedGateway(app.use_cases.providers[Provider.VNPAY], answer)
    app.use_cases.providers = {**app.use_cases.providers, Provider.VNPAY: gateway}  # type: ignore[dict-item]
    return gateway


def test_paid_at_the_gateway_settles_the_old_attempt_instead_of_replacing(app: App, clock: FakeClock) -> None:
    first = app.use_cases.create_or_get_payment(request("ORD-ASK-PAID")).payment
    gateway = ask_with(app, "paid")
    clock.advance(minutes=30)  # past expiry and VNPay's grace
    with pytest.raises(AlreadyPaid):
        app.use_cases.create_or_get_payment(request("ORD-ASK-PAID"))
    assert gateway.asked == [first.provider_reference]
    (only,) = app.use_cases.get_payments_by_order("ORD-ASK-PAID", "u1")
    assert only.id == first.id and only.status == PaymentStatus.SUCCEEDED


@pytest.mark.parametrize("answer", ["pending", "unreachable"])
def test_pending_or_unreachable_replaces_and_watches_the_old_attempt(
    app: App, clock: FakeClock, answer: str
) -> None:
    order = f"ORD-ASK-{answer}"
    first = app.use_cases.create_or_get_payment(request(order)).payment
    gateway = ask_with(app, answer)
    clock.advance(minutes=30)
    second = app.use_cases.create_or_get_payment(dataclasses.replace(request(order))).payment
    assert gateway.asked == [first.provider_reference]
    old, new = app.use_cases.get_payments_by_order(order, "u1")
    assert (old.id, new.id) == (first.id, second.id)
    assert old.status == PaymentStatus.EXPIRED and old.closing_until is not None
    assert new.status == PaymentStatus.PENDING and new.attempt == 2
