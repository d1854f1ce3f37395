"""Order service settings, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from order_service.domain.model import OrderPolicy
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
                retry_min_remaining=timedelta(seconds=env_int(env, "RETRY_MIN_REMAINING_SECONDS", 120)),
            ),
            stream_deadline_seconds=float(env_int(env, "PAYMENT_STREAM_DEADLINE_SECONDS", 300, minimum=1)),
            keepalive_seconds=float(env_int(env, "PAYMENT_KEEPALIVE_SECONDS", 30, minimum=10)),
            lag_log_seconds=float(env_int(env, "PAYMENT_STREAM_LAG_LOG_SECONDS", 60, minimum=1)),
            sweep_interval_seconds=float(env_int(env, "SWEEP_INTERVAL", 60, minimum=1)),
            grpc_workers=env_int(env, "ORDER_GRPC_WORKERS", 16, minimum=1),
            db_pool_size=env_int(env, "ORDER_DB_POOL_SIZE", 10, minimum=1),
        )
