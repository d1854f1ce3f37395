"""The order service over gRPC against a real payment service and two real
PostgreSQL databases: checkout with stock, "Pay again", events to orders."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from order.v1 import order_pb2, order_service_pb2_grpc
from order.v1 import order_service_pb2 as os_pb2
from payment.v1 import payment_pb2

from tests.conftest import TEST_VNPAY, FakeClock
from tests.integration.helpers import bad_request_fields, rows, signed_vnpay_query, vnpay_ipn_params

U1 = (("x-user-id", "u1"),)
U2 = (("x-user-id", "u2"),)


def checkout(stub: Any, items: list[tuple[str, int]] | None = None, user: Any = U1) -> Any:
    request = os_pb2.CreateOrderRequest(
        items=[os_pb2.CreateOrderItem(variant_id=v, quantity=q) for v, q in (items or [("mug-blue", 2)])],
        receiver_name="Nguyen Van A",
        receiver_phone="+84901234567",
        shipping_address="1 Le Loi, District 1, HCMC",
    )
    return stub.CreateOrder(request, metadata=user).order


def stock(order_db_url: str, variant: str) -> int:
    return int(rows(order_db_url, "SELECT stock FROM products WHERE variant_id = %s", variant)[0][0])


def order_status(stub: Any, order_id: str, user: Any = U1) -> str:
    status = stub.GetOrder(os_pb2.GetOrderRequest(order_id=order_id), metadata=user).order.status
    return str(order_pb2.OrderStatus.Name(status))


def wait_for_status(stub: Any, order_id: str, wanted: str, timeout: float = 5) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if order_status(stub, order_id) == wanted:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"order {order_id} is {order_status(stub, order_id)}, not {wanted}")


def pay(stub: Any, txn_ref: str, amount: int, **kwargs: str) -> str:
    query = signed_vnpay_query(vnpay_ipn_params(txn_ref, amount, **kwargs), TEST_VNPAY.hash_secret)
    reply = stub.HandleCallback(
        httpbody_pb2.HttpBody(), metadata=[("x-envoy-original-path", "/webhooks/vnpay/ipn?" + query)]
    )
    return str(reply.data.decode())


def test_products_are_public_and_checkout_reserves_stock(order_stub: Any, order_db_url: str) -> None:
    products = order_stub.ListProducts(os_pb2.ListProductsRequest()).products
    assert {p.variant_id for p in products} >= {"mug-blue", "sticker-pack"}
    order = checkout(order_stub, [("mug-blue", 2), ("sticker-pack", 3)])
    assert order.status == order_pb2.ORDER_STATUS_PENDING_PAYMENT
    assert order.total_amount == 2 * 89_000 + 3 * 25_000 and order.currency == "VND"
    assert order.order_code >= 100_000
    assert [(i.variant_id, i.quantity, i.unit_price) for i in order.items] == [
        ("mug-blue", 2, 89_000),
        ("sticker-pack", 3, 25_000),
    ]
    assert stock(order_db_url, "mug-blue") == 48 and stock(order_db_url, "sticker-pack") == 497


def test_out_of_stock_names_the_variant_and_reserves_nothing(order_stub: Any, order_db_url: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        checkout(order_stub, [("sticker-pack", 3), ("mug-blue", 51)])
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "mug-blue" in info.value.details()
    assert stock(order_db_url, "sticker-pack") == 500 and stock(order_db_url, "mug-blue") == 50
    assert rows(order_db_url, "SELECT count(*) FROM orders") == [(0,)]


def test_bad_orders_name_the_field(order_stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        order_stub.CreateOrder(
            os_pb2.CreateOrderRequest(
                items=[os_pb2.CreateOrderItem(variant_id="mug-blue", quantity=0)], receiver_phone="12"
            ),
            metadata=U1,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == {
        "items[0].quantity",
        "receiver_name",
        "receiver_phone",
        "shipping_address",
    }
    with pytest.raises(grpc.RpcError) as info:
        checkout(order_stub, [("no-such-thing", 1)])
    assert bad_request_fields(info.value) == {"items[0].variant_id"}
    with pytest.raises(grpc.RpcError) as info:
        checkout(order_stub, user=())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_fifty_shoppers_for_the_last_ten_units(order_server: Any, order_db_url: str) -> None:
    rows(order_db_url, "UPDATE products SET stock = 10 WHERE variant_id = 'mug-blue' RETURNING 1")
    barrier = threading.Barrier(50)

    def buy(i: int) -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{order_server.port}") as channel:
            stub = order_service_pb2_grpc.OrderServiceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            barrier.wait(timeout=30)
            try:
                checkout(stub, [("mug-blue", 1)], user=(("x-user-id", f"shopper-{i}"),))
                return True
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
                return False

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(buy, range(50)))
    assert sum(results) == 10
    assert stock(order_db_url, "mug-blue") == 0
    assert rows(order_db_url, "SELECT count(*) FROM orders") == [(10,)]


def test_retry_payment_pay_and_order_becomes_paid(order_stub: Any, stub: Any) -> None:
    order = checkout(order_stub)
    first = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    assert first.checkout_url.startswith(TEST_VNPAY.pay_url)
    again = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    assert again.payment_id == first.payment_id  # the same intent, a fresh URL
    payment = stub.GetPaymentByOrder(payment_pb2_request(order.id)).payment
    assert payment.amount == order.total_amount

    assert '"RspCode":"00"' in pay(stub, payment.provider_reference, order.total_amount)
    wait_for_status(order_stub, order.id, "ORDER_STATUS_PAID")

    with pytest.raises(grpc.RpcError) as info:
        order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already paid" in info.value.details()


def payment_pb2_request(order_id: str) -> Any:
    from payment.v1 import payment_service_pb2

    return payment_service_pb2.GetPaymentByOrderRequest(order_id=order_id, user_id="u1")


def test_other_users_orders_are_not_found(order_stub: Any) -> None:
    order = checkout(order_stub)
    for call, request in (
        (order_stub.GetOrder, os_pb2.GetOrderRequest(order_id=order.id)),
        (order_stub.RetryPayment, os_pb2.RetryPaymentRequest(order_id=order.id)),
        (order_stub.CancelOrder, os_pb2.CancelOrderRequest(order_id=order.id)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(request, metadata=U2)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert order_stub.ListOrders(os_pb2.ListOrdersRequest(), metadata=U2).orders == []
    assert [o.id for o in order_stub.ListOrders(os_pb2.ListOrdersRequest(), metadata=U1).orders] == [order.id]


def test_list_orders_pages_newest_first(order_stub: Any, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(checkout(order_stub, [("sticker-pack", 1)]).id)
        clock.advance(seconds=1)
    first = order_stub.ListOrders(os_pb2.ListOrdersRequest(page_size=3), metadata=U1)
    second = order_stub.ListOrders(
        os_pb2.ListOrdersRequest(page_size=3, page_token=first.next_page_token), metadata=U1
    )
    assert [o.id for o in first.orders] + [o.id for o in second.orders] == ids[::-1]
    assert second.next_page_token == ""


def test_failed_payment_then_pay_again(order_stub: Any, stub: Any) -> None:
    order = checkout(order_stub)
    order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    payment = stub.GetPaymentByOrder(payment_pb2_request(order.id)).payment
    pay(stub, payment.provider_reference, order.total_amount, response_code="24", status="02")
    wait_for_status(order_stub, order.id, "ORDER_STATUS_PAYMENT_FAILED")
    second = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    assert second.payment_id != payment.id
    wait_for_status(order_stub, order.id, "ORDER_STATUS_PENDING_PAYMENT")
    attempt2 = stub.GetPaymentByOrder(payment_pb2_request(order.id)).payment
    pay(stub, attempt2.provider_reference, order.total_amount)
    wait_for_status(order_stub, order.id, "ORDER_STATUS_PAID")


def test_cancel_restocks_once_and_late_money_is_honoured(
    order_stub: Any, stub: Any, order_db_url: str
) -> None:
    order = checkout(order_stub, [("mug-blue", 5)])
    order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    payment = stub.GetPaymentByOrder(payment_pb2_request(order.id)).payment
    canceled = order_stub.CancelOrder(os_pb2.CancelOrderRequest(order_id=order.id), metadata=U1).order
    assert canceled.status == order_pb2.ORDER_STATUS_CANCELED
    assert stock(order_db_url, "mug-blue") == 50
    with pytest.raises(grpc.RpcError):
        order_stub.CancelOrder(os_pb2.CancelOrderRequest(order_id=order.id), metadata=U1)
    assert stock(order_db_url, "mug-blue") == 50
    assert stub.GetPaymentByOrder(payment_pb2_request(order.id)).payment.status == (
        payment_pb2.PAYMENT_STATUS_CANCELED
    )
    with pytest.raises(grpc.RpcError) as info:
        order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    assert "create a new order" in info.value.details()

    # The shopper still pays on the page they had open: LATE_PAYMENT_POLICY
    # honour (the default) takes the stock again and the order is PAID.
    assert '"RspCode":"00"' in pay(stub, payment.provider_reference, order.total_amount)
    wait_for_status(order_stub, order.id, "ORDER_STATUS_PAID")
    final = order_stub.GetOrder(os_pb2.GetOrderRequest(order_id=order.id), metadata=U1).order
    assert "honoured, stock taken again" in final.status_reason
    assert stock(order_db_url, "mug-blue") == 45  # taken once again, not twice


def test_expiry_sweep_expires_unpaid_orders_and_restocks(
    order_server: Any, order_stub: Any, order_db_url: str, clock: FakeClock
) -> None:
    old = checkout(order_stub, [("mug-blue", 3)])
    clock.advance(minutes=22)
    young = checkout(order_stub, [("mug-blue", 4)])
    clock.advance(minutes=11)
    assert order_server.app.use_cases.expire_due_orders() == 1
    assert order_status(order_stub, old.id) == "ORDER_STATUS_EXPIRED"
    assert order_status(order_stub, young.id) == "ORDER_STATUS_PENDING_PAYMENT"
    assert stock(order_db_url, "mug-blue") == 46
    assert order_server.app.use_cases.expire_due_orders() == 0


def test_events_twice_and_out_of_order_apply_once(
    order_server: Any, order_stub: Any, stub: Any, order_db_url: str, db_url: str
) -> None:
    """Replays the payment's events by hand, duplicated and reversed, on top
    of the live stream: the order ends PAID, with one paid event."""
    from google.protobuf import json_format
    from payment.v1 import payment_pb2 as ppb

    from order_service.adapters.payment_client import payment_event_from_proto

    order = checkout(order_stub)
    order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    payment = stub.GetPaymentByOrder(payment_pb2_request(order.id)).payment
    pay(stub, payment.provider_reference, order.total_amount)
    wait_for_status(order_stub, order.id, "ORDER_STATUS_PAID")
    payloads = [
        p
        for (p,) in rows(
            db_url,
            "SELECT payload FROM outbox_events WHERE payload->'payment'->>'order_id' = %s ORDER BY seq",
            order.id,
        )
    ]
    assert [p["type"] for p in payloads] == ["payment.created", "payment.succeeded"]
    events = [
        payment_event_from_proto("", json_format.ParseDict(p, ppb.PaymentEvent(), ignore_unknown_fields=True))
        for p in payloads
    ]
    use_cases = order_server.app.use_cases
    for event in [*reversed(events), *events]:
        assert use_cases.apply_payment_event(event) is False
    assert order_status(order_stub, order.id) == "ORDER_STATUS_PAID"
    assert rows(order_db_url, "SELECT count(*) FROM order_events WHERE type = 'order.paid'") == [(1,)]


def test_payment_service_down_is_unavailable_quickly(order_db_url: str, clock: FakeClock) -> None:
    import socket

    from order_service.bootstrap import bootstrap as bootstrap_orders
    from order_service.entrypoints import server as order_grpc
    from tests.conftest import make_order_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens once closed
    app = bootstrap_orders(
        make_order_settings(dead_port, payment_timeout_seconds=2.0), order_db_url, clock=clock
    )
    running = order_grpc.start(app, port=0, sweep=False, follow=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = order_service_pb2_grpc.OrderServiceStub(channel)
            order = checkout(stub)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as info:
                stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1, timeout=10)
            assert time.monotonic() - started < 3
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "payment service is unavailable" in info.value.details()
    finally:
        running.stop(grace=0)


def test_retry_payment_is_rate_limited_per_user(order_stub: Any) -> None:
    order = checkout(order_stub)
    for _ in range(10):
        order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    with pytest.raises(grpc.RpcError) as info:
        order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    other = checkout(order_stub, user=U2)
    order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=other.id), metadata=U2)  # u2 unaffected


def test_cash_on_delivery_is_confirmed_when_collected(order_stub: Any, stub: Any, clock: FakeClock) -> None:
    from payment.v1 import payment_service_pb2

    order = checkout(order_stub)
    reply = order_stub.RetryPayment(
        os_pb2.RetryPaymentRequest(order_id=order.id, provider=payment_pb2.PROVIDER_COD), metadata=U1
    )
    assert reply.checkout_url == ""
    wait_for_status(order_stub, order.id, "ORDER_STATUS_AWAITING_DELIVERY_PAYMENT")
    clock.advance(days=2)  # the courier takes days, not the 15 minutes of a checkout page
    assert stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=reply.payment_id)
    ).payment.status == (payment_pb2.PAYMENT_STATUS_PENDING)
    with pytest.raises(grpc.RpcError) as info:
        stub.ConfirmCodPayment(
            payment_service_pb2.ConfirmCodPaymentRequest(payment_id=reply.payment_id, collected_amount=1)
        )
    assert bad_request_fields(info.value) == {"collected_amount"}
    confirm = payment_service_pb2.ConfirmCodPaymentRequest(
        payment_id=reply.payment_id, collected_amount=order.total_amount, note="courier 7"
    )
    assert stub.ConfirmCodPayment(confirm).payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert (
        stub.ConfirmCodPayment(confirm).payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    )  # idempotent
    wait_for_status(order_stub, order.id, "ORDER_STATUS_PAID")


def test_confirming_a_gateway_payment_as_cash_is_refused(order_stub: Any, stub: Any) -> None:
    from payment.v1 import payment_service_pb2

    order = checkout(order_stub)
    reply = order_stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
    with pytest.raises(grpc.RpcError) as info:
        stub.ConfirmCodPayment(
            payment_service_pb2.ConfirmCodPaymentRequest(
                payment_id=reply.payment_id, collected_amount=order.total_amount
            )
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not cash on delivery" in info.value.details()
