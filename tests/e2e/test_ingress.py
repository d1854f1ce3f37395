"""The public ingress, through the real Envoy: what reaches HandleCallback,
what it answers, and what never gets in."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from payment.v1 import payment_service_pb2, payment_service_pb2_grpc

from ingress import auth
from ingress.envoy import (
    EXAMPLE_PATH,
    JWKS_CLUSTER,
    LUA_RESPONSE_CODE,
    PAYMENT_CLUSTER,
    STRIPPED_RESPONSE_HEADERS,
    EnvoyProcess,
    IngressSettings,
    envoy_binary,
    render_config,
    render_example,
    render_yaml,
)
from paykit.settings import ConfigError
from payment_service.entrypoints import server as grpc_server
from tests.e2e.client import send

ROOT = Path(__file__).resolve().parents[2]


# --- through the real payment server ---------------------------------------------------------------


def test_vnpay_ipn_reaches_handle_callback(ingress: EnvoyProcess) -> None:
    reply = send(ingress, "GET", "/webhooks/vnpay/ipn")
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["RspCode"] == "97"  # no signature
    reply.assert_no_grpc_headers()


def test_grpc_error_becomes_json_status(ingress: EnvoyProcess) -> None:
    reply = send(ingress, "POST", "/webhooks/payos", b'{"code":"00"}', {"Content-Type": "application/json"})
    assert reply.status == 400, reply
    error = reply.json()
    assert error["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "not enabled" in error["message"]
    reply.assert_no_grpc_headers()


@pytest.mark.parametrize("method", ["CreateOrGetPayment", "GetPayment", "GetPaymentByOrder", "CancelPayment"])
def test_internal_rpcs_are_not_routed(ingress: EnvoyProcess, method: str) -> None:
    target = f"/payment.v1.PaymentService/{method}"
    reply = send(ingress, "POST", target, b'{"payment_id":"x"}', {"Content-Type": "application/json"})
    assert reply.status == 404, reply


@pytest.mark.parametrize(
    "target",
    [
        "/webhooks/../payment.v1.PaymentService/GetPayment",
        "/webhooks/%2e%2e/payment.v1.PaymentService/GetPayment",
        "/webhooks/%2E%2E/payment.v1.PaymentService/GetPayment",
        "//payment.v1.PaymentService/GetPayment",
        "/webhooks//../payment.v1.PaymentService/GetPayment",
        "/webhooks/..%2Fpayment.v1.PaymentService/GetPayment",
        "/webhooks%2F..%2Fpayment.v1.PaymentService%2FGetPayment",
        "/webhooks/vnpay/../../payment.v1.PaymentService/GetPayment",
    ],
)
def test_path_tricks_do_not_reach_internal_rpcs(ingress: EnvoyProcess, target: str) -> None:
    for method in ("GET", "POST"):
        reply = send(ingress, method, target, b"{}", {"Content-Type": "application/json"})
        assert 400 <= reply.status < 500, (method, reply)


@pytest.mark.parametrize("rpc", ["GetPayment", "CreateOrGetPayment"])
def test_native_grpc_is_refused(ingress: EnvoyProcess, rpc: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{ingress.ingress_port}") as channel:
        stub = payment_service_pb2_grpc.PaymentServiceStub(channel)  # type: ignore[no-untyped-call]
        request: Any = (
            payment_service_pb2.GetPaymentRequest(payment_id="00000000-0000-0000-0000-000000000000")
            if rpc == "GetPayment"
            else payment_service_pb2.CreateOrGetPaymentRequest(order_id="ORD-1", user_id="u1", amount=150000)
        )
        with pytest.raises(grpc.RpcError) as raised:
            getattr(stub, rpc)(request, timeout=5)
    # Envoy's direct 404 reaches grpcio as UNIMPLEMENTED.
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_native_grpc_to_a_public_path_is_refused(ingress: EnvoyProcess) -> None:
    reply = send(
        ingress, "POST", "/webhooks/payos", b"\x00\x00\x00\x00\x00", {"Content-Type": "application/grpc"}
    )
    # Envoy words its direct 404 for a gRPC caller as gRPC: UNIMPLEMENTED, no body.
    assert reply.headers.get("grpc-status") == str(grpc.StatusCode.UNIMPLEMENTED.value[0]), reply
    assert reply.body == b""


def test_grpcurl_cannot_list_services(ingress: EnvoyProcess) -> None:
    grpcurl = Path(sys.executable).parent / "grpcurl"
    result = subprocess.run(
        [str(grpcurl), "-plaintext", "-max-time", "5", f"127.0.0.1:{ingress.ingress_port}", "list"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert b"PaymentService" not in result.stdout


def test_oversized_query_is_refused(ingress: EnvoyProcess) -> None:
    reply = send(ingress, "GET", "/webhooks/vnpay/ipn?vnp_OrderInfo=" + "a" * 20_000)
    assert reply.status == 431, reply


def test_oversized_body_is_refused(ingress: EnvoyProcess) -> None:
    reply = send(ingress, "POST", "/webhooks/payos", b"x" * 2_000_000, {"Content-Type": "application/json"})
    assert reply.status == 413, reply


def test_body_just_over_the_limit_is_refused(ingress: EnvoyProcess) -> None:
    limit = IngressSettings().max_request_body_bytes
    reply = send(ingress, "POST", "/webhooks/payos", b"x" * (limit + 1), {"Content-Type": "application/json"})
    assert reply.status == 413, reply


def test_query_just_under_the_header_cap_is_always_answered(ingress: EnvoyProcess) -> None:
    statuses = {
        send(ingress, "GET", "/webhooks/vnpay/ipn?vnp_OrderInfo=" + "a" * 8000).status for _ in range(40)
    }
    assert statuses == {200}


@pytest.mark.parametrize(
    "query",
    [
        "vnp_TxnRef=%FF%FE&vnp_SecureHash=00",  # invalid UTF-8
        "vnp_OrderInfo=a%2Fb%2e%2E&vnp_SecureHash=00",  # escaped slash and dots: only the path is refused
        "vnp_TxnRef=%ZZ&%&vnp_SecureHash",  # malformed escapes, bare keys
        "data=%FF&content_type=%FF",  # HttpBody's own field names
    ],
)
def test_hostile_queries_reach_the_handler(ingress: EnvoyProcess, query: str) -> None:
    reply = send(ingress, "GET", f"/webhooks/vnpay/ipn?{query}")
    assert reply.status == 200, reply
    assert reply.json()["RspCode"] == "97"


@pytest.mark.parametrize("target", ["/", "/health", "/v1/payments", "/webhooks", "/webhooks/unknown"])
def test_other_paths_are_not_found(ingress: EnvoyProcess, target: str) -> None:
    reply = send(ingress, "GET", target)
    assert reply.status == 404
    assert reply.json()["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert reply.json()["message"] == f"no API method answers GET {target}"


def test_wrong_method_on_a_callback_path_is_not_found(ingress: EnvoyProcess) -> None:
    assert send(ingress, "GET", "/webhooks/payos").status == 404
    assert send(ingress, "POST", "/webhooks/vnpay/ipn", b"{}").status == 404


def test_unhealthy_upstream_gets_503_quickly(
    ingress: EnvoyProcess, server: grpc_server.RunningServer
) -> None:
    server.health.enter_graceful_shutdown()
    deadline = time.monotonic() + 5
    while True:
        started = time.monotonic()
        reply = send(ingress, "GET", "/webhooks/vnpay/ipn")
        assert time.monotonic() - started < 2, "a request hung"
        if reply.status == 503:
            break
        assert reply.status == 200, reply
        assert time.monotonic() < deadline, "upstream still used 5 s after NOT_SERVING"
        time.sleep(0.1)
    error = reply.json()
    assert error["code"] == grpc.StatusCode.UNAVAILABLE.value[0], error
    assert error["message"] == "the service is unavailable, retry later: no healthy upstream"


# --- through the echoing upstream --------------------------------------------------------------------


def test_query_reaches_the_handler_byte_for_byte(echo_ingress: EnvoyProcess) -> None:
    target = "/webhooks/vnpay/ipn?vnp_Amount=1000000&vnp_OrderInfo=Thanh+toan%3A+%C4%91%2F1&x=%FF&y=%7e&z"
    reply = send(echo_ingress, "GET", target, headers={"X-Envoy-Original-Path": "/webhooks/vnpay/ipn?forged"})
    assert reply.status == 200, reply
    assert reply.json()["target"] == target  # and the client's own value was overwritten


def test_post_body_reaches_the_handler_byte_for_byte(echo_ingress: EnvoyProcess) -> None:
    body = b'{ "b":1,"a" : "\\u00e9\xc3\xa9", "c":[ ] }\xff'
    content_type = "application/json; charset=UTF-8"
    reply = send(echo_ingress, "POST", "/webhooks/momo/ipn", body, {"Content-Type": content_type})
    assert reply.status == 200, reply
    echoed = reply.json()
    assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echoed["content_type"] == content_type


def test_status_override_204_has_no_body_and_keeps_the_connection_usable(echo_ingress: EnvoyProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", echo_ingress.ingress_port, timeout=10)
    try:
        # The echo answers with a JSON body even for 204: the ingress must drop it.
        first = send(echo_ingress, "POST", "/webhooks/momo/ipn?status=204", b"{}", connection=connection)
        second = send(echo_ingress, "GET", "/webhooks/vnpay/ipn?after=204", connection=connection)
    finally:
        connection.close()
    assert first.status == 204, first
    assert first.body == b""
    assert "content-length" not in first.headers
    assert "x-http-status" not in first.headers
    first.assert_no_grpc_headers()
    assert second.status == 200, second
    assert second.json()["target"] == "/webhooks/vnpay/ipn?after=204"


def test_status_override_redirect_keeps_location(echo_ingress: EnvoyProcess) -> None:
    reply = send(echo_ingress, "GET", "/webhooks/vnpay/return?status=303&location=https://shop.example/r")
    assert reply.status == 303, reply
    assert reply.headers["location"] == "https://shop.example/r"
    assert "x-http-status" not in reply.headers
    reply.assert_no_grpc_headers()


@pytest.mark.parametrize("bogus", ["abc", "99", "1000", "101", "600"])
def test_bogus_status_override_is_ignored(echo_ingress: EnvoyProcess, bogus: str) -> None:
    reply = send(echo_ingress, "GET", f"/webhooks/vnpay/ipn?status={bogus}")
    assert reply.status == 200, reply
    assert "x-http-status" not in reply.headers


def test_echo_grpc_error_becomes_json_without_grpc_headers(echo_ingress: EnvoyProcess) -> None:
    reply = send(echo_ingress, "GET", "/webhooks/vnpay/ipn?fail=1")
    assert reply.status == 400, reply
    assert reply.json() == {"code": 9, "message": "echo: provider is not enabled", "details": []}
    reply.assert_no_grpc_headers()


def test_success_has_no_grpc_headers(echo_ingress: EnvoyProcess) -> None:
    reply = send(echo_ingress, "GET", "/webhooks/vnpay/ipn?ok=1")
    assert reply.status == 200, reply
    reply.assert_no_grpc_headers()


def test_envoy_logs_nothing_while_serving(echo_ingress: EnvoyProcess) -> None:
    # A failing Lua script only logs (the reply goes out unmodified), so the
    # log is where such a regression shows.
    for target in (
        "/webhooks/vnpay/ipn?status=204",
        "/webhooks/vnpay/return?status=303",
        "/webhooks/x?fail=1",
    ):
        send(echo_ingress, "GET", target)
    send(echo_ingress, "POST", "/webhooks/payos?fail=1", b"{}")
    assert echo_ingress.log_path.read_text().strip() == ""


# --- configuration and process -----------------------------------------------------------------------


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    typed: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return typed


def test_render_config_shape() -> None:
    config = render_config(IngressSettings(payment_upstream_port=50999, development=True, pages=True))
    hcm = _hcm(config)
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.router",
    ]
    assert "access_log" not in hcm
    assert hcm["normalize_path"] and hcm["merge_slashes"] and hcm["use_remote_address"]
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    first = routes[0]
    assert first["direct_response"] == {"status": 404}
    assert first["match"]["headers"][0]["string_match"]["prefix"] == "application/grpc"
    assert [(r["match"]["prefix"], r["route"]["cluster"]) for r in routes[1:4]] == [
        ("/webhooks/", PAYMENT_CLUSTER),
        ("/v1/", "order_service"),
        ("/api/", "order_service"),
    ]
    # /admin/ reaches the payment service only with the admin claim's header;
    # otherwise Envoy answers 403 itself. The pages go to the web app untranscoded.
    admin, refused, *pages = routes[4:]
    assert admin["match"]["headers"] == [{"name": "x-payments-admin", "string_match": {"exact": "true"}}]
    assert (admin["match"]["prefix"], admin["route"]["cluster"]) == ("/admin/", PAYMENT_CLUSTER)
    assert (refused["match"], refused["direct_response"]["status"]) == ({"prefix": "/admin/"}, 403)
    assert [(r["match"]["prefix"], r["route"]["cluster"]) for r in pages] == [
        ("/shop/", "web"),
        ("/console/", "web"),
    ]
    for route in pages:
        assert route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["disabled"]
    assert (
        'handle:headers():remove("x-user-id")'
        in hcm["http_filters"][0]["typed_config"]["default_source_code"]["inline_string"]
    )
    assert (
        'handle:headers():remove("x-payments-admin")'
        in hcm["http_filters"][0]["typed_config"]["default_source_code"]["inline_string"]
    )
    with_jwt = _hcm(render_config(IngressSettings(jwks_json='{"keys": []}')))
    assert [f["name"] for f in with_jwt["http_filters"]][:2] == [
        "envoy.filters.http.lua",
        "envoy.filters.http.jwt_authn",
    ]
    lua = hcm["http_filters"][0]["typed_config"]["default_source_code"]["inline_string"]
    assert lua == LUA_RESPONSE_CODE
    assert "envoy_on_response" in lua and 'headers:replace(":status", status)' in lua
    for name in ("x-http-status", *STRIPPED_RESPONSE_HEADERS):
        assert f'"{name}"' in lua
    cluster = config["static_resources"]["clusters"][0]
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 50999}
    }
    assert cluster["common_lb_config"]["healthy_panic_threshold"] == {"value": 0.0}
    assert cluster["health_checks"][0]["grpc_health_check"] == {"service_name": "payment.v1.PaymentService"}


def test_render_yaml_round_trips() -> None:
    settings = IngressSettings(jwks_json=json.dumps(auth.generate_keys().jwks))
    assert yaml.safe_load(render_yaml(settings)) == render_config(settings)


def _validate(config_yaml: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.yaml"
    path.write_text(config_yaml)
    return subprocess.run(
        [
            str(envoy_binary()),
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-c",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


JWKS = json.dumps(auth.generate_keys().jwks)
JWT_SETTINGS = {
    "development, no keys": IngressSettings(development=True),
    "inline JWKS": IngressSettings(jwks_json=JWKS),
    "JWKS endpoint over https": IngressSettings(jwks_url="https://idp.example.com/.well-known/jwks.json"),
    "JWKS endpoint by address": IngressSettings(jwks_url="http://10.0.0.7:8081/jwks"),
    "upstreams by name": IngressSettings(
        jwks_json=JWKS, payment_upstream_host="payment.payments.svc", order_upstream_host="order"
    ),
}


@pytest.mark.parametrize("name", list(JWT_SETTINGS))
def test_envoy_accepts_the_rendered_config(name: str, tmp_path: Path) -> None:
    result = _validate(render_yaml(JWT_SETTINGS[name]), tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_example_configuration_loads_in_envoy() -> None:
    # As the README says to run it: from the repository root, where its
    # relative descriptor path points.
    result = subprocess.run(
        [
            str(envoy_binary()),
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-c",
            str(EXAMPLE_PATH.relative_to(ROOT)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert EXAMPLE_PATH.read_text() == render_example()
    assert str(ROOT) not in EXAMPLE_PATH.read_text()  # nothing of this machine in it


def test_settings_from_env() -> None:
    settings = IngressSettings.from_env(
        {
            "INGRESS_PORT": "18080",
            "ENVOY_ADMIN_PORT": "0",
            "PAYMENT_GRPC_PORT": "50052",
            "INGRESS_HOST": "::1",
        }
    )
    assert (settings.ingress_port, settings.admin_port, settings.payment_upstream_port) == (18080, 0, 50052)
    assert settings.host == "::1"
    assert not settings.development
    assert IngressSettings.from_env({}) == IngressSettings()
    assert IngressSettings.from_env({"PAYMENTS_ENV": "development"}).needs_development_keys


def test_public_bind_is_separate_from_admin_and_upstreams() -> None:
    settings = IngressSettings.from_env({"INGRESS_HOST": "0.0.0.0", "PAYMENT_GRPC_HOST": "0.0.0.0"})
    config = render_config(settings.with_jwks({"keys": []}))
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    hosts = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        for c in config["static_resources"]["clusters"]
    }
    # A wildcard bind of the service is no address to connect to: loopback.
    assert hosts["payment_service"]["socket_address"]["address"] == "127.0.0.1"
    assert hosts["order_service"]["socket_address"]["address"] == "127.0.0.1"


def test_upstream_hosts() -> None:
    settings = IngressSettings.from_env(
        {
            "PAYMENT_UPSTREAM_HOST": "payment.internal",
            "PAYMENT_GRPC_HOST": "10.0.0.5",
            "ORDER_GRPC_HOST": "10.0.0.6",
        }
    )
    assert (settings.payment_upstream_host, settings.order_upstream_host) == ("payment.internal", "10.0.0.6")
    clusters = {
        c["name"]: c for c in render_config(settings.with_jwks({"keys": []}))["static_resources"]["clusters"]
    }
    assert clusters["payment_service"]["type"] == "STRICT_DNS"
    assert clusters["order_service"]["type"] == "STATIC"


def test_payments_host_is_a_deprecated_fallback(caplog: pytest.LogCaptureFixture) -> None:
    assert IngressSettings.from_env({"PAYMENTS_HOST": "::1"}).host == "::1"
    assert "INGRESS_HOST" in caplog.text
    assert IngressSettings.from_env({"PAYMENTS_HOST": "::1", "INGRESS_HOST": "127.0.0.2"}).host == "127.0.0.2"


@pytest.mark.parametrize("name", ["INGRESS_PORT", "ENVOY_ADMIN_PORT", "PAYMENT_GRPC_PORT"])
@pytest.mark.parametrize("value", ["abc", "80.5", "-1", "65536"])
def test_settings_from_env_rejects_bad_ports(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        IngressSettings.from_env({name: value})


# --- JWT key sources ---------------------------------------------------------------------------------


def _provider(config: dict[str, Any]) -> dict[str, Any]:
    jwt = next(f for f in _hcm(config)["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn")
    provider: dict[str, Any] = jwt["typed_config"]["providers"]["payments"]
    return provider


def test_outside_development_without_keys_is_a_config_error() -> None:
    settings = IngressSettings.from_env({})
    assert not settings.needs_development_keys
    with pytest.raises(ConfigError) as raised:
        render_config(settings)
    for name in ("JWT_JWKS_URL", "JWT_JWKS_FILE", "JWT_ISSUER", "JWT_AUDIENCE", "PAYMENTS_ENV=development"):
        assert name in str(raised.value)


def test_jwks_file_is_inlined(tmp_path: Path) -> None:
    keys = auth.generate_keys()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({**keys.jwks, "extra": 1}))
    env = {"JWT_JWKS_FILE": str(path), "JWT_ISSUER": "https://idp.example/", "JWT_AUDIENCE": "shop"}
    settings = IngressSettings.from_env(env)
    assert not settings.needs_development_keys
    provider = _provider(render_config(settings))
    assert json.loads(provider["local_jwks"]["inline_string"]) == keys.jwks
    assert (provider["issuer"], provider["audiences"]) == ("https://idp.example/", ["shop"])
    assert "remote_jwks" not in provider


def test_jwks_url_is_fetched_by_envoy() -> None:
    env = {
        "JWT_JWKS_URL": "https://idp.example.com:8443/keys",
        "JWT_ISSUER": "https://idp.example.com/",
        "JWT_AUDIENCE": "shop",
        "JWT_JWKS_CACHE_SECONDS": "300",
        "JWT_JWKS_CA_FILE": "/etc/idp-ca.pem",
    }
    config = render_config(IngressSettings.from_env(env))
    remote = _provider(config)["remote_jwks"]
    assert remote["http_uri"] == {"uri": env["JWT_JWKS_URL"], "cluster": JWKS_CLUSTER, "timeout": "5s"}
    assert remote["cache_duration"] == "300s"
    assert "async_fetch" in remote and remote["retry_policy"]["num_retries"] == 3
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == JWKS_CLUSTER]
    assert cluster["type"] == "LOGICAL_DNS"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address == {"socket_address": {"address": "idp.example.com", "port_value": 8443}}
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["sni"] == "idp.example.com"
    validation = tls["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": "/etc/idp-ca.pem"}
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "idp.example.com"}}
    ]


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"JWT_JWKS_URL": "https://a/k", "JWT_JWKS_FILE": "/k.json"}, "not both"),
        ({"JWT_JWKS_URL": "ftp://a/k", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}, "JWT_JWKS_URL"),
        (
            {"JWT_JWKS_URL": "http://idp.example.com/k", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"},
            "must be https",
        ),
        ({"JWT_JWKS_URL": "https://a/k", "JWT_AUDIENCE": "a"}, "JWT_ISSUER"),
        ({"JWT_JWKS_URL": "https://a/k", "JWT_ISSUER": "i"}, "JWT_AUDIENCE"),
        (
            {"JWT_JWKS_FILE": "/nonexistent/jwks.json", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"},
            "cannot be read",
        ),
        ({"JWT_JWKS_FILE": __file__, "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}, "not a JWKS"),
    ],
)
def test_bad_jwt_settings_are_config_errors(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        IngressSettings.from_env(env)


def test_development_allows_default_issuer_and_audience(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(JWKS)
    settings = IngressSettings.from_env({"PAYMENTS_ENV": "development", "JWT_JWKS_FILE": str(path)})
    assert (settings.jwt_issuer, settings.jwt_audience) == (auth.ISSUER, auth.AUDIENCE)
    assert not settings.needs_development_keys


# --- the CLI -----------------------------------------------------------------------------------------


def _envoy_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payments.cli", "envoy-config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _clean_env(**extra: str) -> dict[str, str]:
    drop = ("PAYMENTS_ENV", "JWT_", "INGRESS_", "PAYMENTS_HOST", "PAYMENT_", "ORDER_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, **extra}


def test_envoy_config_cli_prints_yaml_for_the_environment(tmp_path: Path) -> None:
    env = _clean_env(
        PAYMENTS_ENV="development", INGRESS_PORT="18081", PAYMENT_GRPC_PORT="50053", DATA_DIR=str(tmp_path)
    )
    result = _envoy_config(env)
    assert result.returncode == 0, result.stderr
    keys = auth.load_or_create(tmp_path)
    assert yaml.safe_load(result.stdout) == render_config(IngressSettings.from_env(env).with_jwks(keys.jwks))


def test_envoy_config_cli_uses_the_jwks_file_and_not_the_development_keys(tmp_path: Path) -> None:
    path = tmp_path / "idp.json"
    path.write_text(JWKS)
    env = _clean_env(JWT_JWKS_FILE=str(path), JWT_ISSUER="i", JWT_AUDIENCE="a", DATA_DIR=str(tmp_path))
    result = _envoy_config(env)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == render_config(IngressSettings.from_env(env))
    assert not (tmp_path / "auth").exists()


def test_envoy_config_cli_refuses_production_without_keys(tmp_path: Path) -> None:
    result = _envoy_config(_clean_env(DATA_DIR=str(tmp_path)))
    assert result.returncode != 0
    assert "JWT_JWKS_URL or JWT_JWKS_FILE" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "auth").exists()


def test_envoy_config_cli_reports_bad_ports(tmp_path: Path) -> None:
    result = _envoy_config(
        _clean_env(PAYMENTS_ENV="development", INGRESS_PORT="eighty", DATA_DIR=str(tmp_path))
    )
    assert result.returncode != 0
    assert "INGRESS_PORT" in result.stderr and "Traceback" not in result.stderr


def test_stop_terminates_envoy(echo_upstream: Any, tmp_path: Path) -> None:
    settings = IngressSettings(
        ingress_port=0, admin_port=0, payment_upstream_port=echo_upstream.port, development=True
    )
    with EnvoyProcess(settings, tmp_path) as envoy:
        pid = envoy.pid
        assert envoy.url("/x") == f"http://127.0.0.1:{envoy.ingress_port}/x"
        assert envoy.admin_get("/ready")[0] == 200
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert (tmp_path / "envoy.log").exists()
    assert (tmp_path / "envoy.yaml").exists()


def test_start_failure_shows_the_log(tmp_path: Path) -> None:
    settings = IngressSettings(
        ingress_port=0, admin_port=0, descriptor_path=tmp_path / "missing.pb", development=True
    )
    with pytest.raises(RuntimeError, match=r"missing\.pb"):
        EnvoyProcess(settings, tmp_path).start()
