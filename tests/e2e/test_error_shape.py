"""One error shape through the real Envoy: every error the ingress answers,
Envoy's own and the services', is JSON {"code": <gRPC code number>,
"message": "...", "details": [...]} with a specific message and filled
details; the gateways' own replies on /webhooks/ pass verbatim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from ingress.envoy import ERROR_DOMAIN, PAYMENT_CLUSTER, EnvoyProcess, IngressSettings
from paykit import grpc_errors
from tests.e2e.client import Reply, send
from tests.e2e.conftest import EchoUpstream, Stack

JSON = {"Content-Type": "application/json"}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def code(name: str) -> int:
    return int(grpc.StatusCode[name].value[0])


def assert_error(
    reply: Reply, status: int, code_name: str, reason: str, *, domain: str = ERROR_DOMAIN, says: str = ""
) -> dict[str, Any]:
    """The reply is the one error shape, with an ErrorInfo of `reason`."""
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json"), reply
    error = reply.json()
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code(code_name), error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert says in error["message"], error
    assert error["details"] and all("@type" in d for d in error["details"]), error
    infos = [d for d in error["details"] if d["@type"] == ERROR_INFO]
    assert [(i["reason"], i["domain"]) for i in infos] == [(reason, domain)], error
    reply.assert_no_grpc_headers()
    return dict(error)


def post(stack: Stack, path: str, body: bytes, token: str | None = None) -> Reply:
    headers = {**JSON, **({"Authorization": f"Bearer {token}"} if token else {})}
    return send(stack.envoy, "POST", path, body, headers)


def get(stack: Stack, path: str, token: str | None = None) -> Reply:
    return send(stack.envoy, "GET", path, headers={"Authorization": f"Bearer {token}"} if token else None)


# --- Envoy's own errors, through the full stack ------------------------------------------------------


def test_unknown_routes_and_wrong_methods(stack: Stack) -> None:
    assert_error(get(stack, "/nope?x=1"), 404, "NOT_FOUND", "NOT_FOUND", says="GET /nope")
    assert_error(get(stack, "/"), 404, "NOT_FOUND", "NOT_FOUND", says="GET /")
    wrong = send(stack.envoy, "DELETE", "/v1/products")
    assert_error(wrong, 404, "NOT_FOUND", "NOT_FOUND", says="DELETE /v1/products")
    assert_error(get(stack, "/webhooks/payos"), 404, "NOT_FOUND", "NOT_FOUND", says="GET /webhooks/payos")


def test_escaped_slash_in_the_path(stack: Stack) -> None:
    assert_error(get(stack, "/v1/orders%2Fx"), 400, "INVALID_ARGUMENT", "PATH_NOT_ALLOWED", says="escaped")


def test_transcoder_failures(stack: Stack) -> None:
    token = stack.keys.token("u1")
    malformed = post(stack, "/v1/orders", b'{"items": [', token)
    assert_error(malformed, 400, "INVALID_ARGUMENT", "INVALID_REQUEST", says="invalid request: ")
    wrong_type = post(
        stack, "/v1/orders", b'{"items": [{"variant_id": "mug-blue", "quantity": "two"}]}', token
    )
    assert_error(
        wrong_type, 400, "INVALID_ARGUMENT", "INVALID_REQUEST", says='items[0].quantity: invalid value "two"'
    )
    not_a_list = post(stack, "/v1/orders", b'{"items": "mug"}', token)
    assert_error(not_a_list, 400, "INVALID_ARGUMENT", "INVALID_REQUEST", says="items")
    enum = post(stack, "/v1/orders/some-order:retryPayment", b'{"provider": "PROVIDER_BITCOIN"}', token)
    assert_error(enum, 400, "INVALID_ARGUMENT", "INVALID_REQUEST", says="PROVIDER_BITCOIN")
    query = get(stack, "/v1/products?page_size=many")
    assert_error(query, 400, "INVALID_ARGUMENT", "INVALID_REQUEST", says="many")


def test_body_and_header_limits(stack: Stack) -> None:
    limit = IngressSettings().max_request_body_bytes
    for path in ("/v1/orders", "/webhooks/payos"):
        big = post(stack, path, b"x" * (limit + 1), stack.keys.token("u1"))
        assert_error(big, 413, "RESOURCE_EXHAUSTED", "BODY_TOO_LARGE", says="64 KiB")
    headers = get(stack, "/v1/products?x=" + "a" * 20_000)
    assert_error(headers, 431, "RESOURCE_EXHAUSTED", "HEADERS_TOO_LARGE", says="8 KiB")


def test_jwt_failures(stack: Stack) -> None:
    assert_error(
        get(stack, "/v1/orders"), 401, "UNAUTHENTICATED", "TOKEN_MISSING", says="Authorization: Bearer"
    )
    garbage = get(stack, "/v1/orders", "abc.def.ghi")
    assert_error(garbage, 401, "UNAUTHENTICATED", "TOKEN_INVALID", says="the bearer token was refused: Jwt")
    expired = get(stack, "/v1/orders", stack.keys.token("u1", ttl_seconds=-600))
    assert_error(expired, 401, "UNAUTHENTICATED", "TOKEN_INVALID", says="expired")
    # jwt_authn says 403 for another audience; the ingress answers 401 like the rest.
    audience = get(stack, "/v1/orders", stack.keys.token("u1", audience="someone-else"))
    assert_error(audience, 401, "UNAUTHENTICATED", "TOKEN_INVALID", says="Audiences")
    issuer = get(stack, "/v1/orders", stack.keys.token("u1", issuer="someone-else"))
    assert_error(issuer, 401, "UNAUTHENTICATED", "TOKEN_INVALID", says="the bearer token was refused")


# --- the services' errors, through the transcoder ----------------------------------------------------


def test_validation_errors_keep_field_violations_with_reasons(stack: Stack) -> None:
    reply = post(stack, "/v1/orders", b'{"items": []}', stack.keys.token("u1"))
    error = assert_error(reply, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", domain=grpc_errors.ERROR_DOMAIN)
    (bad,) = [d for d in error["details"] if d["@type"] == BAD_REQUEST]
    violations = {v["field"]: v for v in bad["field_violations"]}
    assert violations["items"]["reason"] == "REQUIRED"
    assert violations["receiver_phone"]["reason"] == "INVALID_FORMAT"
    assert all(v["reason"] and v["description"] for v in violations.values()), violations
    assert "items: at least one item is required" in error["message"]


def test_service_not_found_has_details(stack: Stack) -> None:
    reply = get(stack, "/v1/orders/00000000-0000-0000-0000-000000000000", stack.keys.token("u1"))
    assert_error(reply, 404, "NOT_FOUND", "NOT_FOUND", domain=grpc_errors.ERROR_DOMAIN, says="not found")


def test_webhook_errors_from_the_service_and_replies_verbatim(stack: Stack) -> None:
    refused = post(stack, "/webhooks/payos", b'{"code":"00"}')
    assert_error(
        refused,
        400,
        "FAILED_PRECONDITION",
        "PROVIDER_NOT_ENABLED",
        domain=grpc_errors.ERROR_DOMAIN,
        says="PAYOS",
    )
    ack = get(stack, "/webhooks/vnpay/ipn")
    assert ack.status == 200, ack
    assert ack.body == b'{"RspCode":"97","Message":"Invalid signature"}'


# --- upstream failures, through the echoing upstream ---------------------------------------------------


def test_gateway_reply_with_an_error_status_passes_verbatim(echo_ingress: EnvoyProcess) -> None:
    reply = send(echo_ingress, "GET", "/webhooks/vnpay/ipn?status=400")
    assert reply.status == 400, reply
    assert set(reply.json()) == {"target", "content_type", "body_sha256", "metadata"}


@pytest.fixture
def impatient_ingress(echo_upstream: EchoUpstream, tmp_path: Path) -> Iterator[EnvoyProcess]:
    settings = IngressSettings(
        ingress_port=0,
        admin_port=0,
        payment_upstream_port=echo_upstream.port,
        route_timeout_seconds=0.5,
        development=True,
    )
    with EnvoyProcess(settings, tmp_path) as envoy:
        envoy.wait_healthy(PAYMENT_CLUSTER)
        yield envoy


def test_upstream_timeout(impatient_ingress: EnvoyProcess) -> None:
    reply = send(impatient_ingress, "GET", "/webhooks/vnpay/ipn?sleep=2")
    assert_error(reply, 504, "DEADLINE_EXCEEDED", "UPSTREAM_TIMEOUT", says="within 0.5 s")


def test_upstream_unavailable(echo_upstream: EchoUpstream, tmp_path: Path) -> None:
    from tests.e2e.conftest import _free_port

    settings = IngressSettings(
        ingress_port=0, admin_port=0, payment_upstream_port=_free_port(), development=True
    )
    with EnvoyProcess(settings, tmp_path) as envoy:
        reply = send(envoy, "GET", "/webhooks/vnpay/ipn")
    error = assert_error(reply, 503, "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", says="retry later")
    assert {"@type": RETRY_INFO, "retry_delay": "1s"} in error["details"]


def test_envoy_error_bodies_are_one_json_document(stack: Stack) -> None:
    # Exactly one document (the formatter ends it with a newline), no text/plain anywhere.
    reply = get(stack, "/nope")
    assert json.loads(reply.body.decode()) == reply.json()
    assert reply.headers["content-type"] == "application/json"
