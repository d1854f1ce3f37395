"""Two replicas of each service on one pair of databases, sweepers running
in both, order replicas SIGKILLed and restarted while payment events flow:
every order ends right, every event applies once, stock is exact."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps
from payment.v1 import payment_service_pb2_grpc

from tests.conftest import TEST_VNPAY
from tests.integration.helpers import ServerProcess, rows, signed_vnpay_query, vnpay_ipn_params

ORDERS = 40
QTY = 2


def order_stub(p: ServerProcess) -> Any:
    return order_service_pb2_grpc.OrderServiceStub(grpc.insecure_channel(p.target))


def payment_stub(p: ServerProcess) -> Any:
    return payment_service_pb2_grpc.PaymentServiceStub(grpc.insecure_channel(p.target))


def start_order_replica(order_db_url: str, payment: ServerProcess) -> ServerProcess:
    return ServerProcess(
        "",
        "order",
        ORDER_DATABASE_URL=order_db_url,
        PAYMENT_TARGET=payment.target,
        SWEEP_INTERVAL="1",
    )


@pytest.mark.slow
def test_replicas_and_crashes_lose_nothing(db_url: str, order_db_url: str) -> None:
    payments = [ServerProcess(db_url, SWEEP_INTERVAL="1"), ServerProcess(db_url, SWEEP_INTERVAL="1")]
    orders = [start_order_replica(order_db_url, payments[i]) for i in range(2)]
    try:
        rows(order_db_url, "UPDATE products SET stock = 1000 WHERE variant_id = 'mug-blue' RETURNING 1")
        placed = []
        for i in range(ORDERS):
            stub = order_stub(orders[i % 2])
            user = (("x-user-id", f"shopper-{i}"),)
            order = stub.CreateOrder(
                os_pb2.CreateOrderRequest(
                    items=[os_pb2.CreateOrderItem(variant_id="mug-blue", quantity=QTY)],
                    receiver_name="A",
                    receiver_phone="0901234567",
                    shipping_address="HCMC",
                ),
                metadata=user,
            ).order
            stub.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=user)
            placed.append(order)
        to_pay, to_expire = placed[: ORDERS // 2], placed[ORDERS // 2 :]

        def ipn(i_order: tuple[int, Any]) -> str:
            i, order = i_order
            payment = (
                payment_stub(payments[i % 2])
                .GetPaymentByOrder(ps.GetPaymentByOrderRequest(order_id=order.id, user_id=order.user_id))
                .payment
            )
            query = signed_vnpay_query(
                vnpay_ipn_params(payment.provider_reference, order.total_amount), TEST_VNPAY.hash_secret
            )
            target = [("x-envoy-original-path", "/webhooks/vnpay/ipn?" + query)]
            answers = []
            for p in payments:  # every IPN twice, once to each replica
                answers.append(payment_stub(p).HandleCallback(httpbody_pb2.HttpBody(), metadata=target).data)
            return b"".join(answers).decode()

        with ThreadPoolExecutor(4) as pool:
            first_half = pool.map(ipn, list(enumerate(to_pay[:10])))
            orders[0].kill()  # SIGKILL while events are being applied
            answers = list(first_half)
            orders[1].kill()  # now nobody follows the stream
            answers += list(pool.map(ipn, list(enumerate(to_pay[10:], start=10))))
        assert all('"00"' in a and '"02"' in a for a in answers), answers

        # Unpaid orders fall due, and so do their attempts (past every
        # gateway's grace): an order whose attempt may still take money waits.
        # Both restarted replicas run their sweepers.
        rows(
            db_url,
            "UPDATE payments SET expire_time = now() - interval '1 hour'"
            " WHERE order_id = ANY(%s) RETURNING 1",
            [o.id for o in to_expire],
        )
        rows(
            order_db_url,
            "UPDATE orders SET expire_time = now() - interval '1 s' WHERE id = ANY(%s::uuid[]) RETURNING 1",
            [o.id for o in to_expire],
        )
        orders = [start_order_replica(order_db_url, payments[i]) for i in range(2)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            statuses = dict(rows(order_db_url, "SELECT id::text, status FROM orders"))
            if all(statuses[o.id] == "PAID" for o in to_pay) and all(
                statuses[o.id] == "EXPIRED" for o in to_expire
            ):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"orders did not settle: {statuses}")

        assert rows(order_db_url, "SELECT stock FROM products WHERE variant_id = 'mug-blue'") == [
            (1000 - QTY * len(to_pay),)
        ]
        counts = dict(rows(order_db_url, "SELECT type, count(*) FROM order_events GROUP BY type"))
        assert counts == {"order.created": ORDERS, "order.paid": len(to_pay), "order.expired": len(to_expire)}
        # The expired attempts' events arrive too.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            payment_events = rows(db_url, "SELECT count(*) FROM outbox_events")[0][0]
            applied = rows(order_db_url, "SELECT count(*) FROM applied_payment_events")[0][0]
            if applied == payment_events:
                break
            time.sleep(0.2)
        assert applied == payment_events == ORDERS + len(to_pay) + len(to_expire)
        succeeded = rows(db_url, "SELECT count(*) FROM outbox_events WHERE type = 'payment.succeeded'")[0][0]
        assert succeeded == len(to_pay)
    finally:
        for p in [*orders, *payments]:
            p.kill()
