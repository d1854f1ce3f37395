"""A plain HTTP/1.1 client for end-to-end tests: request targets go out
verbatim (no client-side normalisation), loopback only."""

from __future__ import annotations

import contextlib
import http.client
import json
from dataclasses import dataclass
from typing import Any

from ingress.envoy import EnvoyProcess

LEAKY_HEADERS = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-accept-encoding",
    "x-envoy-upstream-service-time",
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def assert_no_grpc_headers(self) -> None:
        leaked = [name for name in LEAKY_HEADERS if name in self.headers]
        assert not leaked, f"leaked headers {leaked}: {self.headers}"


def send(
    envoy: EnvoyProcess,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> Reply:
    """One request with `target` sent verbatim (http.client does not
    normalise it), on `connection` if given."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", envoy.ingress_port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body:
            # Envoy may answer (413) and close before it has read everything.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.send(body)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        if connection is None:
            conn.close()
