"""Writes deploy/envoy/configmap.yaml: the Envoy bootstrap rendered by our own
code (`ingress.envoy.render_config`, what `payments envoy-config` prints),
from the settings the cluster uses, wrapped in a ConfigMap.

The settings are those `payments envoy-config` reads from the environment
(`IngressSettings.from_env`, production mode), taken from deploy/config.yaml
(the ConfigMap every pod reads) so that the ingress and `payments
check-config` agree on them:
- JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE: the operator's identity provider.
  The committed values are placeholders (idp.example.com) to be replaced in
  deploy/config.yaml; `--jwks-url`, `--issuer`, `--audience` override them,
  and `--jwks FILE` embeds a JWKS instead of fetching one (never the
  development keys);
- INGRESS_HOST=0.0.0.0: the public listener binds the pod's network (a
  Service fronts it; the admin stays on 127.0.0.1, never exposed);
- PAYMENT_UPSTREAM_HOST / ORDER_UPSTREAM_HOST / WEB_UPSTREAM_HOST: the headless
  Services of the services and of the web app (deploy/web.yaml: /shop/ and
  /console/ go there) by DNS name, which the renderer turns into STRICT_DNS clusters:
  Envoy sees every ready replica and balances each request across them,
  health-checking each service over gRPC (the web app: Kubernetes readiness
  takes a pod out of DNS). Plaintext as committed: the services
  run with *_GRPC_INSECURE=1 behind the NetworkPolicy (deploy/README.md);
- PAYMENT_GRPC_PORT / ORDER_GRPC_PORT / WEB_PORT from deploy/config.yaml, and, when set
  there, PAYMENT_UPSTREAM_TLS_CA/_CERT/_KEY/_SERVER_NAME and the same for
  ORDER_: TLS (mutual with a certificate) from Envoy to the services.

What the environment cannot say is set afterwards: the descriptor set and
the CA bundle are the image's (/app/gen/descriptor.pb,
/etc/ssl/certs/ca-certificates.crt), and DNS is re-resolved every 5 s.

`make deploy-envoy` rewrites the file; `--check` fails when it is stale (the
manifest test runs that)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ingress import envoy as ingress
from paykit.settings import ConfigError

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "deploy" / "envoy" / "configmap.yaml"
CONFIG = ROOT / "deploy" / "config.yaml"
NAMESPACE = "payments"
IMAGE_DESCRIPTOR = Path("/app/gen/descriptor.pb")
IMAGE_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's ca-certificates, in python:3.11-slim
# Headless Services (deploy/payment.yaml, deploy/order.yaml): one DNS record per ready pod.
UPSTREAM_HOSTS = {
    "PAYMENT_UPSTREAM_HOST": f"payment-pods.{NAMESPACE}.svc.cluster.local",
    "ORDER_UPSTREAM_HOST": f"order-pods.{NAMESPACE}.svc.cluster.local",
    # The web app (deploy/web.yaml): setting it routes /shop/ and /console/ there.
    "WEB_UPSTREAM_HOST": f"web-pods.{NAMESPACE}.svc.cluster.local",
}
# What the ingress reads from deploy/config.yaml.
UPSTREAM_TLS = tuple(
    f"{service}_UPSTREAM_TLS_{part}"
    for service in ("PAYMENT", "ORDER")
    for part in ("CA", "CERT", "KEY", "SERVER_NAME")
)
FROM_CONFIG = (
    "JWT_JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "PAYMENT_GRPC_PORT",
    "ORDER_GRPC_PORT",
    "WEB_PORT",
    *UPSTREAM_TLS,
)


def cluster_config(path: Path = CONFIG) -> dict[str, str]:
    """The data of the payments-config ConfigMap."""
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {key: str(value) for key, value in doc["data"].items()}


def environment(
    config: dict[str, str], jwks_url: str = "", issuer: str = "", audience: str = "", *, pages: bool = True
) -> dict[str, str]:
    env = {name: config[name] for name in FROM_CONFIG if config.get(name)}
    env.update(
        {
            "PAYMENTS_ENV": "production",
            "INGRESS_HOST": "0.0.0.0",  # noqa: S104 (the pod's own network namespace; a Service fronts it)
            **UPSTREAM_HOSTS,
            "JWT_JWKS_CA_FILE": IMAGE_CA_FILE,
        }
    )
    if not pages:  # no web app in the cluster: /shop/ and /console/ are not routed
        del env["WEB_UPSTREAM_HOST"]
    overrides = {"JWT_JWKS_URL": jwks_url, "JWT_ISSUER": issuer, "JWT_AUDIENCE": audience}
    env.update({name: value for name, value in overrides.items() if value})
    return env


def settings(env: dict[str, str], jwks: str = "") -> ingress.IngressSettings:
    if jwks:  # an embedded JWKS instead of the URL (JWT_JWKS_FILE's effect)
        env = {name: value for name, value in env.items() if name != "JWT_JWKS_URL"}
        env["JWT_JWKS_URL"] = "https://unused.invalid/jwks.json"  # satisfies from_env; replaced below
        s = ingress.IngressSettings.from_env(env)
        s = replace(s, jwks_json=jwks, jwks_url="")
    else:
        s = ingress.IngressSettings.from_env(env)
    return replace(s, descriptor_path=IMAGE_DESCRIPTOR)


def kubernetes_bootstrap(s: ingress.IngressSettings) -> dict[str, Any]:
    config = ingress.render_config(s)
    for cluster in config["static_resources"]["clusters"]:
        if cluster["type"] == "STRICT_DNS":
            # Pods come and go: re-resolve often so a new replica gets traffic soon.
            cluster["dns_refresh_rate"] = "5s"
            cluster["respect_dns_ttl"] = False
    return config


def configmap(bootstrap: dict[str, Any]) -> str:
    # A copy without shared objects: no YAML anchors and aliases in the manifest.
    bootstrap = json.loads(json.dumps(bootstrap))
    body = yaml.dump(bootstrap, Dumper=ingress._Dumper, sort_keys=False)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "envoy-config",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "payments", "app": "envoy"},
        },
        "data": {"envoy.yaml": body},
    }
    header = (
        "# Generated by tools/render_envoy_k8s.py (make deploy-envoy) from deploy/config.yaml; do not edit.\n"
        "# The identity provider (JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE) is a PLACEHOLDER until you set\n"
        "# yours in deploy/config.yaml and re-render.\n"
    )
    return header + yaml.dump(manifest, Dumper=ingress._Dumper, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the payments-config ConfigMap")
    parser.add_argument("--jwks-url", default="", help="the identity provider's JWKS URL (default: config)")
    parser.add_argument("--jwks", type=Path, help="embed this JWKS (JSON file) instead of fetching a URL")
    parser.add_argument("--issuer", default="", help="required JWT issuer (default: config)")
    parser.add_argument("--audience", default="", help="required JWT audience (default: config)")
    parser.add_argument("--without-pages", action="store_true", help="no web app: /shop/, /console/ unrouted")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    jwks = json.dumps(json.loads(args.jwks.read_text())) if args.jwks else ""
    env = environment(
        cluster_config(args.config), args.jwks_url, args.issuer, args.audience, pages=not args.without_pages
    )
    try:
        text = configmap(kubernetes_bootstrap(settings(env, jwks)))
    except ConfigError as error:
        print(f"cannot render the Envoy configuration: {error}", file=sys.stderr)
        return 2
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"{args.output} is stale: run `make deploy-envoy`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
