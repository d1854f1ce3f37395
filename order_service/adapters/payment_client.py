"""The order service's view of payment.v1.PaymentService: typed calls with
deadlines, payment.v1 messages turned into the order domain's payment facts,
and gRPC failures turned into domain errors. The only module of the order
service that reads payment.v1 messages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

import grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from order_service.domain.errors import DomainError, InvalidArgument, PaymentRefused, Unavailable
from order_service.domain.payments import (
    Checkout,
    PaymentAttempt,
    PaymentEvent,
    PaymentProvider,
    PaymentStatus,
)

# What the payment service's refusals mean to a shopper of this order.
_PASS_THROUGH = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}


def provider_to_proto(provider: PaymentProvider | None) -> str:
    """The payment.v1.Provider name; None is the order service's default choice: VNPay."""
    return f"PROVIDER_{provider or PaymentProvider.VNPAY}"


def provider_from_proto(value: int) -> PaymentProvider | None:
    """The domain provider of a payment.v1.Provider; None for unspecified or unknown."""
    name = payment_pb2.Provider.Name(value) if value in payment_pb2.Provider.values() else ""
    try:
        return PaymentProvider(name.removeprefix("PROVIDER_"))
    except ValueError:
        return None


def status_from_proto(value: int) -> PaymentStatus:
    name = payment_pb2.PaymentStatus.Name(value) if value in payment_pb2.PaymentStatus.values() else ""
    try:
        return PaymentStatus(name.removeprefix("PAYMENT_STATUS_"))
    except ValueError:
        return PaymentStatus.UNSPECIFIED


def payment_event_from_proto(
    cursor: str, event: payment_pb2.PaymentEvent, traceparent: str = ""
) -> PaymentEvent:
    payment = event.payment
    return PaymentEvent(
        cursor=cursor,
        event_id=event.id,
        type=event.type,
        payment_id=payment.id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        status=status_from_proto(payment.status),
        provider=provider_from_proto(payment.provider),
        amount=payment.amount,
        currency=payment.currency,
        version=event.version,
        failure_reason=payment.failure_reason,
        review_reason=payment.review_reason,
        create_time=event.create_time.ToDatetime(tzinfo=UTC) if event.HasField("create_time") else None,
        traceparent=traceparent,
    )


class PaymentClient:
    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self.stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        self.timeout = timeout_seconds

    def create_or_get_payment(self, attempt: PaymentAttempt) -> Checkout:
        request = ps.CreateOrGetPaymentRequest(
            order_id=attempt.order_id,
            user_id=attempt.user_id,
            amount=attempt.amount,
            currency=attempt.currency,
            provider=provider_to_proto(attempt.provider),
            description=attempt.description,
            client_ip=attempt.client_ip,
            user_agent=attempt.user_agent[:512],
            return_url=attempt.return_url,
            request_id=attempt.request_id,
        )
        try:
            # No blind retry here: request_id makes a retry by the caller safe.
            response = self.stub.CreateOrGetPayment(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise _domain_error(error) from None
        return Checkout(
            payment_id=response.payment.id,
            checkout_url=response.checkout_url,
            expire_time=response.payment.expire_time.ToDatetime(tzinfo=UTC),
        )

    def cancel_payment(self, payment_id: str, reason: str) -> None:
        try:
            self.stub.CancelPayment(
                ps.CancelPaymentRequest(payment_id=payment_id, reason=reason), timeout=self.timeout
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:  # already closed: fine
                raise _domain_error(error) from None

    def stream_events(self, after_cursor: str) -> Iterator[PaymentEvent]:
        """Payment events after `after_cursor`, until the stream or the
        channel closes (grpc.RpcError)."""
        # Named: the payment service keeps every event this consumer has not
        # confirmed (its after_cursor is our committed checkpoint).
        request = ps.StreamPaymentEventsRequest(after_cursor=after_cursor, consumer=CONSUMER_NAME)
        responses = self.stub.StreamPaymentEvents(request)
        for response in responses:
            yield payment_event_from_proto(response.cursor, response.event, response.traceparent)


CONSUMER_NAME = "order_service"


def _domain_error(error: grpc.RpcError) -> DomainError:
    code, details = error.code(), error.details() or ""
    if code in _PASS_THROUGH:
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            # return_url is the caller's own field: name it, not the order.
            field, _, reason = details.partition(": ")
            if field == "return_url" and ";" not in details:
                return InvalidArgument.one("return_url", reason)
            return InvalidArgument.one("order", details)
        return PaymentRefused(details)
    if code == grpc.StatusCode.ABORTED:
        return Unavailable("the previous payment attempt is closing; retry in a minute")
    return Unavailable("the payment service is unavailable; retry shortly")
