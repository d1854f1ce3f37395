"""Settings of the gateway simulator: where it listens, where callbacks go,
the credentials it signs and verifies with, and how fast time runs."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from paykit.settings import DEFAULT_PORTS, ConfigError, env_int
from payment_service.gateways.momo import settings as momo_settings
from payment_service.gateways.payos import settings as payos_settings
from payment_service.gateways.vnpay import settings as vnpay_settings
from payment_service.gateways.zalopay import settings as zalopay_settings

# Development defaults: the same values the payment service falls back to
# with PAYMENTS_ENV=development (from each gateway's settings module), so
# `payments dev` needs no credentials.
DEV_VNPAY_TMN_CODE: Final = vnpay_settings.DEV_KEYS["tmn_code"]
DEV_VNPAY_HASH_SECRET: Final = vnpay_settings.DEV_KEYS["hash_secret"]
DEV_PAYOS_CLIENT_ID: Final = payos_settings.DEV_KEYS["client_id"]
DEV_PAYOS_API_KEY: Final = payos_settings.DEV_KEYS["api_key"]
DEV_PAYOS_CHECKSUM_KEY: Final = payos_settings.DEV_KEYS["checksum_key"]
# The payout channel's own keys (refunds are payouts).
DEV_PAYOS_PAYOUT_CLIENT_ID: Final = payos_settings.PAYOUT_DEV_KEYS["client_id"]
DEV_PAYOS_PAYOUT_API_KEY: Final = payos_settings.PAYOUT_DEV_KEYS["api_key"]
DEV_PAYOS_PAYOUT_CHECKSUM_KEY: Final = payos_settings.PAYOUT_DEV_KEYS["checksum_key"]
DEV_MOMO_PARTNER_CODE: Final = momo_settings.DEV_KEYS["partner_code"]
DEV_MOMO_ACCESS_KEY: Final = momo_settings.DEV_KEYS["access_key"]
DEV_MOMO_SECRET_KEY: Final = momo_settings.DEV_KEYS["secret_key"]
DEV_ZALOPAY_APP_ID: Final = zalopay_settings.DEV_APP_ID
DEV_ZALOPAY_KEY1: Final = zalopay_settings.DEV_KEYS["key1"]
DEV_ZALOPAY_KEY2: Final = zalopay_settings.DEV_KEYS["key2"]

DEFAULT_SIM_PORT: Final = DEFAULT_PORTS["sim"]
DEFAULT_INGRESS_PORT: Final = DEFAULT_PORTS["ingress"]


def _require(owner: str, **values: str) -> None:
    for name, value in values.items():
        if not value:
            raise ConfigError(f"{owner}.{name} must not be empty")


# repr=False on every secret keeps it out of logs, tracebacks and debug output.


@dataclass(frozen=True)
class VnpayCredentials:
    tmn_code: str = DEV_VNPAY_TMN_CODE
    hash_secret: str = field(default=DEV_VNPAY_HASH_SECRET, repr=False)

    def __post_init__(self) -> None:
        _require("VnpayCredentials", tmn_code=self.tmn_code, hash_secret=self.hash_secret)


@dataclass(frozen=True)
class PayosCredentials:
    client_id: str = DEV_PAYOS_CLIENT_ID
    api_key: str = field(default=DEV_PAYOS_API_KEY, repr=False)
    checksum_key: str = field(default=DEV_PAYOS_CHECKSUM_KEY, repr=False)
    payout_client_id: str = DEV_PAYOS_PAYOUT_CLIENT_ID
    payout_api_key: str = field(default=DEV_PAYOS_PAYOUT_API_KEY, repr=False)
    payout_checksum_key: str = field(default=DEV_PAYOS_PAYOUT_CHECKSUM_KEY, repr=False)

    def __post_init__(self) -> None:
        _require(
            "PayosCredentials",
            client_id=self.client_id,
            api_key=self.api_key,
            checksum_key=self.checksum_key,
            payout_client_id=self.payout_client_id,
            payout_api_key=self.payout_api_key,
            payout_checksum_key=self.payout_checksum_key,
        )


@dataclass(frozen=True)
class MomoCredentials:
    partner_code: str = DEV_MOMO_PARTNER_CODE
    access_key: str = field(default=DEV_MOMO_ACCESS_KEY, repr=False)
    secret_key: str = field(default=DEV_MOMO_SECRET_KEY, repr=False)

    def __post_init__(self) -> None:
        _require(
            "MomoCredentials",
            partner_code=self.partner_code,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )


@dataclass(frozen=True)
class ZalopayCredentials:
    app_id: int = DEV_ZALOPAY_APP_ID
    key1: str = field(default=DEV_ZALOPAY_KEY1, repr=False)
    key2: str = field(default=DEV_ZALOPAY_KEY2, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.app_id, bool) or not isinstance(self.app_id, int) or self.app_id <= 0:
            raise ConfigError("ZalopayCredentials.app_id must be a positive integer")
        _require("ZalopayCredentials", key1=self.key1, key2=self.key2)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    # Loopback only: the simulator signs real-looking callbacks with real keys.
    host: str = "127.0.0.1"
    port: int = DEFAULT_SIM_PORT  # 0: an ephemeral port (Simulator.port tells which)
    # Where the gateways' server-to-server callbacks go (the Envoy ingress).
    ingress_base_url: str = f"http://127.0.0.1:{DEFAULT_INGRESS_PORT}"
    vnpay: VnpayCredentials = field(default_factory=VnpayCredentials)
    payos: PayosCredentials = field(default_factory=PayosCredentials)
    momo: MomoCredentials = field(default_factory=MomoCredentials)
    zalopay: ZalopayCredentials = field(default_factory=ZalopayCredentials)
    # Multiplies every gateway wait (retry intervals, scripted delays):
    # 0.001 turns VNPay's 10 attempts 5 minutes apart into 10 attempts 0.3 s apart.
    time_scale: float = 1.0
    # Seconds one callback attempt may take before it counts as a timeout
    # (real time, never scaled).
    callback_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not is_loopback(self.host):
            raise ConfigError(f"the simulator listens on loopback only, not {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"SimConfig.port must be 0-65535, got {self.port!r}")
        parts = urlsplit(self.ingress_base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"ingress_base_url must be an http(s) URL, got {self.ingress_base_url!r}")
        if not math.isfinite(self.time_scale) or self.time_scale < 0:
            raise ConfigError(f"time_scale must be a finite number >= 0, got {self.time_scale!r}")
        if not math.isfinite(self.callback_timeout) or self.callback_timeout <= 0:
            raise ConfigError(f"callback_timeout must be > 0, got {self.callback_timeout!r}")

    @property
    def ingress(self) -> str:
        return self.ingress_base_url.rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SimConfig:
        """VNPAY_TMN_CODE, VNPAY_HASH_SECRET, PAYOS_CLIENT_ID, PAYOS_API_KEY,
        PAYOS_CHECKSUM_KEY, PAYOS_PAYOUT_CLIENT_ID, PAYOS_PAYOUT_API_KEY,
        PAYOS_PAYOUT_CHECKSUM_KEY, MOMO_PARTNER_CODE, MOMO_ACCESS_KEY, MOMO_SECRET_KEY,
        ZALOPAY_APP_ID, ZALOPAY_KEY1, ZALOPAY_KEY2 (each defaulting to its
        DEV_* value), SIM_PORT (8090), INGRESS_PORT (8080), SIM_TIME_SCALE (1)."""
        raw_app_id = env.get("ZALOPAY_APP_ID") or str(DEV_ZALOPAY_APP_ID)
        if not raw_app_id.isdigit() or int(raw_app_id) <= 0:
            raise ConfigError(f"ZALOPAY_APP_ID must be a positive integer, got {raw_app_id!r}")
        raw_scale = env.get("SIM_TIME_SCALE", "").strip() or "1"
        try:
            time_scale = float(raw_scale)
        except ValueError:
            raise ConfigError(f"SIM_TIME_SCALE must be a number, got {raw_scale!r}") from None
        return cls(
            port=env_int(env, "SIM_PORT", DEFAULT_SIM_PORT),
            ingress_base_url=f"http://127.0.0.1:{env_int(env, 'INGRESS_PORT', DEFAULT_INGRESS_PORT)}",
            vnpay=VnpayCredentials(
                tmn_code=env.get("VNPAY_TMN_CODE") or DEV_VNPAY_TMN_CODE,
                hash_secret=env.get("VNPAY_HASH_SECRET") or DEV_VNPAY_HASH_SECRET,
            ),
            payos=PayosCredentials(
                client_id=env.get("PAYOS_CLIENT_ID") or DEV_PAYOS_CLIENT_ID,
                api_key=env.get("PAYOS_API_KEY") or DEV_PAYOS_API_KEY,
                checksum_key=env.get("PAYOS_CHECKSUM_KEY") or DEV_PAYOS_CHECKSUM_KEY,
                payout_client_id=env.get("PAYOS_PAYOUT_CLIENT_ID") or DEV_PAYOS_PAYOUT_CLIENT_ID,
                payout_api_key=env.get("PAYOS_PAYOUT_API_KEY") or DEV_PAYOS_PAYOUT_API_KEY,
                payout_checksum_key=env.get("PAYOS_PAYOUT_CHECKSUM_KEY") or DEV_PAYOS_PAYOUT_CHECKSUM_KEY,
            ),
            momo=MomoCredentials(
                partner_code=env.get("MOMO_PARTNER_CODE") or DEV_MOMO_PARTNER_CODE,
                access_key=env.get("MOMO_ACCESS_KEY") or DEV_MOMO_ACCESS_KEY,
                secret_key=env.get("MOMO_SECRET_KEY") or DEV_MOMO_SECRET_KEY,
            ),
            zalopay=ZalopayCredentials(
                app_id=int(raw_app_id),
                key1=env.get("ZALOPAY_KEY1") or DEV_ZALOPAY_KEY1,
                key2=env.get("ZALOPAY_KEY2") or DEV_ZALOPAY_KEY2,
            ),
            time_scale=time_scale,
        )
