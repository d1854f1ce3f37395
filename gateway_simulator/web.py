"""Requests and responses of the simulator's HTTP server, and its pages."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway_simulator.state import SimError


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query, percent-encoded as received
    query: str  # raw, as received
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json_object(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise SimError(400, "the body is not JSON") from None
        if not isinstance(value, dict):
            raise SimError(400, "the body is not a JSON object")
        return value

    def form_or_json(self) -> dict[str, Any]:
        """A JSON object, or form fields (ZaloPay accepts both)."""
        content_type = self.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" in content_type:
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError:
                raise SimError(400, "the form is not UTF-8") from None
            return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))
        return self.json_object()

    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True, max_num_fields=200))


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Runs once the response is on the wire (the default "redirect first").
    after: Callable[[], None] | None = None
    # Seconds after which the connection is closed with no answer at all
    # (the refund_timeout_after_accept fault); None: answer normally.
    drop_after: float | None = None


def json_response(body: Any, status: int = 200) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, data, "application/json; charset=utf-8")


def html_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode("utf-8"), "text/html; charset=utf-8")


def redirect(location: str, status: int = 303) -> Response:
    return Response(status, b"", None, [("Location", location)])


def add_query(url: str, params: Sequence[tuple[str, str]] | str) -> str:
    """``url`` with ``params`` appended to any query it already has."""
    extra = params if isinstance(params, str) else urlencode(list(params))
    parts = urlsplit(url)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def format_vnd(amount: int) -> str:
    return f"{amount:,}".replace(",", ".") + " ₫"


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem}.sim{color:#b00;font-size:.85rem}
table{border-collapse:collapse;width:100%;margin:1rem 0}
td{padding:.35rem .5rem;border-bottom:1px solid #eee;vertical-align:top}td:first-child{color:#666;width:40%}
.amount{font-size:1.4rem;font-weight:bold}form{display:inline-block;margin:.25rem}
button{font-size:1rem;padding:.5rem 1.2rem;border-radius:.3rem;border:1px solid #888;cursor:pointer}
button.pay{background:#0a7d32;color:#fff;border-color:#0a7d32}
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='vi'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def checkout_page(
    *,
    gateway_label: str,
    rows: Sequence[tuple[str, str]],
    amount: int,
    action_base: str,
    status: str,
) -> str:
    """A checkout page with the three buttons, each a form POSTing to
    ``{action_base}/pay|fail|cancel``."""
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    if status == "PENDING":
        buttons = "".join(
            f"<form method='post' action='{html.escape(action_base)}/{action}'>"
            f"<button class='{action}' name='action' value='{action}'>{label}</button></form>"
            for action, label in (
                ("pay", "Thanh toán (Pay)"),
                ("fail", "Thất bại (Fail)"),
                ("cancel", "Hủy (Cancel)"),
            )
        )
    else:
        buttons = f"<p>This payment is already <b>{html.escape(status)}</b>.</p>"
    body = (
        f"<h1>{html.escape(gateway_label)}</h1>"
        "<p class='sim'>Local gateway simulator: no money moves.</p>"
        f"<p class='amount'>{html.escape(format_vnd(amount))}</p>"
        f"<table>{cells}</table>{buttons}"
    )
    return page(gateway_label, body)


def message_page(title: str, message: str, status: int = 400) -> Response:
    body = f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    return html_response(page(title, body), status)
