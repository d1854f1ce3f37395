"""Settings, read from the environment once, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from paykit.settings import ConfigError, env_int
from payment_service.domain.model import Policy, Provider
from payment_service.gateways import registry
from payment_service.gateways.port import ServiceUrls

DEFAULT_PROVIDERS = "vnpay,cod"
DEFAULT_DEV_PROVIDERS = "vnpay,cod,payos,momo,zalopay"


@dataclass(frozen=True)
class Settings:
    database_url: str  # empty: start the embedded PostgreSQL in data_dir
    data_dir: Path
    host: str
    payment_grpc_port: int
    # The config of each enabled gateway, from its settings module.
    gateways: Mapping[Provider, Any]
    policy: Policy
    development: bool
    # Where the browser return page redirects (with order_id and status);
    # empty: show a small result page instead.
    payment_result_url: str = ""
    gateway_timeout_seconds: float = 5.0
    grpc_workers: int = 16
    db_pool_size: int = 16  # one connection per gRPC worker: no overflow churn
    shutdown_grace_seconds: float = 5.0
    expiry_sweep_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        development = env.get("PAYMENTS_ENV", "production") == "development"
        enabled = _enabled_providers(env, development)
        urls = _service_urls(env)
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            data_dir=Path(env.get("DATA_DIR", ".data")),
            host=env.get("PAYMENTS_HOST", "127.0.0.1"),
            payment_grpc_port=env_int(env, "PAYMENT_GRPC_PORT", 50051),
            gateways={
                gateway.provider: gateway.from_env(env, development, urls)
                for gateway in registry.all_settings()
                if gateway.provider in enabled
            },
            policy=Policy(
                enabled_providers=enabled,
                traits=registry.traits(),
                max_attempts=env_int(env, "PAYMENT_MAX_ATTEMPTS", 5, minimum=1),
                ttl=timedelta(minutes=env_int(env, "PAYMENT_TTL_MINUTES", 15, minimum=1)),
                expiry_grace=timedelta(seconds=env_int(env, "PAYMENT_EXPIRY_GRACE_SECONDS", 60)),
                min_attempt_lifetime=timedelta(seconds=env_int(env, "PAYMENT_MIN_ATTEMPT_SECONDS", 120)),
                default_provider=_default_provider(env, enabled),
            ),
            development=development,
            payment_result_url=env.get("PAYMENT_RESULT_URL", ""),
            expiry_sweep_seconds=float(env_int(env, "SWEEP_INTERVAL", 60, minimum=1)),
            grpc_workers=env_int(env, "PAYMENT_GRPC_WORKERS", 16, minimum=1),
            db_pool_size=env_int(env, "PAYMENT_DB_POOL_SIZE", 16, minimum=1),
        )


def _enabled_providers(env: Mapping[str, str], development: bool) -> frozenset[Provider]:
    names = env.get("PAYMENT_PROVIDERS") or (DEFAULT_DEV_PROVIDERS if development else DEFAULT_PROVIDERS)
    try:
        return frozenset(Provider(name.strip().upper()) for name in names.split(",") if name.strip())
    except ValueError:
        raise ConfigError(f"PAYMENT_PROVIDERS has an unknown provider: {names!r}") from None


def _default_provider(env: Mapping[str, str], enabled: frozenset[Provider]) -> Provider | None:
    """PAYMENT_DEFAULT_PROVIDER (default vnpay): a first attempt's provider
    when the caller names none; None when it is not enabled."""
    name = env.get("PAYMENT_DEFAULT_PROVIDER", "vnpay").strip().upper()
    try:
        provider = Provider(name)
    except ValueError:
        raise ConfigError(f"PAYMENT_DEFAULT_PROVIDER is not a provider: {name!r}") from None
    return provider if provider in enabled else None


def _service_urls(env: Mapping[str, str]) -> ServiceUrls:
    local_ingress = f"http://127.0.0.1:{env_int(env, 'INGRESS_PORT', 8080)}"
    public = (env.get("PUBLIC_BASE_URL") or local_ingress).rstrip("/")
    return ServiceUrls(
        public_base_url=public,
        local_ingress_url=local_ingress,
        simulator_url=f"http://127.0.0.1:{env_int(env, 'SIM_PORT', 8090)}",
        result_url=env.get("PAYMENT_RESULT_URL") or f"{public}/result",
    )
