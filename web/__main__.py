"""``python -m web``: serve the shop's pages and the console until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading

from paykit import logs
from web.app import WebSettings
from web.server import WebServer

log = logging.getLogger("web")


def main() -> None:
    logs.configure(os.environ.get("LOG_LEVEL", "INFO").upper())
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: done.set())
    with WebServer(WebSettings.from_env()) as server:
        log.info("serving", extra={"service": "web", "port": server.port})
        done.wait()


if __name__ == "__main__":
    main()
