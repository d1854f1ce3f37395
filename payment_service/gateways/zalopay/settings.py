"""ZaloPay's part of the configuration: environment names, development keys,
endpoints, webhook routes and what the payment rules need to know of it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from paykit.settings import ConfigError
from payment_service.domain.model import AmountLimits, Provider, ProviderTraits
from payment_service.gateways.port import (
    CallbackKind,
    Endpoint,
    GatewaySettings,
    ServiceUrls,
    WebhookRoute,
    credentials,
)
from payment_service.gateways.zalopay.protocol import (
    EXPIRE_DURATION_MIN,
    ZALOPAY_SANDBOX_ENDPOINT,
    ZalopayConfig,
)

# ZaloPay's own published sandbox sample credentials; the local simulator signs with them.
DEV_KEYS: Final[Mapping[str, str]] = {
    "app_id": "2553",
    "key1": "PcY4iZIKFCIdgZvA6ueMcMHHUbRLYjPL",
    "key2": "kLtgPl8HHhfvMuDHPwKfgfsY4Ydm9eIz",
}
DEV_APP_ID: Final = int(DEV_KEYS["app_id"])
ENV_PREFIX: Final = "ZALOPAY"  # ZALOPAY_APP_ID, ZALOPAY_KEY1, ZALOPAY_KEY2
SIM_PATH: Final = "/zalopay"
PRODUCTION_ENDPOINT: Final = "https://openapi.zalopay.vn"  # GATEWAYS.md §4.1
# ZALOPAY_ENDPOINT wins; else the simulator in development, production
# otherwise, the sandbox with ZALOPAY_SANDBOX=1.
ENDPOINT: Final = Endpoint("ZALOPAY_ENDPOINT", SIM_PATH, PRODUCTION_ENDPOINT, ZALOPAY_SANDBOX_ENDPOINT)

CALLBACK_PATH: Final = "/webhooks/zalopay/callback"
# The shopper's browser comes back here (checksum with key2); shown, never applied.
RETURN_PATH: Final = "/webhooks/zalopay/return"
ROUTES: Final = (
    WebhookRoute("POST", CALLBACK_PATH, CallbackKind.IPN),
    WebhookRoute("GET", RETURN_PATH, CallbackKind.RETURN),
)
# expire_duration_seconds is at least 300 (GATEWAYS.md §4.1): an attempt with
# less time left is refused rather than given a session that outlives it.
TRAITS: Final = ProviderTraits(
    limits=AmountLimits(1_000, 999_999_999), min_session_lifetime=timedelta(seconds=EXPIRE_DURATION_MIN)
)


def from_env(env: Mapping[str, str], development: bool, urls: ServiceUrls) -> ZalopayConfig:
    """ZALOPAY_APP_ID, ZALOPAY_KEY1, ZALOPAY_KEY2, ZALOPAY_ENDPOINT, ZALOPAY_SANDBOX."""
    keys = credentials(env, ENV_PREFIX, DEV_KEYS, development)
    if not keys["app_id"].isdigit():
        raise ConfigError("ZALOPAY_APP_ID must be a number")
    return ZalopayConfig(
        app_id=int(keys["app_id"]),
        key1=keys["key1"],
        key2=keys["key2"],
        endpoint=ENDPOINT.resolve(env, development, f"{ENV_PREFIX}_SANDBOX", urls),
        callback_url=urls.public_base_url + CALLBACK_PATH,
        redirect_url=urls.public_base_url + RETURN_PATH,
    )


SETTINGS: Final = GatewaySettings(
    provider=Provider.ZALOPAY,
    traits=TRAITS,
    routes=ROUTES,
    from_env=from_env,
    env_prefix=ENV_PREFIX,
    dev_keys=DEV_KEYS,
    endpoints=(ENDPOINT,),
)
