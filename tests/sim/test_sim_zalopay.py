"""ZaloPay on the simulator: create (form or JSON), query, the redirect
checksum and the callback (success only, re-sent while return_code != 1)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from gateway_simulator import Simulator
from payment_service.gateways.zalopay import protocol as zalopay
from tests.sim.support import Recorder, control, http, make_sim, zalopay_config

CALLBACK = "/webhooks/zalopay/callback"


def payload(sim: Simulator, amount: int = 70_000, *, redirect: bool = True) -> dict[str, Any]:
    config = zalopay_config(sim)
    now = datetime.now(UTC)
    return zalopay.build_create_payload(
        config,
        app_trans_id=zalopay.app_trans_id(now, secrets.token_hex(6)),
        app_user="u1",
        amount=amount,
        app_time_ms=int(now.timestamp() * 1000),
        description="Thanh toán đơn hàng",
        embed_data=zalopay.build_embed_data(config) if redirect else "{}",
    )


def create(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    return dict(http("POST", zalopay_config(sim).endpoint + zalopay.CREATE_PATH, body).json())


def query(sim: Simulator, app_trans_id: str) -> dict[str, Any]:
    config = zalopay_config(sim)
    body = zalopay.build_query_payload(config, app_trans_id=app_trans_id)
    return dict(http("POST", config.endpoint + zalopay.QUERY_PATH, body).json())


def test_create_answers_an_order_url(sim: Simulator) -> None:
    body = payload(sim, 70_000)
    answer = create(sim, body)
    assert answer["return_code"] == 1 and answer["zp_trans_token"]
    assert answer["order_url"] == f"{sim.base_url}/zalopay/pay/{body['app_trans_id']}"
    page = http("GET", answer["order_url"])
    assert page.status == 200 and "70.000 ₫" in page.text


def test_create_as_a_form_too(sim: Simulator) -> None:
    body = payload(sim)
    form = urlencode({k: str(v) for k, v in body.items()}).encode()
    reply = http(
        "POST",
        zalopay_config(sim).endpoint + zalopay.CREATE_PATH,
        raw=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.json()["return_code"] == 1


def test_create_refusals(sim: Simulator) -> None:
    body = payload(sim)
    create(sim, body)
    assert (create(sim, body)["return_code"], create(sim, body)["sub_return_code"]) == (2, -68)
    assert create(sim, {**payload(sim), "amount": 1})["sub_return_code"] == -402
    stale = payload(sim)
    stale_id = "200101_" + stale["app_trans_id"][7:]
    stale_mac = zalopay.create_mac(
        app_id=stale["app_id"],
        app_trans_id=stale_id,
        app_user=stale["app_user"],
        amount=stale["amount"],
        app_time=stale["app_time"],
        embed_data=stale["embed_data"],
        item=stale["item"],
        key1=sim.config.zalopay.key1,
    )
    assert create(sim, {**stale, "app_trans_id": stale_id, "mac": stale_mac})["sub_return_code"] == -401


def test_pay_redirects_with_a_checksum_and_sends_a_verified_callback(
    sim: Simulator, recorder: Recorder
) -> None:
    body = payload(sim, 70_000)
    answer = create(sim, body)
    reply = control(sim, "pay", {"gateway": "zalopay", "url": answer["order_url"]})
    redirect = reply.json()["redirect_url"]
    assert redirect.startswith("https://shop.example/result?")
    q = dict(parse_qsl(urlsplit(redirect).query, keep_blank_values=True))
    assert list(q) == [
        "appid",
        "apptransid",
        "pmcid",
        "bankcode",
        "amount",
        "discountamount",
        "status",
        "checksum",
    ]
    assert (q["apptransid"], q["amount"], q["status"]) == (body["app_trans_id"], "70000", "1")
    signed = "|".join(
        q[k] for k in ("appid", "apptransid", "pmcid", "bankcode", "amount", "discountamount", "status")
    )
    key2 = sim.config.zalopay.key2.encode()
    assert q["checksum"] == hmac.new(key2, signed.encode(), hashlib.sha256).hexdigest()

    (call,) = recorder.wait(1, CALLBACK)
    result = zalopay.verify_callback(call.body, sim.config.zalopay.key2)
    assert result.valid, result.reason
    assert result.callback_type == 1
    data = result.data
    assert (data["app_trans_id"], data["amount"], data["app_id"]) == (
        body["app_trans_id"],
        70_000,
        body["app_id"],
    )
    assert data["embed_data"] == body["embed_data"] and data["item"] == body["item"]
    assert str(data["zp_trans_id"]).startswith(body["app_trans_id"][:6])

    answer = query(sim, body["app_trans_id"])
    assert (answer["return_code"], answer["zp_trans_id"], answer["amount"]) == (
        1,
        data["zp_trans_id"],
        70_000,
    )
    assert answer["is_processing"] is False


@pytest.mark.parametrize(("action", "status"), [("cancel", "-49"), ("fail", "-1")])
def test_no_callback_unless_paid(sim: Simulator, recorder: Recorder, action: str, status: str) -> None:
    body = payload(sim)
    create(sim, body)
    reply = http("POST", f"{sim.base_url}/zalopay/checkout/{body['app_trans_id']}/{action}", raw=b"")
    assert reply.status == 303
    assert dict(parse_qsl(urlsplit(reply.headers["location"]).query))["status"] == status
    assert sim.wait_idle(2)
    assert recorder.of(CALLBACK) == []
    assert query(sim, body["app_trans_id"])["return_code"] == 2


def test_without_a_redirect_url_the_shopper_sees_a_result_page(sim: Simulator) -> None:
    body = payload(sim, redirect=False)
    create(sim, body)
    reply = http("POST", f"{sim.base_url}/zalopay/checkout/{body['app_trans_id']}/pay", raw=b"")
    assert reply.status == 200 and "PAID" in reply.text


def test_query_states(sim: Simulator) -> None:
    body = payload(sim)
    create(sim, body)
    assert query(sim, body["app_trans_id"])["return_code"] == 3
    config = zalopay_config(sim)
    forged = {**zalopay.build_query_payload(config, app_trans_id=body["app_trans_id"]), "mac": "0" * 64}
    assert http("POST", config.endpoint + zalopay.QUERY_PATH, forged).json()["sub_return_code"] == -402
    assert query(sim, zalopay.app_trans_id(datetime.now(UTC), "missing"))["return_code"] == 2


def test_callback_resent_while_return_code_is_not_1(recorder: Recorder) -> None:
    sim = make_sim(recorder, time_scale=0.01)  # 5 s between tries -> 0.05 s
    try:
        retry = (200, b'{"return_code":0,"return_message":"try again"}')
        recorder.script(CALLBACK, retry, retry)
        body = payload(sim)
        create(sim, body)
        control(sim, "pay", {"gateway": "zalopay", "reference": body["app_trans_id"]})
        recorder.wait(3, CALLBACK)
        assert sim.wait_idle(2)
        assert len(recorder.of(CALLBACK)) == 3
        recorder.script(CALLBACK, *[retry] * 5)
        other = payload(sim)
        create(sim, other)
        started = time.monotonic()
        control(sim, "pay", {"gateway": "zalopay", "reference": other["app_trans_id"]})
        recorder.wait(7, CALLBACK)
        assert sim.wait_idle(2)
        assert len(recorder.of(CALLBACK)) == 3 + 4  # the first send and 3 re-sends
        assert time.monotonic() - started >= 3 * 0.05
        (gave_up,) = sim.events(kind="callback_gave_up")
        assert gave_up["attempts"] == 4
    finally:
        sim.stop()
