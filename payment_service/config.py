"""Settings, read from the environment once, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from payment_service.domain.model import Policy, Provider
from payment_service.providers.vnpay import VnpayConfig
from payments.config import ConfigError, env_int

# Development defaults: a made-up terminal and secret that only the local
# simulator and tests accept. `payments serve` refuses to run on them unless
# PAYMENTS_ENV=development.
DEV_VNPAY_TMN_CODE = "DEVTMN01"
DEV_VNPAY_HASH_SECRET = "DEVSECRETDEVSECRETDEVSECRET01234"  # noqa: S105 - public development value
DEFAULT_VNPAY_API_URL = "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html"


@dataclass(frozen=True)
class Settings:
    database_url: str  # empty: start the embedded PostgreSQL in data_dir
    data_dir: Path
    host: str
    payment_grpc_port: int
    vnpay: VnpayConfig
    policy: Policy
    development: bool
    # Where the browser return page redirects (with order_id and status);
    # empty: show a small result page instead.
    payment_result_url: str = ""
    grpc_workers: int = 16
    db_pool_size: int = 10
    shutdown_grace_seconds: float = 5.0
    expiry_sweep_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        development = env.get("PAYMENTS_ENV", "production") == "development"
        tmn = env.get("VNPAY_TMN_CODE") or (DEV_VNPAY_TMN_CODE if development else "")
        secret = env.get("VNPAY_HASH_SECRET") or (DEV_VNPAY_HASH_SECRET if development else "")
        if not tmn or not secret:
            raise ConfigError(
                "VNPAY_TMN_CODE and VNPAY_HASH_SECRET are required"
                " (or PAYMENTS_ENV=development for local defaults)"
            )
        ingress_port = env_int(env, "INGRESS_PORT", 8080)
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            data_dir=Path(env.get("DATA_DIR", ".data")),
            host=env.get("PAYMENTS_HOST", "127.0.0.1"),
            payment_grpc_port=env_int(env, "PAYMENT_GRPC_PORT", 50051),
            vnpay=VnpayConfig(
                tmn_code=tmn,
                hash_secret=secret,
                pay_url=env.get("VNPAY_API_URL") or DEFAULT_VNPAY_API_URL,
                return_url=env.get("VNPAY_RETURN_URL")
                or f"http://127.0.0.1:{ingress_port}/webhooks/vnpay/return",
            ),
            policy=Policy(
                enabled_providers=frozenset({Provider.VNPAY, Provider.COD}),
                max_attempts=env_int(env, "PAYMENT_MAX_ATTEMPTS", 5, minimum=1),
                ttl=timedelta(minutes=env_int(env, "PAYMENT_TTL_MINUTES", 15, minimum=1)),
                expiry_grace=timedelta(seconds=env_int(env, "PAYMENT_EXPIRY_GRACE_SECONDS", 60)),
            ),
            development=development,
            payment_result_url=env.get("PAYMENT_RESULT_URL", ""),
            grpc_workers=env_int(env, "PAYMENT_GRPC_WORKERS", 16, minimum=1),
            db_pool_size=env_int(env, "PAYMENT_DB_POOL_SIZE", 10, minimum=1),
        )
