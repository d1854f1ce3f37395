"""Settings, read from the environment once, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from paykit.settings import ConfigError, env_int
from payment_service.domain.model import Policy, Provider
from payment_service.providers import momo, payos, zalopay
from payment_service.providers.momo import MomoConfig
from payment_service.providers.payos import PayosConfig
from payment_service.providers.vnpay import VnpayConfig
from payment_service.providers.zalopay import ZalopayConfig

# Development defaults: a made-up terminal and secret that only the local
# simulator and tests accept. `payments serve` refuses to run on them unless
# PAYMENTS_ENV=development.
DEV_VNPAY_TMN_CODE = "DEVTMN01"
DEV_VNPAY_HASH_SECRET = "DEVSECRETDEVSECRETDEVSECRET01234"  # noqa: S105 - public development value
DEFAULT_VNPAY_API_URL = "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html"
DEFAULT_VNPAY_QUERY_URL = "https://sandbox.vnpayment.vn/merchant_webapi/api/transaction"
# The wallets' development credentials: made up (payOS) or the gateways'
# own published sandbox samples (MoMo, ZaloPay). In development every base
# URL points at the local simulator (`payments sim`), which signs with these.
DEV_PAYOS = {
    "client_id": "dev-client",
    "api_key": "dev-api-key",
    "checksum_key": "devchecksumkeydevchecksumkey0123",
}
DEV_MOMO = {
    "partner_code": "MOMO",
    "access_key": "F8BBA842ECF85",
    "secret_key": "K951B6PE1waDMi640xX08PD3vg6EkVlz",
}
DEV_ZALOPAY = {
    "app_id": "2553",
    "key1": "PcY4iZIKFCIdgZvA6ueMcMHHUbRLYjPL",
    "key2": "kLtgPl8HHhfvMuDHPwKfgfsY4Ydm9eIz",
}
WALLETS = (Provider.PAYOS, Provider.MOMO, Provider.ZALOPAY)


def _credentials(
    env: Mapping[str, str], prefix: str, dev: Mapping[str, str], development: bool
) -> dict[str, str]:
    """PREFIX_<KEY> for each key of dev; development fills the gaps."""
    values = {key: env.get(f"{prefix}_{key.upper()}", "") for key in dev}
    if development:
        values = {key: value or dev[key] for key, value in values.items()}
    missing = [f"{prefix}_{key.upper()}" for key, value in values.items() if not value]
    if missing:
        raise ConfigError(f"{', '.join(missing)} required to enable {prefix.lower()}")
    return values


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
    vnpay_query_url: str = ""  # querydr endpoint; empty: VNPay is not reconciled
    payos: PayosConfig | None = None
    payos_checkout_base: str = ""
    momo: MomoConfig | None = None
    zalopay: ZalopayConfig | None = None
    gateway_timeout_seconds: float = 5.0
    grpc_workers: int = 16
    db_pool_size: int = 16  # one connection per gRPC worker: no overflow churn
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
        public = (env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{ingress_port}").rstrip("/")
        sim = f"http://127.0.0.1:{env_int(env, 'SIM_PORT', 8090)}"
        result_url = env.get("PAYMENT_RESULT_URL") or f"{public}/result"
        names = env.get("PAYMENT_PROVIDERS") or (
            "vnpay,cod,payos,momo,zalopay" if development else "vnpay,cod"
        )
        try:
            enabled = frozenset(Provider(name.strip().upper()) for name in names.split(",") if name.strip())
        except ValueError:
            raise ConfigError(f"PAYMENT_PROVIDERS has an unknown provider: {names!r}") from None
        payos_config = momo_config = zalopay_config = None
        if Provider.PAYOS in enabled:
            c = _credentials(env, "PAYOS", DEV_PAYOS, development)
            payos_config = PayosConfig(
                **c,
                base_url=env.get("PAYOS_BASE_URL")
                or (f"{sim}/payos" if development else payos.PAYOS_BASE_URL),
                return_url=result_url,
                cancel_url=result_url,
            )
        if Provider.MOMO in enabled:
            c = _credentials(env, "MOMO", DEV_MOMO, development)
            momo_config = MomoConfig(
                **c,
                endpoint=env.get("MOMO_ENDPOINT")
                or (f"{sim}/momo" if development else momo.MOMO_TEST_ENDPOINT),
                redirect_url=result_url,
                ipn_url=f"{public}/webhooks/momo/ipn",
            )
        if Provider.ZALOPAY in enabled:
            c = _credentials(env, "ZALOPAY", DEV_ZALOPAY, development)
            if not c["app_id"].isdigit():
                raise ConfigError("ZALOPAY_APP_ID must be a number")
            zalopay_config = ZalopayConfig(
                app_id=int(c["app_id"]),
                key1=c["key1"],
                key2=c["key2"],
                endpoint=env.get("ZALOPAY_ENDPOINT")
                or (f"{sim}/zalopay" if development else zalopay.ZALOPAY_SANDBOX_ENDPOINT),
                callback_url=f"{public}/webhooks/zalopay/callback",
                redirect_url=result_url,
            )
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            data_dir=Path(env.get("DATA_DIR", ".data")),
            host=env.get("PAYMENTS_HOST", "127.0.0.1"),
            payment_grpc_port=env_int(env, "PAYMENT_GRPC_PORT", 50051),
            vnpay=VnpayConfig(
                tmn_code=tmn,
                hash_secret=secret,
                pay_url=env.get("VNPAY_API_URL")
                or (f"{sim}/vnpay/paymentv2/vpcpay.html" if development else DEFAULT_VNPAY_API_URL),
                return_url=env.get("VNPAY_RETURN_URL")
                or f"http://127.0.0.1:{ingress_port}/webhooks/vnpay/return",
            ),
            policy=Policy(
                enabled_providers=enabled,
                max_attempts=env_int(env, "PAYMENT_MAX_ATTEMPTS", 5, minimum=1),
                ttl=timedelta(minutes=env_int(env, "PAYMENT_TTL_MINUTES", 15, minimum=1)),
                expiry_grace=timedelta(seconds=env_int(env, "PAYMENT_EXPIRY_GRACE_SECONDS", 60)),
            ),
            development=development,
            payment_result_url=env.get("PAYMENT_RESULT_URL", ""),
            vnpay_query_url=env.get("VNPAY_QUERY_URL")
            or (f"{sim}/vnpay/merchant_webapi/api/transaction" if development else DEFAULT_VNPAY_QUERY_URL),
            payos=payos_config,
            payos_checkout_base=env.get("PAYOS_CHECKOUT_URL")
            or (f"{sim}/payos/web" if development else "https://pay.payos.vn/web"),
            momo=momo_config,
            zalopay=zalopay_config,
            expiry_sweep_seconds=float(env_int(env, "SWEEP_INTERVAL", 60, minimum=1)),
            grpc_workers=env_int(env, "PAYMENT_GRPC_WORKERS", 16, minimum=1),
            db_pool_size=env_int(env, "PAYMENT_DB_POOL_SIZE", 16, minimum=1),
        )
