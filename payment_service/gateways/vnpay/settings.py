"""VNPay's part of the configuration: environment names, development keys,
endpoints, webhook routes and what the payment rules need to know of it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from payment_service.domain.model import AmountLimits, Provider, ProviderTraits
from payment_service.gateways.port import (
    CallbackKind,
    Endpoint,
    GatewaySettings,
    ServiceUrls,
    WebhookRoute,
    credentials,
)
from payment_service.gateways.vnpay.protocol import VnpayConfig

# Development defaults: a made-up terminal and secret that only the local
# simulator and tests accept. `payments serve` refuses to run on them unless
# PAYMENTS_ENV=development.
DEV_KEYS: Final[Mapping[str, str]] = {
    "tmn_code": "DEVTMN01",
    "hash_secret": "DEVSECRETDEVSECRETDEVSECRET01234",  # public development value
}
DEV_TMN_CODE: Final = DEV_KEYS["tmn_code"]
DEV_HASH_SECRET: Final = DEV_KEYS["hash_secret"]
ENV_PREFIX: Final = "VNPAY"  # VNPAY_TMN_CODE, VNPAY_HASH_SECRET
SANDBOX_PAY_URL: Final = "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html"
SANDBOX_QUERY_URL: Final = "https://sandbox.vnpayment.vn/merchant_webapi/api/transaction"
# Where the simulator serves the same two endpoints, under its base URL.
SIM_PAY_PATH: Final = "/vnpay/paymentv2/vpcpay.html"
SIM_QUERY_PATH: Final = "/vnpay/merchant_webapi/api/transaction"
# VNPay hands out its production URLs at go-live and publishes none
# (GATEWAYS.md §1.1): outside development VNPAY_API_URL and VNPAY_QUERY_URL
# are required, unless VNPAY_SANDBOX=1 points them at the sandbox.
PAY: Final = Endpoint("VNPAY_API_URL", SIM_PAY_PATH, sandbox=SANDBOX_PAY_URL)
QUERY: Final = Endpoint("VNPAY_QUERY_URL", SIM_QUERY_PATH, sandbox=SANDBOX_QUERY_URL)

IPN_PATH: Final = "/webhooks/vnpay/ipn"
RETURN_PATH: Final = "/webhooks/vnpay/return"
ROUTES: Final = (
    WebhookRoute("GET", IPN_PATH, CallbackKind.IPN),
    WebhookRoute("GET", RETURN_PATH, CallbackKind.RETURN),
)
# 5,000 to under 1 billion VND per transaction.
# VNPay re-sends an unacknowledged IPN every 5 minutes (GATEWAYS.md §1.3 "Retry"):
# the expiry grace and the watch on a closed attempt cover one interval.
TRAITS: Final = ProviderTraits(
    limits=AmountLimits(5_000, 999_999_999),
    callback_retry_window=timedelta(minutes=5, seconds=30),
    checkout_calls_gateway=False,  # a signed redirect, built here
    one_refund_at_a_time=True,  # querydr shows one refund; 94 while one is in progress
)


def from_env(env: Mapping[str, str], development: bool, urls: ServiceUrls) -> VnpayConfig:
    """VNPAY_TMN_CODE, VNPAY_HASH_SECRET, VNPAY_API_URL, VNPAY_QUERY_URL, VNPAY_SANDBOX,
    VNPAY_RETURN_URL (default: PUBLIC_BASE_URL + the return route)."""
    keys = credentials(env, ENV_PREFIX, DEV_KEYS, development)
    sandbox = f"{ENV_PREFIX}_SANDBOX"
    return VnpayConfig(
        tmn_code=keys["tmn_code"],
        hash_secret=keys["hash_secret"],
        pay_url=PAY.resolve(env, development, sandbox, urls),
        return_url=env.get("VNPAY_RETURN_URL") or urls.public_base_url + RETURN_PATH,
        query_url=QUERY.resolve(env, development, sandbox, urls),
    )


SETTINGS: Final = GatewaySettings(
    provider=Provider.VNPAY,
    traits=TRAITS,
    routes=ROUTES,
    from_env=from_env,
    env_prefix=ENV_PREFIX,
    dev_keys=DEV_KEYS,
    endpoints=(PAY, QUERY),
)
