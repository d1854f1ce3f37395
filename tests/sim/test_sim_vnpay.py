"""VNPay on the simulator: the signed pay URL, the checkout, the browser
return, the IPN and its retry schedule, querydr."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway_simulator import Simulator
from payment_service.gateways.vnpay import protocol as vnpay
from tests.sim.support import Recorder, control, http, make_sim, vnpay_config

IPN = "/webhooks/vnpay/ipn"
RETURN_URL = "https://shop.example/webhooks/vnpay/return"


def pay_url(sim: Simulator, txn_ref: str, amount: int = 10_000, *, minutes: int = 15) -> str:
    now = datetime.now(UTC)
    return vnpay.build_payment_url(
        vnpay_config(sim),
        txn_ref=txn_ref,
        amount=amount,
        order_info=f"Thanh toan don hang {txn_ref}",
        ip_addr="127.0.0.1",
        create_time=now,
        expire_time=now + timedelta(minutes=minutes),
    )


def open_checkout(sim: Simulator, txn_ref: str, amount: int = 10_000) -> str:
    url = pay_url(sim, txn_ref, amount)
    reply = http("GET", url)
    assert reply.status == 200, reply.text
    return url


def query_of(url: str) -> str:
    return urlsplit(url).query


def test_checkout_page_then_pay_redirects_and_sends_a_verified_ipn(
    sim: Simulator, recorder: Recorder
) -> None:
    url = pay_url(sim, "ORD1", 10_000)
    page = http("GET", url)
    assert page.status == 200
    assert "10.000 ₫" in page.text and "ORD1" in page.text
    for action in ("pay", "fail", "cancel"):
        assert f"action='/vnpay/checkout/ORD1/{action}'" in page.text

    paid = control(sim, "pay", {"gateway": "vnpay", "reference": "ORD1", "action": "pay"})
    assert paid.status == 200 and paid.json()["status"] == "PAID"
    redirect = paid.json()["redirect_url"]
    assert redirect.startswith(RETURN_URL + "?")
    back = vnpay.verify_query(query_of(redirect), sim.config.vnpay.hash_secret)
    assert back.valid and vnpay.is_successful_payment(back.data)

    (call,) = recorder.wait(1, IPN)
    assert call.method == "GET"
    ipn = vnpay.verify_query(call.query, sim.config.vnpay.hash_secret)
    assert ipn.valid, ipn.reason
    p = ipn.data
    assert vnpay.is_successful_payment(p)
    assert p["vnp_Amount"] == "1000000" and p["vnp_TxnRef"] == "ORD1"
    assert p["vnp_TmnCode"] == sim.config.vnpay.tmn_code
    assert p["vnp_TransactionNo"].isdigit() and p["vnp_BankTranNo"] and p["vnp_CardType"] == "ATM"
    pay_date = vnpay.parse_vnpay_time(p["vnp_PayDate"])  # GMT+7
    assert abs((pay_date - datetime.now(UTC)).total_seconds()) < 60
    # The browser and the IPN carry the same result.
    assert back.data == p
    assert sim.wait_idle(2)
    (event,) = sim.events(gateway="vnpay", kind="callback")
    assert event["attempt"] == 1 and event["acknowledged"] and event["status"] == 200


def test_the_checkout_form_posts_and_303s_to_the_return_url(sim: Simulator, recorder: Recorder) -> None:
    url = open_checkout(sim, "ORD2", 25_000)
    reply = http("POST", f"{sim.base_url}/vnpay/checkout/ORD2/cancel", raw=b"action=cancel")
    assert reply.status == 303
    back = vnpay.verify_query(query_of(reply.headers["location"]), sim.config.vnpay.hash_secret)
    assert back.valid
    assert (back.data["vnp_ResponseCode"], back.data["vnp_TransactionStatus"]) == ("24", "02")
    (call,) = recorder.wait(1, IPN)
    ipn = vnpay.verify_query(call.query, sim.config.vnpay.hash_secret)
    assert ipn.valid and ipn.data["vnp_ResponseCode"] == "24" and ipn.data["vnp_TransactionNo"] == "0"
    # Settled: the pay URL no longer opens and a second click is refused.
    assert http("GET", url).status == 409
    again = http("POST", f"{sim.base_url}/vnpay/checkout/ORD2/pay", raw=b"")
    assert again.status == 409


def test_failure_codes(sim: Simulator, recorder: Recorder) -> None:
    open_checkout(sim, "ORD3")
    control(sim, "pay", {"gateway": "vnpay", "reference": "ORD3", "action": "fail"})
    (call,) = recorder.wait(1, IPN)
    p = vnpay.verify_query(call.query, sim.config.vnpay.hash_secret).data
    assert (p["vnp_ResponseCode"], p["vnp_TransactionStatus"]) == ("51", "02")
    assert not vnpay.is_successful_payment(p)


def test_pay_url_is_checked_like_vnpay_does(sim: Simulator) -> None:
    url = pay_url(sim, "ORD4", 10_000)
    tampered = url.replace("vnp_Amount=1000000", "vnp_Amount=100")
    reply = http("GET", tampered)
    assert reply.status == 400 and "chữ ký" in reply.text
    other = vnpay.VnpayConfig(
        tmn_code="OTHERTMN",
        hash_secret=sim.config.vnpay.hash_secret,
        pay_url=sim.service_urls()["VNPAY_API_URL"],
        return_url=RETURN_URL,
    )
    now = datetime.now(UTC)
    foreign = vnpay.build_payment_url(
        other,
        txn_ref="ORD4",
        amount=10_000,
        order_info="x",
        ip_addr="127.0.0.1",
        create_time=now,
        expire_time=now + timedelta(minutes=1),
    )
    assert http("GET", foreign).status == 400
    expired = vnpay.build_payment_url(
        vnpay_config(sim),
        txn_ref="ORD5",
        amount=10_000,
        order_info="x",
        ip_addr="127.0.0.1",
        create_time=now - timedelta(minutes=20),
        expire_time=now - timedelta(minutes=5),
    )
    reply = http("GET", expired)
    assert reply.status == 400 and "expired" in reply.text
    # The /_control/pay url form verifies the same way.
    assert control(sim, "pay", {"gateway": "vnpay", "url": tampered}).status == 400


def test_control_pay_accepts_the_checkout_url_itself(sim: Simulator, recorder: Recorder) -> None:
    url = pay_url(sim, "ORD6")
    reply = control(sim, "pay", {"gateway": "vnpay", "url": url, "action": "pay"})
    assert reply.status == 200 and reply.json()["reference"] == "ORD6"
    recorder.wait(1, IPN)


def test_a_fresh_url_for_the_same_txn_ref_refreshes_a_pending_session(
    sim: Simulator, recorder: Recorder
) -> None:
    # The service re-signs its checkout URL on every call.
    open_checkout(sim, "ORD7", 10_000)
    open_checkout(sim, "ORD7", 12_000)
    control(sim, "pay", {"gateway": "vnpay", "reference": "ORD7"})
    (call,) = recorder.wait(1, IPN)
    assert dict(parse_qsl(call.query))["vnp_Amount"] == "1200000"
    # Once settled, the TxnRef cannot be paid again.
    assert http("GET", pay_url(sim, "ORD7")).status == 409


def test_ipn_retried_on_vnpays_schedule_until_00(sim: Simulator, recorder: Recorder) -> None:
    answer_99 = (200, b'{"RspCode":"99","Message":"Unknown error"}')
    recorder.script(IPN, answer_99, answer_99)
    open_checkout(sim, "ORD8")
    control(sim, "pay", {"gateway": "vnpay", "reference": "ORD8"})
    calls = recorder.wait(3, IPN)
    assert sim.wait_idle(3)
    assert len(recorder.of(IPN)) == 3  # and no fourth
    assert len({c.query for c in calls}) == 1  # the same signed IPN each time
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(0.25 <= gap < 1.0 for gap in gaps), gaps  # 5 minutes x 0.001
    events = sim.events(gateway="vnpay", kind="callback")
    assert [(e["attempt"], e["acknowledged"]) for e in events] == [(1, False), (2, False), (3, True)]
    assert events[0]["next_attempt_in"] == 0.3 and events[2]["next_attempt_in"] is None


def test_ipn_gives_up_after_ten_attempts(recorder: Recorder) -> None:
    sim = make_sim(recorder, time_scale=0.0001)
    try:
        recorder.script(IPN, *[(200, b'{"RspCode":"97","Message":"Invalid signature"}')] * 12)
        open_checkout(sim, "ORD9")
        control(sim, "pay", {"gateway": "vnpay", "reference": "ORD9"})
        recorder.wait(10, IPN)
        assert sim.wait_idle(3)
        assert len(recorder.of(IPN)) == 10
        (gave_up,) = sim.events(kind="callback_gave_up")
        assert gave_up["attempts"] == 10
    finally:
        sim.stop()


def test_an_http_error_is_retried(recorder: Recorder) -> None:
    sim = make_sim(recorder, time_scale=0.0001)
    try:
        recorder.script(IPN, (500, b"oops"))
        open_checkout(sim, "ORD10")
        control(sim, "pay", {"gateway": "vnpay", "reference": "ORD10"})
        recorder.wait(2, IPN)
        assert sim.wait_idle(3)
        statuses = [e["status"] for e in sim.events(kind="callback")]
        assert statuses == [500, 200]
    finally:
        sim.stop()


def querydr(
    sim: Simulator,
    txn_ref: str,
    *,
    secret: str | None = None,
    request_id: str | None = None,
    transaction_date: datetime | None = None,
) -> dict[str, Any]:
    config = vnpay_config(sim)
    now = datetime.now(UTC)
    body = vnpay.build_querydr(
        config,
        request_id=request_id or secrets.token_hex(8),
        txn_ref=txn_ref,
        transaction_date=transaction_date or now,
        now=now,
        ip_addr="127.0.0.1",
    )
    if secret is not None:
        body["vnp_SecureHash"] = vnpay.pipe_signature([body[f] for f in vnpay.QUERYDR_FIELDS], secret)
    reply = http("POST", sim.service_urls()["VNPAY_QUERY_URL"], body)
    assert reply.status == 200
    answer = reply.json()
    assert vnpay.verify_querydr_response(answer, sim.config.vnpay.hash_secret), answer
    return dict(answer)


def test_querydr(sim: Simulator, recorder: Recorder) -> None:
    assert querydr(sim, "NOPE")["vnp_ResponseCode"] == "91"
    open_checkout(sim, "ORD11", 30_000)
    pending = querydr(sim, "ORD11")
    assert (pending["vnp_ResponseCode"], pending["vnp_TransactionStatus"]) == ("00", "01")
    sim.add_fault("vnpay", "drop")  # reconciliation is how this one gets found
    control(sim, "pay", {"gateway": "vnpay", "reference": "ORD11"})
    paid = querydr(sim, "ORD11")
    assert (paid["vnp_ResponseCode"], paid["vnp_TransactionStatus"]) == ("00", "00")
    assert paid["vnp_Amount"] == "3000000" and paid["vnp_TxnRef"] == "ORD11"
    assert paid["vnp_TransactionNo"].isdigit() and paid["vnp_PayDate"]
    assert querydr(sim, "ORD11", secret="wrong")["vnp_ResponseCode"] == "97"
    assert querydr(sim, "ORD11", request_id="R1")["vnp_ResponseCode"] == "00"
    assert querydr(sim, "ORD11", request_id="R1")["vnp_ResponseCode"] == "94"
    assert recorder.of(IPN) == []
    # A vnp_TransactionDate that is no pay URL's vnp_CreateDate: VNPay finds
    # no such transaction (the service signs every URL of a payment with the
    # payment's creation time, so it always sends the right one).
    earlier = datetime.now(UTC) - timedelta(hours=1)
    assert querydr(sim, "ORD11", transaction_date=earlier)["vnp_ResponseCode"] == "91"


def test_querydr_checksum_matches_the_published_vector() -> None:
    body = {
        "vnp_RequestId": "REQ20240501113000",
        "vnp_Version": "2.1.0",
        "vnp_Command": "querydr",
        "vnp_TmnCode": "TESTTMN1",
        "vnp_TxnRef": "ORD123",
        "vnp_TransactionDate": "20240501103000",
        "vnp_CreateDate": "20240501113000",
        "vnp_IpAddr": "127.0.0.1",
        "vnp_OrderInfo": "Truy van GD ORD123",
    }
    assert vnpay.querydr_request_hash(body, "VNPAYTESTSECRET0123456789ABCDEFG") == (
        "7cb52e0574f23f47adae3a37a48b708f615d57e46470d73ffc9e4d60f5d6e9d9"
        "4caa398114b6a57742316164eb0a7f29f30717d266c6e77f4de67597663d6bc0"
    )
