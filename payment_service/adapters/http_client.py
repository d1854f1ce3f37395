"""A small JSON-over-HTTP client for gateway APIs: one pooled httpx client
per process (connections, and in production their TLS sessions, are kept
and reused), a timeout on every call, bounded retries with backoff on
transient failures only, and errors the service layer can map (the gateway
refused vs. could not be reached). Every connection it opens is counted
(`connections_opened`, and the payment_gateway_connections_opened_total
metric)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

# Idle connections are kept this long: gateways close theirs after a minute
# or so, and a connection the server closed is replaced on the next call.
KEEPALIVE_SECONDS = 30.0


class GatewayUnreachable(Exception):
    """Timeout, connection failure or a 5xx: nothing is known to have happened."""


class HttpJsonClient:
    def __init__(
        self,
        timeout_seconds: float = 5.0,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        max_connections: int = 32,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.timeout = timeout_seconds
        self.retries = retries
        self.backoff = backoff_seconds
        self.connections_opened = 0
        self._lock = threading.Lock()
        self._on_connect = on_connect
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )

    def close(self) -> None:
        self._client.close()

    def _trace(self, event: str, info: Mapping[str, Any]) -> None:
        # httpcore's trace hook: one "connect_tcp.complete" per new connection.
        if event == "connection.connect_tcp.complete":
            with self._lock:
                self.connections_opened += 1
            if self._on_connect is not None:
                self._on_connect()

    def request(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Only call with requests that are idempotent at the gateway (every
        create here is keyed by our own order id), since a retry may repeat
        a request whose answer was lost."""
        return self.exchange(method, url, body, headers)[0]

    def exchange(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Like request, with the answer's headers (lowercase names), for a
        gateway that signs its answer in a header (payOS payouts)."""
        data = (
            json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() if body is not None else None
        )
        all_headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.request(
                    method, url, content=data, headers=all_headers, extensions={"trace": self._trace}
                )
            except httpx.TransportError as error:  # timeouts, refused or dropped connections
                last = error
                continue
            if response.status_code >= 500:
                last = GatewayUnreachable(f"HTTP {response.status_code}")
                continue
            answer_headers = {k.lower(): v for k, v in response.headers.items()}
            try:
                return dict(json.loads(response.content or b"{}")), answer_headers
            except ValueError as error:
                if response.status_code >= 400:
                    # A 4xx still carries the gateway's JSON error body; without one it is refused.
                    raise GatewayUnreachable(f"HTTP {response.status_code} from {url}") from None
                last = error
        raise GatewayUnreachable(f"{method} {url} failed after {self.retries + 1} attempts: {last}")
