"""The order service's view of payment.v1.PaymentService: typed calls with
deadlines, and gRPC failures turned into domain errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from paykit.errors import DomainError, FailedPrecondition, InvalidArgument, Unavailable

# What the payment service's refusals mean to a shopper of this order.
_PASS_THROUGH = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}


@dataclass(frozen=True)
class Checkout:
    payment_id: str
    checkout_url: str
    expire_time: datetime


class PaymentClient:
    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self.stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        self.timeout = timeout_seconds

    def create_or_get_payment(
        self,
        *,
        order_id: str,
        user_id: str,
        amount: int,
        currency: str,
        provider: payment_pb2.Provider,
        description: str,
        client_ip: str,
        user_agent: str,
        return_url: str,
        request_id: str,
    ) -> Checkout:
        request = ps.CreateOrGetPaymentRequest(
            order_id=order_id,
            user_id=user_id,
            amount=amount,
            currency=currency,
            provider=provider or payment_pb2.PROVIDER_VNPAY,
            description=description,
            client_ip=client_ip,
            user_agent=user_agent[:512],
            return_url=return_url,
            request_id=request_id,
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

    def stream_events(self, after_cursor: str) -> Iterator[ps.StreamPaymentEventsResponse]:
        return self.stub.StreamPaymentEvents(ps.StreamPaymentEventsRequest(after_cursor=after_cursor))  # type: ignore[no-any-return]


def _domain_error(error: grpc.RpcError) -> DomainError:
    code, details = error.code(), error.details() or ""
    if code in _PASS_THROUGH:
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument.one("order", details)
        return FailedPrecondition(details, subject="payments", type_="PAYMENT_REFUSED")
    if code == grpc.StatusCode.ABORTED:
        return Unavailable("the previous payment attempt is closing; retry in a minute")
    return Unavailable("the payment service is unavailable; retry shortly")
