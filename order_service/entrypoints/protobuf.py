"""order.v1 messages <-> the order service's domain values."""

from __future__ import annotations

from order.v1 import order_pb2
from order.v1 import order_service_pb2 as os_pb2

from order_service.adapters.payment_client import provider_from_proto
from order_service.domain import model
from order_service.domain.errors import InvalidArgument
from order_service.domain.model import Order, Product
from order_service.domain.payments import PaymentProvider
from paykit.protobuf import timestamp


def new_order_from_proto(request: os_pb2.CreateOrderRequest, user_id: str) -> model.NewOrder:
    """A CreateOrder request, validated: every bad field is reported at once."""
    return model.validate_new_order(
        user_id=user_id,
        lines=[(item.variant_id, item.quantity) for item in request.items],
        receiver_name=request.receiver_name,
        receiver_phone=request.receiver_phone,
        shipping_address=request.shipping_address,
        note=request.note,
    )


def order_to_proto(o: Order) -> order_pb2.Order:
    return order_pb2.Order(
        id=str(o.id),
        order_code=o.order_code or 0,
        user_id=o.user_id,
        status="ORDER_STATUS_" + o.status,
        total_amount=o.total_amount,
        currency=o.currency,
        items=[
            order_pb2.OrderItem(
                variant_id=i.variant_id,
                name=i.name,
                quantity=i.quantity,
                unit_price=i.unit_price,
                line_total=i.line_total,
            )
            for i in o.items
        ],
        receiver_name=o.receiver_name,
        receiver_phone=o.receiver_phone,
        shipping_address=o.shipping_address,
        note=o.note,
        status_reason=o.status_reason or "",
        payment_id=str(o.payment_id or ""),
        create_time=timestamp(o.create_time),
        update_time=timestamp(o.update_time),
        expire_time=timestamp(o.expire_time),
        refunded_amount=o.refunded_amount,
    )


def product_to_proto(p: Product) -> order_pb2.Product:
    return order_pb2.Product(
        variant_id=p.variant_id, name=p.name, price=p.price, currency=p.currency, stock=p.stock
    )


def requested_provider(value: int) -> PaymentProvider | None:
    """The provider a RetryPayment asks for; None (unspecified) asks the
    payment service to keep the provider of the order's current attempt."""
    if value == 0:
        return None
    provider = provider_from_proto(value)
    if provider is None:
        raise InvalidArgument.one("provider", "is not a provider this service knows")
    return provider
