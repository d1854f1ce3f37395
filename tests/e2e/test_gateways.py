"""Each gateway end to end: an order, "Pay again" with that provider, the
shopper pays on the simulator's checkout page, the gateway's own signed
callback comes back through Envoy, and the order ends PAID."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.e2e.client import send
from tests.e2e.conftest import SimStack
from tests.integration.helpers import rows

ORDER_BODY = {
    "items": [{"variant_id": "mug-blue", "quantity": 1}],
    "receiver_name": "Nguyen Van A",
    "receiver_phone": "0901234567",
    "shipping_address": "1 Le Loi, HCMC",
}
GATEWAYS = {
    "PROVIDER_VNPAY": "vnpay",
    "PROVIDER_PAYOS": "payos",
    "PROVIDER_MOMO": "momo",
    "PROVIDER_ZALOPAY": "zalopay",
}


def api(stack: SimStack, method: str, path: str, token: str, body: Any = None) -> Any:
    data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
    reply = send(
        stack.envoy,
        method,
        path,
        data,
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert reply.status == 200, reply
    return reply.json()


def checkout(stack: SimStack, user: str, provider: str) -> tuple[str, str, str]:
    token = stack.keys.token(user)
    order = api(stack, "POST", "/v1/orders", token, ORDER_BODY)["order"]
    retry = api(stack, "POST", f"/v1/orders/{order['id']}:retryPayment", token, {"provider": provider})
    assert retry["checkout_url"].startswith(stack.sim.base_url)
    return token, order["id"], retry["checkout_url"]


def wait_order(stack: SimStack, token: str, order_id: str, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api(stack, "GET", f"/v1/orders/{order_id}", token)["order"]["status"]
        if status == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"order {order_id} is {status}, not {wanted}")


def open_page(url: str) -> str:
    """What the shopper's browser does with the checkout URL."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def reference(db_url: str, order_id: str) -> str:
    return str(rows(db_url, "SELECT provider_reference FROM payments WHERE order_id = %s", order_id)[0][0])


@pytest.mark.parametrize("provider", list(GATEWAYS))
def test_pay_on_the_gateway_page_and_the_order_is_paid(
    sim_stack: SimStack, provider: str, db_url: str
) -> None:
    token, order_id, url = checkout(sim_stack, f"user-{provider}", provider)
    assert "89" in open_page(url)  # the page shows the amount (89,000 VND)
    result = sim_stack.sim.pay(GATEWAYS[provider], reference(db_url, order_id), "pay")
    assert result.callbacks >= 1
    wait_order(sim_stack, token, order_id, "ORDER_STATUS_PAID")
    assert rows(db_url, "SELECT count(*) FROM outbox_events WHERE type = 'payment.succeeded'") == [(1,)]
    journal = rows(db_url, "SELECT verified, outcome FROM callback_journal WHERE kind = 'ipn'")
    assert (True, "succeeded") in journal


@pytest.mark.parametrize(
    "provider", ["PROVIDER_VNPAY", "PROVIDER_PAYOS", "PROVIDER_MOMO", "PROVIDER_ZALOPAY"]
)
def test_a_dropped_callback_is_settled_by_reconciliation(
    sim_stack: SimStack, provider: str, db_url: str, clock: Any
) -> None:
    token, order_id, url = checkout(sim_stack, f"drop-{provider}", provider)
    open_page(url)
    sim_stack.sim.add_fault(GATEWAYS[provider], "drop")
    ref = reference(db_url, order_id)
    sim_stack.sim.pay(GATEWAYS[provider], ref, "pay")
    sim_stack.sim.wait_idle(5)
    assert rows(db_url, "SELECT status FROM payments WHERE order_id = %s", order_id) == [("PENDING",)]
    clock.advance(minutes=3)
    assert sim_stack.payment.app.callbacks.reconcile_due() == 1
    wait_order(sim_stack, token, order_id, "ORDER_STATUS_PAID")
    assert rows(db_url, "SELECT kind, outcome FROM callback_journal WHERE kind = 'reconcile'") == [
        ("reconcile", "succeeded")
    ]


@pytest.mark.parametrize(
    "fault", ["duplicate", "before_return", "bad_signature", "wrong_amount", "out_of_order"]
)
def test_scripted_faults_on_vnpay(sim_stack: SimStack, fault: str, db_url: str) -> None:
    token, order_id, url = checkout(sim_stack, f"fault-{fault}", "PROVIDER_VNPAY")
    open_page(url)
    sim_stack.sim.add_fault("vnpay", fault)
    sim_stack.sim.pay("vnpay", reference(db_url, order_id), "pay")
    sim_stack.sim.wait_idle(10)
    status = rows(db_url, "SELECT status, needs_review FROM payments WHERE order_id = %s", order_id)[0]
    succeeded = rows(db_url, "SELECT count(*) FROM outbox_events WHERE type = 'payment.succeeded'")[0][0]
    if fault in ("duplicate", "before_return"):
        assert status == ("SUCCEEDED", False) and succeeded == 1
        wait_order(sim_stack, token, order_id, "ORDER_STATUS_PAID")
    elif fault == "bad_signature":
        assert status == ("PENDING", False) and succeeded == 0  # VNPay gave up after 10 answers of 97
        assert rows(db_url, "SELECT DISTINCT outcome FROM callback_journal") == [("invalid_signature",)]
    elif fault == "wrong_amount":
        assert status == ("PENDING", True) and succeeded == 0
    else:  # a failure callback, then the success: the failure closes the attempt, the money is kept
        assert status in (("FAILED", True), ("SUCCEEDED", False)), status


def test_payos_webhook_signed_by_the_sdk_through_the_ingress(sim_stack: SimStack, db_url: str) -> None:
    from payment_service.gateways.payos.settings import DEV_KEYS as DEV_PAYOS

    crypto = pytest.importorskip("payos._crypto.provider").CryptoProvider()
    token, order_id, _ = checkout(sim_stack, "sdk-user", "PROVIDER_PAYOS")
    data = {
        "orderCode": int(reference(db_url, order_id)),
        "amount": 89_000,
        "description": "Thanh toan don hang",
        "accountNumber": "12345678",
        "reference": "TF230204212323",
        "transactionDateTime": "2026-05-01 10:35:12",
        "currency": "VND",
        "paymentLinkId": "124c33293c43417ab7879e14c8d9eb18",
        "code": "00",
        "desc": "Thành công",
    }
    signature = crypto.create_signature_from_object(data, DEV_PAYOS["checksum_key"])
    body = {"code": "00", "desc": "success", "success": True, "data": data, "signature": signature}
    tampered = json.dumps({**body, "data": {**data, "amount": 1}}).encode()
    headers = {"Content-Type": "application/json"}
    refused = send(sim_stack.envoy, "POST", "/webhooks/payos", tampered, headers)
    assert refused.status == 400
    accepted = send(sim_stack.envoy, "POST", "/webhooks/payos", json.dumps(body).encode(), headers)
    assert accepted.status == 200 and accepted.json() == {"success": True}
    wait_order(sim_stack, token, order_id, "ORDER_STATUS_PAID")


def test_cash_on_delivery_through_the_api(sim_stack: SimStack, db_url: str) -> None:
    import grpc
    from payment.v1 import payment_service_pb2 as ps
    from payment.v1 import payment_service_pb2_grpc

    token = sim_stack.keys.token("cod-user")
    order = api(sim_stack, "POST", "/v1/orders", token, ORDER_BODY)["order"]
    retry = api(
        sim_stack, "POST", f"/v1/orders/{order['id']}:retryPayment", token, {"provider": "PROVIDER_COD"}
    )
    assert retry["checkout_url"] == ""
    wait_order(sim_stack, token, order["id"], "ORDER_STATUS_AWAITING_DELIVERY_PAYMENT")
    with grpc.insecure_channel(f"127.0.0.1:{sim_stack.payment.port}") as channel:
        stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        stub.ConfirmCodPayment(
            ps.ConfirmCodPaymentRequest(
                payment_id=retry["payment_id"], collected_amount=89_000, note="courier"
            )
        )
    wait_order(sim_stack, token, order["id"], "ORDER_STATUS_PAID")


@pytest.mark.parametrize("provider", list(GATEWAYS))
def test_the_shopper_comes_back_to_one_result_page_through_the_ingress(
    sim_stack: SimStack, provider: str, db_url: str
) -> None:
    """Every gateway's redirect lands on its return route at the ingress (no
    404): the same page, Vietnamese by default, the order's number, the
    amount as 89.000 ₫, and English on request."""
    token, order_id, url = checkout(sim_stack, f"return-{provider}", provider)
    open_page(url)
    result = sim_stack.sim.pay(GATEWAYS[provider], reference(db_url, order_id), "pay")
    assert result.redirect_url and result.redirect_url.startswith(
        f"http://127.0.0.1:{sim_stack.envoy.settings.ingress_port}/webhooks/{GATEWAYS[provider]}/return?"
    ), result.redirect_url
    wait_order(sim_stack, token, order_id, "ORDER_STATUS_PAID")
    order_code = api(sim_stack, "GET", f"/v1/orders/{order_id}", token)["order"]["order_code"]
    with urllib.request.urlopen(result.redirect_url, timeout=10) as response:
        assert response.status == 200
        page = response.read().decode()
    assert 'data-status="paid"' in page and "Thanh toán thành công" in page
    assert f"<dd>{order_code}</dd>" in page and "89.000 ₫" in page
    with urllib.request.urlopen(result.redirect_url + "&lang=en", timeout=10) as response:
        assert "Payment received" in response.read().decode()
