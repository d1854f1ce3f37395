"""Settings, read from the environment once, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from paykit.settings import ConfigError, env_int
from payment_service.domain.model import Policy, Provider
from payment_service.gateways import registry
from payment_service.gateways.port import ServiceUrls
from payment_service.service_layer.retention import Retention

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
    # The return page's "back to the shop" link (SHOP_URL).
    shop_url: str = "/"
    retention: Retention = field(default_factory=Retention)
    prune_interval_seconds: float = 3600.0  # PRUNE_INTERVAL_SECONDS; 0: only `payments prune`
    stream_max_seconds: float = 300.0  # a consumer's stream ends after this; it reconnects and confirms
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
            ),
            development=development,
            payment_result_url=env.get("PAYMENT_RESULT_URL", ""),
            shop_url=env.get("SHOP_URL", "/"),
            retention=retention_from_env(env),
            prune_interval_seconds=float(env_int(env, "PRUNE_INTERVAL_SECONDS", 3600)),
            expiry_sweep_seconds=float(env_int(env, "SWEEP_INTERVAL", 60, minimum=1)),
            grpc_workers=env_int(env, "PAYMENT_GRPC_WORKERS", 16, minimum=1),
            db_pool_size=env_int(env, "PAYMENT_DB_POOL_SIZE", 16, minimum=1),
        )


def retention_from_env(env: Mapping[str, str]) -> Retention:
    """JOURNAL_RETENTION_DAYS (400), JOURNAL_RAW_RETENTION_DAYS (30),
    OUTBOX_RETENTION_DAYS (7), REQUEST_KEY_RETENTION_DAYS (2), OUTBOX_CONSUMERS
    ("order_service"; empty: age alone decides, e.g. Debezium only)."""
    consumers = env.get("OUTBOX_CONSUMERS", "order_service")
    return Retention(
        journal=timedelta(days=env_int(env, "JOURNAL_RETENTION_DAYS", 400, minimum=1)),
        journal_raw=timedelta(days=env_int(env, "JOURNAL_RAW_RETENTION_DAYS", 30, minimum=1)),
        outbox=timedelta(days=env_int(env, "OUTBOX_RETENTION_DAYS", 7, minimum=1)),
        request_keys=timedelta(days=env_int(env, "REQUEST_KEY_RETENTION_DAYS", 2, minimum=1)),
        required_consumers=tuple(name.strip() for name in consumers.split(",") if name.strip()),
    )


def _enabled_providers(env: Mapping[str, str], development: bool) -> frozenset[Provider]:
    names = env.get("PAYMENT_PROVIDERS") or (DEFAULT_DEV_PROVIDERS if development else DEFAULT_PROVIDERS)
    try:
        return frozenset(Provider(name.strip().upper()) for name in names.split(",") if name.strip())
    except ValueError:
        raise ConfigError(f"PAYMENT_PROVIDERS has an unknown provider: {names!r}") from None


def _service_urls(env: Mapping[str, str]) -> ServiceUrls:
    local_ingress = f"http://127.0.0.1:{env_int(env, 'INGRESS_PORT', 8080)}"
    public = (env.get("PUBLIC_BASE_URL") or local_ingress).rstrip("/")
    return ServiceUrls(
        public_base_url=public,
        local_ingress_url=local_ingress,
        simulator_url=f"http://127.0.0.1:{env_int(env, 'SIM_PORT', 8090)}",
        result_url=env.get("PAYMENT_RESULT_URL") or f"{public}/result",
    )
