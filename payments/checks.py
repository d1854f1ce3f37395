"""`payments check-config`: every unsafe or missing production setting of
the platform, read from one environment, one line each. Each service
reports its own (payment_service.config, order_service.config); the
ingress's identity-provider settings are checked here from their names."""

from __future__ import annotations

from collections.abc import Mapping

# The ingress's development defaults (ingress/envoy.py IngressSettings).
DEV_JWT_ISSUER = "payments-dev"
DEV_JWT_AUDIENCE = "payments"


def production_problems(env: Mapping[str, str]) -> list[str]:
    from order_service.config import production_problems as order_problems
    from payment_service.config import production_problems as payment_problems

    problems: list[str] = []
    if env.get("PAYMENTS_ENV", "production") == "development":
        problems.append("PAYMENTS_ENV=development: development keys, the simulator and http URLs are allowed")
    problems += payment_problems(env)
    problems += [p for p in order_problems(env) if p not in problems]
    problems += jwt_problems(env)
    if not problems:  # anything else the services would refuse at start
        problems += _load_errors({**env, "PAYMENTS_ENV": "production"})
    return problems


def _load_errors(env: Mapping[str, str]) -> list[str]:
    from order_service.config import OrderSettings
    from paykit.settings import ConfigError
    from payment_service.config import Settings

    errors = []
    for load in (Settings.from_env, OrderSettings.from_env):
        try:
            load(env)
        except ConfigError as error:
            errors.append(str(error))
    return errors


def jwt_problems(env: Mapping[str, str]) -> list[str]:
    problems = []
    url, file = env.get("JWT_JWKS_URL", ""), env.get("JWT_JWKS_FILE", "")
    if not url and not file:
        problems.append(
            "JWT_JWKS_URL and JWT_JWKS_FILE are not set: the ingress would trust the development keys "
            "in DATA_DIR/auth"
        )
    elif url and not url.lower().startswith("https://"):
        problems.append(f"JWT_JWKS_URL is not an https URL ({url})")
    issuer = env.get("JWT_ISSUER", "")
    if not issuer or issuer == DEV_JWT_ISSUER:
        problems.append(f"JWT_ISSUER is not set or the development default {DEV_JWT_ISSUER!r}")
    audience = env.get("JWT_AUDIENCE", "")
    if not audience or audience == DEV_JWT_AUDIENCE:
        problems.append(f"JWT_AUDIENCE is not set or the development default {DEV_JWT_AUDIENCE!r}")
    return problems
