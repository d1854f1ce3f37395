"""Settings, read from the environment once, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from paykit.origins import LOOPBACK_ORIGINS, parse_origins
from paykit.settings import (
    DEFAULT_PORTS,
    ConfigError,
    ServerTls,
    bind_findings,
    env_int,
    grpc_bind_from_env,
    is_development,
)
from payment_service.domain.model import ExtraPaymentPolicy, LatePaymentPolicy, Policy, Provider
from payment_service.gateways import registry
from payment_service.gateways.port import ServiceUrls
from payment_service.service_layer.retention import Retention

DEFAULT_PROVIDERS = "vnpay,cod"
DEFAULT_DEV_PROVIDERS = "vnpay,cod,payos,momo,zalopay"


@dataclass(frozen=True)
class Settings:
    database_url: str  # empty: start the embedded PostgreSQL in data_dir
    data_dir: Path
    host: str  # PAYMENT_GRPC_HOST
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
    stream_fallback_poll_seconds: float = 10.0  # streams wake on commit (NOTIFY); this poll is a fallback
    gateway_timeout_seconds: float = 5.0
    grpc_workers: int = 16
    # Gateway calls of requests (create, query, cancel) run on a pool of their
    # own: GATEWAY_CALL_WORKERS at once, GATEWAY_CALL_QUEUE more waiting, the
    # rest refused (UNAVAILABLE with RetryInfo). Together below grpc_workers,
    # so a slow gateway never holds every thread that answers callbacks.
    gateway_call_workers: int = 8
    gateway_call_queue: int = 4
    db_pool_size: int = 16  # one connection per gRPC worker: no overflow churn
    shutdown_grace_seconds: float = 5.0
    expiry_sweep_seconds: float = 30.0
    grpc_tls: ServerTls | None = None  # PAYMENT_GRPC_TLS_*: the gRPC port speaks TLS only
    grpc_insecure: bool = False  # PAYMENT_GRPC_INSECURE=1: a non-loopback bind without TLS, by choice

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        development = is_development(env)
        enabled = _enabled_providers(env, development)
        urls = _service_urls(env, development)
        bind = grpc_bind_from_env(env, "PAYMENT", DEFAULT_PORTS["payment"])
        grpc_workers = env_int(env, "PAYMENT_GRPC_WORKERS", 16, minimum=1)
        call_workers = env_int(env, "GATEWAY_CALL_WORKERS", 8, minimum=1)
        call_queue = env_int(env, "GATEWAY_CALL_QUEUE", 4)
        if call_workers + call_queue >= grpc_workers:
            raise ConfigError(
                f"GATEWAY_CALL_WORKERS + GATEWAY_CALL_QUEUE ({call_workers + call_queue}) must stay below"
                f" PAYMENT_GRPC_WORKERS ({grpc_workers}): the threads left over answer callbacks"
            )
        gateways = {
            gateway.provider: gateway.from_env(env, development, urls)
            for gateway in registry.all_settings()
            if gateway.provider in enabled
        }
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            data_dir=Path(env.get("DATA_DIR", ".data")),
            host=bind.host,
            payment_grpc_port=bind.port,
            grpc_tls=bind.tls,
            grpc_insecure=bind.insecure,
            gateways=gateways,
            policy=Policy(
                enabled_providers=enabled,
                traits=registry.traits(gateways),
                max_attempts=env_int(env, "PAYMENT_MAX_ATTEMPTS", 5, minimum=1),
                ttl=timedelta(minutes=env_int(env, "PAYMENT_TTL_MINUTES", 15, minimum=1)),
                expiry_grace=timedelta(seconds=env_int(env, "PAYMENT_EXPIRY_GRACE_SECONDS", 60)),
                return_url_origins=return_url_origins(env, development),
                min_attempt_lifetime=timedelta(seconds=env_int(env, "PAYMENT_MIN_ATTEMPT_SECONDS", 120)),
                default_provider=_default_provider(env, enabled),
                extra_payment_policy=_choice(env, "EXTRA_PAYMENT_POLICY", ExtraPaymentPolicy.REFUND),
                late_payment_policy=_choice(env, "LATE_PAYMENT_POLICY", LatePaymentPolicy.HONOUR),
            ),
            development=development,
            payment_result_url=env.get("PAYMENT_RESULT_URL", ""),
            shop_url=env.get("SHOP_URL", "/"),
            retention=retention_from_env(env),
            prune_interval_seconds=float(env_int(env, "PRUNE_INTERVAL_SECONDS", 3600)),
            expiry_sweep_seconds=float(env_int(env, "SWEEP_INTERVAL", 60, minimum=1)),
            grpc_workers=grpc_workers,
            gateway_call_workers=call_workers,
            gateway_call_queue=call_queue,
            db_pool_size=env_int(env, "PAYMENT_DB_POOL_SIZE", 16, minimum=1),
        )


_E = TypeVar("_E", bound=StrEnum)


def _choice(env: Mapping[str, str], name: str, default: _E) -> _E:
    """One of an enum's values, from the environment."""
    raw = env.get(name, "").strip().lower() or default.value
    kind = type(default)
    try:
        return kind(raw)
    except ValueError:
        allowed = " | ".join(v.value for v in kind)
        raise ConfigError(f"{name}={raw!r}: use {allowed}") from None


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


def _default_provider(env: Mapping[str, str], enabled: frozenset[Provider]) -> Provider | None:
    """PAYMENT_DEFAULT_PROVIDER (default vnpay): a first attempt's provider
    when the caller names none; None when it is not enabled."""
    name = env.get("PAYMENT_DEFAULT_PROVIDER", "vnpay").strip().upper()
    try:
        provider = Provider(name)
    except ValueError:
        raise ConfigError(f"PAYMENT_DEFAULT_PROVIDER is not a provider: {name!r}") from None
    return provider if provider in enabled else None


def return_url_origins(env: Mapping[str, str], development: bool) -> frozenset[str]:
    """RETURN_URL_ALLOWED_ORIGINS; unset: this machine's origins in
    development, none in production (return_url must then be empty)."""
    raw = env.get("RETURN_URL_ALLOWED_ORIGINS")
    if raw is None:
        return LOOPBACK_ORIGINS if development else frozenset()
    return parse_origins(raw)


def public_base_url(env: Mapping[str, str], development: bool) -> str:
    """PUBLIC_BASE_URL, how browsers and gateways reach the ingress: every
    callback and return URL is built on it. Required, and https, outside
    development; development defaults to the local ingress."""
    raw = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
    if development:
        return raw or f"http://127.0.0.1:{env_int(env, 'INGRESS_PORT', DEFAULT_PORTS['ingress'])}"
    if not raw:
        raise ConfigError(
            "PUBLIC_BASE_URL is required outside development (https://, how gateways reach the ingress)"
        )
    if not raw.lower().startswith("https://"):
        raise ConfigError(f"PUBLIC_BASE_URL must be https outside development, got {raw!r}")
    return raw


def _service_urls(env: Mapping[str, str], development: bool) -> ServiceUrls:
    local_ingress = f"http://127.0.0.1:{env_int(env, 'INGRESS_PORT', DEFAULT_PORTS['ingress'])}"
    public = public_base_url(env, development)
    return ServiceUrls(
        public_base_url=public,
        local_ingress_url=local_ingress,
        simulator_url=f"http://127.0.0.1:{env_int(env, 'SIM_PORT', DEFAULT_PORTS['sim'])}",
    )


def development_keys_in_use(env: Mapping[str, str]) -> list[str]:
    """Gateway key variables set to their public development value (any gateway)."""
    return [name for gateway in registry.all_settings() for name in gateway.dev_keys_in_use(env)]


def production_problems(env: Mapping[str, str]) -> list[str]:
    """Every unsafe or missing production setting of the payment service, one
    line each, as if PAYMENTS_ENV were production."""
    problems: list[str] = []
    if not env.get("DATABASE_URL"):
        problems.append("DATABASE_URL is not set: the payment service would run the embedded PostgreSQL")
    try:
        public_base_url(env, development=False)
    except ConfigError as error:
        problems.append(str(error))
    for name in ("PAYMENT_RESULT_URL", "VNPAY_RETURN_URL"):
        if env.get(name) and not env[name].lower().startswith("https://"):
            problems.append(f"{name} is not an https URL ({env[name]})")
    problems += bind_findings(env, "PAYMENT", DEFAULT_PORTS["payment"])[0]
    try:
        enabled = _enabled_providers(env, development=False)
        return_url_origins(env, development=False)
    except ConfigError as error:
        problems.append(str(error))
        enabled = frozenset()
    for gateway in registry.all_settings():
        if gateway.provider in enabled:
            problems += gateway.production_problems(env)
        else:
            problems += [f"{name} is the public development value" for name in gateway.dev_keys_in_use(env)]
    return problems
