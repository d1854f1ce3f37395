"""Refunds on the simulator: VNPay (asynchronous, querydr follows it), MoMo
(synchronous, refundTrans[] in the query), ZaloPay (asynchronous,
query_refund); partial refunds, over-refunds refused, idempotent retries,
the three refund faults, the ledger's books, and concurrent refunds that
never exceed the capture."""

from __future__ import annotations

import http.client as httplib
import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway_simulator import Simulator
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.vnpay import protocol as vnpay
from payment_service.gateways.zalopay import protocol as zalopay
from tests.sim.support import (
    control,
    http,
    momo_config,
    open_session,
    vnpay_config,
    zalopay_config,
)

AMOUNT = 100_000


def paid(sim: Simulator, gateway: str, amount: int = AMOUNT) -> dict[str, Any]:
    """A paid transaction, as the ledger shows it."""
    ref = open_session(sim, gateway, amount)
    assert control(sim, "pay", {"gateway": gateway, "reference": ref}).status == 200
    return ledger(sim, gateway, ref)


def ledger(sim: Simulator, gateway: str, reference: str) -> dict[str, Any]:
    txns = control(sim, f"transactions?gateway={gateway}").json()["transactions"]
    (txn,) = [t for t in txns if t["reference"] == reference]
    return dict(txn)


def advance(sim: Simulator, seconds: float) -> None:
    assert control(sim, "clock", {"seconds": seconds}).status == 200


def fault(sim: Simulator, gateway: str, kind: str, **more: Any) -> None:
    reply = control(sim, "faults", {"gateway": gateway, "fault": kind, **more})
    assert reply.status == 201, reply.text


def raw_post(url: str, body: dict[str, Any]) -> bytes:
    """POST that reports a connection closed without an answer as b''."""
    parts = urlsplit(url)
    conn = httplib.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json"})
        return conn.getresponse().read()
    except (httplib.RemoteDisconnected, ConnectionError):
        return b""
    finally:
        conn.close()


# --- VNPay --------------------------------------------------------------------


def vnpay_refund_body(
    sim: Simulator, txn: dict[str, Any], amount: int, *, request_id: str | None = None, full: bool = False
) -> dict[str, str]:
    return vnpay.build_refund(
        vnpay_config(sim),
        request_id=request_id or secrets.token_hex(16),
        txn_ref=txn["reference"],
        amount=amount,
        full=full,
        transaction_no=txn["gateway_txn_id"],
        transaction_date=datetime.fromisoformat(txn["created_at"]),
        now=datetime.now(UTC),
        create_by="tests",
        ip_addr="127.0.0.1",
        order_info="Hoan tien",
    )


def vnpay_post(sim: Simulator, body: dict[str, str]) -> dict[str, Any]:
    answer = http("POST", sim.service_urls()["VNPAY_QUERY_URL"], body).json()
    return dict(answer)


def vnpay_querydr(sim: Simulator, txn: dict[str, Any]) -> dict[str, Any]:
    body = vnpay.build_querydr(
        vnpay_config(sim),
        request_id=secrets.token_hex(16),
        txn_ref=txn["reference"],
        transaction_date=datetime.fromisoformat(txn["created_at"]),
        now=datetime.now(UTC),
        ip_addr="127.0.0.1",
    )
    answer = vnpay_post(sim, body)
    assert vnpay.verify_querydr_response(answer, sim.config.vnpay.hash_secret)
    return answer


def test_vnpay_partial_refund_progresses_05_06_00_on_the_simulators_clock(sim: Simulator) -> None:
    txn = paid(sim, "vnpay")
    answer = vnpay_post(sim, vnpay_refund_body(sim, txn, 30_000))
    assert vnpay.verify_refund_response(answer, sim.config.vnpay.hash_secret)
    assert (answer["vnp_ResponseCode"], answer["vnp_TransactionType"], answer["vnp_TransactionStatus"]) == (
        "00",
        "03",
        "05",
    )
    assert answer["vnp_Amount"] == "3000000" and answer["vnp_TransactionNo"] != txn["gateway_txn_id"]
    seen = [
        (vnpay_querydr(sim, txn)["vnp_TransactionType"], vnpay_querydr(sim, txn)["vnp_TransactionStatus"])
    ]
    advance(sim, 2)
    seen.append(
        (vnpay_querydr(sim, txn)["vnp_TransactionType"], vnpay_querydr(sim, txn)["vnp_TransactionStatus"])
    )
    assert ledger(sim, "vnpay", txn["reference"])["refunded"] == 0  # sent to the bank is not back yet
    advance(sim, 2)
    seen.append(
        (vnpay_querydr(sim, txn)["vnp_TransactionType"], vnpay_querydr(sim, txn)["vnp_TransactionStatus"])
    )
    assert seen == [("03", "05"), ("03", "06"), ("03", "00")]
    books = ledger(sim, "vnpay", txn["reference"])
    assert (books["captured"], books["refunded"]) == (AMOUNT, 30_000)
    (refund,) = books["refunds"]
    assert refund["status"] == "succeeded" and refund["final"] and refund["amount"] == 30_000
    assert refund["gateway_refund_id"] == answer["vnp_TransactionNo"]


def test_vnpay_full_refund_and_what_it_refuses(sim: Simulator) -> None:
    txn = paid(sim, "vnpay")
    # 02 must be the whole amount; more than captured is refused (03), nothing recorded.
    assert vnpay_post(sim, vnpay_refund_body(sim, txn, 50_000, full=True))["vnp_ResponseCode"] == "03"
    assert vnpay_post(sim, vnpay_refund_body(sim, txn, AMOUNT + 1_000))["vnp_ResponseCode"] == "03"
    full = vnpay_post(sim, vnpay_refund_body(sim, txn, AMOUNT, full=True))
    assert (full["vnp_ResponseCode"], full["vnp_TransactionType"]) == ("00", "02")
    assert vnpay_post(sim, vnpay_refund_body(sim, txn, 1_000))["vnp_ResponseCode"] == "03"  # nothing left
    bad = vnpay_refund_body(sim, txn, 1_000)
    bad["vnp_Amount"] = "200000"  # tampered after signing
    assert vnpay_post(sim, bad)["vnp_ResponseCode"] == "97"
    unpaid_ref = open_session(sim, "vnpay")
    unpaid = ledger(sim, "vnpay", unpaid_ref)
    assert vnpay_post(sim, vnpay_refund_body(sim, unpaid, 1_000))["vnp_ResponseCode"] == "95"
    ghost = {**txn, "reference": "NOPE1"}
    assert vnpay_post(sim, vnpay_refund_body(sim, ghost, 1_000))["vnp_ResponseCode"] == "91"
    assert len(ledger(sim, "vnpay", txn["reference"])["refunds"]) == 1


def test_vnpay_request_id_is_the_idempotency_key(sim: Simulator) -> None:
    txn = paid(sim, "vnpay")
    key = secrets.token_hex(16)
    first = vnpay_post(sim, vnpay_refund_body(sim, txn, 20_000, request_id=key))
    again = vnpay_post(sim, vnpay_refund_body(sim, txn, 20_000, request_id=key))
    assert first["vnp_ResponseCode"] == again["vnp_ResponseCode"] == "00"
    assert first["vnp_TransactionNo"] == again["vnp_TransactionNo"]
    other = vnpay_post(sim, vnpay_refund_body(sim, txn, 25_000, request_id=key))
    assert other["vnp_ResponseCode"] == "94"
    assert vnpay.verify_refund_response(other, sim.config.vnpay.hash_secret)
    books = ledger(sim, "vnpay", txn["reference"])
    assert [r["amount"] for r in books["refunds"]] == [20_000]


# --- MoMo ---------------------------------------------------------------------


def momo_refund(
    sim: Simulator, txn: dict[str, Any], amount: int, key: str | None = None, order_id: str | None = None
) -> dict[str, Any]:
    key = key or "rf" + secrets.token_hex(8)
    body = momo.build_refund_payload(
        momo_config(sim),
        order_id=order_id or key,
        request_id=key,
        amount=amount,
        trans_id=int(txn["gateway_txn_id"]),
        description="Hoan tien",
    )
    return dict(http("POST", momo_config(sim).endpoint + momo.REFUND_PATH, body).json())


def momo_under_minimum(sim: Simulator, txn: dict[str, Any]) -> dict[str, Any]:
    """999 VND: our builder refuses it, so signed by hand to see MoMo refuse it."""
    config = momo_config(sim)
    trans_id = int(txn["gateway_txn_id"])
    signature = momo.refund_signature(
        access_key=config.access_key,
        amount=999,
        description="",
        order_id="rfsmall",
        partner_code=config.partner_code,
        request_id="rfsmall",
        trans_id=trans_id,
        secret_key=config.secret_key,
    )
    body = {
        "partnerCode": config.partner_code,
        "orderId": "rfsmall",
        "requestId": "rfsmall",
        "amount": 999,
        "transId": trans_id,
        "lang": "vi",
        "description": "",
        "signature": signature,
    }
    return dict(http("POST", config.endpoint + momo.REFUND_PATH, body).json())


def momo_query(sim: Simulator, order_id: str) -> dict[str, Any]:
    config = momo_config(sim)
    body = momo.build_query_payload(config, order_id=order_id, request_id=secrets.token_hex(8))
    answer = http("POST", config.endpoint + momo.QUERY_PATH, body).json()
    assert momo.verify_query_answer(answer, config, order_id).valid
    return dict(answer)


def test_momo_several_partial_refunds_then_over_refund_refused(sim: Simulator) -> None:
    txn = paid(sim, "momo")
    first = momo_refund(sim, txn, 40_000)
    second = momo_refund(sim, txn, 50_000)
    assert first["resultCode"] == second["resultCode"] == 0
    assert first["transId"] != second["transId"] != int(txn["gateway_txn_id"])
    assert momo_refund(sim, txn, 20_000)["resultCode"] == 1081  # 10,000 left
    assert momo_under_minimum(sim, txn)["resultCode"] == 22
    assert momo_refund(sim, txn, 10_000)["resultCode"] == 0
    assert momo_refund(sim, txn, 1_000)["resultCode"] == 1080  # nothing left
    answer = momo_query(sim, txn["reference"])
    assert [(r["amount"], r["resultCode"]) for r in answer["refundTrans"]] == [
        (40_000, 0),
        (50_000, 0),
        (10_000, 0),
    ]
    assert answer["refundTrans"][0]["transId"] == first["transId"]
    books = ledger(sim, "momo", txn["reference"])
    assert (books["captured"], books["refunded"]) == (AMOUNT, AMOUNT)


def test_momo_refund_needs_a_new_order_id_and_repeats_are_idempotent(sim: Simulator) -> None:
    txn = paid(sim, "momo")
    assert momo_refund(sim, txn, 10_000, order_id=txn["reference"])["resultCode"] == 41
    first = momo_refund(sim, txn, 10_000, key="rfsame1")
    again = momo_refund(sim, txn, 10_000, key="rfsame1")
    assert first == again and first["resultCode"] == 0
    assert momo_refund(sim, txn, 10_000, key="rfsame1", order_id="rfother")["resultCode"] == 40
    assert ledger(sim, "momo", txn["reference"])["refunded"] == 10_000


# --- ZaloPay ------------------------------------------------------------------


def zalopay_refund(
    sim: Simulator, txn: dict[str, Any], amount: int, key: str | None = None
) -> dict[str, Any]:
    config = zalopay_config(sim)
    body = zalopay.build_refund_payload(
        config,
        m_refund_id=zalopay.m_refund_id(datetime.now(UTC), config.app_id, key or secrets.token_hex(8)),
        zp_trans_id=txn["gateway_txn_id"],
        amount=amount,
        description="Hoan tien",
        timestamp=int(datetime.now(UTC).timestamp() * 1000),
    )
    answer = dict(http("POST", config.endpoint + zalopay.REFUND_PATH, body).json())
    answer["m_refund_id"] = body["m_refund_id"]
    return answer


def zalopay_query_refund(sim: Simulator, m_refund_id: str) -> dict[str, Any]:
    config = zalopay_config(sim)
    body = zalopay.build_query_refund_payload(
        config, m_refund_id=m_refund_id, timestamp=int(datetime.now(UTC).timestamp() * 1000)
    )
    return dict(http("POST", config.endpoint + zalopay.QUERY_REFUND_PATH, body).json())


def test_zalopay_refund_is_processing_then_succeeds(sim: Simulator) -> None:
    txn = paid(sim, "zalopay")
    answer = zalopay_refund(sim, txn, 30_000)
    assert answer["return_code"] == 3 and answer["refund_id"]
    assert zalopay_query_refund(sim, answer["m_refund_id"])["return_code"] == 3
    assert ledger(sim, "zalopay", txn["reference"])["refunded"] == 0
    advance(sim, 3)
    done = zalopay_query_refund(sim, answer["m_refund_id"])
    assert (done["return_code"], done["refund_id"]) == (1, answer["refund_id"])
    books = ledger(sim, "zalopay", txn["reference"])
    assert (books["refunded"], books["refunds"][0]["request_id"]) == (30_000, answer["m_refund_id"])
    # The same m_refund_id again is the same refund: its state, no second one.
    config = zalopay_config(sim)
    again = zalopay_refund(sim, txn, 30_000, key=answer["m_refund_id"].rsplit("_", 1)[1])
    assert (again["return_code"], again["refund_id"]) == (1, answer["refund_id"])
    assert len(ledger(sim, "zalopay", txn["reference"])["refunds"]) == 1
    unknown = zalopay.m_refund_id(datetime.now(UTC), config.app_id, "nothere")
    assert zalopay_query_refund(sim, unknown)["return_code"] == 2


def test_zalopay_over_refund_and_bad_ids_refused(sim: Simulator) -> None:
    txn = paid(sim, "zalopay")
    assert zalopay_refund(sim, txn, 60_000)["return_code"] == 3
    over = zalopay_refund(sim, txn, 50_000)
    assert over["return_code"] == 2
    config = zalopay_config(sim)
    stale = zalopay.build_refund_payload(
        config,
        m_refund_id=zalopay.m_refund_id(datetime.now(UTC) - timedelta(days=2), config.app_id, "old"),
        zp_trans_id=txn["gateway_txn_id"],
        amount=1_000,
        description="x",
        timestamp=1,
    )
    assert http("POST", config.endpoint + zalopay.REFUND_PATH, stale).json()["return_code"] == 2
    assert [r["amount"] for r in ledger(sim, "zalopay", txn["reference"])["refunds"]] == [60_000]


# --- faults -------------------------------------------------------------------


def test_refund_timeout_after_accept_records_then_drops_and_the_retry_finds_it(sim: Simulator) -> None:
    txn = paid(sim, "vnpay")
    fault(sim, "vnpay", "refund_timeout_after_accept")
    body = vnpay_refund_body(sim, txn, 10_000)
    assert raw_post(sim.service_urls()["VNPAY_QUERY_URL"], body) == b""
    assert [r["amount"] for r in ledger(sim, "vnpay", txn["reference"])["refunds"]] == [10_000]
    again = vnpay_post(sim, body)  # the retry: the same refund
    assert again["vnp_ResponseCode"] == "00"
    assert len(ledger(sim, "vnpay", txn["reference"])["refunds"]) == 1
    assert sim.events(kind="refund_answer_dropped")

    mtxn = paid(sim, "momo")
    fault(sim, "momo", "refund_timeout_after_accept", reference=mtxn["reference"])
    mbody = momo.build_refund_payload(
        momo_config(sim),
        order_id="rfdrop1",
        request_id="rfdrop1",
        amount=5_000,
        trans_id=int(mtxn["gateway_txn_id"]),
    )
    assert raw_post(momo_config(sim).endpoint + momo.REFUND_PATH, mbody) == b""
    assert [r["orderId"] for r in momo_query(sim, mtxn["reference"])["refundTrans"]] == ["rfdrop1"]
    assert momo_refund(sim, mtxn, 5_000, key="rfdrop1")["resultCode"] == 0
    assert ledger(sim, "momo", mtxn["reference"])["refunded"] == 5_000


def test_refund_rejected(sim: Simulator) -> None:
    vtxn, mtxn, ztxn = paid(sim, "vnpay"), paid(sim, "momo"), paid(sim, "zalopay")
    for gateway in ("vnpay", "momo", "zalopay"):
        fault(sim, gateway, "refund_rejected")
    answer = vnpay_post(sim, vnpay_refund_body(sim, vtxn, 10_000))
    assert answer["vnp_ResponseCode"] == "95"
    assert vnpay.verify_refund_response(answer, sim.config.vnpay.hash_secret)
    assert momo_refund(sim, mtxn, 10_000)["resultCode"] == 1088
    z = zalopay_refund(sim, ztxn, 10_000)
    assert z["return_code"] == 3  # asynchronous: it fails later
    advance(sim, 3)
    assert zalopay_query_refund(sim, z["m_refund_id"])["return_code"] == 2
    for gateway, txn in (("vnpay", vtxn), ("momo", mtxn)):
        assert ledger(sim, gateway, txn["reference"])["refunds"] == []
    books = ledger(sim, "zalopay", ztxn["reference"])
    assert (books["refunded"], books["refunds"][0]["status"]) == (0, "rejected")
    # The refused money is still refundable.
    assert momo_refund(sim, mtxn, AMOUNT)["resultCode"] == 0


def test_refund_duplicate_answers_in_progress_but_refunds_once(sim: Simulator) -> None:
    vtxn, mtxn, ztxn = paid(sim, "vnpay"), paid(sim, "momo"), paid(sim, "zalopay")
    for gateway in ("vnpay", "momo", "zalopay"):
        fault(sim, gateway, "refund_duplicate")
    vbody = vnpay_refund_body(sim, vtxn, 10_000)
    assert vnpay_post(sim, vbody)["vnp_ResponseCode"] == "94"
    assert vnpay_querydr(sim, vtxn)["vnp_TransactionStatus"] == "05"
    assert vnpay_post(sim, vbody)["vnp_ResponseCode"] == "00"
    m = momo_refund(sim, mtxn, 10_000, key="rfdup1")
    assert m["resultCode"] == 1080
    assert [r["resultCode"] for r in momo_query(sim, mtxn["reference"])["refundTrans"]] == [0]
    assert momo_refund(sim, mtxn, 10_000, key="rfdup1")["resultCode"] == 0
    z = zalopay_refund(sim, ztxn, 10_000)
    assert (z["return_code"], z["sub_return_code"]) == (2, -68)
    assert zalopay_query_refund(sim, z["m_refund_id"])["return_code"] == 3
    for gateway, txn in (("vnpay", vtxn), ("momo", mtxn), ("zalopay", ztxn)):
        assert [r["amount"] for r in ledger(sim, gateway, txn["reference"])["refunds"]] == [10_000]


def test_refund_fault_delays_are_bounded(sim: Simulator) -> None:
    # (payOS takes refund faults too: its refunds are payouts, see test_sim_payos_payouts.py.)
    bad = control(sim, "faults", {"gateway": "vnpay", "fault": "refund_timeout_after_accept", "seconds": 1e6})
    assert bad.status == 400


@pytest.mark.parametrize("gateway", ["vnpay", "momo", "zalopay"])
def test_concurrent_refunds_never_exceed_the_capture(sim: Simulator, gateway: str) -> None:
    txn = paid(sim, gateway)
    results: list[Any] = []
    barrier = threading.Barrier(10)

    def one() -> None:
        barrier.wait()
        if gateway == "vnpay":
            results.append(vnpay_post(sim, vnpay_refund_body(sim, txn, 30_000))["vnp_ResponseCode"])
        elif gateway == "momo":
            results.append(momo_refund(sim, txn, 30_000)["resultCode"])
        else:
            results.append(zalopay_refund(sim, txn, 30_000)["return_code"])

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = {"vnpay": "00", "momo": 0, "zalopay": 3}[gateway]
    # VNPay takes one refund of a transaction at a time (94 while it is in
    # progress); the others take as many as the capture covers.
    expected = 1 if gateway == "vnpay" else 3
    assert results.count(accepted) == expected, results
    advance(sim, 10)
    books = ledger(sim, gateway, txn["reference"])
    assert (len(books["refunds"]), books["refunded"]) == (expected, expected * 30_000)


def test_refund_lost_records_nothing_and_the_resend_is_the_first_refund(sim: Simulator) -> None:
    vtxn, mtxn, ztxn = paid(sim, "vnpay"), paid(sim, "momo"), paid(sim, "zalopay")
    for gateway in ("vnpay", "momo", "zalopay"):
        fault(sim, gateway, "refund_lost")
    vbody = vnpay_refund_body(sim, vtxn, 10_000)
    assert raw_post(sim.service_urls()["VNPAY_QUERY_URL"], vbody) == b""
    assert vnpay_querydr(sim, vtxn)["vnp_TransactionType"] == "01"  # no refund there
    assert vnpay_post(sim, vbody)["vnp_ResponseCode"] == "00"
    mbody = momo.build_refund_payload(
        momo_config(sim),
        order_id="rflost1",
        request_id="rflost1",
        amount=10_000,
        trans_id=int(mtxn["gateway_txn_id"]),
    )
    assert raw_post(momo_config(sim).endpoint + momo.REFUND_PATH, mbody) == b""
    assert momo_query(sim, mtxn["reference"])["refundTrans"] == []
    assert momo_refund(sim, mtxn, 10_000, key="rflost1")["resultCode"] == 0
    config = zalopay_config(sim)
    m_refund_id = zalopay.m_refund_id(datetime.now(UTC), config.app_id, "lost1")
    zbody = zalopay.build_refund_payload(
        config,
        m_refund_id=m_refund_id,
        zp_trans_id=ztxn["gateway_txn_id"],
        amount=10_000,
        description="x",
        timestamp=1,
    )
    assert raw_post(config.endpoint + zalopay.REFUND_PATH, zbody) == b""
    assert zalopay_query_refund(sim, m_refund_id)["sub_return_code"] == -101
    assert zalopay_refund(sim, ztxn, 10_000, key="lost1")["return_code"] == 3
    for gateway, txn in (("vnpay", vtxn), ("momo", mtxn), ("zalopay", ztxn)):
        assert [r["amount"] for r in ledger(sim, gateway, txn["reference"])["refunds"]] == [10_000]
    assert len(sim.events(kind="refund_request_lost")) == 3
