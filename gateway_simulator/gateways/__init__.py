"""One module per simulated gateway, each mirroring the real one's API under
its own path prefix (/vnpay, /payos, /momo, /zalopay). A new gateway's module
is found here by itself: it defines one GatewaySim subclass with a `name`."""

from __future__ import annotations

import importlib
import pkgutil

from gateway_simulator.gateways.base import GatewaySim


def simulated_gateways() -> list[type[GatewaySim]]:
    """Every simulated gateway, in module name order."""
    found: list[type[GatewaySim]] = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
        loaded = importlib.import_module(f"{__name__}.{module}")
        found += [
            value
            for value in vars(loaded).values()
            if isinstance(value, type)
            and issubclass(value, GatewaySim)
            and value is not GatewaySim
            and value.__module__ == loaded.__name__
        ]
    return found
