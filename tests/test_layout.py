"""The floor plan, enforced: every production module's imports (read from
its source, including those inside functions and under TYPE_CHECKING) point
down. See "Where things are" in the README.

    payments (the CLI)  ->  payment_service, order_service, gateway_simulator, ingress, web  ->  paykit
                                                                               web -> ingress

The two services never import each other; the order service reaches the
payment service only through the generated stubs in gen/. Inside a service,
the domain imports no I/O library and nothing of the service but the domain;
the service layer imports neither the ORM nor protobuf; a gateway's folder
imports no other gateway's."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "paykit",
    "payment_service",
    "order_service",
    "gateway_simulator",
    "ingress",
    "web",
    "payments",
    "bench",
)
GENERATED = ("payment", "order")  # gen/: the contracts' Python code
OURS = (*PACKAGES, *GENERATED, "tests")

# Which of our top-level packages each may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "paykit": set(),
    "ingress": {"paykit"},
    # The pages reach the services only through the ingress (HTTP from the
    # browser); the development keys come from the ingress's auth module.
    "web": {"paykit", "ingress"},
    "payment_service": {"paykit", "payment"},
    "order_service": {"paykit", "order", "payment"},
    "gateway_simulator": {"paykit", "payment_service"},  # only gateways' protocol/settings, below
    # The CLI calls the services' internal RPCs (payments clock) through the generated stubs.
    "payments": {
        "paykit",
        "payment_service",
        "order_service",
        "gateway_simulator",
        "ingress",
        "web",
        "payment",
        "order",
    },
    "bench": {"paykit", "payment_service", "order_service", "ingress", "payments", "payment", "order"},
}
# Modules of another package that a package may reach (prefix match).
REACHABLE: dict[str, tuple[str, ...]] = {
    "gateway_simulator": ("payment_service.gateways._wire", "payment_service.gateways."),
}
GATEWAY_FACES = ("protocol", "settings", "_wire")

# Libraries that do I/O or belong to another layer: never in a domain.
IO_LIBRARIES = ("sqlalchemy", "psycopg", "grpc", "google.protobuf", "httpx", "urllib.request", "socket")


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports(path: Path, module: str) -> set[str]:
    """Absolute names of every import in the file, relative ones resolved."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def violations(found: Iterable[tuple[str, Path]] | None = None) -> list[str]:
    problems = []
    for module, path in modules() if found is None else found:
        own = _top(module)
        for target in sorted(imports(path, module)):
            top = _top(target)
            if top not in OURS or top == own:
                continue
            reachable = REACHABLE.get(own, ())
            if top not in ALLOWED[own]:
                problems.append(f"{module} imports {target}: {own} may not import {top}")
            elif reachable and top in {_top(r) for r in reachable}:
                if not _gateway_face(target):
                    problems.append(f"{module} imports {target}: only gateways' protocol/settings/_wire")
        problems += _service_rules(module, path)
    return problems


def _gateway_face(target: str) -> bool:
    parts = target.split(".")
    if parts[:3] == ["payment_service", "gateways", "_wire"]:
        return True
    return len(parts) >= 4 and parts[:2] == ["payment_service", "gateways"] and parts[3] in GATEWAY_FACES


def _service_rules(module: str, path: Path) -> list[str]:
    parts = module.split(".")
    if parts[0] not in ("payment_service", "order_service") or len(parts) < 2:
        return []
    service, room = parts[0], parts[1]
    problems = []
    for target in sorted(imports(path, module)):
        if room == "domain":
            if target.startswith(IO_LIBRARIES) or _top(target) in GENERATED:
                problems.append(f"{module} imports {target}: the domain does no I/O and knows no protobuf")
            if _top(target) == service and not target.startswith(f"{service}.domain"):
                problems.append(f"{module} imports {target}: the domain imports only the domain")
        if room == "service_layer":
            if target.startswith(("sqlalchemy", "google.protobuf", "grpc")) or _top(target) in GENERATED:
                problems.append(f"{module} imports {target}: the service layer knows no ORM or protobuf")
            if target.startswith((f"{service}.entrypoints", f"{service}.adapters.orm")):
                problems.append(f"{module} imports {target}: arrows point down")
        if room == "gateways" and len(parts) >= 3 and parts[2] not in ("port", "registry", "_wire", "cod"):
            if target.startswith(f"{service}.gateways.") and not target.startswith(
                (f"{service}.gateways.{parts[2]}", f"{service}.gateways.port", f"{service}.gateways._wire")
            ):
                problems.append(f"{module} imports {target}: a gateway lives in its own folder")
        if room in ("domain", "adapters", "gateways") and target.startswith(
            (f"{service}.service_layer", f"{service}.entrypoints")
        ):
            problems.append(f"{module} imports {target}: arrows point down")
    return problems


def test_every_arrow_points_down() -> None:
    problems = violations()
    assert not problems, "\n".join(problems)


def test_nothing_imports_the_cli() -> None:
    importers = [
        module
        for module, path in modules()
        if _top(module) not in ("payments", "bench")
        and any(_top(t) == "payments" for t in imports(path, module))
    ]
    assert not importers


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from payment_service.adapters import orm\n", "payment_service.domain.model", "domain imports only"),
        ("import sqlalchemy\n", "payment_service.domain.model", "no I/O"),
        (
            "from order_service.domain import model\n",
            "payment_service.entrypoints.servicer",
            "may not import",
        ),
        ("from payment_service.adapters import http\n", "gateway_simulator.server", "only gateways'"),
        ("from payment_service.gateways.momo import gateway\n", "gateway_simulator.momo", "only gateways'"),
        ("from ..momo import protocol\n", "payment_service.gateways.vnpay.gateway", "its own folder"),
        ("from payments import cli\n", "paykit.database", "may not import"),
    ],
)
def test_the_checker_catches(tmp_path: Path, source: str, module: str, expected: str) -> None:
    """The rules fail when broken: a planted import of each kind is reported."""
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    problems = violations([(module, planted)])
    assert any(expected in problem for problem in problems), problems
