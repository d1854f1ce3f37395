"""Issue 7.6: property-based fuzzing (hypothesis) of every webhook route and
of the public JSON API, through the real Envoy and directly over gRPC:
random and mutated valid payloads, invalid UTF-8, huge and deeply nested
JSON, duplicate query keys, over-long fields, SQL and HTML in every string.

For every request: never a 5xx (Envoy's 503 would mean the upstream died),
never a state change from a request that did not verify, never a crash (the
processes stay up and healthy), and every webhook request that reached the
service is in the callback journal (exactly one new row)."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
from google.api import httpbody_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from ingress.envoy import ERROR_DOMAIN
from paykit.database import libpq_url
from tests.conftest import TEST_VNPAY
from tests.integration.helpers import signed_vnpay_query, vnpay_ipn_params
from tests.reliability.support import (
    HttpResult,
    Stack,
    create_payment,
    healthy,
    payment_stub,
    process_stack,
    raw_http,
    report,
)

# Per test. CI runs the same examples every time (derandomized, seeded by the
# test's name); FUZZ_RANDOM=1 explores new ones, FUZZ_EXAMPLES=1000 more of them.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SECRET = TEST_VNPAY.hash_secret
WEBHOOKS_GET = ("/webhooks/vnpay/ipn", "/webhooks/vnpay/return")
WEBHOOKS_POST = ("/webhooks/payos", "/webhooks/momo/ipn", "/webhooks/zalopay/callback")
VNP_KEYS = [
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_BankTranNo",
    "vnp_CardType",
    "vnp_OrderInfo",
    "vnp_PayDate",
    "vnp_ResponseCode",
    "vnp_TmnCode",
    "vnp_TransactionNo",
    "vnp_TransactionStatus",
    "vnp_TxnRef",
    "vnp_SecureHash",
    "vnp_SecureHashType",
]
# Injection and markup, in every string field at some point.
NASTY = [
    "' OR '1'='1",
    "'; DROP TABLE payments; --",
    "1); DELETE FROM callback_journal; --",
    "\\'; SELECT pg_sleep(30); --",
    "' UNION SELECT current_setting('data_directory') --",
    "$$; COPY payments TO PROGRAM 'id'; $$",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</title><script>alert(document.cookie)</script>",
    "{{7*7}}${7*7}<%= 7*7 %>",
    "javascript:alert(1)",
    "%00",
    "\x00",
    "\u202eevil\u202c",
    "\U0001f600" * 40,
    "../../../../etc/passwd",
    "A" * 5000,
    "9" * 40,
    "-1",
    "0",
    "null",
    "",
]
# What the hostile values would put on a page if echoed unescaped (the
# result page has a script of its own, so "<script" alone proves nothing).
MARKUP = ("<script>alert", "<img", "onerror=")

text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(min_size=200, max_size=2500),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.from_regex(r"[0-9]{1,20}", fullmatch=True),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(text, inner, max_size=5)),
    max_leaves=20,
)


def _q(value: str) -> str:
    return urllib.parse.quote_plus(value.encode("utf-8", "surrogateescape"))


@st.composite
def vnpay_queries(draw: Any, refs: list[tuple[str, int]]) -> bytes:
    """Query strings aimed at the VNPay routes: random, mutated from a validly
    signed IPN, signed with hostile values, or raw bytes."""
    kind = draw(st.sampled_from(["random", "mutated", "signed_hostile", "raw", "encoded_bytes"]))
    if kind == "random":
        pairs = draw(st.lists(st.tuples(st.one_of(st.sampled_from(VNP_KEYS), text), text), max_size=16))
        return "&".join(f"{_q(k)}={_q(v)}" for k, v in pairs).encode()
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "encoded_bytes":
        return urllib.parse.quote_from_bytes(draw(st.binary(max_size=300)), safe="=&").encode()
    ref, amount = draw(st.sampled_from([*refs, ("pi" + "0" * 26, 150_000)]))
    params = vnpay_ipn_params(ref, amount, response_code=draw(st.sampled_from(["00", "24"])))
    if kind == "signed_hostile":
        # Verifies: only what VNPay itself could send does, so state may change.
        params[draw(st.sampled_from(sorted(params)))] = draw(text)
        return signed_vnpay_query(params, SECRET).encode("utf-8", "surrogateescape")
    query = signed_vnpay_query(params, SECRET)
    mutation = draw(
        st.sampled_from(
            ["value", "duplicate", "drop", "hash", "wrong_secret", "append", "hash_type", "upper", "truncate"]
        )
    )
    key = draw(st.sampled_from(sorted(params)))
    if mutation == "value":
        query = query.replace(f"{key}=", f"{key}={_q(draw(text))}", 1)
    elif mutation == "duplicate":
        query += f"&{key}={_q(draw(text))}"
    elif mutation == "drop":
        query = "&".join(p for p in query.split("&") if not p.startswith(f"{key}="))
    elif mutation == "hash":
        query = query[:-1] + ("0" if query[-1] != "0" else "1")
    elif mutation == "wrong_secret":
        query = signed_vnpay_query(params, draw(text) or "x")
    elif mutation == "append":
        query += f"&{_q(draw(text))}={_q(draw(text))}"
    elif mutation == "hash_type":
        query += "&vnp_SecureHashType=HmacSHA512"
    elif mutation == "upper":
        head, _, digest = query.rpartition("=")
        query = f"{head}={digest.upper()}"
    else:
        query = query[: draw(st.integers(0, len(query)))]
    return query.encode("utf-8", "surrogateescape")


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=500),  # invalid UTF-8 among it
    st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 10_000).map(_deep),
    st.integers(60_000, 70_000).map(lambda n: json.dumps({"data": "x" * n}).encode()),  # around the cap
    st.just(json.dumps({"blob": "y" * 2_000_000}).encode()),
    text.map(lambda s: s.encode("utf-8", "surrogateescape")),
)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
        ]
    ),
    st.from_regex(r"[a-z/+.;= -]{0,60}", fullmatch=True),
)


# --- the stack under test --------------------------------------------------------------------------


class Watch:
    """Counts journal rows and fingerprints the payment state around each request."""

    def __init__(self, pay_url: str) -> None:
        self.conn = psycopg.connect(libpq_url(pay_url), autocommit=True)
        self.figures: Counter[str] = Counter()

    def journal(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM callback_journal").fetchone()[0])  # type: ignore[index]

    def last_entry(self) -> tuple[bool, str]:
        row = self.conn.execute(
            "SELECT verified, outcome FROM callback_journal ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        return bool(row[0]), str(row[1])

    def state(self) -> tuple[Any, ...]:
        row = self.conn.execute(
            "SELECT (SELECT md5(coalesce(string_agg(p::text, ',' ORDER BY id), '')) FROM payments p),"
            " (SELECT count(*) FROM outbox_events), (SELECT count(*) FROM payment_request_keys)"
        ).fetchone()
        assert row is not None
        return tuple(row)


@pytest.fixture(scope="module")
def stack(module_databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pay_url, order_url = module_databases
    with process_stack(pay_url, order_url, tmp_path_factory.mktemp("hostile")) as s:
        yield s


@pytest.fixture(scope="module")
def watch(module_databases: tuple[str, str], stack: Stack) -> Iterator[Watch]:
    w = Watch(module_databases[0])
    yield w
    w.conn.close()


@pytest.fixture(scope="module")
def refs(stack: Stack) -> list[tuple[str, int]]:
    """Real pending payments whose valid IPNs get mutated."""
    stub = payment_stub(stack.payment.target)
    made = [create_payment(stub, f"FUZZ-{i}", 120_000 + i).payment for i in range(8)]
    return [(p.provider_reference, p.amount) for p in made]


def _from_service(reply: HttpResult) -> bool:
    """Whether the answer was written by HandleCallback (rather than by Envoy)."""
    content_type = reply.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            doc = json.loads(reply.body)
        except ValueError:
            return False
        if not isinstance(doc, dict):
            return False
        # Envoy's own errors have the services' shape, told apart by ErrorInfo's domain.
        details = doc.get("details")
        from_envoy = isinstance(details, list) and any(
            isinstance(d, dict) and d.get("domain") == ERROR_DOMAIN for d in details
        )
        return "RspCode" in doc or ({"code", "message"} <= doc.keys() and not from_envoy)
    return content_type.startswith("text/html") and b"<body data-status=" in reply.body  # the result page


def _nul(query: bytes, *texts: str) -> bool:
    """NUL in what the journal stores (decoded query, content type): the known
    bug of test_rejected_callback_with_nul_is_journaled. Such requests are
    still fuzzed, but their missing journal row is counted, not failed on,
    until that bug is fixed."""
    return b"%00" in query or b"\x00" in query or any("\x00" in t for t in texts)


def _check_webhook(
    stack: Stack, watch: Watch, send: Any, *, verified_may_change: bool = True, known_nul: bool = False
) -> HttpResult:
    journal, state = watch.journal(), watch.state()
    reply: HttpResult = send()
    added = watch.journal() - journal
    watch.figures["requests"] += 1
    assert reply.status != 0, reply
    assert added in (0, 1), added
    if known_nul and _from_service(reply) and not added:
        # Not journaled; a signed return with NUL in vnp_TxnRef is even a 500.
        watch.figures["known_bug_nul"] += 1
        assert reply.status < 500 or b'"internal error"' in reply.body, reply
        assert watch.state() == state
        return reply
    assert reply.status < 500, (reply.status, reply.body[:300])
    if _from_service(reply):
        assert added == 1, f"answered by the service but not journaled: {reply.status} {reply.body[:200]!r}"
    else:
        assert (added == 0 and 400 <= reply.status < 500) or reply.headers.get("grpc-status"), reply
        watch.figures["refused_by_envoy"] += 1
    if added:
        watch.figures["journaled"] += 1
        verified, outcome = watch.last_entry()
        watch.figures[f"outcome:{outcome}"] += 1
        if watch.state() != state:
            assert verified and verified_may_change, f"state changed by an unverified request ({outcome})"
            watch.figures["verified_changes"] += 1
    else:
        assert watch.state() == state
    if reply.headers.get("content-type", "").startswith("text/html"):
        assert not any(m.encode() in reply.body for m in MARKUP), reply.body[:500]
    rsp = reply.rsp_code
    if rsp:
        watch.figures[f"rsp:{rsp}"] += 1
    if rsp == "99":
        # Only a correctly signed IPN whose gateway fields do not fit the payments
        # columns gets here: test_signed_ipn_with_long_gateway_fields_is_recorded
        # (too long) and test_rejected_callback_with_nul_is_journaled (NUL).
        assert watch.last_entry() == (True, "error"), "an unexpected failure inside the service"
        watch.figures["known_bug_signed_overlong_99"] += 1
    assert stack.alive()
    return reply


def _get(path: str, query: bytes, headers: bytes = b"") -> bytes:
    return (
        b"GET "
        + path.encode()
        + b"?"
        + query
        + b" HTTP/1.1\r\nHost: x\r\n"
        + headers
        + b"Connection: close\r\n\r\n"
    )


def _post(path: str, body: bytes, content_type: str, query: bytes = b"") -> bytes:
    target = path.encode() + (b"?" + query if query else b"")
    head = (
        b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type.encode("latin-1")
    ) + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    return head + body


# --- webhooks through Envoy ------------------------------------------------------------------------


@pytest.mark.parametrize("path", WEBHOOKS_GET)
def test_vnpay_routes_through_envoy(
    stack: Stack, watch: Watch, refs: list[tuple[str, int]], path: str
) -> None:
    started = time.monotonic()
    before = Counter(watch.figures)
    header_values = st.one_of(st.sampled_from(NASTY[:12]), st.from_regex(r"[ -~]{0,200}", fullmatch=True))

    @FUZZ
    @given(query=vnpay_queries(refs), user_agent=header_values, forwarded=header_values)
    def run(query: bytes, user_agent: str, forwarded: str) -> None:
        headers = f"User-Agent: {user_agent}\r\nX-Forwarded-For: {forwarded}\r\n".encode()
        _check_webhook(
            stack,
            watch,
            lambda: raw_http(stack.port, _get(path, query, headers)),
            verified_may_change=path.endswith("/ipn"),
            known_nul=_nul(query),
        )

    run()
    _finish(stack, watch, f"hostile_envoy{path.replace('/', '_')}", before, started)


@pytest.mark.parametrize("path", WEBHOOKS_POST)
def test_post_webhooks_through_envoy(stack: Stack, watch: Watch, path: str) -> None:
    started = time.monotonic()
    before = Counter(watch.figures)

    @FUZZ
    @given(body=bodies, content_type=content_types, query=st.binary(max_size=40))
    def run(body: bytes, content_type: str, query: bytes) -> None:
        q = urllib.parse.quote_from_bytes(query, safe="=&").encode()
        _check_webhook(
            stack,
            watch,
            lambda: raw_http(stack.port, _post(path, body, content_type, q), method="POST"),
            verified_may_change=False,  # these providers are not enabled: nothing verifies
            known_nul=_nul(q),
        )

    run()
    _finish(stack, watch, f"hostile_envoy{path.replace('/', '_')}", before, started)


# --- webhooks over gRPC, as the ingress would call -------------------------------------------------


printable = st.from_regex(r"[ -~]{0,300}", fullmatch=True)


def test_handle_callback_over_grpc(stack: Stack, watch: Watch, refs: list[tuple[str, int]]) -> None:
    started = time.monotonic()
    before = Counter(watch.figures)
    stub = payment_stub(stack.payment.target)
    paths = st.one_of(st.sampled_from([*WEBHOOKS_GET, *WEBHOOKS_POST]), printable.map(lambda p: "/" + p))

    @FUZZ
    @given(
        path=paths,
        query=vnpay_queries(refs),
        body=bodies.filter(lambda b: len(b) < 4_000_000),
        content_type=st.one_of(content_types, text),
        user_agent=printable,
    )
    def run(path: str, query: bytes, body: bytes, content_type: str, user_agent: str) -> None:
        # Metadata is printable ASCII; anything else is percent-encoded, as a client would.
        q = urllib.parse.quote_from_bytes(query, safe="=&%+;,/:@!$'()*")
        # At most what the ingress could forward (8 KiB of headers); far above
        # it grpcio refuses the metadata itself and reconnects slowly.
        target = (f"{path}?{q}" if q else path)[:12_000]
        journal, state = watch.journal(), watch.state()
        try:
            reply, _call = stub.HandleCallback.with_call(
                httpbody_pb2.HttpBody(content_type=content_type, data=body),
                metadata=[("x-envoy-original-path", target), ("user-agent", user_agent or "x")],
                timeout=10,
            )
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code, reply = error.code(), None
        watch.figures["requests"] += 1
        watch.figures[f"grpc:{code.name}"] += 1
        added = watch.journal() - journal
        if code == grpc.StatusCode.INTERNAL and added == 0 and _nul(q.encode(), content_type):
            # A signed browser return with NUL in vnp_TxnRef: test_rejected_callback_with_nul_is_journaled.
            watch.figures["known_bug_nul"] += 1
            assert watch.state() == state
            return
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            # grpcio's own metadata cap (16 KiB): refused before the service, like Envoy's 431.
            assert len(target) > 8000 and added == 0, (len(target), added)
            return
        assert code in (
            grpc.StatusCode.OK,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.FAILED_PRECONDITION,
        ), (
            code,
            target[:200],
        )
        if added == 0 and _nul(q.encode(), content_type):
            watch.figures["known_bug_nul"] += 1
            assert watch.state() == state
            return
        assert added == 1, f"not journaled: {target[:200]!r} {content_type[:80]!r}"
        watch.figures["journaled"] += 1
        verified, outcome = watch.last_entry()
        watch.figures[f"outcome:{outcome}"] += 1
        if watch.state() != state:
            assert verified and path == "/webhooks/vnpay/ipn", outcome
            watch.figures["verified_changes"] += 1
        if reply is not None and reply.content_type == "application/json" and path == "/webhooks/vnpay/ipn":
            if json.loads(reply.data)["RspCode"] == "99":
                assert (verified, outcome) == (True, "error")
                watch.figures["known_bug_signed_overlong_99"] += 1
        assert stack.alive()

    run()
    _finish(stack, watch, "hostile_grpc_HandleCallback", before, started)


# --- the public JSON API through Envoy -------------------------------------------------------------

ORDER_BODY = {
    "items": [{"variant_id": "mug-blue", "quantity": 1}],
    "receiver_name": "Nguyen Van A",
    "receiver_phone": "0901234567",
    "shipping_address": "1 Le Loi, HCMC",
}


@st.composite
def order_bodies(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["mutated", "random", "bytes", "deep", "huge"]))
    if kind == "random":
        return json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "deep":
        return _deep(draw(st.integers(1, 10_000)))
    if kind == "huge":
        return json.dumps({**ORDER_BODY, "note": "n" * draw(st.integers(1_000, 200_000))}).encode()
    body: dict[str, Any] = json.loads(json.dumps(ORDER_BODY))
    for _ in range(draw(st.integers(1, 3))):
        field = draw(
            st.sampled_from([*ORDER_BODY, "note", "item", "quantity", "variant_id", "user_id", "extra"])
        )
        value = draw(json_values)
        if field in ("quantity", "variant_id", "item"):
            body["items"] = [
                {**ORDER_BODY["items"][0], field: value} if field != "item" else value,  # type: ignore[index]
                *draw(st.lists(json_values, max_size=3)),
            ]
        else:
            body[field] = value
    return json.dumps(body).encode()


segments = st.one_of(
    st.sampled_from(NASTY).map(lambda s: urllib.parse.quote(s, safe="")),
    st.uuids().map(str),
    st.from_regex(r"[A-Za-z0-9._~:@!$&'()*+,;=-]{1,80}", fullmatch=True),
    st.binary(min_size=1, max_size=40).map(lambda b: urllib.parse.quote_from_bytes(b, safe="")),
)


@st.composite
def api_requests(draw: Any, real_ids: list[str]) -> tuple[str, str, bytes | None, dict[str, str]]:
    seg = draw(st.one_of(segments, st.sampled_from(real_ids)))
    route = draw(st.sampled_from(["create", "get", "list", "retry", "retry_alias", "cancel", "products"]))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(st.from_regex(r"[!-~]{0,100}", fullmatch=True))
    if route == "create":
        return "POST", "/v1/orders", draw(order_bodies()), headers
    if route == "get":
        return "GET", f"/v1/orders/{seg}", None, headers
    if route in ("list", "products"):
        params = draw(
            st.lists(st.tuples(st.sampled_from(["page_size", "page_token", "x"]), text), max_size=4)
        )
        query = "&".join(f"{k}={_q(v)}" for k, v in params)  # duplicate keys included
        return "GET", ("/v1/orders" if route == "list" else "/v1/products") + f"?{query}", None, headers
    body = json.dumps(
        draw(
            st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "provider": st.one_of(
                            st.sampled_from(["PROVIDER_VNPAY", "PROVIDER_COD", 99, -1]), text
                        ),
                        "return_url": text,
                        "reason": text,
                        "order_id": text,
                    },
                ),
                json_values,
            )
        )
    ).encode()
    path = {
        "retry": f"/v1/orders/{seg}:retryPayment",
        "retry_alias": f"/api/orders/{seg}/retry-payment",
        "cancel": f"/v1/orders/{seg}:cancel",
    }[route]
    return "POST", path, body, headers


def _bad_utf8(target: str) -> bool:
    """Whether the percent-decoded path or query is not UTF-8."""
    try:
        urllib.parse.unquote_to_bytes(target).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _known_nul_500(method: str, path: str, body: bytes | None, reply: HttpResult) -> bool:
    """The known bug of test_nul_in_free_text_is_refused: a cancel reason with NUL is a 500."""
    return (
        reply.status == 500
        and b'"internal error"' in reply.body
        and path.endswith(":cancel")
        and b"\\u0000" in (body or b"")
    )


def test_public_json_api_through_envoy(stack: Stack, watch: Watch, module_databases: tuple[str, str]) -> None:
    started = time.monotonic()
    order_conn = psycopg.connect(libpq_url(module_databases[1]), autocommit=True)
    order_conn.execute("UPDATE products SET stock = 1000000")
    tokens = [stack.keys.token(f"fuzz-user-{i}") for i in range(10)]
    # Real orders of these users, so that retry and cancel reach their own orders too.
    real_ids = [
        stack.api("POST", "/v1/orders", token, json.dumps(ORDER_BODY).encode()).json_body()["order"]["id"]
        for token in tokens * 2
    ]
    statuses: Counter[int] = Counter()
    known: Counter[str] = Counter()

    def orders() -> int:
        return int(order_conn.execute("SELECT count(*) FROM orders").fetchone()[0])  # type: ignore[index]

    @FUZZ
    @given(
        request=api_requests(real_ids),
        token=st.one_of(st.sampled_from(tokens), st.sampled_from(["", "garbage", tokens[0][:-4] + "AAAA"])),
    )
    def run(request: tuple[str, str, bytes | None, dict[str, str]], token: str) -> None:
        method, path, body, headers = request
        before = orders()
        reply = stack.api(method, path, token or None, body, **headers)
        statuses[reply.status] += 1
        assert reply.status != 0, reply
        if reply.status == 500 and b"Exception deserializing request!" in reply.body and _bad_utf8(path):
            known["invalid_utf8_500"] += 1  # test_invalid_utf8_in_api_parameters_is_a_400
        elif _known_nul_500(method, path, body, reply):
            known["nul_reason_500"] += 1
        else:
            assert reply.status < 500, (
                method,
                path[:200],
                body and body[:200],
                reply.status,
                reply.body[:300],
            )
        if token not in tokens and not path.startswith("/v1/products"):
            # Refused at the door: 401, or 400/404 from Envoy for a malformed path.
            assert 400 <= reply.status < 500, (method, path[:200], reply.status)
            assert orders() == before
        assert stack.alive()

    run()
    order_conn.close()
    assert healthy(stack.order.target) and healthy(stack.payment.target)
    report(
        "hostile_envoy_json_api",
        requests=sum(statuses.values()),
        statuses=dict(sorted(statuses.items())),
        known_bugs=dict(known),
        other_5xx=0,
        crashes=0,
        seconds=round(time.monotonic() - started, 1),
    )


# --- internal gRPC APIs directly -------------------------------------------------------------------

SAFE_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
int64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 99, 10**12, 2**63 - 1]))
int32 = st.integers(-(2**31), 2**31 - 1)


def test_payment_rpcs_over_grpc(stack: Stack, watch: Watch) -> None:
    started = time.monotonic()
    stub = payment_stub(stack.payment.target)
    codes: Counter[str] = Counter()

    valid = {
        "order_id": "ORD-1",
        "user_id": "u1",
        "amount": 150_000,
        "currency": "VND",
        "provider": 1,
        "description": "Thanh toan don hang 1",
        "client_ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "return_url": "https://shop.example/return",
        "request_id": "req-1",
    }
    hostile_fields = {
        "order_id": text,
        "user_id": text,
        "amount": int64,
        "currency": st.one_of(st.sampled_from(["VND", "", "USD"]), text),
        "provider": st.one_of(st.sampled_from([0, 1, 2, 5]), int32),
        "description": text,
        "client_ip": text,
        "user_agent": text,
        "return_url": text,
        "request_id": text,
    }

    @st.composite
    def create_fields(draw: Any) -> dict[str, Any]:
        """A valid request with one to three fields made hostile, or all of them."""
        if draw(st.integers(0, 4)) == 0:
            return draw(st.fixed_dictionaries(hostile_fields))
        fields = dict(valid, order_id=f"ORD-{draw(st.integers(0, 10**6))}")
        for name in draw(st.lists(st.sampled_from(sorted(hostile_fields)), min_size=1, max_size=3)):
            fields[name] = draw(hostile_fields[name])
        return fields

    real_ids = [create_payment(stub, f"FUZZ-RPC-{i}", 60_000 + i).payment.id for i in range(20)]

    @FUZZ
    @given(
        rpc=st.sampled_from(["create", "create", "create", "get", "by_order", "cancel"]),
        fields=create_fields(),
        other=st.one_of(text, st.uuids().map(str), st.sampled_from(real_ids)),
        reason=text,
    )
    def run(rpc: str, fields: dict[str, Any], other: str, reason: str) -> None:
        state = watch.state()
        try:
            if rpc == "create":
                stub.CreateOrGetPayment(ps.CreateOrGetPaymentRequest(**fields), timeout=10)
            elif rpc == "get":
                stub.GetPayment(ps.GetPaymentRequest(payment_id=other), timeout=10)
            elif rpc == "by_order":
                stub.GetPaymentByOrder(
                    ps.GetPaymentByOrderRequest(order_id=fields["order_id"], user_id=fields["user_id"]),
                    timeout=10,
                )
            else:
                stub.CancelPayment(ps.CancelPaymentRequest(payment_id=other, reason=reason), timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        codes[f"{rpc}:{code.name}"] += 1
        nul = "\x00" in (fields["user_agent"] if rpc == "create" else reason if rpc == "cancel" else "")
        if code == grpc.StatusCode.INTERNAL and nul:
            codes["known_bug_nul_internal"] += 1  # test_nul_in_free_text_is_refused
            assert watch.state() == state
            return
        assert code in SAFE_CODES, (rpc, code, fields, reason[:100])
        if code != grpc.StatusCode.OK or rpc in ("get", "by_order"):
            assert watch.state() == state, f"{rpc} refused with {code} yet wrote"
        assert stack.alive()

    run()
    assert healthy(stack.payment.target)
    report(
        "hostile_grpc_payment_rpcs",
        requests=sum(codes.values()),
        codes=dict(sorted(codes.items())),
        unexplained_internal_errors=0,
        seconds=round(time.monotonic() - started, 1),
    )


def test_order_rpcs_over_grpc(stack: Stack) -> None:
    started = time.monotonic()
    stub = order_service_pb2_grpc.OrderServiceStub(grpc.insecure_channel(stack.order.target))
    codes: Counter[str] = Counter()
    users = st.one_of(
        st.sampled_from(["u1", "u2", "u1", "", "x" * 65]), st.from_regex(r"[ -~]{0,80}", fullmatch=True)
    )

    def place(user: str) -> str:
        request = os_pb2.CreateOrderRequest(
            items=[os_pb2.CreateOrderItem(variant_id="mug-blue", quantity=1)],
            receiver_name="A",
            receiver_phone="0901234567",
            shipping_address="HCMC",
        )
        return str(stub.CreateOrder(request, metadata=[("x-user-id", user)], timeout=10).order.id)

    real_ids = [place(user) for user in ("u1", "u2") * 10]

    @FUZZ
    @given(
        rpc=st.sampled_from(["create", "get", "list", "retry", "cancel", "products"]),
        user=users,
        ident=st.one_of(text, st.sampled_from(real_ids)),
        items=st.lists(
            st.tuples(st.one_of(st.sampled_from(["mug-blue", "sticker-pack"]), text), int32), max_size=4
        ),
        strings=st.lists(text, min_size=4, max_size=4),
        number=int32,
        key=st.from_regex(r"[!-~]{0,90}", fullmatch=True),
    )
    def run(
        rpc: str,
        user: str,
        ident: str,
        items: list[tuple[str, int]],
        strings: list[str],
        number: int,
        key: str,
    ) -> None:
        metadata = [("x-user-id", user), ("idempotency-key", key or "k")]
        try:
            if rpc == "create":
                stub.CreateOrder(
                    os_pb2.CreateOrderRequest(
                        items=[os_pb2.CreateOrderItem(variant_id=v, quantity=q) for v, q in items],
                        receiver_name=strings[0],
                        receiver_phone=strings[1],
                        shipping_address=strings[2],
                        note=strings[3],
                    ),
                    metadata=metadata,
                    timeout=10,
                )
            elif rpc == "get":
                stub.GetOrder(os_pb2.GetOrderRequest(order_id=ident), metadata=metadata, timeout=10)
            elif rpc == "list":
                stub.ListOrders(
                    os_pb2.ListOrdersRequest(page_size=number, page_token=ident),
                    metadata=metadata,
                    timeout=10,
                )
            elif rpc == "retry":
                stub.RetryPayment(
                    os_pb2.RetryPaymentRequest(order_id=ident, provider=number % 8, return_url=strings[0]),
                    metadata=metadata,
                    timeout=10,
                )
            elif rpc == "cancel":
                stub.CancelOrder(
                    os_pb2.CancelOrderRequest(order_id=ident, reason=strings[0]),
                    metadata=metadata,
                    timeout=10,
                )
            else:
                stub.ListProducts(os_pb2.ListProductsRequest(page_size=number, page_token=ident), timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        codes[f"{rpc}:{code.name}"] += 1
        if code == grpc.StatusCode.INTERNAL and rpc == "cancel" and "\x00" in strings[0]:
            codes["known_bug_nul_internal"] += 1  # test_nul_in_free_text_is_refused
            return
        assert code in SAFE_CODES, (rpc, code, user, ident[:100], strings[0][:100])
        assert stack.alive()

    run()
    assert healthy(stack.order.target)
    report(
        "hostile_grpc_order_rpcs",
        requests=sum(codes.values()),
        codes=dict(sorted(codes.items())),
        unexplained_internal_errors=0,
        seconds=round(time.monotonic() - started, 1),
    )


def _finish(stack: Stack, watch: Watch, name: str, before: Counter[str], started: float) -> None:
    assert stack.alive() and healthy(stack.payment.target) and healthy(stack.order.target)
    assert stack.envoy.health_flags("payment_service") == ["healthy"]
    figures = Counter(watch.figures)
    figures.subtract(before)
    report(
        name,
        requests=figures["requests"],
        journaled=figures["journaled"],
        refused_by_envoy=figures["refused_by_envoy"],
        verified_state_changes=figures["verified_changes"],
        unverified_state_changes=0,
        outcomes={k: v for k, v in sorted(figures.items()) if ":" in k and v},
        known_bug_nul=figures["known_bug_nul"],
        known_bug_signed_overlong_99=figures["known_bug_signed_overlong_99"],
        http_5xx=0,
        crashes=0,
        seconds=round(time.monotonic() - started, 1),
    )


def test_journal_is_consistent_after_fuzzing(watch: Watch) -> None:
    """Every journal row the fuzzing left is well-formed: a bounded path, an
    outcome, and a verify error exactly when it did not verify."""
    bad = watch.conn.execute(
        "SELECT id, outcome, verified, verify_error FROM callback_journal"
        " WHERE outcome = '' OR length(path) > 2048 OR verified <> (verify_error IS NULL)"
    ).fetchall()
    assert bad == []
    total = watch.journal()
    assert total > 0
    report("hostile_journal_check", journal_rows=total, malformed=len(bad))


# --- bugs the fuzzing found, pinned ----------------------------------------------------------------


def test_rejected_callback_with_nul_is_journaled(stack: Stack, watch: Watch) -> None:
    before = watch.journal()
    reply = raw_http(stack.port, _get("/webhooks/vnpay/ipn", b"vnp_TxnRef=%00&vnp_SecureHash=00"))
    assert reply.rsp_code == "97"
    stub = payment_stub(stack.payment.target)
    stub.HandleCallback(
        httpbody_pb2.HttpBody(content_type="\x00"),
        metadata=[("x-envoy-original-path", "/webhooks/vnpay/ipn?vnp_TxnRef=1")],
        timeout=10,
    )
    signed = signed_vnpay_query(vnpay_ipn_params("\x00", 100_000), SECRET).encode()
    page = raw_http(stack.port, _get("/webhooks/vnpay/return", signed))
    # Control characters are refused before any lookup: a 400 page, journaled.
    assert (page.status, watch.journal() - before) == (400, 3), page


API_TARGETS_WITH_INVALID_UTF8 = [
    ("GET", "/v1/products?page_token=%FF"),  # public: no token needed
    ("GET", "/v1/orders/%80"),
    ("GET", "/v1/orders?page_token=%FF"),
    ("POST", "/v1/orders/%FF:retryPayment"),
    ("POST", "/api/orders/%FF/retry-payment"),
    ("POST", "/v1/orders/%FF:cancel"),
]


def test_invalid_utf8_in_api_parameters_is_a_400(stack: Stack) -> None:
    token = stack.keys.token("u1")
    statuses = {
        target: stack.api(method, target, token).status for method, target in API_TARGETS_WITH_INVALID_UTF8
    }
    assert set(statuses.values()) == {400}, statuses


# Column widths of payments (bank_code 32, card_type 32, bank_transaction_no 64,
# provider_transaction_id 100, provider_response_code 16), each exceeded by one.
LONG_GATEWAY_FIELDS = {
    "vnp_BankCode": "B" * 33,
    "vnp_CardType": "C" * 33,
    "vnp_BankTranNo": "T" * 65,
    "vnp_TransactionNo": "9" * 101,
    "vnp_ResponseCode": "0" * 17,
}


def test_signed_ipn_with_long_gateway_fields_is_recorded(stack: Stack) -> None:
    stub = payment_stub(stack.payment.target)
    answers = {}
    for i, (field, value) in enumerate(LONG_GATEWAY_FIELDS.items()):
        payment = create_payment(stub, f"LONG-{i}", 100_000).payment
        params = vnpay_ipn_params(payment.provider_reference, 100_000)
        params[field] = value
        query = signed_vnpay_query(params, SECRET).encode()
        answers[field] = raw_http(stack.port, _get("/webhooks/vnpay/ipn", query)).rsp_code
    assert set(answers.values()) == {"00"}, answers


def test_nul_in_free_text_is_refused(stack: Stack) -> None:
    token = stack.keys.token("nul-user")
    order = stack.api("POST", "/v1/orders", token, json.dumps(ORDER_BODY).encode()).json_body()["order"]
    cancel = stack.api("POST", f"/v1/orders/{order['id']}:cancel", token, b'{"reason":"a\\u0000b"}')
    stub = payment_stub(stack.payment.target)
    codes = {"cancel over the ingress": cancel.status}
    try:
        create_payment(stub, "NUL-1", 100_000)
        stub.CreateOrGetPayment(
            ps.CreateOrGetPaymentRequest(
                order_id="NUL-2", user_id="u1", amount=100_000, provider=1, user_agent="a\x00"
            ),
            timeout=10,
        )
        codes["CreateOrGetPayment"] = 0
    except grpc.RpcError as error:
        codes["CreateOrGetPayment"] = error.code().value[0]
    payment = create_payment(stub, "NUL-3", 100_000).payment
    try:
        stub.CancelPayment(ps.CancelPaymentRequest(payment_id=payment.id, reason="a\x00b"), timeout=10)
        codes["CancelPayment"] = 0
    except grpc.RpcError as error:
        codes["CancelPayment"] = error.code().value[0]
    invalid_argument = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert codes == {
        "cancel over the ingress": 400,
        "CreateOrGetPayment": invalid_argument,
        "CancelPayment": invalid_argument,
    }, codes
