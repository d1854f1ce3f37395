"""Reading settings from the environment: shared helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
    "web": 8088,  # WEB_PORT: the shop's pages and the operator console (web/), behind the ingress
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


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """1/true/yes/on (any case) is set; empty, 0, false, no, off are not."""
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value >= 0:
        raise ConfigError(f"{name} must be at least 0, got {raw!r}")
    return value


def is_development(env: Mapping[str, str]) -> bool:
    """PAYMENTS_ENV=development; anything else (default: production) is production."""
    return env.get("PAYMENTS_ENV", "production") == "development"


LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine.
    Wildcards (0.0.0.0, ::, empty) and names other than localhost do not."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip().strip("[]") in ("", "0.0.0.0", "::")  # noqa: S104 (a test, not a bind)


def host_port(host: str, port: int) -> str:
    """host:port, IPv6 literals in brackets."""
    bare = host.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


@dataclass(frozen=True)
class ServerTls:
    """PEM files of a TLS gRPC server; client_ca set: clients must present a
    certificate it signed."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""


@dataclass(frozen=True)
class ClientTls:
    """PEM files of a TLS gRPC client: the CA that signed the server's
    certificate, and optionally this client's certificate and key."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""  # overrides the name checked against the server's certificate


@dataclass(frozen=True)
class GrpcBind:
    """Where an internal gRPC server listens, and how."""

    host: str
    port: int
    tls: ServerTls | None = None
    insecure: bool = False  # explicit opt-out: a non-loopback bind without TLS

    @property
    def exposed_without_tls(self) -> bool:
        return self.tls is None and not is_loopback(self.host)


def bind_findings(env: Mapping[str, str], prefix: str, default_port: int) -> tuple[list[str], list[str]]:
    """What check-config says of <PREFIX>_GRPC_HOST: (problems, notes). A
    non-loopback bind without TLS is a problem, unless <PREFIX>_GRPC_INSECURE=1
    chose it: then it is a note (the network is the boundary)."""
    try:
        bind = grpc_bind_from_env(env, prefix, default_port)
    except ConfigError as error:
        return [str(error)], []
    if not bind.exposed_without_tls:
        return [], []
    if bind.insecure:
        return [], [
            f"{prefix}_GRPC_HOST={bind.host} without TLS by the explicit opt-out {prefix}_GRPC_INSECURE=1:"
            " only the network (a NetworkPolicy) keeps the internal API private"
        ]
    return [f"{prefix}_GRPC_HOST={bind.host} has no TLS ({prefix}_GRPC_INSECURE=1): internal API exposed"], []


def grpc_bind_from_env(env: Mapping[str, str], prefix: str, default_port: int) -> GrpcBind:
    """<PREFIX>_GRPC_HOST (default 127.0.0.1), <PREFIX>_GRPC_PORT,
    <PREFIX>_GRPC_TLS_CERT/_KEY/_CLIENT_CA and <PREFIX>_GRPC_INSECURE.
    A non-loopback bind needs TLS or the explicit opt-out."""
    host = env.get(f"{prefix}_GRPC_HOST", "").strip() or "127.0.0.1"
    cert = env.get(f"{prefix}_GRPC_TLS_CERT", "")
    key = env.get(f"{prefix}_GRPC_TLS_KEY", "")
    client_ca = env.get(f"{prefix}_GRPC_TLS_CLIENT_CA", "")
    if bool(cert) != bool(key):
        raise ConfigError(
            f"{prefix}_GRPC_TLS_CERT and {prefix}_GRPC_TLS_KEY go together: set both or neither"
        )
    if client_ca and not cert:
        raise ConfigError(
            f"{prefix}_GRPC_TLS_CLIENT_CA needs {prefix}_GRPC_TLS_CERT and {prefix}_GRPC_TLS_KEY"
        )
    bind = GrpcBind(
        host=host,
        port=env_int(env, f"{prefix}_GRPC_PORT", default_port),
        tls=ServerTls(cert, key, client_ca) if cert else None,
        insecure=env_flag(env, f"{prefix}_GRPC_INSECURE"),
    )
    if bind.exposed_without_tls and not bind.insecure:
        raise ConfigError(
            f"{prefix}_GRPC_HOST={host} is not a loopback address: the internal gRPC server needs TLS "
            f"({prefix}_GRPC_TLS_CERT and {prefix}_GRPC_TLS_KEY, optionally {prefix}_GRPC_TLS_CLIENT_CA) "
            f"or the explicit opt-out {prefix}_GRPC_INSECURE=1"
        )
    return bind


def client_tls_from_env(env: Mapping[str, str], prefix: str) -> ClientTls | None:
    """<PREFIX>_TLS_CA (TLS on when set), <PREFIX>_TLS_CERT/_KEY (a client
    certificate), <PREFIX>_TLS_SERVER_NAME."""
    ca = env.get(f"{prefix}_TLS_CA", "")
    cert = env.get(f"{prefix}_TLS_CERT", "")
    key = env.get(f"{prefix}_TLS_KEY", "")
    if bool(cert) != bool(key):
        raise ConfigError(f"{prefix}_TLS_CERT and {prefix}_TLS_KEY go together: set both or neither")
    if (cert or env.get(f"{prefix}_TLS_SERVER_NAME")) and not ca:
        raise ConfigError(f"{prefix}_TLS_CERT/_KEY/_SERVER_NAME need {prefix}_TLS_CA")
    if not ca:
        return None
    return ClientTls(ca, cert, key, env.get(f"{prefix}_TLS_SERVER_NAME", ""))
