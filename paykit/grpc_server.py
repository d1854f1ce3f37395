"""The one gRPC server factory: a thread-pool server with the services
registered, standard health (SERVING per service once started, NOT_SERVING
on stop), reflection for grpcurl, and a graceful stop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from paykit.grpc_errors import RejectUndecodableRequests
from paykit.observability import Observability
from paykit.settings import ServerTls, host_port
from paykit.tls import server_credentials

log = logging.getLogger("paykit.grpc_server")

Register = Callable[[grpc.Server], None]

# 16 KiB of metadata: the ingress forwards request headers (up to its own
# 8 KiB cap) plus the original path; grpcio refuses some above 8 KiB.
# Clients keep long-lived streams alive with pings (the order service's
# event stream: every 30 s by default): accept them every 10 s or more, even
# while no data flows, instead of answering GOAWAY "too many pings".
DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.so_reuseport", 0),
    ("grpc.max_metadata_size", 16 * 1024),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)


@dataclass
class GrpcServer:
    """A started server: `.port` is the bound port, `.stop(grace)` stops it."""

    server: grpc.Server
    health: health.HealthServicer
    port: int
    observability: Observability | None = None

    def stop(self, grace: float | None) -> None:
        """Every service NOT_SERVING first (so load balancers drain), then
        stop accepting and wait up to `grace` seconds for calls in flight."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.observability is not None:
            self.observability.stop()


class ServedBy:
    """For a service's running-server record: the started server's parts,
    read through its `serving` field."""

    serving: GrpcServer

    @property
    def server(self) -> grpc.Server:
        return self.serving.server

    @property
    def health(self) -> health.HealthServicer:
        return self.serving.health

    @property
    def port(self) -> int:
        return self.serving.port


def start_grpc_server(
    register: Register | Sequence[Register],
    *,
    service_names: Sequence[str],
    host: str,
    port: int,
    max_workers: int,
    options: Sequence[tuple[str, Any]] = DEFAULT_OPTIONS,
    interceptors: Sequence[grpc.ServerInterceptor] | None = None,
    observability: Observability | None = None,
    tls: ServerTls | None = None,
    reuse_port: bool = False,
) -> GrpcServer:
    """Builds, binds and starts a server. `register` adds the servicers
    (e.g. `lambda s: add_FooServicer_to_server(FooServicer(...), s)`);
    `service_names` are their full names, for health and reflection.
    Interceptors default to refusing undecodable requests as INVALID_ARGUMENT;
    `observability` puts tracing and RPC metrics in front of them and starts
    the /metrics endpoint on `host` (its port in the "serving" log line).
    With `tls` the port speaks TLS only (paykit.tls). `reuse_port`: share
    the port with the service's other worker processes (SO_REUSEPORT; off
    otherwise, so a second server on a taken port fails to start)."""
    chain = [RejectUndecodableRequests()] if interceptors is None else list(interceptors)
    if observability is not None:
        chain = [*observability.interceptors(), *chain]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        options=[
            (name, 1 if reuse_port and name == "grpc.so_reuseport" else value) for name, value in options
        ]
        + ([("grpc.so_reuseport", 1)] if reuse_port and "grpc.so_reuseport" not in dict(options) else []),
        interceptors=chain,
    )
    for add in [register] if callable(register) else register:
        add(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    address = host_port(host, port)
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, server_credentials(tls))
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    extra = observability.start(host) if observability is not None else {}
    log.info("serving", extra={"service": ",".join(service_names), "host": host, "port": bound, **extra})
    return GrpcServer(server=server, health=health_servicer, port=bound, observability=observability)
