"""The page a shopper's browser lands on after the gateway, or a redirect to
the shop's own front end when PAYMENT_RESULT_URL is set."""

from __future__ import annotations

import html
from collections.abc import Callable
from urllib.parse import urlencode

from payment_service.gateways.port import HttpReply
from payment_service.service_layer.callbacks import ReturnView

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Payment {status}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}</style>
</head><body><h1>{message}</h1><p>Order: <b>{order}</b> &middot; status: <b>{status}</b></p></body></html>
"""


def return_renderer(result_url: str) -> Callable[[ReturnView], HttpReply]:
    def render(view: ReturnView) -> HttpReply:
        if result_url and view.verified:
            separator = "&" if "?" in result_url else "?"
            location = result_url + separator + urlencode({"order_id": view.order_id, "status": view.status})
            body = f'<a href="{html.escape(location)}">Continue</a>'.encode()
            return HttpReply(303, "text/html; charset=utf-8", body, (("location", location),))
        page = _PAGE.format(
            status=html.escape(view.status),
            message=html.escape(view.message),
            order=html.escape(view.order_id or "-"),
        )
        return HttpReply(200 if view.verified else 400, "text/html; charset=utf-8", page.encode())

    return render
