"""The observability hook of the gRPC server factory: which interceptors go
in front of the servicers (tracing outermost, then RPC metrics) and the
/metrics endpoint started beside the server, on the same host."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client.registry import Collector

from paykit import tracing
from paykit.metrics import MetricsEndpoint, RpcMetrics, parse_port
from paykit.settings import ConfigError


@dataclass
class Observability:
    """`metrics_port`: None for no endpoint, 0 for a free port. `collectors`
    read live state at scrape time (pools, outbox)."""

    metrics_port: int | None
    collectors: list[Collector] = field(default_factory=list)
    rpc_metrics: bool = True
    endpoint: MetricsEndpoint | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        port_variable: str,
        default_port: int,
        collectors: Iterable[Collector] = (),
    ) -> Observability:
        """Reads e.g. PAYMENT_METRICS_PORT (unset: `default_port`; empty or
        "off": no endpoint; 0: any free port)."""
        try:
            port = parse_port(env.get(port_variable), default_port)
        except ValueError as error:
            raise ConfigError(f"{port_variable}: {error}") from None
        return cls(metrics_port=port, collectors=list(collectors))

    def interceptors(self) -> list[grpc.ServerInterceptor]:
        return [*tracing.server_interceptors(), *([RpcMetrics()] if self.rpc_metrics else [])]

    def start(self, host: str) -> dict[str, Any]:
        """Starts the endpoint; what the "serving" log line should add."""
        if self.metrics_port is None:
            return {"metrics_port": "off"}
        self.endpoint = MetricsEndpoint(self.collectors)
        bound = self.endpoint.start(host, self.metrics_port)
        return {"metrics_port": bound if bound is not None else "unavailable"}

    @property
    def bound_port(self) -> int | None:
        return self.endpoint.port if self.endpoint is not None else None

    def stop(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None
