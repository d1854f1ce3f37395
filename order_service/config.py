"""Order service settings, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from order_service.domain.model import OrderPolicy
from order_service.service_layer.services import Retention
from paykit.settings import env_int


@dataclass(frozen=True)
class OrderSettings:
    database_url: str
    data_dir: Path
    host: str
    order_grpc_port: int
    payment_target: str  # host:port of payment.v1.PaymentService
    policy: OrderPolicy
    sweep_interval_seconds: float = 60.0
    payment_timeout_seconds: float = 5.0
    grpc_workers: int = 16
    db_pool_size: int = 10
    shutdown_grace_seconds: float = 5.0
    seed_catalog: bool = False
    applied_events_retention_days: int = 30  # APPLIED_EVENTS_RETENTION_DAYS
    outbox_retention_days: int = 7  # OUTBOX_RETENTION_DAYS (its own outbox, order_events)
    prune_interval_seconds: float = 3600.0  # PRUNE_INTERVAL_SECONDS; 0: only `payments prune`

    def retention(self) -> Retention:
        return Retention(
            applied_events=timedelta(days=self.applied_events_retention_days),
            outbox=timedelta(days=self.outbox_retention_days),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OrderSettings:
        env = os.environ if env is None else env
        host = env.get("PAYMENTS_HOST", "127.0.0.1")
        return cls(
            database_url=env.get("ORDER_DATABASE_URL", ""),
            data_dir=Path(env.get("DATA_DIR", ".data")),
            host=host,
            order_grpc_port=env_int(env, "ORDER_GRPC_PORT", 50052),
            payment_target=env.get("PAYMENT_TARGET") or f"{host}:{env_int(env, 'PAYMENT_GRPC_PORT', 50051)}",
            policy=OrderPolicy(
                order_ttl=timedelta(minutes=env_int(env, "ORDER_TTL_MINUTES", 30, minimum=1)),
                retry_limit=env_int(env, "RETRY_PAYMENT_LIMIT_PER_MINUTE", 10, minimum=1),
                max_open_orders=env_int(env, "ORDER_MAX_OPEN_PER_USER", 10, minimum=1),
            ),
            sweep_interval_seconds=float(env_int(env, "SWEEP_INTERVAL", 60, minimum=1)),
            grpc_workers=env_int(env, "ORDER_GRPC_WORKERS", 16, minimum=1),
            db_pool_size=env_int(env, "ORDER_DB_POOL_SIZE", 10, minimum=1),
            applied_events_retention_days=env_int(env, "APPLIED_EVENTS_RETENTION_DAYS", 30, minimum=1),
            outbox_retention_days=env_int(env, "OUTBOX_RETENTION_DAYS", 7, minimum=1),
            prune_interval_seconds=float(env_int(env, "PRUNE_INTERVAL_SECONDS", 3600)),
        )
