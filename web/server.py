"""Runs the web app with uvicorn in a thread: `python -m web` and the tests."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from ingress import auth
from web.app import WebSettings, create_app


class WebServer:
    def __init__(self, settings: WebSettings, keys: auth.DevKeys | None = None) -> None:
        self.settings = settings
        self._sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((settings.host, settings.port))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(create_app(settings, keys), log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="web", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
