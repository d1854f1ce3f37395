"""MoMo on the simulator: create (idempotent requestId, unique orderId),
query, the redirect and the IPN (sent once, acknowledged by 204)."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from gateway_simulator import Simulator
from payment_service.gateways.momo import protocol as momo
from tests.sim.support import Recorder, control, http, momo_config

IPN = "/webhooks/momo/ipn"


def create(
    sim: Simulator, order_id: str, amount: int = 50_000, request_id: str | None = None
) -> dict[str, Any]:
    config = momo_config(sim)
    body = momo.build_create_payload(
        config,
        order_id=order_id,
        request_id=request_id or order_id,
        amount=amount,
        order_info=f"Thanh toán đơn hàng {order_id}",
    )
    return dict(http("POST", config.endpoint + momo.CREATE_PATH, body).json())


def query(sim: Simulator, order_id: str) -> dict[str, Any]:
    config = momo_config(sim)
    body = momo.build_query_payload(config, order_id=order_id, request_id=secrets.token_hex(8))
    reply = http("POST", config.endpoint + momo.QUERY_PATH, body)
    assert reply.status == 200
    return dict(reply.json())


def new_order() -> str:
    return f"ORD-{secrets.token_hex(6)}"


def test_create_returns_a_pay_url_and_repeats_it_for_the_same_request(sim: Simulator) -> None:
    order = new_order()
    answer = create(sim, order, 50_000)
    assert answer["resultCode"] == 0 and answer["amount"] == 50_000 and answer["orderId"] == order
    assert answer["payUrl"] == f"{sim.base_url}/momo/pay/{order}"
    # The service sends requestId = orderId and re-sends to fetch the live payUrl.
    assert create(sim, order, 50_000) == answer
    page = http("GET", answer["payUrl"])
    assert page.status == 200 and "50.000 ₫" in page.text


def test_create_refusals(sim: Simulator) -> None:
    order = new_order()
    create(sim, order)
    assert create(sim, order, request_id="another-request")["resultCode"] == 41
    assert create(sim, new_order(), request_id=order)["resultCode"] == 40
    config = momo_config(sim)
    body = momo.build_create_payload(
        config, order_id=new_order(), request_id="r1", amount=1000, order_info="x"
    )
    reply = http("POST", config.endpoint + momo.CREATE_PATH, {**body, "amount": 2000})
    assert reply.status == 400 and reply.json()["resultCode"] == 20
    reply = http("POST", config.endpoint + momo.CREATE_PATH, {**body, "partnerCode": "OTHER"})
    assert reply.json()["resultCode"] == 13


def test_pay_redirects_with_signed_fields_and_sends_a_verified_ipn(
    sim: Simulator, recorder: Recorder
) -> None:
    order = new_order()
    pay_url = create(sim, order, 60_000)["payUrl"]
    reply = control(sim, "pay", {"gateway": "momo", "url": pay_url, "action": "pay"})
    redirect = reply.json()["redirect_url"]
    assert redirect.startswith("https://shop.example/result?")
    fields = dict(parse_qsl(urlsplit(redirect).query))
    config = momo_config(sim)
    # The redirect carries the IPN's fields, signed the same way.
    assert momo.verify_ipn(json.dumps(fields).encode(), config).valid
    assert fields["resultCode"] == "0" and fields["orderId"] == order

    (call,) = recorder.wait(1, IPN)
    assert call.method == "POST"
    result = momo.verify_ipn(call.body, config)
    assert result.valid, result.reason
    ipn = result.data
    assert (ipn["resultCode"], ipn["amount"], ipn["orderId"]) == (0, 60_000, order)
    assert ipn["orderType"] == "momo_wallet" and isinstance(ipn["transId"], int)
    assert str(ipn["transId"]) == fields["transId"]
    assert sim.wait_idle(2)
    (event,) = sim.events(gateway="momo", kind="callback")
    assert event["status"] == 204 and event["acknowledged"]

    answer = query(sim, order)
    assert (answer["resultCode"], answer["transId"], answer["amount"]) == (0, ipn["transId"], 60_000)


@pytest.mark.parametrize(("action", "code"), [("fail", 1001), ("cancel", 1006)])
def test_failures_are_sent_too(sim: Simulator, recorder: Recorder, action: str, code: int) -> None:
    order = new_order()
    create(sim, order)
    reply = http("POST", f"{sim.base_url}/momo/checkout/{order}/{action}", raw=b"")
    assert reply.status == 303
    assert dict(parse_qsl(urlsplit(reply.headers["location"]).query))["resultCode"] == str(code)
    (call,) = recorder.wait(1, IPN)
    result = momo.verify_ipn(call.body, momo_config(sim))
    assert result.valid and result.data["resultCode"] == code
    assert query(sim, order)["resultCode"] == code


def test_query_before_payment_and_for_an_unknown_order(sim: Simulator) -> None:
    order = new_order()
    create(sim, order)
    assert query(sim, order)["resultCode"] == 1000
    assert query(sim, "no-such-order")["resultCode"] == 42


def test_the_ipn_is_sent_once_even_when_not_acknowledged(sim: Simulator, recorder: Recorder) -> None:
    recorder.script(IPN, (500, b"{}"))
    order = new_order()
    create(sim, order)
    control(sim, "pay", {"gateway": "momo", "reference": order})
    recorder.wait(1, IPN)
    assert sim.wait_idle(2)
    assert len(recorder.of(IPN)) == 1
    (event,) = sim.events(kind="callback")
    assert event["status"] == 500 and not event["acknowledged"] and event["max_attempts"] == 1
