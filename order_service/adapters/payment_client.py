"""The order service's view of payment.v1.PaymentService: typed calls with
deadlines, payment.v1 messages turned into the order domain's payment facts,
and gRPC failures turned into domain errors. The only module of the order
service that reads payment.v1 messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import Any

import grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from order_service.domain.errors import DomainError, InvalidArgument, PaymentRefused, Unavailable
from order_service.domain.payments import (
    Checkout,
    PaymentAttempt,
    PaymentEvent,
    PaymentFact,
    PaymentProvider,
    PaymentStatus,
    RefundFact,
    RefundStatus,
    ReviewResolution,
)
from paykit.protobuf import timestamp


# Keepalive for the channel to the payment service: a half-open connection
# (a peer gone without a FIN) under the long-lived event stream is noticed
# within keepalive time + timeout, not after the kernel's two hours. The
# payment service's server accepts pings this often (paykit.grpc_server).
def channel_options(
    keepalive_seconds: float = 30.0, keepalive_timeout_seconds: float = 10.0
) -> list[tuple[str, Any]]:
    return [
        ("grpc.keepalive_time_ms", int(keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


# What the payment service's refusals mean to a shopper of this order.
_PASS_THROUGH = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}


def provider_to_proto(provider: PaymentProvider | None) -> str:
    """The payment.v1.Provider name; None is PROVIDER_UNSPECIFIED: the
    payment service keeps the provider of the order's current attempt."""
    return f"PROVIDER_{provider}" if provider is not None else "PROVIDER_UNSPECIFIED"


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
        attempt=payment.attempt,
        create_time=event.create_time.ToDatetime(tzinfo=UTC) if event.HasField("create_time") else None,
        traceparent=traceparent,
        refunded_amount=payment.refunded_amount,
        refund_pending_amount=payment.refund_pending_amount,
        review_resolution=_resolution(payment.review_resolution),
        refund=_refund(event) if event.HasField("refund") else None,
    )


def _resolution(value: int) -> ReviewResolution:
    name = payment_pb2.ReviewAction.Name(value) if value in payment_pb2.ReviewAction.values() else ""
    try:
        return ReviewResolution(name.removeprefix("REVIEW_ACTION_").replace("UNSPECIFIED", ""))
    except ValueError:
        return ReviewResolution.NONE


def _refund(event: payment_pb2.PaymentEvent) -> RefundFact | None:
    refund = event.refund
    known = refund.status in payment_pb2.RefundStatus.values()
    name = payment_pb2.RefundStatus.Name(refund.status) if known else ""
    try:
        status = RefundStatus(name.removeprefix("REFUND_STATUS_"))
    except ValueError:
        return None  # a refund status this build does not know: not acted on
    return RefundFact(
        refund_id=refund.id,
        amount=refund.amount,
        status=status,
        restock=refund.restock,
        # The payment's own capture is refunded from its own transaction;
        # an extra payment's refund names the extra's transaction.
        own_capture=refund.provider_transaction_id == event.payment.provider_transaction_id,
        failure_reason=refund.failure_reason,
    )


def payment_fact_from_proto(payment: payment_pb2.Payment) -> PaymentFact:
    return PaymentFact(
        payment_id=payment.id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        status=status_from_proto(payment.status),
        provider=provider_from_proto(payment.provider),
        amount=payment.amount,
        currency=payment.currency,
        attempt=payment.attempt,
        paid=payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED or payment.HasField("paid_time"),
    )


class PaymentClient:
    def __init__(
        self,
        channel: grpc.Channel,
        timeout_seconds: float = 5.0,
        stream_deadline_seconds: float | None = 300.0,
    ) -> None:
        self.stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        self.timeout = timeout_seconds
        self.stream_deadline = stream_deadline_seconds

    def create_or_get_payment(self, attempt: PaymentAttempt) -> Checkout:
        request = self._create_request(attempt)
        try:
            # No blind retry here: request_id makes a retry by the caller safe.
            # No provider (None) asks the payment service to keep the order's.
            response = self.stub.CreateOrGetPayment(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise _domain_error(error) from None
        return Checkout(
            payment_id=response.payment.id,
            checkout_url=response.checkout_url,
            expire_time=response.payment.expire_time.ToDatetime(tzinfo=UTC),
            attempt=response.payment.attempt,
        )

    def payments_of_order(self, order_id: str, user_id: str) -> Sequence[PaymentFact]:
        """Every attempt of the order, oldest first; none when it has none."""
        try:
            response = self.stub.GetPaymentByOrder(
                ps.GetPaymentByOrderRequest(order_id=order_id, user_id=user_id), timeout=self.timeout
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return []
            raise _domain_error(error) from None
        return [payment_fact_from_proto(p) for p in response.attempts or [response.payment]]

    def _create_request(self, attempt: PaymentAttempt) -> ps.CreateOrGetPaymentRequest:
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
            not_after=timestamp(attempt.not_after),
        )
        return request

    def cancel_payment(self, payment_id: str, reason: str) -> None:
        try:
            self.stub.CancelPayment(
                ps.CancelPaymentRequest(payment_id=payment_id, reason=reason), timeout=self.timeout
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:  # already closed: fine
                raise _domain_error(error) from None

    def stream_events(self, after_cursor: str) -> EventStream:
        """Payment events after `after_cursor`, until the stream, its
        deadline or the channel ends it (grpc.RpcError; DEADLINE_EXCEEDED
        when the deadline did: the caller reconnects from its cursor).
        The caller cancels it when done (from any thread)."""
        # Named: the payment service keeps every event this consumer has not
        # confirmed (its after_cursor is our committed checkpoint).
        request = ps.StreamPaymentEventsRequest(after_cursor=after_cursor, consumer=CONSUMER_NAME)
        return EventStream(self.stub.StreamPaymentEvents(request, timeout=self.stream_deadline))


class EventStream:
    """The event stream as domain events; cancel() ends it, from any thread."""

    def __init__(self, responses: Any) -> None:
        self._responses = responses

    def __iter__(self) -> Iterator[PaymentEvent]:
        return self

    def __next__(self) -> PaymentEvent:
        response = next(self._responses)
        return payment_event_from_proto(response.cursor, response.event, response.traceparent)

    def cancel(self) -> None:
        # A client interceptor (tracing) may hand back a plain generator: it
        # cannot be stopped from another thread, and ends with the stream's
        # deadline or its next message instead.
        cancel = getattr(self._responses, "cancel", None)
        if cancel is not None:
            cancel()


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
