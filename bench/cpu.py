"""CPU time per request of the payment service, path by path
(`python -m bench.cpu [N]`): an embedded PostgreSQL, one `payments serve
payment` process (no order service, so no event stream shares its CPU), and N
requests of each path sent from this process over one channel. The figure is
the service process's user + system CPU (from /proc, all its worker
processes) divided by N, which stays meaningful on a shared machine where
wall-clock rates do not."""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from payment.v1 import payment_service_pb2 as ps
from payment.v1 import payment_service_pb2_grpc

from bench import load, profiling
from bench.stack import CLOCK_TICKS, _service_env, child_pids
from paykit import database, migrations
from payments import stack


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def measure(n: int, workers: int = 1, profile: Path | None = None) -> dict[str, Any]:
    """Milliseconds of payment-service CPU per request: new, reuse,
    get_by_order, ipn. With `profile`, py-spy samples each path too (the
    summaries under "profile", the raw stacks in that folder)."""
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        pg = database.start_embedded(Path(tmp) / "postgres")
        process = None
        try:
            url = database.ensure_database(pg.get_uri(), "payments")
            migrations.upgrade(url, "payment")
            env = {
                **_service_env(),
                "DATABASE_URL": url,
                "PAYMENT_GRPC_PORT": "0",
                "PAYMENT_METRICS_PORT": "off",
                "PAYMENT_WORKERS": str(workers),
                "PAYMENTS_AUTO_MIGRATE": "0",
                "DATA_DIR": tmp,
            }
            process = stack.ServiceProcess("payment", stack.serve_argv("payment"), env)
            process.wait_serving()
            pids = [process.pid, *child_pids(process.pid)]
            with grpc.insecure_channel(process.target) as channel:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
                return _paths(stub, n, pids, profile)
        finally:
            if process is not None:
                process.stop()
            database.stop_embedded(pg)


def _paths(
    stub: payment_service_pb2_grpc.PaymentServiceStub, n: int, pids: list[int], profile: Path | None
) -> dict[str, Any]:
    profiles: dict[str, Any] = {}

    def per_request(items: Sequence[object], call: Callable[[object], object], name: str) -> float:
        with contextlib.ExitStack() as stack:
            if profile is not None:
                profiles[name] = stack.enter_context(
                    profiling.record({str(pid): pid for pid in pids}, profile / name)
                )
            before = cpu_seconds(pids)
            for item in items:
                call(item)
            used = cpu_seconds(pids) - before
        return round(1000 * used / len(items), 3)

    refs: list[str] = []

    def new(order_id: object) -> None:
        reply = stub.CreateOrGetPayment(load.create_request(str(order_id)), timeout=10)
        assert not reply.reused
        refs.append(reply.payment.provider_reference)

    def reuse(order_id: object) -> None:
        assert stub.CreateOrGetPayment(load.create_request(str(order_id)), timeout=10).reused

    def get(order_id: object) -> None:
        stub.GetPaymentByOrder(
            ps.GetPaymentByOrderRequest(order_id=str(order_id), user_id=load.USER), timeout=10
        )

    def ipn(query: object) -> None:
        reply = stub.HandleCallback(
            httpbody_pb2.HttpBody(),
            metadata=[("x-envoy-original-path", f"{load.IPN_PATH}?{query}")],
            timeout=10,
        )
        assert b'"RspCode":"00"' in reply.data, reply.data

    warm = [f"cpu-warm-{i}" for i in range(200)]
    for order in warm:
        new(order)
        reuse(order)
        get(order)
    for ref in refs:
        ipn(load.signed_ipn(ref, load.AMOUNT))
    refs.clear()
    orders = [f"cpu-{i}" for i in range(n)]
    result: dict[str, Any] = {"new": per_request(orders, new, "new")}
    result["reuse"] = per_request(orders, reuse, "reuse")
    result["get_by_order"] = per_request(orders, get, "get_by_order")
    time.sleep(0.2)
    result["ipn"] = per_request([load.signed_ipn(ref, load.AMOUNT) for ref in refs], ipn, "ipn")
    if profiles:
        result["profile"] = profiles
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("requests", type=int, nargs="?", default=1000, help="per path (default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="PAYMENT_WORKERS (default 1)")
    parser.add_argument(
        "--profile", type=Path, help="also sample each path with py-spy, stacks in this folder"
    )
    args = parser.parse_args()
    print(json.dumps(measure(args.requests, args.workers, args.profile), indent=1))


if __name__ == "__main__":
    main()
