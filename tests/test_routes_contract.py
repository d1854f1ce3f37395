"""The HTTP bindings of HandleCallback in the descriptor set (what Envoy
transcodes) are exactly the webhook routes the gateway registry dispatches on."""

from __future__ import annotations

from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from payment_service.domain.model import Provider
from payment_service.gateways import registry

ROOT = Path(__file__).resolve().parent.parent


def _bindings() -> set[tuple[str, str]]:
    fds = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen" / "descriptor.pb").read_bytes())
    (proto,) = [f for f in fds.file if f.name == "payment/v1/payment_service.proto"]
    (service,) = [s for s in proto.service if s.name == "PaymentService"]
    (method,) = [m for m in service.method if m.name == "HandleCallback"]
    rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
    found: set[tuple[str, str]] = set()
    for binding in (rule, *rule.additional_bindings):
        verb = binding.WhichOneof("pattern")
        assert verb in ("get", "post"), f"unexpected HTTP verb {verb}"
        found.add((verb.upper(), getattr(binding, verb)))
    return found


def test_handle_callback_bindings_are_the_registry_routes() -> None:
    routes = {(route.method, path) for path, (_, route) in registry.webhook_routes().items()}
    assert _bindings() == routes


def test_every_route_has_one_binding_and_a_known_kind() -> None:
    bindings = _bindings()
    assert len({path for _, path in bindings}) == len(bindings)  # no path bound twice
    assert registry.callback_routes().keys() == {path for _, path in bindings}


def test_every_provider_has_exactly_one_gateway() -> None:
    assert sorted(s.provider for s in registry.all_settings()) == sorted(Provider)


def _payment_service_bindings() -> dict[str, set[str]]:
    fds = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen" / "descriptor.pb").read_bytes())
    (proto,) = [f for f in fds.file if f.name == "payment/v1/payment_service.proto"]
    (service,) = [s for s in proto.service if s.name == "PaymentService"]
    found: dict[str, set[str]] = {}
    for method in service.method:
        if not method.options.HasExtension(annotations_pb2.http):
            continue
        rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
        found[method.name] = {getattr(b, b.WhichOneof("pattern")) for b in (rule, *rule.additional_bindings)}
    return found


def test_every_other_payment_binding_is_an_admin_route() -> None:
    """Besides the webhooks, the payment service is reachable over HTTP only
    under /admin/v1/, which the ingress opens only to admin tokens."""
    from ingress.envoy import ADMIN_PREFIX

    bindings = _payment_service_bindings()
    assert {"SearchPayments", "GetPaymentDetail", "ReconcilePayment", "ReplayCallback"} <= set(bindings)
    for method, paths in bindings.items():
        if method == "HandleCallback":
            continue
        assert all(path.startswith(ADMIN_PREFIX + "v1/") for path in paths), (method, paths)
    # Never bound: the internal RPCs the order service and the CLI use.
    assert not {"CreateOrGetPayment", "StreamPaymentEvents", "AdvanceClock", "CancelPayment"} & set(bindings)
