"""Origins (scheme://host[:port]) for allow-lists of caller-supplied URLs.
Pure: parsing and matching only. An entry's port may be `*` (any port)."""

from __future__ import annotations

from urllib.parse import urlsplit

from paykit.settings import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}
# What development accepts when RETURN_URL_ALLOWED_ORIGINS is not set: the
# shop on this machine, on any port.
LOOPBACK_ORIGINS = frozenset(
    f"{scheme}://{host}:*" for scheme in ("http", "https") for host in ("127.0.0.1", "localhost", "[::1]")
)


def _parts(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an absolute http(s) URL without user info;
    the default port is None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return scheme, host, None if port == DEFAULT_PORTS[scheme] else port


def origin(url: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) URL, lower case, the
    default port left out; None if it has none."""
    found = _parts(url)
    if found is None:
        return None
    scheme, host, port = found
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


def parse_origins(raw: str, name: str = "RETURN_URL_ALLOWED_ORIGINS") -> frozenset[str]:
    """Comma-separated origins; each scheme://host[:port] (port `*`: any),
    nothing after the authority."""
    found: set[str] = set()
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        any_port = entry.endswith(":*")
        base = entry.removesuffix(":*")
        parts = _parts(base)
        tail = urlsplit(base)
        if (
            parts is None
            or tail.path not in ("", "/")
            or tail.query
            or tail.fragment
            or (any_port and tail.port)
        ):
            raise ConfigError(f"{name}: {entry!r} is not an origin (scheme://host[:port])")
        scheme, host, port = parts
        if any_port:
            found.add(f"{scheme}://{host}:*")
        else:
            found.add(f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}")
    return frozenset(found)


def allowed(url: str, origins: frozenset[str]) -> bool:
    """Whether the URL's origin is one of `origins` (entries from parse_origins)."""
    parts = _parts(url)
    if parts is None:
        return False
    scheme, host, _ = parts
    return origin(url) in origins or f"{scheme}://{host}:*" in origins
