"""payOS's part of the configuration: environment names, development keys,
endpoints, webhook routes and what the payment rules need to know of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from payment_service.domain.model import AmountLimits, Provider, ProviderTraits
from payment_service.gateways.payos.protocol import PAYOS_BASE_URL, PAYOS_CHECKOUT_BASE, PayosConfig
from payment_service.gateways.port import (
    CallbackKind,
    Endpoint,
    GatewaySettings,
    ServiceUrls,
    WebhookRoute,
    credentials,
)

# Made-up development credentials; the local simulator signs with them.
DEV_KEYS: Final[Mapping[str, str]] = {
    "client_id": "dev-client",
    "api_key": "dev-api-key",
    "checksum_key": "devchecksumkeydevchecksumkey0123",
}
ENV_PREFIX: Final = "PAYOS"  # PAYOS_CLIENT_ID, PAYOS_API_KEY, PAYOS_CHECKSUM_KEY
# payOS has no sandbox: production is the only remote endpoint.
SIM_PATH: Final = "/payos"
SIM_CHECKOUT_PATH: Final = "/payos/web"
# The variables win; else the simulator in development, production otherwise
# (PAYOS_SANDBOX=1 is refused: there is no sandbox).
API: Final = Endpoint("PAYOS_BASE_URL", SIM_PATH, PAYOS_BASE_URL)
CHECKOUT: Final = Endpoint("PAYOS_CHECKOUT_URL", SIM_CHECKOUT_PATH, PAYOS_CHECKOUT_BASE)

WEBHOOK_PATH: Final = "/webhooks/payos"
# returnUrl and cancelUrl: the shopper's browser (unsigned; shown, never applied).
RETURN_PATH: Final = "/webhooks/payos/return"
ROUTES: Final = (
    WebhookRoute("POST", WEBHOOK_PATH, CallbackKind.IPN),
    WebhookRoute("GET", RETURN_PATH, CallbackKind.RETURN),
)
TRAITS: Final = ProviderTraits(limits=AmountLimits(1_000, 999_999_999), manual_refunds=True)


def from_env(env: Mapping[str, str], development: bool, urls: ServiceUrls) -> PayosConfig:
    """PAYOS_CLIENT_ID, PAYOS_API_KEY, PAYOS_CHECKSUM_KEY, PAYOS_BASE_URL, PAYOS_CHECKOUT_URL."""
    sandbox = f"{ENV_PREFIX}_SANDBOX"
    return PayosConfig(
        **credentials(env, ENV_PREFIX, DEV_KEYS, development),
        base_url=API.resolve(env, development, sandbox, urls),
        return_url=urls.public_base_url + RETURN_PATH,
        cancel_url=urls.public_base_url + RETURN_PATH,
        checkout_base=CHECKOUT.resolve(env, development, sandbox, urls),
    )


SETTINGS: Final = GatewaySettings(
    provider=Provider.PAYOS,
    traits=TRAITS,
    routes=ROUTES,
    from_env=from_env,
    env_prefix=ENV_PREFIX,
    dev_keys=DEV_KEYS,
    endpoints=(API, CHECKOUT),
)
