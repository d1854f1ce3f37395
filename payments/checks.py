"""`payments check-config`: every unsafe or missing production setting of
the platform, read from one environment, one line each. Each service
reports its own (payment_service.config, order_service.config); the
ingress's identity-provider settings are checked here from their names.

A deliberate opt-out is not a problem but a note (paykit.settings.bind_findings): an internal gRPC server
on a non-loopback address without TLS under <SERVICE>_GRPC_INSECURE=1 (the
network, a NetworkPolicy say, is then the boundary), and the order service
reaching a payment service that runs so (PAYMENT_GRPC_INSECURE=1) without
PAYMENT_TLS_CA. Without the opt-out the same settings stay problems."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# The ingress's development defaults (ingress/envoy.py IngressSettings).
DEV_JWT_ISSUER = "payments-dev"
DEV_JWT_AUDIENCE = "payments"


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)  # UNSAFE: not ready for production
    notes: list[str] = field(default_factory=list)  # accepted by an explicit opt-out

    def add_problems(self, found: list[str]) -> None:
        self.problems += [p for p in found if p not in self.problems]


def production_report(env: Mapping[str, str]) -> Report:
    from order_service.config import production_problems as order_problems
    from payment_service.config import production_problems as payment_problems

    report = Report()
    if env.get("PAYMENTS_ENV", "production") == "development":
        report.problems.append(
            "PAYMENTS_ENV=development: development keys, the simulator and http URLs are allowed"
        )
    report.add_problems(payment_problems(env))
    report.add_problems(order_problems(env))
    report.add_problems(jwt_problems(env))
    # Anything else the services would refuse at start, whatever was found above.
    report.add_problems(_load_errors({**env, "PAYMENTS_ENV": "production"}))
    report.notes += _opt_out_notes(env)
    return report


def production_problems(env: Mapping[str, str]) -> list[str]:
    return production_report(env).problems


def _opt_out_notes(env: Mapping[str, str]) -> list[str]:
    """What an explicit *_GRPC_INSECURE=1 accepts (the services leave it out
    of their problems)."""
    from order_service.config import plaintext_payment_target
    from paykit.settings import DEFAULT_PORTS, ConfigError, bind_findings, client_tls_from_env, env_flag

    notes = [
        note
        for prefix, port in (("PAYMENT", DEFAULT_PORTS["payment"]), ("ORDER", DEFAULT_PORTS["order"]))
        for note in bind_findings(env, prefix, port)[1]
    ]
    try:
        plaintext = plaintext_payment_target(env) if client_tls_from_env(env, "PAYMENT") is None else ""
    except ConfigError:
        return notes  # reported as a problem already
    if plaintext and env_flag(env, "PAYMENT_GRPC_INSECURE"):
        notes.append(
            f"PAYMENT_TARGET={plaintext} in plaintext: the payment service runs without TLS by the explicit"
            " opt-out PAYMENT_GRPC_INSECURE=1"
        )
    return notes


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
