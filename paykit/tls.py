"""TLS for the internal gRPC servers and their clients, from PEM files
(paykit.settings.ServerTls / ClientTls); read once, at start."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from paykit.settings import ClientTls, ConfigError, GrpcBind, ServerTls

log = logging.getLogger("paykit.tls")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path!r}: {error.strerror}") from None


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """The server's certificate and key; with a client CA, clients must
    present a certificate it signed (mutual TLS)."""
    pair = (_read(tls.key_file, "TLS key"), _read(tls.cert_file, "TLS certificate"))
    client_ca = _read(tls.client_ca_file, "TLS client CA") if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel(
    target: str, tls: ClientTls | None, options: list[tuple[str, str | int]] | None = None
) -> grpc.Channel:
    """An insecure channel without `tls`, else a TLS one checking the
    server's certificate against tls.ca_file (and presenting ours, if set)."""
    opts = list(options or [])
    if tls is None:
        return grpc.insecure_channel(target, options=opts)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file, "TLS CA"),
        private_key=_read(tls.key_file, "TLS key") if tls.key_file else None,
        certificate_chain=_read(tls.cert_file, "TLS certificate") if tls.cert_file else None,
    )
    if tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.secure_channel(target, credentials, options=opts)


def warn_if_exposed(service: str, bind: GrpcBind) -> None:
    """The loud line an explicit opt-out (<SERVICE>_GRPC_INSECURE=1) earns."""
    if bind.exposed_without_tls:
        log.warning(
            "INSECURE: internal gRPC server listening on a non-loopback address without TLS",
            extra={"service": service, "host": bind.host, "port": bind.port},
        )
