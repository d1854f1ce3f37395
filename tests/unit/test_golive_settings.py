"""Safe by default, read from the environment: internal binds, TLS files,
gateway endpoints (production outside development, sandbox by an explicit
switch, the simulator in development), PUBLIC_BASE_URL behind every callback
and return URL, the return_url allow-list, and what check-config reports."""

from __future__ import annotations

from typing import Any

import pytest

from order_service.config import OrderSettings
from order_service.config import production_problems as order_problems
from paykit.origins import LOOPBACK_ORIGINS, allowed, parse_origins
from paykit.settings import ConfigError, ServerTls, grpc_bind_from_env, is_loopback
from payment_service.config import Settings, development_keys_in_use
from payment_service.domain import model
from payment_service.domain.errors import InvalidArgument
from payment_service.domain.model import Policy, Provider
from payment_service.gateways import registry
from payments.checks import production_problems, production_report

PRODUCTION = {
    "PUBLIC_BASE_URL": "https://pay.shop.example/",
    "VNPAY_TMN_CODE": "REALTMN1",
    "VNPAY_HASH_SECRET": "a-real-secret-a-real-secret-0123",
    "VNPAY_API_URL": "https://pay.vnpay.example/vpcpay.html",
    "VNPAY_QUERY_URL": "https://merchant.vnpay.example/merchant_webapi/api/transaction",
    "PAYOS_CLIENT_ID": "c",
    "PAYOS_API_KEY": "k",
    "PAYOS_CHECKSUM_KEY": "s",
    "MOMO_PARTNER_CODE": "P",
    "MOMO_ACCESS_KEY": "A",
    "MOMO_SECRET_KEY": "S",
    "ZALOPAY_APP_ID": "42",
    "ZALOPAY_KEY1": "k1",
    "ZALOPAY_KEY2": "k2",
    "PAYMENT_PROVIDERS": "vnpay,cod,payos,momo,zalopay",
}
COMPLETE = {
    **PRODUCTION,
    "DATABASE_URL": "postgresql://p@db/payments",
    "JWT_JWKS_FILE": "/etc/payments/jwks.json",
    "JWT_ISSUER": "https://idp.shop.example/",
    "JWT_AUDIENCE": "shop-api",
}


def gateways(env: dict[str, str]) -> dict[Provider, Any]:
    return dict(Settings.from_env(env).gateways)


# --- binds ---------------------------------------------------------------------------------------


def test_internal_binds_default_to_loopback_and_ignore_the_public_host() -> None:
    env = {"PAYMENTS_HOST": "0.0.0.0", "INGRESS_HOST": "0.0.0.0"}
    assert grpc_bind_from_env(env, "PAYMENT", 50051).host == "127.0.0.1"
    assert OrderSettings.from_env(env).host == "127.0.0.1"
    assert OrderSettings.from_env(env).payment_target == "127.0.0.1:50051"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "payments.internal"])
def test_a_wider_bind_needs_tls_or_the_explicit_opt_out(host: str) -> None:
    with pytest.raises(ConfigError, match=r"ORDER_GRPC_TLS_CERT.*ORDER_GRPC_INSECURE=1"):
        grpc_bind_from_env({"ORDER_GRPC_HOST": host}, "ORDER", 50052)
    insecure = grpc_bind_from_env({"ORDER_GRPC_HOST": host, "ORDER_GRPC_INSECURE": "1"}, "ORDER", 50052)
    assert insecure.insecure and insecure.exposed_without_tls
    tls = grpc_bind_from_env(
        {"ORDER_GRPC_HOST": host, "ORDER_GRPC_TLS_CERT": "c.pem", "ORDER_GRPC_TLS_KEY": "k.pem"}, "ORDER", 1
    )
    assert tls.tls == ServerTls("c.pem", "k.pem") and not tls.exposed_without_tls


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)


def test_tls_files_go_together() -> None:
    with pytest.raises(ConfigError, match="go together"):
        grpc_bind_from_env({"PAYMENT_GRPC_TLS_CERT": "c.pem"}, "PAYMENT", 1)
    with pytest.raises(ConfigError, match="PAYMENT_TLS_CA"):
        OrderSettings.from_env({"PAYMENT_TLS_CERT": "c.pem", "PAYMENT_TLS_KEY": "k.pem"})
    order = OrderSettings.from_env({"PAYMENT_TARGET": "payments.internal:443", "PAYMENT_TLS_CA": "ca.pem"})
    assert order.payment_tls is not None and order.payment_tls.ca_file == "ca.pem"
    assert order.payment_target == "payments.internal:443"


def test_the_payment_target_follows_a_specific_payment_bind() -> None:
    assert (
        OrderSettings.from_env({"PAYMENT_GRPC_HOST": "::1", "PAYMENT_GRPC_PORT": "7"}).payment_target
        == "[::1]:7"
    )


# --- gateways and public URLs --------------------------------------------------------------------


def test_production_uses_production_endpoints_and_the_public_base_url() -> None:
    found = gateways(PRODUCTION)
    momo, zalopay, payos, vnpay = (
        found[p] for p in (Provider.MOMO, Provider.ZALOPAY, Provider.PAYOS, Provider.VNPAY)
    )
    assert momo.endpoint == "https://payment.momo.vn"
    assert zalopay.endpoint == "https://openapi.zalopay.vn"
    assert (payos.base_url, payos.checkout_base) == (
        "https://api-merchant.payos.vn",
        "https://pay.payos.vn/web",
    )
    assert vnpay.pay_url == PRODUCTION["VNPAY_API_URL"]
    base = "https://pay.shop.example"
    assert vnpay.return_url == f"{base}/webhooks/vnpay/return"
    assert (momo.ipn_url, momo.redirect_url) == (f"{base}/webhooks/momo/ipn", f"{base}/webhooks/momo/return")
    assert (zalopay.callback_url, zalopay.redirect_url) == (
        f"{base}/webhooks/zalopay/callback",
        f"{base}/webhooks/zalopay/return",
    )
    back = f"{base}/webhooks/payos/return"
    assert (payos.return_url, payos.cancel_url) == (back, back)


def test_sandboxes_only_by_their_explicit_switch() -> None:
    found = gateways({**PRODUCTION, "MOMO_SANDBOX": "1", "ZALOPAY_SANDBOX": "1", "VNPAY_SANDBOX": "1"})
    assert found[Provider.MOMO].endpoint == "https://test-payment.momo.vn"
    assert found[Provider.ZALOPAY].endpoint == "https://sb-openapi.zalopay.vn"
    assert found[Provider.VNPAY].pay_url == PRODUCTION["VNPAY_API_URL"]  # the variable wins
    env = {k: v for k, v in PRODUCTION.items() if not k.startswith("VNPAY_") or "URL" not in k}
    vnpay = gateways({**env, "VNPAY_SANDBOX": "1"})[Provider.VNPAY]
    assert vnpay.pay_url.startswith("https://sandbox.vnpayment.vn/")
    assert vnpay.query_url.startswith("https://sandbox.vnpayment.vn/")


def test_vnpay_needs_its_urls_outside_development_and_payos_has_no_sandbox() -> None:
    with pytest.raises(ConfigError, match="VNPAY_API_URL is required outside development"):
        Settings.from_env({k: v for k, v in PRODUCTION.items() if k != "VNPAY_API_URL"})
    with pytest.raises(ConfigError, match="PAYOS_SANDBOX=1, but this gateway has no sandbox"):
        Settings.from_env({**PRODUCTION, "PAYOS_SANDBOX": "1"})


def test_development_points_every_gateway_at_the_simulator() -> None:
    found = gateways({"PAYMENTS_ENV": "development", "SIM_PORT": "8191", "INGRESS_PORT": "8181"})
    assert found[Provider.MOMO].endpoint == "http://127.0.0.1:8191/momo"
    assert found[Provider.ZALOPAY].endpoint == "http://127.0.0.1:8191/zalopay"
    assert found[Provider.PAYOS].base_url == "http://127.0.0.1:8191/payos"
    assert found[Provider.VNPAY].pay_url.startswith("http://127.0.0.1:8191/vnpay/")
    assert found[Provider.VNPAY].return_url == "http://127.0.0.1:8181/webhooks/vnpay/return"


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "PUBLIC_BASE_URL is required"), ("http://pay.shop.example", "must be https")],
)
def test_public_base_url_is_required_and_https_outside_development(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**PRODUCTION, "PUBLIC_BASE_URL": value})


# --- return_url allow-list -----------------------------------------------------------------------


def test_origins_parse_and_match() -> None:
    origins = parse_origins("https://shop.example, https://m.shop.example:8443, http://127.0.0.1:*")
    assert allowed("https://shop.example/thanks?x=1", origins)
    assert allowed("https://SHOP.example:443/", origins)
    assert allowed("https://m.shop.example:8443/r", origins)
    assert allowed("http://127.0.0.1:5173/r", origins)
    for url in (
        "https://m.shop.example/r",
        "http://shop.example/r",
        "https://shop.example.evil.test/",
        "https://shop.example@evil.test/",
        "https://evil.test/?https://shop.example",
        "javascript:alert(1)",
    ):
        assert not allowed(url, origins), url
    for bad in ("shop.example", "https://shop.example/path", "ftp://shop.example", "https://x.example?q"):
        with pytest.raises(ConfigError, match="RETURN_URL_ALLOWED_ORIGINS"):
            parse_origins(bad)


def test_return_origins_default_by_environment() -> None:
    assert Settings.from_env(PRODUCTION).policy.return_url_origins == frozenset()
    assert Settings.from_env({"PAYMENTS_ENV": "development"}).policy.return_url_origins == LOOPBACK_ORIGINS
    configured = Settings.from_env({**PRODUCTION, "RETURN_URL_ALLOWED_ORIGINS": "https://shop.example"})
    assert configured.policy.return_url_origins == {"https://shop.example"}


def _validate(return_url: str, origins: frozenset[str] | None) -> model.PaymentRequest:
    policy = Policy(
        enabled_providers=frozenset({Provider.VNPAY}), traits=registry.traits(), return_url_origins=origins
    )
    return model.validate_request(
        order_id="ORD-1",
        user_id="u1",
        amount=150_000,
        currency="VND",
        provider=Provider.VNPAY,
        description="",
        client_ip="",
        user_agent="",
        return_url=return_url,
        request_id="",
        policy=policy,
    )


def test_a_return_url_off_the_allow_list_is_invalid_and_names_the_field() -> None:
    shop = frozenset({"https://shop.example"})
    assert _validate("https://shop.example/thanks", shop).return_url == "https://shop.example/thanks"
    assert _validate("", frozenset()).return_url == ""
    for url, origins in (("https://evil.example/", shop), ("https://shop.example/thanks", frozenset())):
        with pytest.raises(InvalidArgument) as error:
            _validate(url, origins)
        assert [v.field for v in error.value.violations] == ["return_url"]


# --- check-config --------------------------------------------------------------------------------


def test_development_keys_are_found_in_any_gateway() -> None:
    from payment_service.gateways.momo.settings import DEV_KEYS

    assert development_keys_in_use(PRODUCTION) == []
    assert development_keys_in_use({**PRODUCTION, "MOMO_SECRET_KEY": DEV_KEYS["secret_key"]}) == [
        "MOMO_SECRET_KEY"
    ]


def test_check_config_passes_a_complete_production_configuration() -> None:
    assert production_problems(COMPLETE) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"PAYMENTS_ENV": "development"}, "PAYMENTS_ENV=development"),
        (
            {"VNPAY_HASH_SECRET": "DEVSECRETDEVSECRETDEVSECRET01234"},
            "VNPAY_HASH_SECRET is the public development",
        ),
        ({"MOMO_SANDBOX": "1"}, "MOMO_SANDBOX=1"),
        ({"ZALOPAY_ENDPOINT": "https://sb-openapi.zalopay.vn"}, "ZALOPAY_ENDPOINT points at the sandbox"),
        ({"PUBLIC_BASE_URL": "http://pay.shop.example"}, "PUBLIC_BASE_URL must be https"),
        ({"ORDER_GRPC_HOST": "0.0.0.0"}, "ORDER_GRPC_HOST=0.0.0.0 is not a loopback address"),
        ({"PAYMENT_TARGET": "payments.internal:50051"}, "PAYMENT_TLS_CA is not set"),
        ({"JWT_JWKS_FILE": ""}, "JWT_JWKS_URL and JWT_JWKS_FILE are not set"),
        ({"JWT_ISSUER": "payments-dev"}, "JWT_ISSUER is not set or the development default"),
        ({"JWT_AUDIENCE": ""}, "JWT_AUDIENCE is not set or the development default"),
        ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        ({"VNPAY_QUERY_URL": ""}, "VNPAY_QUERY_URL is not set"),
        ({"PAYMENT_RESULT_URL": "http://shop.example/r"}, "PAYMENT_RESULT_URL is not an https URL"),
    ],
)
def test_check_config_reports_each_unsafe_setting(change: dict[str, str], expected: str) -> None:
    problems = production_problems({**COMPLETE, **change})
    assert any(expected in p for p in problems), problems


def test_an_empty_return_allow_list_is_fine_for_production() -> None:
    assert production_problems({**COMPLETE, "RETURN_URL_ALLOWED_ORIGINS": ""}) == []
    assert order_problems(COMPLETE) == []


OPTED_OUT = {
    "PAYMENT_GRPC_HOST": "0.0.0.0",
    "PAYMENT_GRPC_INSECURE": "1",
    "ORDER_GRPC_HOST": "0.0.0.0",
    "ORDER_GRPC_INSECURE": "1",
    "PAYMENT_TARGET": "payment.payments.svc.cluster.local:50051",
}


def test_the_explicit_opt_out_is_a_note_not_a_problem() -> None:
    report = production_report({**COMPLETE, **OPTED_OUT})
    assert report.problems == []
    assert len(report.notes) == 3, report.notes
    for expected in (
        "PAYMENT_GRPC_HOST=0.0.0.0 without TLS by the explicit opt-out PAYMENT_GRPC_INSECURE=1",
        "ORDER_GRPC_HOST=0.0.0.0 without TLS by the explicit opt-out ORDER_GRPC_INSECURE=1",
        "PAYMENT_TARGET=payment.payments.svc.cluster.local:50051 in plaintext",
    ):
        assert any(expected in note for note in report.notes), report.notes


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("PAYMENT_GRPC_INSECURE", "PAYMENT_GRPC_HOST=0.0.0.0 is not a loopback address"),
        ("ORDER_GRPC_INSECURE", "ORDER_GRPC_HOST=0.0.0.0 is not a loopback address"),
    ],
)
def test_without_the_opt_out_a_plaintext_bind_stays_unsafe(drop: str, expected: str) -> None:
    env = {k: v for k, v in {**COMPLETE, **OPTED_OUT}.items() if k != drop}
    report = production_report(env)
    assert any(expected in p for p in report.problems), report.problems
    assert not any(drop.replace("_INSECURE", "_HOST") in note for note in report.notes), report.notes


def test_a_plaintext_payment_target_is_unsafe_unless_the_payment_service_opted_out() -> None:
    env = {**COMPLETE, "PAYMENT_TARGET": "payment.internal:50051"}
    assert any("PAYMENT_TLS_CA is not set" in p for p in production_problems(env))
    report = production_report({**env, "PAYMENT_GRPC_INSECURE": "1"})
    assert report.problems == [] and any("PAYMENT_TARGET=payment.internal:50051" in n for n in report.notes)


def test_with_tls_there_is_nothing_to_note() -> None:
    env = {
        **COMPLETE,
        "PAYMENT_GRPC_HOST": "0.0.0.0",
        "PAYMENT_GRPC_TLS_CERT": "/tls/tls.crt",
        "PAYMENT_GRPC_TLS_KEY": "/tls/tls.key",
    }
    assert production_report(env).notes == []


def test_every_problem_is_reported_at_once_including_what_only_the_services_refuse() -> None:
    # ORDER_TTL_MINUTES is checked only when the order service loads its settings.
    problems = production_problems({**COMPLETE, "JWT_ISSUER": "payments-dev", "ORDER_TTL_MINUTES": "0"})
    assert any("JWT_ISSUER is not set or the development default" in p for p in problems), problems
    assert any("ORDER_TTL_MINUTES" in p for p in problems), problems
    assert len(problems) == len(set(problems))


# --- the gateway-call pool (issue 11, finding 11) ----------------------------------------------


def test_the_gateway_pool_stays_below_the_grpc_threads() -> None:
    dev = {"PAYMENTS_ENV": "development"}
    settings = Settings.from_env(dev)
    assert (settings.gateway_call_workers, settings.gateway_call_queue, settings.grpc_workers) == (8, 4, 16)
    with pytest.raises(ConfigError, match="must stay below PAYMENT_GRPC_WORKERS"):
        Settings.from_env({**dev, "GATEWAY_CALL_WORKERS": "12", "GATEWAY_CALL_QUEUE": "4"})
    assert (
        Settings.from_env(
            {**dev, "GATEWAY_CALL_WORKERS": "2", "GATEWAY_CALL_QUEUE": "0"}
        ).gateway_call_workers
        == 2
    )
