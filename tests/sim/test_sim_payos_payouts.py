"""payOS refunds on the simulator: payouts (POST /v1/payouts, signed in
x-signature with the payout channel's own keys) to the payer's account the
webhook named, recorded as refunds of the transaction that account paid;
processing then succeeded on the simulator's clock, idempotent by
x-idempotency-key and referenceId, the four refund faults, and concurrent
payouts that never exceed the capture."""

from __future__ import annotations

import http.client as httplib
import json
import secrets
import threading
from typing import Any
from urllib.parse import urlsplit

from gateway_simulator import Simulator
from gateway_simulator.gateways.payos import PAYER_BIN
from payment_service.gateways.payos import protocol as payos
from tests.sim.support import Reply, control, http, open_session, payos_config

AMOUNT = 100_000


def paid(sim: Simulator) -> dict[str, Any]:
    ref = open_session(sim, "payos", AMOUNT)
    assert control(sim, "pay", {"gateway": "payos", "reference": ref}).status == 200
    return ledger(sim, ref)


def ledger(sim: Simulator, reference: str) -> dict[str, Any]:
    txns = control(sim, "transactions?gateway=payos").json()["transactions"]
    (txn,) = [t for t in txns if t["reference"] == reference]
    return dict(txn)


def advance(sim: Simulator, seconds: float) -> None:
    assert control(sim, "clock", {"seconds": seconds}).status == 200


def fault(sim: Simulator, kind: str, **more: Any) -> None:
    reply = control(sim, "faults", {"gateway": "payos", "fault": kind, **more})
    assert reply.status == 201, reply.text


def payout_config(sim: Simulator) -> payos.PayoutConfig:
    c = sim.config.payos
    return payos.PayoutConfig(
        client_id=c.payout_client_id, api_key=c.payout_api_key, checksum_key=c.payout_checksum_key
    )


def payer_of(sim: Simulator, txn: dict[str, Any]) -> tuple[str, str]:
    """The payer's account, as the payment link (and the webhook) names it."""
    config = payos_config(sim)
    url = f"{config.base_url}{payos.PAYMENT_REQUESTS_PATH}/{txn['reference']}"
    answer = http("GET", url, headers=payos.request_headers(config)).json()
    assert payos.verify_data(answer["data"], answer["signature"], config.checksum_key).valid
    return payos.payer_account(answer["data"]["transactions"][0])


def payout_body(sim: Simulator, txn: dict[str, Any], amount: int, key: str = "") -> dict[str, Any]:
    to_bin, account = payer_of(sim, txn)
    return payos.build_payout(
        reference_id=key or secrets.token_hex(16),
        amount=amount,
        description="Hoan tien",
        to_bin=to_bin,
        to_account_number=account,
    )


def payouts_url(sim: Simulator) -> str:
    return payos_config(sim).base_url + payos.PAYOUTS_PATH


def send(sim: Simulator, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    idem = payos.payout_idempotency_key(body["referenceId"])
    sent = headers if headers is not None else payos.payout_headers(payout_config(sim), body, idem)
    return http("POST", payouts_url(sim), body, sent)


def verified(sim: Simulator, reply: Reply) -> dict[str, Any]:
    answer = reply.json()
    assert answer["code"] == "00", answer
    checked = payos.verify_header_signature(
        answer["data"], reply.headers.get("x-signature", ""), payout_config(sim).checksum_key
    )
    assert checked.valid, checked.reason
    return dict(answer["data"])


def by_reference(sim: Simulator, reference_id: str) -> list[dict[str, Any]]:
    url = f"{payouts_url(sim)}?referenceId={reference_id}"
    reply = http("GET", url, headers=payos.payout_headers(payout_config(sim), None))
    return list(verified(sim, reply)["payouts"])


def raw_send(sim: Simulator, body: dict[str, Any]) -> bytes:
    """POST that reports a connection closed without an answer as b''."""
    headers = payos.payout_headers(
        payout_config(sim), body, payos.payout_idempotency_key(body["referenceId"])
    )
    parts = urlsplit(payouts_url(sim))
    conn = httplib.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json", **headers})
        return conn.getresponse().read()
    except (httplib.RemoteDisconnected, ConnectionError):
        return b""
    finally:
        conn.close()


def test_the_webhook_names_each_payer_account(sim: Simulator) -> None:
    a, b = paid(sim), paid(sim)
    (bin_a, account_a), (bin_b, account_b) = payer_of(sim, a), payer_of(sim, b)
    assert bin_a == bin_b == PAYER_BIN
    assert account_a and account_b and account_a != account_b


def test_partial_payout_then_the_rest_progress_on_the_clock(sim: Simulator) -> None:
    txn = paid(sim)
    first = payout_body(sim, txn, 30_000)
    data = verified(sim, send(sim, first))
    (item,) = data["transactions"]
    assert (data["referenceId"], item["state"], item["amount"]) == (
        first["referenceId"],
        "PROCESSING",
        30_000,
    )
    assert data["approvalState"] == "PROCESSING"
    books = ledger(sim, txn["reference"])
    assert books["refunded"] == 0
    assert {k: books["refunds"][0][k] for k in ("amount", "status", "final", "request_id")} == {
        "amount": 30_000,
        "status": "processing",
        "final": False,
        "request_id": first["referenceId"],
    }
    assert books["refunds"][0]["gateway_refund_id"] == data["id"]
    advance(sim, 3)
    (found,) = by_reference(sim, first["referenceId"])
    assert found["transactions"][0]["state"] == "SUCCEEDED" and found["approvalState"] == "COMPLETED"
    one = verified(
        sim,
        http(
            "GET", f"{payouts_url(sim)}/{data['id']}", headers=payos.payout_headers(payout_config(sim), None)
        ),
    )
    assert one["id"] == data["id"] and one["transactions"][0]["reference"]
    over = send(sim, payout_body(sim, txn, 70_001)).json()
    assert over["code"] == "20" and over["data"] is None
    rest = payout_body(sim, txn, 70_000)
    assert verified(sim, send(sim, rest))["transactions"][0]["state"] == "PROCESSING"
    advance(sim, 3)
    books = ledger(sim, txn["reference"])
    assert (books["refunded"], [r["status"] for r in books["refunds"]]) == (
        AMOUNT,
        ["succeeded", "succeeded"],
    )
    assert by_reference(sim, secrets.token_hex(16)) == []


def test_what_a_payout_refuses(sim: Simulator) -> None:
    txn = paid(sim)
    body = payout_body(sim, txn, 10_000)
    payment_keys = payos.request_headers(payos_config(sim))
    assert send(sim, body, {**payment_keys, "x-idempotency-key": "k"}).status == 401
    headers = payos.payout_headers(payout_config(sim), body, "k")
    assert send(sim, {**body, "amount": 10_001}, headers).json()["code"] == "201"  # signature over the body
    assert (
        send(sim, body, {k: v for k, v in headers.items() if k != "x-idempotency-key"}).json()["code"] == "20"
    )
    stranger = {**body, "toAccountNumber": "0000000001"}
    assert send(sim, stranger).json()["code"] == "214"  # nobody who paid
    assert ledger(sim, txn["reference"])["refunds"] == []


def test_the_same_payout_again_is_one_payout(sim: Simulator) -> None:
    txn = paid(sim)
    body = payout_body(sim, txn, 10_000)
    first, again = verified(sim, send(sim, body)), verified(sim, send(sim, body))
    assert first["id"] == again["id"]
    other_amount = payout_body(sim, txn, 20_000, key=body["referenceId"])
    assert send(sim, other_amount).json()["code"] == payos.PAYOUT_DUPLICATE
    assert [r["amount"] for r in ledger(sim, txn["reference"])["refunds"]] == [10_000]


def test_payout_faults(sim: Simulator) -> None:
    txn = paid(sim)
    fault(sim, "refund_timeout_after_accept", reference=txn["reference"])
    dropped = payout_body(sim, txn, 10_000)
    assert raw_send(sim, dropped) == b""
    assert [r["amount"] for r in ledger(sim, txn["reference"])["refunds"]] == [10_000]
    assert [p["referenceId"] for p in by_reference(sim, dropped["referenceId"])] == [dropped["referenceId"]]
    assert verified(sim, send(sim, dropped))["referenceId"] == dropped["referenceId"]  # the retry finds it
    assert len(ledger(sim, txn["reference"])["refunds"]) == 1

    fault(sim, "refund_rejected", reference=txn["reference"])
    rejected = verified(sim, send(sim, payout_body(sim, txn, 20_000)))
    assert rejected["transactions"][0]["state"] == "FAILED" and rejected["approvalState"] == "FAILED"

    fault(sim, "refund_duplicate", reference=txn["reference"])
    duplicate = payout_body(sim, txn, 30_000)
    assert send(sim, duplicate).json()["code"] == payos.PAYOUT_DUPLICATE
    assert by_reference(sim, duplicate["referenceId"])[0]["transactions"][0]["state"] == "PROCESSING"

    fault(sim, "refund_lost", reference=txn["reference"])
    lost = payout_body(sim, txn, 40_000)
    assert raw_send(sim, lost) == b""
    assert by_reference(sim, lost["referenceId"]) == []
    assert verified(sim, send(sim, lost))["transactions"][0]["amount"] == 40_000
    advance(sim, 3)
    books = ledger(sim, txn["reference"])
    assert [(r["amount"], r["status"]) for r in books["refunds"]] == [
        (10_000, "succeeded"),
        (20_000, "rejected"),
        (30_000, "succeeded"),
        (40_000, "succeeded"),
    ]
    assert books["refunded"] == 80_000
    assert all(r["final"] for r in books["refunds"])


def test_concurrent_payouts_never_exceed_the_capture(sim: Simulator) -> None:
    txn = paid(sim)
    bodies = [payout_body(sim, txn, 30_000) for _ in range(10)]
    results: list[str] = []
    barrier = threading.Barrier(10)

    def one(body: dict[str, Any]) -> None:
        barrier.wait()
        results.append(send(sim, body).json()["code"])

    threads = [threading.Thread(target=one, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("00") == 3, results
    advance(sim, 10)
    books = ledger(sim, txn["reference"])
    assert (len(books["refunds"]), books["refunded"]) == (3, 90_000)
