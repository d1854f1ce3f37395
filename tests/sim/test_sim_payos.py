"""payOS on the simulator: create / get / cancel with signed data, the
checkout page, the redirects and the webhook, also through the official SDK."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from gateway_simulator import Simulator
from payment_service.gateways.payos import protocol as payos
from tests.sim.support import Recorder, control, http, payos_config

WEBHOOK = "/webhooks/payos"
_codes = itertools.count(int(time.time() * 1000) * 1000)


def create(sim: Simulator, amount: int = 20_000, order_code: int | None = None) -> dict[str, Any]:
    config = payos_config(sim)
    body = payos.build_create_payload(
        config,
        order_code=order_code or next(_codes),
        amount=amount,
        description="DH 1001",
        expired_at=datetime.now(UTC) + timedelta(minutes=15),
    )
    reply = http("POST", config.base_url + payos.PAYMENT_REQUESTS_PATH, body, payos.request_headers(config))
    assert reply.status == 200
    return dict(reply.json())


def get(sim: Simulator, key: str | int) -> dict[str, Any]:
    config = payos_config(sim)
    url = f"{config.base_url}{payos.PAYMENT_REQUESTS_PATH}/{key}"
    return dict(http("GET", url, headers=payos.request_headers(config)).json())


def verified(sim: Simulator, answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["code"] == "00", answer
    result = payos.verify_data(answer["data"], answer["signature"], sim.config.payos.checksum_key)
    assert result.valid, result.reason
    return result.data


def test_create_answers_signed_data_with_a_checkout_url(sim: Simulator) -> None:
    answer = create(sim, 20_000)
    data = verified(sim, answer)
    assert data["status"] == "PENDING" and data["amount"] == 20_000 and data["currency"] == "VND"
    assert data["checkoutUrl"] == f"{sim.base_url}/payos/web/{data['paymentLinkId']}"
    page = http("GET", data["checkoutUrl"])
    assert page.status == 200 and "20.000 ₫" in page.text


def test_create_refusals(sim: Simulator) -> None:
    data = verified(sim, create(sim))
    again = create(sim, order_code=data["orderCode"])
    assert again == {"code": "231", "desc": "Đơn thanh toán đã tồn tại", "data": None}
    config = payos_config(sim)
    url = config.base_url + payos.PAYMENT_REQUESTS_PATH
    body = payos.build_create_payload(
        config,
        order_code=next(_codes),
        amount=1000,
        description="x",
        expired_at=datetime.now(UTC) + timedelta(1),
    )
    forged = {**body, "amount": 1}
    assert http("POST", url, forged, payos.request_headers(config)).json()["code"] == "201"
    bad_key = {**payos.request_headers(config), "x-api-key": "nope"}
    assert http("POST", url, body, bad_key).status == 401
    assert get(sim, 999)["code"] == "101"


def test_pay_redirects_to_return_url_and_sends_a_verified_webhook(sim: Simulator, recorder: Recorder) -> None:
    data = verified(sim, create(sim, 20_000))
    reply = control(sim, "pay", {"gateway": "payos", "url": data["checkoutUrl"], "action": "pay"})
    assert reply.status == 200
    redirect = reply.json()["redirect_url"]
    assert redirect.startswith("https://shop.example/result?")
    assert dict(parse_qsl(urlsplit(redirect).query)) == {
        "code": "00",
        "id": data["paymentLinkId"],
        "cancel": "false",
        "status": "PAID",
        "orderCode": str(data["orderCode"]),
    }
    (call,) = recorder.wait(1, WEBHOOK)
    assert call.method == "POST" and call.headers["content-type"] == "application/json"
    result = payos.verify_webhook(call.body, sim.config.payos.checksum_key)
    assert result.valid, result.reason
    hook = result.data
    assert payos.is_successful_payment(hook) and not payos.is_registration_ping(hook)
    assert (hook["orderCode"], hook["amount"], hook["paymentLinkId"]) == (
        data["orderCode"],
        20_000,
        data["paymentLinkId"],
    )
    assert set(hook) == {
        "orderCode",
        "amount",
        "description",
        "accountNumber",
        "reference",
        "transactionDateTime",
        "currency",
        "paymentLinkId",
        "code",
        "desc",
        "counterAccountBankId",
        "counterAccountBankName",
        "counterAccountName",
        "counterAccountNumber",
        "virtualAccountName",
        "virtualAccountNumber",
    }
    envelope = call.json()
    assert (envelope["code"], envelope["success"]) == ("00", True)
    link = verified(sim, get(sim, data["orderCode"]))
    assert (link["status"], link["amountPaid"], link["amountRemaining"]) == ("PAID", 20_000, 0)
    assert link["transactions"][0]["reference"] == hook["reference"]
    assert verified(sim, get(sim, data["paymentLinkId"]))["status"] == "PAID"


@pytest.mark.parametrize(("action", "status"), [("cancel", "CANCELLED"), ("fail", "FAILED")])
def test_no_webhook_unless_paid(sim: Simulator, recorder: Recorder, action: str, status: str) -> None:
    data = verified(sim, create(sim))
    reply = http("POST", f"{sim.base_url}/payos/checkout/{data['orderCode']}/{action}", raw=b"")
    assert reply.status == 303
    query = dict(parse_qsl(urlsplit(reply.headers["location"]).query))
    assert query["status"] == status and query["cancel"] == ("true" if action == "cancel" else "false")
    if action == "cancel":
        assert reply.headers["location"].startswith("https://shop.example/result?cancelled=1&")
    assert verified(sim, get(sim, data["orderCode"]))["status"] == status
    assert sim.wait_idle(2)
    assert recorder.of(WEBHOOK) == []
    assert sim.events(kind="no_callback")


def test_cancel_api(sim: Simulator) -> None:
    data = verified(sim, create(sim))
    config = payos_config(sim)
    url = f"{config.base_url}{payos.PAYMENT_REQUESTS_PATH}/{data['paymentLinkId']}/cancel"
    body = payos.build_cancel_payload(config, "Khách đổi ý")
    link = verified(sim, http("POST", url, body, payos.request_headers(config)).json())
    assert (link["status"], link["cancellationReason"]) == ("CANCELLED", "Khách đổi ý")
    assert link["canceledAt"]
    assert control(sim, "pay", {"gateway": "payos", "reference": data["orderCode"]}).status == 409
    forged = {**body, "cancellationReason": "other"}
    assert http("POST", url, forged, payos.request_headers(config)).json()["code"] == "201"


def test_the_official_sdk_works_against_the_simulator(sim: Simulator, recorder: Recorder) -> None:
    sdk = pytest.importorskip("payos")
    from payos.types import CreatePaymentLinkRequest

    c = sim.config.payos
    client = sdk.PayOS(
        client_id=c.client_id,
        api_key=c.api_key,
        checksum_key=c.checksum_key,
        # The SDK urljoin()s its paths: a base URL with a path needs the final "/".
        base_url=sim.service_urls()["PAYOS_BASE_URL"] + "/",
        max_retries=0,
    )
    order_code = next(_codes)
    created = client.payment_requests.create(
        CreatePaymentLinkRequest(
            order_code=order_code,
            amount=15_000,
            description="DH 1002",
            return_url="https://shop.example/result",
            cancel_url="https://shop.example/result",
        )
    )  # the SDK checks the response signature
    assert created.status == "PENDING" and created.checkout_url.startswith(sim.base_url)
    control(sim, "pay", {"gateway": "payos", "reference": order_code})
    (call,) = recorder.wait(1, WEBHOOK)
    hook = client.webhooks.verify(call.body)  # the SDK's strict model and signature check
    assert (hook.order_code, hook.amount, hook.code) == (order_code, 15_000, "00")
    link = client.payment_requests.get(order_code)
    assert link.status == "PAID" and link.transactions[0].reference == hook.reference
    other = next(_codes)
    client.payment_requests.create(
        CreatePaymentLinkRequest(
            order_code=other,
            amount=15_000,
            description="DH 1003",
            return_url="https://shop.example/result",
            cancel_url="https://shop.example/result",
        )
    )
    assert client.payment_requests.cancel(other, "changed my mind").status == "CANCELLED"
