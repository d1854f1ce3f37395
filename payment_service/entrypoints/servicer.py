"""payment.v1.PaymentService: proto in, one use-case call, proto out."""

from __future__ import annotations

import uuid
from datetime import datetime

import grpc
from google.protobuf import timestamp_pb2
from payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc

from payment_service.adapters.orm import Payment
from payment_service.domain import model
from payment_service.domain.errors import InvalidArgument
from payment_service.entrypoints.errors import grpc_errors
from payment_service.service_layer.services import PaymentUseCases

MAX_REASON_LENGTH = 255


def _provider_from_proto(value: int) -> model.Provider | None:
    if value == payment_pb2.PROVIDER_UNSPECIFIED or value not in payment_pb2.Provider.values():
        return None
    return model.Provider(payment_pb2.Provider.Name(value).removeprefix("PROVIDER_"))


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def payment_to_proto(p: Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        id=str(p.id),
        order_id=p.order_id,
        user_id=p.user_id,
        payment_intent_id=p.payment_intent_id,
        amount=p.amount,
        currency=p.currency,
        provider="PROVIDER_" + p.provider,
        status="PAYMENT_STATUS_" + p.status,
        failure_reason=p.failure_reason or "",
        attempt=p.attempt,
        original_payment_id=str(p.original_payment_id or ""),
        provider_reference=p.provider_reference,
        provider_transaction_id=p.provider_transaction_id or "",
        create_time=_timestamp(p.create_time),
        update_time=_timestamp(p.update_time),
        expire_time=_timestamp(p.expire_time),
        paid_time=_timestamp(p.paid_time),
    )


def _payment_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.one("payment_id", "must be a UUID") from None


class PaymentServicer(payment_service_pb2_grpc.PaymentServiceServicer):
    def __init__(self, use_cases: PaymentUseCases) -> None:
        self.use_cases = use_cases

    @grpc_errors
    def CreateOrGetPayment(
        self, request: payment_service_pb2.CreateOrGetPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.CreateOrGetPaymentResponse:
        req = model.validate_request(
            order_id=request.order_id,
            user_id=request.user_id,
            amount=request.amount,
            currency=request.currency,
            provider=_provider_from_proto(request.provider),
            description=request.description,
            client_ip=request.client_ip,
            user_agent=request.user_agent,
            return_url=request.return_url,
            request_id=request.request_id,
            policy=self.use_cases.policy,
        )
        result = self.use_cases.create_or_get_payment(req)
        return payment_service_pb2.CreateOrGetPaymentResponse(
            payment=payment_to_proto(result.payment), checkout_url=result.checkout_url, reused=result.reused
        )

    @grpc_errors
    def GetPaymentByOrder(
        self, request: payment_service_pb2.GetPaymentByOrderRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.GetPaymentByOrderResponse:
        model.validate_ids(order_id=request.order_id, user_id=request.user_id)
        attempts = self.use_cases.get_payments_by_order(request.order_id, request.user_id)
        protos = [payment_to_proto(p) for p in attempts]
        return payment_service_pb2.GetPaymentByOrderResponse(payment=protos[-1], attempts=protos)

    @grpc_errors
    def GetPayment(
        self, request: payment_service_pb2.GetPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.GetPaymentResponse:
        payment = self.use_cases.get_payment(_payment_id(request.payment_id))
        return payment_service_pb2.GetPaymentResponse(payment=payment_to_proto(payment))

    @grpc_errors
    def CancelPayment(
        self, request: payment_service_pb2.CancelPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.CancelPaymentResponse:
        payment_id = _payment_id(request.payment_id)
        if len(request.reason) > MAX_REASON_LENGTH:
            raise InvalidArgument.one("reason", f"is longer than {MAX_REASON_LENGTH} characters")
        payment = self.use_cases.cancel_payment(payment_id, request.reason)
        return payment_service_pb2.CancelPaymentResponse(payment=payment_to_proto(payment))
