"""``python -m gateway_simulator``: run the gateway simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from gateway_simulator.config import SimConfig
from gateway_simulator.server import Simulator
from paykit import logs
from paykit.settings import ConfigError

log = logging.getLogger("gateway_simulator")


def main() -> None:
    logs.configure(os.environ.get("LOG_LEVEL", "INFO").upper())
    try:
        config = SimConfig.from_env(os.environ)
    except ConfigError as error:
        sys.exit(f"payments sim: {error}")
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: done.set())
    with Simulator(config) as sim:
        lines = "\n".join(f"  {name}={url}" for name, url in sim.service_urls().items())
        print(
            f"Gateway simulator on {sim.base_url} (callbacks to {config.ingress}, "
            f"time scale {config.time_scale:g}).\nPoint the payment service at it with:\n{lines}",
            file=sys.stderr,
            flush=True,
        )
        log.info("serving", extra={"service": "gateway_simulator", "port": sim.port})
        done.wait()


if __name__ == "__main__":
    main()
