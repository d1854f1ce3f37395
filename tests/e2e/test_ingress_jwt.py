"""Bearer tokens from a real identity provider, through the real Envoy: a
JWKS file (JWT_JWKS_FILE) or the provider's JWKS endpoint (JWT_JWKS_URL),
never the development keys outside development."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ingress import auth
from ingress.envoy import ORDER_CLUSTER, PAYMENT_CLUSTER, EnvoyProcess, IngressSettings
from payment_service.entrypoints import server as grpc_server
from tests.e2e.client import Reply, send

ISSUER = "https://idp.example.com/"
AUDIENCE = "shop-api"


def _start(
    env: dict[str, str], payment: grpc_server.RunningServer, order: Any, workdir: Path
) -> EnvoyProcess:
    settings = replace(
        IngressSettings.from_env(env),
        ingress_port=0,
        admin_port=0,
        payment_upstream_port=payment.port,
        order_upstream_port=order.port,
    )
    assert not settings.needs_development_keys
    envoy = EnvoyProcess(settings, workdir).start()
    try:
        envoy.wait_healthy(PAYMENT_CLUSTER)
        envoy.wait_healthy(ORDER_CLUSTER)
    except BaseException:
        envoy.stop()
        raise
    return envoy


def _orders(envoy: EnvoyProcess, token: str) -> Reply:
    return send(envoy, "GET", "/v1/orders", headers={"Authorization": f"Bearer {token}"})


def _assert_only_the_providers_tokens(envoy: EnvoyProcess, provider: auth.DevKeys, tmp_path: Path) -> None:
    accepted = _orders(envoy, provider.token("alice", issuer=ISSUER, audience=AUDIENCE))
    assert accepted.status == 200, accepted
    assert accepted.json()["orders"] == []
    # The development keys (DATA_DIR/auth) sign a token the ingress refuses,
    # even with the provider's issuer and audience.
    development = auth.load_or_create(tmp_path / "data")
    for token in (
        development.token("alice", issuer=ISSUER, audience=AUDIENCE),
        development.token("alice"),
        provider.token("alice"),  # the provider's key, the development issuer
    ):
        refused = _orders(envoy, token)
        assert refused.status == 401, refused
        assert refused.json()["code"] == 16


def test_tokens_signed_by_a_key_from_the_jwks_file(
    server: grpc_server.RunningServer, order_server: Any, tmp_path: Path
) -> None:
    provider = auth.generate_keys()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(provider.jwks))
    env = {"JWT_JWKS_FILE": str(jwks), "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}
    envoy = _start(env, server, order_server, tmp_path / "envoy")
    try:
        _assert_only_the_providers_tokens(envoy, provider, tmp_path)
    finally:
        envoy.stop()


@pytest.fixture
def jwks_endpoint() -> Iterator[tuple[str, auth.DevKeys, list[str]]]:
    """An identity provider's JWKS endpoint on loopback; records each fetch."""
    provider = auth.generate_keys()
    body = json.dumps(provider.jwks).encode()
    fetches: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json", provider, fetches
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_tokens_checked_against_the_jwks_endpoint(
    server: grpc_server.RunningServer,
    order_server: Any,
    tmp_path: Path,
    jwks_endpoint: tuple[str, auth.DevKeys, list[str]],
) -> None:
    url, provider, fetches = jwks_endpoint
    env = {"JWT_JWKS_URL": url, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE}
    envoy = _start(env, server, order_server, tmp_path / "envoy")
    try:
        _assert_only_the_providers_tokens(envoy, provider, tmp_path)
    finally:
        envoy.stop()
    assert fetches and set(fetches) == {"/.well-known/jwks.json"}
