"""Every gateway the service knows, found by folder: each package under
payment_service/gateways/ is one gateway (its settings.SETTINGS describes it,
its gateway.build makes the adapter), plus cash on delivery (cod.py).
Adding a gateway is adding a folder; nothing here names one."""

from __future__ import annotations

import pkgutil
from collections.abc import Callable, Mapping
from functools import cache
from importlib import import_module
from typing import Any

import payment_service.gateways as gateways_package
from payment_service.adapters.http_client import HttpJsonClient
from payment_service.domain.model import Provider, ProviderTraits
from payment_service.gateways import cod
from payment_service.gateways.port import CallbackKind, Gateway, GatewaySettings, WebhookRoute

Builder = Callable[[Any, HttpJsonClient], Gateway]


@cache
def _modules() -> tuple[tuple[GatewaySettings, Builder], ...]:
    found: list[tuple[GatewaySettings, Builder]] = [(cod.SETTINGS, cod.build)]
    for info in sorted(pkgutil.iter_modules(gateways_package.__path__), key=_name):
        if not info.ispkg:
            continue
        folder = f"{gateways_package.__name__}.{info.name}"
        settings = import_module(f"{folder}.settings").SETTINGS
        if not isinstance(settings, GatewaySettings):
            raise TypeError(f"{folder}.settings.SETTINGS is not a GatewaySettings")
        found.append((settings, import_module(f"{folder}.gateway").build))
    providers = [s.provider for s, _ in found]
    if len(set(providers)) != len(providers):
        raise RuntimeError(f"two gateway folders claim one provider: {providers}")
    return tuple(found)


def _name(info: pkgutil.ModuleInfo) -> str:
    return info.name


def all_settings() -> tuple[GatewaySettings, ...]:
    """Every known gateway's settings, cash on delivery first."""
    return tuple(settings for settings, _ in _modules())


def traits(configs: Mapping[Provider, Any] | None = None) -> dict[Provider, ProviderTraits]:
    """What the payment rules need to know of every known gateway; with the
    enabled gateways' configs, as configured (see GatewaySettings.traits_for)."""
    configs = configs or {}
    return {s.provider: s.traits_for(configs.get(s.provider)) for s in all_settings()}


def webhook_routes() -> dict[str, tuple[Provider, WebhookRoute]]:
    """Path -> (provider, route): every HTTP path bound to HandleCallback."""
    table: dict[str, tuple[Provider, WebhookRoute]] = {}
    for settings in all_settings():
        for route in settings.routes:
            if route.path in table:
                raise RuntimeError(f"webhook path {route.path} is claimed twice")
            table[route.path] = (settings.provider, route)
    return table


def callback_routes() -> dict[str, tuple[Provider, CallbackKind]]:
    """Path -> (provider, kind), as the callback use cases dispatch on."""
    return {path: (provider, route.kind) for path, (provider, route) in webhook_routes().items()}


def build_gateways(configs: Mapping[Provider, Any], http: HttpJsonClient) -> dict[Provider, Gateway]:
    """The adapters of the configured gateways."""
    builders = {settings.provider: build for settings, build in _modules()}
    return {provider: builders[provider](config, http) for provider, config in configs.items()}
