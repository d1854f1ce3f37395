"""order.v1.OrderService: proto in, one use-case call, proto out. The user
is the `x-user-id` metadata: set by the ingress from a verified JWT (after
removing any client-sent copy), or by internal gRPC callers."""

from __future__ import annotations

import re

import grpc
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc

from order_service.domain.errors import InvalidArgument, Unauthenticated
from order_service.entrypoints.protobuf import (
    new_order_from_proto,
    order_to_proto,
    product_to_proto,
    requested_provider,
)
from order_service.service_layer.services import OrderUseCases
from paykit.clock import ClockDoor
from paykit.errors import FailedPrecondition
from paykit.grpc_errors import grpc_errors
from paykit.protobuf import timestamp

USER_HEADER = "x-user-id"
IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}


def _user(context: grpc.ServicerContext) -> str:
    user = _metadata(context).get(USER_HEADER, "")
    if not user or len(user) > 64:
        raise Unauthenticated("a signed-in user is required")
    return user


def _idempotency_key(metadata: dict[str, str]) -> str:
    key = metadata.get("idempotency-key", "")
    if key and not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise InvalidArgument.one("Idempotency-Key", "must be 1-64 characters of [A-Za-z0-9._:-]")
    return key


def _client_ip(metadata: dict[str, str]) -> str:
    """The shopper's address as the ingress saw it."""
    forwarded = metadata.get("x-forwarded-for", "").split(",")[0].strip()
    return forwarded or metadata.get("x-envoy-external-address", "")


class OrderServicer(order_service_pb2_grpc.OrderServiceServicer):
    def __init__(self, use_cases: OrderUseCases, advance_clock: ClockDoor | None = None) -> None:
        self.advance_clock = advance_clock
        self.use_cases = use_cases  # only its methods are called: one per RPC

    @grpc_errors
    def ListProducts(
        self, request: os_pb2.ListProductsRequest, context: grpc.ServicerContext
    ) -> os_pb2.ListProductsResponse:
        products, token = self.use_cases.list_products(request.page_size, request.page_token)
        return os_pb2.ListProductsResponse(
            products=[product_to_proto(p) for p in products], next_page_token=token
        )

    @grpc_errors
    def CreateOrder(
        self, request: os_pb2.CreateOrderRequest, context: grpc.ServicerContext
    ) -> os_pb2.CreateOrderResponse:
        order = self.use_cases.create_order(new_order_from_proto(request, _user(context)))
        return os_pb2.CreateOrderResponse(order=order_to_proto(order))

    @grpc_errors
    def GetOrder(
        self, request: os_pb2.GetOrderRequest, context: grpc.ServicerContext
    ) -> os_pb2.GetOrderResponse:
        order = self.use_cases.get_order(_user(context), request.order_id)
        return os_pb2.GetOrderResponse(order=order_to_proto(order))

    @grpc_errors
    def ListOrders(
        self, request: os_pb2.ListOrdersRequest, context: grpc.ServicerContext
    ) -> os_pb2.ListOrdersResponse:
        orders, token = self.use_cases.list_orders(_user(context), request.page_size, request.page_token)
        return os_pb2.ListOrdersResponse(orders=[order_to_proto(o) for o in orders], next_page_token=token)

    @grpc_errors
    def RetryPayment(
        self, request: os_pb2.RetryPaymentRequest, context: grpc.ServicerContext
    ) -> os_pb2.RetryPaymentResponse:
        metadata = _metadata(context)
        order, checkout = self.use_cases.retry_payment(
            _user(context),
            request.order_id,
            provider=requested_provider(request.provider),
            return_url=request.return_url,
            client_ip=_client_ip(metadata),
            user_agent=metadata.get("user-agent", ""),
            idempotency_key=_idempotency_key(metadata),
        )
        return os_pb2.RetryPaymentResponse(
            order=order_to_proto(order),
            payment_id=checkout.payment_id,
            checkout_url=checkout.checkout_url,
            payment_expire_time=timestamp(checkout.expire_time),
        )

    @grpc_errors
    def CancelOrder(
        self, request: os_pb2.CancelOrderRequest, context: grpc.ServicerContext
    ) -> os_pb2.CancelOrderResponse:
        order = self.use_cases.cancel_order(_user(context), request.order_id, request.reason)
        return os_pb2.CancelOrderResponse(order=order_to_proto(order))

    @grpc_errors
    def AdvanceClock(
        self, request: os_pb2.AdvanceClockRequest, context: grpc.ServicerContext
    ) -> os_pb2.AdvanceClockResponse:
        if self.advance_clock is None:
            raise FailedPrecondition("this server has no test clock", subject="clock", type_="CLOCK_FIXED")
        clock = self.advance_clock(request.by.ToTimedelta())
        response = os_pb2.AdvanceClockResponse()
        response.now.FromDatetime(clock())
        response.offset.FromTimedelta(clock.offset)
        return response
