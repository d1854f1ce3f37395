"""Reading settings from the environment: shared helpers."""

from __future__ import annotations

from collections.abc import Mapping


class ConfigError(ValueError):
    pass


# The one table of default ports: each process's own default, and where the
# others look for it.
DEFAULT_PORTS = {
    "payment": 50051,  # PAYMENT_GRPC_PORT: payment.v1.PaymentService (internal gRPC)
    "order": 50052,  # ORDER_GRPC_PORT: order.v1.OrderService (internal gRPC)
    "ingress": 8080,  # INGRESS_PORT: Envoy, the public HTTP listener
    "admin": 9901,  # ENVOY_ADMIN_PORT: Envoy's admin (loopback)
    "sim": 8090,  # SIM_PORT: the gateway simulator (development)
    "payment_metrics": 9464,  # PAYMENT_METRICS_PORT: the payment service's /metrics
    "order_metrics": 9465,  # ORDER_METRICS_PORT: the order service's /metrics
}


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value
