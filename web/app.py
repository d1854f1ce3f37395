"""The web app: the pages (static files, no build step) and, in development
only, the dev-login routes that hand the browser a development token.

Static HTML + JavaScript rather than server-rendered pages: the bearer token
lives in the browser (localStorage["payments.token"]) and the pages call the
same public JSON API (/v1/..., /admin/v1/...) through Envoy that any shop's
front end would, so the ingress (JWT, admin claim) is the only gate and this
app holds no session and reaches no service."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ingress import auth
from paykit.settings import DEFAULT_PORTS, env_int

log = logging.getLogger("web")

STATIC = Path(__file__).resolve().parent / "static"
TOKEN_KEY = "payments.token"  # noqa: S105 - the localStorage key, not a secret
_USER = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")
# Pages never cached stale, and never framed by another site.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"  # WEB_HOST
    port: int = DEFAULT_PORTS["web"]  # WEB_PORT; 0 picks a free one
    development: bool = False  # PAYMENTS_ENV=development: the dev-login routes answer
    data_dir: Path = Path(".data")  # DATA_DIR: where the development keys are

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("WEB_HOST", "").strip() or "127.0.0.1",
            port=env_int(env, "WEB_PORT", DEFAULT_PORTS["web"]),
            development=env.get("PAYMENTS_ENV", "production") == "development",
            data_dir=Path(env.get("DATA_DIR", ".data")),
        )


def _page(name: str) -> Response:
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=_HEADERS)


def create_app(settings: WebSettings, keys: auth.DevKeys | None = None) -> Starlette:
    """`keys`: the development keys that sign dev-login tokens (default: the
    ones in settings.data_dir, created by `payments dev`)."""

    def dev_keys() -> auth.DevKeys:
        return keys if keys is not None else auth.load_or_create(settings.data_dir)

    def dev_login(home: str, admin: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not settings.development:
                return PlainTextResponse(
                    "dev-login exists only in development (PAYMENTS_ENV=development)", status_code=404
                )
            user = request.query_params.get("user", "")
            if not _USER.match(user):
                return PlainTextResponse(
                    "user must be 1-64 characters of letters, digits and ._:@-", status_code=400
                )
            token = dev_keys().token(user, ttl_seconds=12 * 3600, admin=admin)
            # json.dumps, with < escaped: nothing in it can close the script.
            value = json.dumps(token).replace("<", "\\u003c")
            body = (
                "<!doctype html><meta charset=utf-8><title>dev-login</title>"
                f"<script>localStorage.setItem({json.dumps(TOKEN_KEY)}, {value});"
                f"location.replace({json.dumps(home)});</script>"
                f'<p>Signed in as {user}. <a href="{home}">Continue</a></p>'
            )
            log.info("dev-login", extra={"user": user, "admin": admin})
            return HTMLResponse(body, headers=_HEADERS)

        return endpoint

    async def shop(request: Request) -> Response:
        return _page("shop.html")

    async def console(request: Request) -> Response:
        return _page("console.html")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    static = StaticFiles(directory=STATIC)
    return Starlette(
        routes=[
            Route("/shop/healthz", healthz),
            Route("/shop/dev-login", dev_login("/shop/", admin=False)),
            Route("/console/dev-login", dev_login("/console/", admin=True)),
            Mount("/shop/static", app=static),
            Mount("/console/static", app=static),
            Route("/shop/{rest:path}", shop),
            Route("/console/{rest:path}", console),
        ]
    )
