"""`payments clock advance DURATION`: moves the test clock of every process
of a development stack together. The payment service first (it refuses
outside development, and then nothing has moved), the simulator's gateways
next (their session deadlines), the order service last (its expiry asks the
payment service about money, which has already swept). Each service runs a
sweep right after its clock moves."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import grpc
from google.protobuf import duration_pb2
from order.v1 import order_service_pb2, order_service_pb2_grpc
from payment.v1 import payment_service_pb2, payment_service_pb2_grpc

from paykit.clock import format_duration
from paykit.settings import DEFAULT_PORTS, env_int

TIMEOUT_SECONDS = 60.0  # a sweep asks the gateways about every attempt due


class ClockRefused(RuntimeError):
    """A process refused to move its clock (or could not be reached); one line."""


@dataclass(frozen=True)
class Targets:
    payment: str
    order: str
    sim_url: str  # "" when no simulator runs

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Targets:
        payment = env.get("PAYMENT_TARGET") or f"127.0.0.1:{env_int(env, 'PAYMENT_GRPC_PORT', 50051)}"
        order = (
            env.get("ORDER_TARGET") or f"127.0.0.1:{env_int(env, 'ORDER_GRPC_PORT', DEFAULT_PORTS['order'])}"
        )
        sim = env.get("SIM_URL") or f"http://127.0.0.1:{env_int(env, 'SIM_PORT', DEFAULT_PORTS['sim'])}"
        return cls(payment, order, sim)


def advance(by: timedelta, targets: Targets) -> dict[str, str]:
    """Moves every clock by `by`; returns each process's offset afterwards."""
    duration = duration_pb2.Duration()
    duration.FromTimedelta(by)
    offsets: dict[str, str] = {}
    with grpc.insecure_channel(targets.payment) as channel:
        stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        request = payment_service_pb2.AdvanceClockRequest(by=duration)
        offsets["payment"] = _call("payment service", stub.AdvanceClock, request)
    if targets.sim_url:
        offsets["simulator"] = _advance_simulator(targets.sim_url, by)
    with grpc.insecure_channel(targets.order) as channel:
        order_stub = order_service_pb2_grpc.OrderServiceStub(channel)
        order_request = order_service_pb2.AdvanceClockRequest(by=duration)
        offsets["order"] = _call("order service", order_stub.AdvanceClock, order_request)
    return offsets


def _call(name: str, method: grpc.UnaryUnaryMultiCallable, request: object) -> str:
    """One AdvanceClock; the process's offset afterwards."""
    try:
        reply = method(request, timeout=TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        detail = error.details() if isinstance(error, grpc.Call) else str(error)
        label = code.name if code is not None else "ERROR"
        raise ClockRefused(f"{name}: {label}: {detail}") from None
    return format_duration(reply.offset.ToTimedelta())


def _advance_simulator(base_url: str, by: timedelta) -> str:
    body = json.dumps({"seconds": by.total_seconds()}).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback development URL
        f"{base_url.rstrip('/')}/_control/clock",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise ClockRefused(f"simulator: HTTP {error.code}: {error.read().decode(errors='replace')}") from None
    except OSError:
        return "not running (skipped)"
    return format_duration(timedelta(seconds=float(answer.get("offset_seconds") or 0)))
