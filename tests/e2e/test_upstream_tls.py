"""Envoy speaks TLS to the services when they do: a real payment service with
a certificate (and, for mutual TLS, a client CA), a real Envoy configured by
PAYMENT_UPSTREAM_TLS_*, a webhook through the ingress. Without the right
settings the ingress answers 503 in the one error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingress.envoy import PAYMENT_CLUSTER, EnvoyProcess, IngressSettings, UpstreamTls, render_config
from paykit.settings import ConfigError
from tests.e2e.client import Reply, send
from tests.e2e.test_error_shape import assert_error
from tests.integration.helpers import ServerProcess
from tests.pki import make_pki


def ingress_settings(payment_port: int, **env: str) -> IngressSettings:
    return IngressSettings.from_env(
        {
            "PAYMENTS_ENV": "development",  # the webhooks only: no JWKS needed
            "INGRESS_PORT": "0",
            "ENVOY_ADMIN_PORT": "0",
            "PAYMENT_GRPC_PORT": str(payment_port),
            **env,
        }
    )


def ipn(settings: IngressSettings, workdir: Path, *, healthy: bool) -> Reply:
    with EnvoyProcess(settings, workdir) as envoy:
        if healthy:
            envoy.wait_healthy(PAYMENT_CLUSTER, timeout=10)
        return send(envoy, "GET", "/webhooks/vnpay/ipn")


def assert_reached_the_service(reply: Reply) -> None:
    assert reply.status == 200, reply
    assert reply.json()["RspCode"] == "97"  # the service's own answer: no signature


def assert_unavailable(reply: Reply) -> None:
    assert_error(reply, 503, "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", says="retry later")


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "pki"
    folder.mkdir()
    return make_pki(folder)


@pytest.fixture
def tls_payment(db_url: str, pki: dict[str, str]) -> Iterator[ServerProcess]:
    """The payment service on 127.0.0.1 with TLS, no client certificate asked."""
    payment = ServerProcess(
        db_url, PAYMENT_GRPC_TLS_CERT=pki["server_cert"], PAYMENT_GRPC_TLS_KEY=pki["server_key"]
    )
    try:
        yield payment
    finally:
        payment.terminate()


@pytest.fixture
def mtls_payment(db_url: str, pki: dict[str, str]) -> Iterator[ServerProcess]:
    """The payment service on 127.0.0.1 with TLS and a client CA (mutual TLS)."""
    payment = ServerProcess(
        db_url,
        PAYMENT_GRPC_TLS_CERT=pki["server_cert"],
        PAYMENT_GRPC_TLS_KEY=pki["server_key"],
        PAYMENT_GRPC_TLS_CLIENT_CA=pki["ca"],
    )
    try:
        yield payment
    finally:
        payment.terminate()


def test_tls_to_the_payment_service(tls_payment: ServerProcess, pki: dict[str, str], tmp_path: Path) -> None:
    # The default name is the upstream host, 127.0.0.1: an IP SAN of the certificate.
    settings = ingress_settings(tls_payment.port, PAYMENT_UPSTREAM_TLS_CA=pki["ca"])
    assert_reached_the_service(ipn(settings, tmp_path / "ip", healthy=True))
    # A DNS name as SNI and SAN.
    named = ingress_settings(
        tls_payment.port, PAYMENT_UPSTREAM_TLS_CA=pki["ca"], PAYMENT_UPSTREAM_TLS_SERVER_NAME="localhost"
    )
    assert_reached_the_service(ipn(named, tmp_path / "name", healthy=True))


def test_without_the_ca_setting_a_tls_service_is_unavailable(
    tls_payment: ServerProcess, tmp_path: Path
) -> None:
    assert_unavailable(ipn(ingress_settings(tls_payment.port), tmp_path, healthy=False))


def test_a_certificate_for_another_name_is_refused(
    tls_payment: ServerProcess, pki: dict[str, str], tmp_path: Path
) -> None:
    settings = ingress_settings(
        tls_payment.port,
        PAYMENT_UPSTREAM_TLS_CA=pki["ca"],
        PAYMENT_UPSTREAM_TLS_SERVER_NAME="payment-pods.payments.svc.cluster.local",
    )
    assert_unavailable(ipn(settings, tmp_path, healthy=False))


def test_a_certificate_from_another_ca_is_refused(tls_payment: ServerProcess, tmp_path: Path) -> None:
    other = tmp_path / "other-pki"
    other.mkdir()
    settings = ingress_settings(tls_payment.port, PAYMENT_UPSTREAM_TLS_CA=make_pki(other)["ca"])
    assert_unavailable(ipn(settings, tmp_path / "envoy", healthy=False))


def test_mutual_tls_to_the_payment_service(
    mtls_payment: ServerProcess, pki: dict[str, str], tmp_path: Path
) -> None:
    settings = ingress_settings(
        mtls_payment.port,
        PAYMENT_UPSTREAM_TLS_CA=pki["ca"],
        PAYMENT_UPSTREAM_TLS_CERT=pki["client_cert"],
        PAYMENT_UPSTREAM_TLS_KEY=pki["client_key"],
    )
    assert_reached_the_service(ipn(settings, tmp_path / "mtls", healthy=True))
    # Without Envoy's client certificate the service answers nobody, health checks included.
    one_way = ingress_settings(mtls_payment.port, PAYMENT_UPSTREAM_TLS_CA=pki["ca"])
    assert_unavailable(ipn(one_way, tmp_path / "one-way", healthy=False))
    assert_unavailable(ipn(ingress_settings(mtls_payment.port), tmp_path / "plain", healthy=False))


# --- the settings -----------------------------------------------------------------------------------


def test_upstream_tls_settings_are_read_per_service(tmp_path: Path) -> None:
    s = IngressSettings.from_env(
        {
            "ORDER_UPSTREAM_HOST": "order-pods.payments.svc.cluster.local",
            "ORDER_UPSTREAM_TLS_CA": "/etc/tls/ca.crt",
            "ORDER_UPSTREAM_TLS_CERT": "/etc/tls/tls.crt",
            "ORDER_UPSTREAM_TLS_KEY": "/etc/tls/tls.key",
            "PAYMENT_UPSTREAM_TLS_CA": "ca.pem",  # relative: resolved, Envoy runs elsewhere
            "PAYMENT_UPSTREAM_TLS_SERVER_NAME": "payment.internal",
            "PAYMENTS_ENV": "development",
        }
    )
    assert s.order_upstream_tls == UpstreamTls("/etc/tls/ca.crt", "/etc/tls/tls.crt", "/etc/tls/tls.key")
    assert s.payment_upstream_tls == UpstreamTls(
        str(Path("ca.pem").resolve()), server_name="payment.internal"
    )
    clusters = {c["name"]: c for c in render_config(s)["static_resources"]["clusters"]}
    order = clusters["order_service"]["transport_socket"]["typed_config"]
    assert order["sni"] == "order-pods.payments.svc.cluster.local"
    common = order["common_tls_context"]
    assert common["alpn_protocols"] == ["h2"]
    assert common["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "order-pods.payments.svc.cluster.local"}}
    ]
    assert common["tls_certificates"][0]["certificate_chain"] == {"filename": "/etc/tls/tls.crt"}
    payment = clusters["payment_service"]["transport_socket"]["typed_config"]
    assert payment["sni"] == "payment.internal" and "tls_certificates" not in payment["common_tls_context"]
    # Without a CA: plaintext, as before.
    plain = IngressSettings.from_env({"PAYMENTS_ENV": "development"})
    assert all("transport_socket" not in c for c in render_config(plain)["static_resources"]["clusters"])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PAYMENT_UPSTREAM_TLS_CERT": "c.pem"}, "PAYMENT_UPSTREAM_TLS_CERT and PAYMENT_UPSTREAM_TLS_KEY go"),
        ({"ORDER_UPSTREAM_TLS_CERT": "c", "ORDER_UPSTREAM_TLS_KEY": "k"}, "need ORDER_UPSTREAM_TLS_CA"),
        ({"PAYMENT_UPSTREAM_TLS_SERVER_NAME": "x"}, "need PAYMENT_UPSTREAM_TLS_CA"),
    ],
)
def test_incomplete_upstream_tls_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IngressSettings.from_env({"PAYMENTS_ENV": "development", **env})
