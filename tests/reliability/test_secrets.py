"""Issue 7.7, the part not covered elsewhere: secrets never appear in logs,
error messages or the database, and checkout URLs are never persisted.

(Internal RPCs unreachable through the ingress: tests/e2e/test_ingress.py;
JWT missing/expired/wrong key/issuer/audience/alg none: tests/e2e/test_flow.py.)

A payment and an order service process behind Envoy, with a VNPay hash secret
made for this run, go through the whole flow, errors and forged signatures
included; then their logs, Envoy's log, every row of both databases (as
row_to_json and as raw bytes) and every error answer are searched for the
hash secret, the JWT private key, the bearer tokens sent, and the signatures
of the checkout URLs handed out."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import jwt
import psycopg
from google.api import httpbody_pb2
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from ingress import auth
from paykit.database import libpq_url
from tests.integration.helpers import rows, signed_vnpay_query, vnpay_ipn_params
from tests.reliability.support import (
    HttpResult,
    Stack,
    create_payment,
    http_request,
    payment_stub,
    process_stack,
    report,
    wait_until,
)

ORDER_BODY = {
    "items": [{"variant_id": "mug-blue", "quantity": 1}],
    "receiver_name": "Nguyen Van A",
    "receiver_phone": "0901234567",
    "shipping_address": "1 Le Loi, HCMC",
}


def _haystacks_of_database(url: str) -> Iterable[tuple[str, str]]:
    """(where, text) for every row of every table: row_to_json, and each
    bytea value decoded (raw and percent-decoded, as a query would carry it)."""
    with psycopg.connect(libpq_url(url)) as conn:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        for table in tables:
            for (doc,) in conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t').fetchall():
                yield f"{table} row", doc
            binary = [
                c
                for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND table_name = %s AND data_type = 'bytea'",
                    (table,),
                ).fetchall()
            ]
            for column in binary:
                for (value,) in conn.execute(f'SELECT "{column}" FROM "{table}"').fetchall():
                    if value is not None:
                        raw = bytes(value).decode("utf-8", "replace")
                        yield f"{table}.{column}", raw
                        yield f"{table}.{column} (decoded)", urllib.parse.unquote_plus(raw)


def _flow(stack: Stack, secret: str) -> tuple[list[str], list[str], list[str], str]:
    """Exercises the product, errors included. Returns the bearer tokens sent,
    the checkout URLs handed out and every error message received."""
    tokens = [stack.keys.token("u1"), stack.keys.token("u2")]
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "u1", "iss": auth.ISSUER, "aud": auth.AUDIENCE, "iat": now - 600, "exp": now - 300},
        stack.keys.private_pem,
        algorithm="RS256",
        headers={"kid": auth.KEY_ID},
    )
    tokens.append(expired)
    errors: list[str] = []
    urls: list[str] = []

    def api(method: str, path: str, token: str | None, body: Any = None, **headers: str) -> HttpResult:
        data = json.dumps(body).encode() if body is not None else None
        reply = stack.api(method, path, token, data, **headers)
        if reply.status >= 400:
            errors.append(f"{method} {path} {reply.status} {reply.body.decode('utf-8', 'replace')}")
        return reply

    u1, u2 = tokens[0], tokens[1]
    orders = [api("POST", "/v1/orders", u1, ORDER_BODY).json_body()["order"] for _ in range(3)]
    for i, order in enumerate(orders):
        for key in ("", f"key-{i}"):
            headers = {"Idempotency-Key": key} if key else {}
            reply = api("POST", f"/v1/orders/{order['id']}:retryPayment", u1, {}, **headers)
            assert reply.status == 200, reply
            urls.append(reply.json_body()["checkout_url"])
    refs = [dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(u).query))["vnp_TxnRef"] for u in urls]

    def ipn(query: str, **headers: str) -> str:
        reply = http_request(stack.port, "GET", "/webhooks/vnpay/ipn?" + query, headers=headers)
        return reply.rsp_code

    paid_amount = int(orders[0]["total_amount"])
    good = signed_vnpay_query(vnpay_ipn_params(refs[0], paid_amount), secret)
    # A gateway-side bearer header must not end up in the journal either.
    assert ipn(good, Authorization=f"Bearer {u1}") == "00"
    assert ipn(good) == "02"
    assert ipn(signed_vnpay_query(vnpay_ipn_params(refs[2], paid_amount), "not-the-secret")) == "97"
    assert ipn(good.replace("vnp_Amount=", "vnp_Amount=1", 1)) == "97"
    assert ipn(signed_vnpay_query(vnpay_ipn_params("pi" + "0" * 26, 1_000), secret)) == "01"
    assert ipn(signed_vnpay_query(vnpay_ipn_params(refs[2], 1), secret)) == "04"
    for query in (good, good.replace("vnp_TxnRef=", "vnp_TxnRef=x", 1)):
        page = http_request(stack.port, "GET", "/webhooks/vnpay/return?" + query)
        assert page.status in (200, 400)
        if page.status >= 400:
            errors.append(page.body.decode("utf-8", "replace"))

    # Error answers of the public API.
    api("GET", f"/v1/orders/{orders[0]['id']}", u2)  # another user's: 404
    api("GET", "/v1/orders", expired)  # 401
    api("GET", "/v1/orders", "garbage")
    api("GET", "/v1/orders", u1 + "x")
    api("POST", "/v1/orders", u1, {**ORDER_BODY, "items": [{"variant_id": "nope", "quantity": 1}]})
    api("POST", "/v1/orders", u1, {**ORDER_BODY, "receiver_phone": "x" * 100})
    api("POST", "/v1/orders", u1, {**ORDER_BODY, "items": [{"variant_id": "mug-blue", "quantity": 100000}]})
    api("POST", "/v1/orders/not-a-uuid:retryPayment", u1, {})
    api("POST", f"/v1/orders/{orders[1]['id']}:retryPayment", u1, {}, **{"Idempotency-Key": "bad key!"})
    api("POST", f"/v1/orders/{orders[2]['id']}:cancel", u1, {"reason": "changed my mind"})
    api("POST", f"/v1/orders/{orders[2]['id']}:retryPayment", u1, {})  # canceled: create a new order
    wait_until(
        lambda: (
            api("GET", f"/v1/orders/{orders[0]['id']}", u1).json_body()["order"]["status"]
            == "ORDER_STATUS_PAID"
        ),
        10,
        what="order paid",
    )
    api("POST", f"/v1/orders/{orders[0]['id']}:retryPayment", u1, {})  # already paid
    api("GET", "/v1/products?page_token=%FF", None)

    # Error answers of the internal gRPC APIs.
    pay = payment_stub(stack.payment.target)
    order_stub = order_service_pb2_grpc.OrderServiceStub(grpc.insecure_channel(stack.order.target))
    calls: list[Any] = [
        lambda: pay.CreateOrGetPayment(ps.CreateOrGetPaymentRequest(order_id="", amount=-1), timeout=10),
        lambda: create_payment(pay, "ORD-X", 10, user_id="u1"),
        lambda: create_payment(pay, orders[0]["id"], paid_amount, user_id="u1"),
        lambda: pay.GetPayment(ps.GetPaymentRequest(payment_id="nope"), timeout=10),
        lambda: pay.GetPaymentByOrder(ps.GetPaymentByOrderRequest(order_id="x", user_id="u9"), timeout=10),
        lambda: pay.CancelPayment(ps.CancelPaymentRequest(payment_id=secrets.token_hex(4)), timeout=10),
        lambda: pay.HandleCallback(httpbody_pb2.HttpBody(), timeout=10),
        lambda: pay.HandleCallback(
            httpbody_pb2.HttpBody(), metadata=[("x-envoy-original-path", "/webhooks/payos")], timeout=10
        ),
        lambda: order_stub.GetOrder(os_pb2.GetOrderRequest(order_id="x"), timeout=10),
    ]
    for call in calls:
        try:
            call()
        except grpc.RpcError as error:
            trailing = dict(error.trailing_metadata() or ())
            details = trailing.get("grpc-status-details-bin", b"")
            errors.append(f"{error.code().name} {error.details()} {details!r}")
    assert len(errors) >= 20, errors
    return tokens, urls, errors, good.rpartition("=")[2]


def test_secrets_never_appear_in_logs_errors_or_the_database(
    db_url: str, order_db_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    secret = "REL" + secrets.token_hex(16).upper()  # this run's VNPay hash secret
    with process_stack(db_url, order_db_url, tmp_path / "envoy", VNPAY_HASH_SECRET=secret) as stack:
        tokens, urls, errors, ipn_signature = _flow(stack, secret)
        time.sleep(0.3)  # the last log lines
        stack.payment.stop()  # graceful: the shutdown lines are scanned too
        stack.order.stop()
        logs = [("payment log", line) for line in stack.payment.lines]
        logs += [("order log", line) for line in stack.order.lines]
        logs.append(("envoy log", stack.envoy.log_path.read_text(errors="replace")))
        private_key = stack.keys.private_pem.decode()

    pem_lines = [line for line in private_key.splitlines() if line and not line.startswith("-----")]
    needles = {"VNPay hash secret": secret}
    needles.update({f"private key line {i}": line for i, line in enumerate(pem_lines) if len(line) >= 40})
    needles["private key body"] = "".join(pem_lines)
    for i, token in enumerate(tokens):
        needles[f"bearer token {i}"] = token
        needles[f"bearer token {i} signature"] = token.rsplit(".", 1)[1]
    for i, url in enumerate(urls):
        signature = url.rpartition("vnp_SecureHash=")[2]
        assert len(signature) == 128
        needles[f"checkout URL {i} signature"] = signature

    database = list(_haystacks_of_database(db_url)) + list(_haystacks_of_database(order_db_url))
    # Checkout URLs are never persisted: no trace of one in the database at all.
    checkout_markers = {"checkout URL": "vnp_Command=pay", "payment page": "vpcpay.html"}
    answers = [("error answer", e) for e in errors]
    leaks = [
        (where, name)
        for where, haystack in [*logs, *database, *answers]
        for name, needle in needles.items()
        if needle in haystack
    ]
    leaks += [
        (where, name)
        for where, haystack in [*logs, *database]
        for name, marker in checkout_markers.items()
        if marker in haystack
    ]
    assert not leaks, leaks[:20]
    # The scan sees what it should: the gateway's own IPN signature sits in the
    # journal's raw query, and the services logged every call.
    assert any(
        ipn_signature in text for where, text in database if where.startswith("callback_journal.raw_query")
    )
    assert any('"rpc": "HandleCallback"' in line for _, line in logs)
    assert rows(db_url, "SELECT count(*) FROM callback_journal WHERE headers ? 'authorization'") == [(0,)]

    report(
        "secrets_scan",
        requests=len(errors) + len(urls) + 13,
        log_lines=len(logs),
        db_values=len(database),
        error_answers=len(answers),
        needles=len(needles),
        leaks=len(leaks),
        losses=0,
        seconds=round(time.monotonic() - started, 1),
    )
