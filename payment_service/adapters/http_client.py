"""A small JSON-over-HTTP client for gateway APIs: a timeout on every call,
bounded retries with backoff on transient failures only, and errors the
service layer can map (the gateway refused vs. could not be reached)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


class GatewayUnreachable(Exception):
    """Timeout, connection failure or a 5xx: nothing is known to have happened."""


class HttpJsonClient:
    def __init__(self, timeout_seconds: float = 5.0, retries: int = 2, backoff_seconds: float = 0.2) -> None:
        self.timeout = timeout_seconds
        self.retries = retries
        self.backoff = backoff_seconds

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
            request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    return dict(json.loads(response.read() or b"{}")), _lower(response.headers)
            except urllib.error.HTTPError as error:
                if error.code < 500:
                    # A 4xx still carries the gateway's JSON error body.
                    try:
                        return dict(json.loads(error.read() or b"{}")), _lower(error.headers)
                    except ValueError:
                        raise GatewayUnreachable(f"HTTP {error.code} from {url}") from None
                last = error
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as error:
                last = error
        raise GatewayUnreachable(f"{method} {url} failed after {self.retries + 1} attempts: {last}")


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers.items() if headers is not None else ())}
