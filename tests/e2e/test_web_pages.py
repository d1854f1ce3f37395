"""The web app on its own: pages served, dev-login only in development, the
console's token carries the admin claim and the shop's does not."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from ingress import auth
from web.app import WebSettings
from web.server import WebServer

KEYS = auth.generate_keys()


def get(url: str) -> tuple[int, str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


@pytest.fixture(params=[True, False], ids=["development", "production"])
def web(request: pytest.FixtureRequest) -> Iterator[WebServer]:
    with WebServer(WebSettings(port=0, development=request.param, data_dir=Path("/nonexistent")), KEYS) as s:
        yield s


def token_in(page: str) -> dict[str, object]:
    match = re.search(r'localStorage.setItem\("payments.token", "([^"]+)"\)', page)
    assert match, page
    claims: dict[str, object] = jwt.decode(
        match.group(1), _public(), algorithms=["RS256"], audience=auth.AUDIENCE
    )
    return claims


def _public() -> object:
    return jwt.PyJWK(KEYS.jwks["keys"][0]).key


def test_pages_and_their_assets_are_served(web: WebServer) -> None:
    for path in ("/shop/", "/shop/orders/abc", "/console/", "/console/payments/x"):
        status, body, headers = get(web.base_url + path)
        assert status == 200 and '<main id="app"' in body, path
        assert headers.get("x-frame-options") == "DENY"
    status, body, _ = get(web.base_url + "/shop/static/shop.js")
    assert status == 200 and 'data-testid": "pay-again"' in body
    assert get(web.base_url + "/shop/static/../app.py")[0] == 404


def test_dev_login_only_in_development(web: WebServer) -> None:
    status, body, _ = get(web.base_url + "/shop/dev-login?user=u1")
    if not web.settings.development:
        assert status == 404 and "only in development" in body
        assert get(web.base_url + "/console/dev-login?user=ops")[0] == 404
        return
    assert status == 200
    shopper = token_in(body)
    assert shopper["sub"] == "u1" and "admin" not in shopper
    assert 'location.replace("/shop/")' in body
    status, body, _ = get(web.base_url + "/console/dev-login?user=ops")
    operator = token_in(body)
    assert operator["sub"] == "ops" and operator["admin"] is True
    # Nothing from the query reaches the page unchecked.
    for bad in ("", "a%3Cscript%3E", "x" * 65):
        status, body, _ = get(web.base_url + f"/shop/dev-login?user={bad}")
        assert status == 400 and "user must be" in body and "<script" not in body
    assert json.dumps("payments.token") in get(web.base_url + "/shop/dev-login?user=u1")[1]


def test_every_order_status_has_a_vietnamese_and_an_english_label() -> None:
    """The shop's order page names each status in both languages; a status
    added to the proto without labels would show its raw enum name."""
    from order.v1 import order_pb2

    text = (Path(__file__).resolve().parents[2] / "web" / "static" / "shop.js").read_text()
    tables = {lang: text.split(f"\n  {lang}: {{", 1)[1].split("\n  },", 1)[0] for lang in ("vi", "en")}
    for name in order_pb2.OrderStatus.keys():
        if name == "ORDER_STATUS_UNSPECIFIED":
            continue
        for lang, table in tables.items():
            assert re.search(rf"\b{name}: \"[^\"]+\"", table), f"{name} has no {lang} label"
