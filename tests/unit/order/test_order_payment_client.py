"""payment.v1 messages become the order domain's payment facts in the
payment client adapter, and nowhere else."""

from __future__ import annotations

from payment.v1 import payment_pb2

from order_service.adapters.payment_client import (
    payment_event_from_proto,
    provider_from_proto,
    provider_to_proto,
    status_from_proto,
)
from order_service.domain.payments import PaymentEvent, PaymentProvider, PaymentStatus


def test_a_payment_event_becomes_a_domain_fact() -> None:
    message = payment_pb2.PaymentEvent(
        id="e1",
        type="payment.succeeded",
        version=3,
        payment=payment_pb2.Payment(
            id="p1",
            order_id="o1",
            user_id="u1",
            amount=150_000,
            currency="VND",
            provider=payment_pb2.PROVIDER_MOMO,
            status=payment_pb2.PAYMENT_STATUS_SUCCEEDED,
            failure_reason="",
            review_reason="late",
        ),
    )
    assert payment_event_from_proto("12-3", message) == PaymentEvent(
        cursor="12-3",
        event_id="e1",
        type="payment.succeeded",
        payment_id="p1",
        order_id="o1",
        user_id="u1",
        status=PaymentStatus.SUCCEEDED,
        provider=PaymentProvider.MOMO,
        amount=150_000,
        currency="VND",
        version=3,
        failure_reason="",
        review_reason="late",
    )


def test_every_payment_v1_enum_value_has_a_domain_name() -> None:
    for name, value in payment_pb2.Provider.items():
        if name != "PROVIDER_UNSPECIFIED":
            provider = provider_from_proto(value)
            assert provider is not None and provider_to_proto(provider) == name
    for name, value in payment_pb2.PaymentStatus.items():
        assert status_from_proto(value).value == name.removeprefix("PAYMENT_STATUS_")


def test_unknown_and_unspecified_values() -> None:
    assert provider_from_proto(payment_pb2.PROVIDER_UNSPECIFIED) is None
    assert provider_from_proto(999) is None
    assert status_from_proto(999) == PaymentStatus.UNSPECIFIED
    assert provider_to_proto(None) == "PROVIDER_UNSPECIFIED"
