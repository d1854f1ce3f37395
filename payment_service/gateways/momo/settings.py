"""MoMo's part of the configuration: environment names, development keys,
endpoints, webhook routes and what the payment rules need to know of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from payment_service.domain.model import AmountLimits, Provider, ProviderTraits
from payment_service.gateways.momo.protocol import AMOUNT_MAX, AMOUNT_MIN, MOMO_TEST_ENDPOINT, MomoConfig
from payment_service.gateways.port import (
    CallbackKind,
    Endpoint,
    GatewaySettings,
    ServiceUrls,
    WebhookRoute,
    credentials,
)

# MoMo's own published sandbox sample credentials; the local simulator signs with them.
DEV_KEYS: Final[Mapping[str, str]] = {
    "partner_code": "MOMO",
    "access_key": "F8BBA842ECF85",
    "secret_key": "K951B6PE1waDMi640xX08PD3vg6EkVlz",
}
ENV_PREFIX: Final = "MOMO"  # MOMO_PARTNER_CODE, MOMO_ACCESS_KEY, MOMO_SECRET_KEY
SIM_PATH: Final = "/momo"
PRODUCTION_ENDPOINT: Final = "https://payment.momo.vn"  # GATEWAYS.md §3.1
# MOMO_ENDPOINT wins; else the simulator in development, production
# otherwise, MoMo's test environment with MOMO_SANDBOX=1.
ENDPOINT: Final = Endpoint("MOMO_ENDPOINT", SIM_PATH, PRODUCTION_ENDPOINT, MOMO_TEST_ENDPOINT)

IPN_PATH: Final = "/webhooks/momo/ipn"
# The shopper's browser comes back here (signed like the IPN); shown, never applied.
RETURN_PATH: Final = "/webhooks/momo/return"
ROUTES: Final = (
    WebhookRoute("POST", IPN_PATH, CallbackKind.IPN),
    WebhookRoute("GET", RETURN_PATH, CallbackKind.RETURN),
)
TRAITS: Final = ProviderTraits(limits=AmountLimits(AMOUNT_MIN, AMOUNT_MAX))


def from_env(env: Mapping[str, str], development: bool, urls: ServiceUrls) -> MomoConfig:
    """MOMO_PARTNER_CODE, MOMO_ACCESS_KEY, MOMO_SECRET_KEY, MOMO_ENDPOINT, MOMO_SANDBOX."""
    return MomoConfig(
        **credentials(env, ENV_PREFIX, DEV_KEYS, development),
        endpoint=ENDPOINT.resolve(env, development, f"{ENV_PREFIX}_SANDBOX", urls),
        redirect_url=urls.public_base_url + RETURN_PATH,
        ipn_url=urls.public_base_url + IPN_PATH,
    )


SETTINGS: Final = GatewaySettings(
    provider=Provider.MOMO,
    traits=TRAITS,
    routes=ROUTES,
    from_env=from_env,
    env_prefix=ENV_PREFIX,
    dev_keys=DEV_KEYS,
    endpoints=(ENDPOINT,),
)
