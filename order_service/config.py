"""Order service settings, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from order_service.domain.model import LatePaymentPolicy, OrderPolicy
from order_service.service_layer.services import Retention
from paykit.settings import (
    DEFAULT_PORTS,
    ClientTls,
    ConfigError,
    ServerTls,
    bind_findings,
    client_tls_from_env,
    env_flag,
    env_int,
    grpc_bind_from_env,
    host_port,
    is_development,
    is_loopback,
    is_wildcard,
)


@dataclass(frozen=True)
class OrderSettings:
    database_url: str
    data_dir: Path
    host: str  # ORDER_GRPC_HOST
    order_grpc_port: int
    payment_target: str  # host:port of payment.v1.PaymentService
    policy: OrderPolicy
    sweep_interval_seconds: float = 60.0
    payment_timeout_seconds: float = 5.0
    # The payment event stream: its deadline (the follower reconnects from
    # its cursor when it passes), the channel's keepalive, and how often the
    # follower logs its lag.
    stream_deadline_seconds: float = 300.0
    keepalive_seconds: float = 30.0
    lag_log_seconds: float = 60.0
    grpc_workers: int = 16
    db_pool_size: int = 10
    shutdown_grace_seconds: float = 5.0
    seed_catalog: bool = False
    grpc_tls: ServerTls | None = None  # ORDER_GRPC_TLS_*: the gRPC port speaks TLS only
    grpc_insecure: bool = False  # ORDER_GRPC_INSECURE=1: a non-loopback bind without TLS, by choice
    payment_tls: ClientTls | None = None  # PAYMENT_TLS_*: reach the payment service over TLS
    applied_events_retention_days: int = 30  # APPLIED_EVENTS_RETENTION_DAYS
    outbox_retention_days: int = 7  # OUTBOX_RETENTION_DAYS (its own outbox, order_events)
    prune_interval_seconds: float = 3600.0  # PRUNE_INTERVAL_SECONDS; 0: only `payments prune`
    development: bool = False  # PAYMENTS_ENV=development: the test clock may move

    def retention(self) -> Retention:
        return Retention(
            applied_events=timedelta(days=self.applied_events_retention_days),
            outbox=timedelta(days=self.outbox_retention_days),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OrderSettings:
        env = os.environ if env is None else env
        bind = grpc_bind_from_env(env, "ORDER", DEFAULT_PORTS["order"])
        return cls(
            database_url=env.get("ORDER_DATABASE_URL", ""),
            data_dir=Path(env.get("DATA_DIR", ".data")),
            host=bind.host,
            order_grpc_port=bind.port,
            grpc_tls=bind.tls,
            grpc_insecure=bind.insecure,
            payment_target=payment_target(env),
            development=is_development(env),
            payment_tls=client_tls_from_env(env, "PAYMENT"),
            policy=OrderPolicy(
                order_ttl=timedelta(minutes=env_int(env, "ORDER_TTL_MINUTES", 30, minimum=1)),
                retry_limit=env_int(env, "RETRY_PAYMENT_LIMIT_PER_MINUTE", 10, minimum=1),
                max_open_orders=env_int(env, "ORDER_MAX_OPEN_PER_USER", 10, minimum=1),
                retry_min_remaining=timedelta(seconds=env_int(env, "RETRY_MIN_REMAINING_SECONDS", 120)),
                late_payment=late_payment_policy(env),
            ),
            stream_deadline_seconds=float(env_int(env, "PAYMENT_STREAM_DEADLINE_SECONDS", 300, minimum=1)),
            keepalive_seconds=float(env_int(env, "PAYMENT_KEEPALIVE_SECONDS", 30, minimum=10)),
            lag_log_seconds=float(env_int(env, "PAYMENT_STREAM_LAG_LOG_SECONDS", 60, minimum=1)),
            sweep_interval_seconds=float(env_int(env, "SWEEP_INTERVAL", 60, minimum=1)),
            grpc_workers=env_int(env, "ORDER_GRPC_WORKERS", 16, minimum=1),
            db_pool_size=env_int(env, "ORDER_DB_POOL_SIZE", 10, minimum=1),
            applied_events_retention_days=env_int(env, "APPLIED_EVENTS_RETENTION_DAYS", 30, minimum=1),
            outbox_retention_days=env_int(env, "OUTBOX_RETENTION_DAYS", 7, minimum=1),
            prune_interval_seconds=float(env_int(env, "PRUNE_INTERVAL_SECONDS", 3600)),
        )


def late_payment_policy(env: Mapping[str, str]) -> LatePaymentPolicy:
    """LATE_PAYMENT_POLICY, the variable the payment service reads too:
    honour (default), refund or review."""
    raw = env.get("LATE_PAYMENT_POLICY", "").strip().lower() or LatePaymentPolicy.HONOUR.value
    try:
        return LatePaymentPolicy(raw)
    except ValueError:
        allowed = " | ".join(v.value for v in LatePaymentPolicy)
        raise ConfigError(f"LATE_PAYMENT_POLICY={raw!r}: use {allowed}") from None


def payment_target(env: Mapping[str, str]) -> str:
    """PAYMENT_TARGET; else PAYMENT_GRPC_HOST (127.0.0.1 for a wildcard
    bind) and PAYMENT_GRPC_PORT, as the payment service on this host binds them."""
    if target := env.get("PAYMENT_TARGET", "").strip():
        return target
    host = env.get("PAYMENT_GRPC_HOST", "").strip()
    return host_port(
        "127.0.0.1" if is_wildcard(host) else host,
        env_int(env, "PAYMENT_GRPC_PORT", DEFAULT_PORTS["payment"]),
    )


def plaintext_payment_target(env: Mapping[str, str]) -> str:
    """PAYMENT_TARGET when it is not on this host ('' when it is)."""
    target = payment_target(env)
    return "" if is_loopback(target.rpartition(":")[0]) else target


def production_problems(env: Mapping[str, str]) -> list[str]:
    """Every unsafe or missing production setting of the order service, one line each."""
    problems: list[str] = []
    if not env.get("ORDER_DATABASE_URL") and not env.get("DATABASE_URL"):
        problems.append(
            "ORDER_DATABASE_URL and DATABASE_URL are not set: the order service would use embedded PostgreSQL"
        )
    problems += bind_findings(env, "ORDER", DEFAULT_PORTS["order"])[0]
    try:
        tls = client_tls_from_env(env, "PAYMENT")
    except ConfigError as error:
        problems.append(str(error))
    else:
        plaintext = plaintext_payment_target(env) if tls is None else ""
        # Unless the payment service chose plaintext itself: then a note (payments check-config).
        if plaintext and not env_flag(env, "PAYMENT_GRPC_INSECURE"):
            problems.append(
                f"PAYMENT_TARGET={plaintext} is not on this host and PAYMENT_TLS_CA is not set:"
                " plaintext gRPC"
            )
    return problems
