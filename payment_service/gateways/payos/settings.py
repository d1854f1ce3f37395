"""payOS's part of the configuration: environment names, development keys,
endpoints, webhook routes and what the payment rules need to know of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Final

from paykit.settings import env_flag
from payment_service.domain.model import AmountLimits, Provider, ProviderTraits
from payment_service.gateways.payos.protocol import (
    PAYOS_BASE_URL,
    PAYOS_CHECKOUT_BASE,
    PayosConfig,
    PayoutConfig,
)
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
# Payout credentials (a channel of their own): refunds go out as payouts
# when they are set. Development fills them in (the simulator pays out)
# unless PAYOS_PAYOUTS=0.
PAYOUT_DEV_KEYS: Final[Mapping[str, str]] = {
    "client_id": "dev-payout-client",
    "api_key": "dev-payout-api-key",
    "checksum_key": "devpayoutchecksumkey0123456789ab",
}
# PAYOS_PAYOUT_CLIENT_ID, PAYOS_PAYOUT_API_KEY, PAYOS_PAYOUT_CHECKSUM_KEY
PAYOUT_PREFIX: Final = "PAYOS_PAYOUT"
PAYOUTS_SWITCH: Final = "PAYOS_PAYOUTS"
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
# Without payout credentials payOS has no way to give money back: an
# operator transfers it and records the reference. With them, refunds are
# payouts to the payer's account (configured_traits).
TRAITS: Final = ProviderTraits(limits=AmountLimits(1_000, 999_999_999), manual_refunds=True)
PAYOUT_TRAITS: Final = replace(TRAITS, manual_refunds=False, records_transfers=True)


def configured_traits(config: PayosConfig) -> ProviderTraits:
    return PAYOUT_TRAITS if config.payout is not None else TRAITS


def payout_from_env(env: Mapping[str, str], development: bool) -> PayoutConfig | None:
    """PAYOS_PAYOUT_CLIENT_ID, _API_KEY, _CHECKSUM_KEY: all or none (none:
    manual refunds). Development uses the simulator's keys unless PAYOS_PAYOUTS=0."""
    if PAYOUTS_SWITCH in env and not env_flag(env, PAYOUTS_SWITCH):
        return None
    given = any(env.get(f"{PAYOUT_PREFIX}_{key.upper()}") for key in PAYOUT_DEV_KEYS)
    if not given and not development:
        return None
    return PayoutConfig(**credentials(env, PAYOUT_PREFIX, PAYOUT_DEV_KEYS, development))


def from_env(env: Mapping[str, str], development: bool, urls: ServiceUrls) -> PayosConfig:
    """PAYOS_CLIENT_ID, PAYOS_API_KEY, PAYOS_CHECKSUM_KEY, PAYOS_BASE_URL,
    PAYOS_CHECKOUT_URL, and the payout credentials (payout_from_env)."""
    sandbox = f"{ENV_PREFIX}_SANDBOX"
    return PayosConfig(
        **credentials(env, ENV_PREFIX, DEV_KEYS, development),
        base_url=API.resolve(env, development, sandbox, urls),
        return_url=urls.public_base_url + RETURN_PATH,
        cancel_url=urls.public_base_url + RETURN_PATH,
        checkout_base=CHECKOUT.resolve(env, development, sandbox, urls),
        payout=payout_from_env(env, development),
    )


SETTINGS: Final = GatewaySettings(
    provider=Provider.PAYOS,
    traits=TRAITS,
    routes=ROUTES,
    from_env=from_env,
    env_prefix=ENV_PREFIX,
    dev_keys=DEV_KEYS,
    optional_dev_keys={f"{PAYOUT_PREFIX}_{k.upper()}": v for k, v in PAYOUT_DEV_KEYS.items()},
    endpoints=(API, CHECKOUT),
    configured_traits=configured_traits,
)
