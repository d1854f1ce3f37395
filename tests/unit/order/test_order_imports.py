"""The order service's arrows: it reaches the payment service only through
gen/ stubs, and its domain and service layer never read protobuf or gRPC.
paykit, the floor, imports nothing of ours."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OURS = ("paykit", "payment_service", "order_service", "gateway_simulator", "ingress", "payments", "bench")
WIRE = ("payment", "order", "google.protobuf", "google.api", "grpc", "grpc_health", "grpc_reflection")


def imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def test_order_service_never_imports_the_payment_service_or_the_roof() -> None:
    bad = {
        (path, name)
        for path, names in imports("order_service").items()
        for name in names
        if under(name, OURS) and not under(name, ("order_service", "paykit"))
    }
    assert bad == set()


def test_order_domain_and_service_layer_read_no_protobuf() -> None:
    bad = {
        (path, name)
        for path, names in imports("order_service").items()
        if "/domain/" in path or "/service_layer/" in path
        for name in names
        if under(name, WIRE)
    }
    assert bad == set()


def test_order_domain_imports_only_the_domain_and_paykit() -> None:
    bad = {
        (path, name)
        for path, names in imports("order_service").items()
        if "/domain/" in path
        for name in names
        if under(name, OURS) and not under(name, ("order_service.domain", "paykit"))
    }
    assert bad == set()


def test_paykit_imports_nothing_of_ours() -> None:
    bad = {
        (path, name)
        for path, names in imports("paykit").items()
        for name in names
        if under(name, OURS) and not under(name, ("paykit",))
    }
    assert bad == set()
