"""Issue 11, finding 11: gateway calls are isolated. A gateway that answers
in 5 s per call (a slow HTTP server on 127.0.0.1 standing in for MoMo's
create) with many CreateOrGetPayment calls in flight does not slow the IPNs
answered meanwhile: gateway calls run on a bounded pool, calls beyond it are
refused at once with UNAVAILABLE and RetryInfo, and the gRPC threads left
over answer callbacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from payment_service.bootstrap import bootstrap
from payment_service.domain.model import Policy, Provider
from payment_service.entrypoints import server as grpc_server
from payment_service.gateways import registry
from payment_service.gateways.cod import CodConfig
from payment_service.gateways.momo.protocol import MomoConfig
from payment_service.gateways.momo.settings import DEV_KEYS as DEV_MOMO
from tests.conftest import TEST_VNPAY, FakeClock, make_settings
from tests.integration.helpers import signed_vnpay_query, vnpay_ipn_params
from tests.integration.test_callbacks import ipn

GATEWAY_SECONDS = 5.0
CREATES = 20  # more than the 16 gRPC threads: the old code had none left for IPNs
IPNS = 200
IPN_THREADS = 16


class SlowGateway:
    """Answers every request after GATEWAY_SECONDS; counts what it saw."""

    def __init__(self) -> None:
        self.seen = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                api.seen += 1
                time.sleep(GATEWAY_SECONDS)
                out = b'{"resultCode": 99, "message": "slow and unhelpful"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def slow_stub(db_url: str, clock: FakeClock) -> Iterator[tuple[Any, SlowGateway]]:
    slow = SlowGateway()
    momo = MomoConfig(
        **DEV_MOMO, endpoint=slow.url, redirect_url="https://shop.example/r", ipn_url="https://x.example/ipn"
    )
    settings = make_settings(
        policy=Policy(
            enabled_providers=frozenset({Provider.VNPAY, Provider.COD, Provider.MOMO}),
            traits=registry.traits(),
        ),
        gateways={Provider.VNPAY: TEST_VNPAY, Provider.COD: CodConfig(), Provider.MOMO: momo},
        gateway_timeout_seconds=GATEWAY_SECONDS * 3,
    )
    app = bootstrap(settings, db_url, clock=clock)
    running = grpc_server.start(app, port=0, sweep=False)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield payment_service_pb2_grpc.PaymentServiceStub(channel), slow
    running.stop(grace=0)
    slow.server.shutdown()


def _create(stub: Any, order_id: str, provider: int) -> Any:
    return stub.CreateOrGetPayment(
        ps.CreateOrGetPaymentRequest(order_id=order_id, user_id="u1", amount=150_000, provider=provider),
        timeout=60,
    )


@pytest.mark.slow
def test_ipn_storm_is_answered_while_the_gateway_is_slow(slow_stub: tuple[Any, SlowGateway]) -> None:
    stub, slow = slow_stub
    # VNPay attempts the storm pays (VNPay's checkout is signed here: no gateway call).
    references = [
        _create(stub, f"ORD-IPN-{i}", payment_pb2.PROVIDER_VNPAY).payment.provider_reference
        for i in range(20)
    ]
    outcomes: list[str] = []

    def slow_create(i: int) -> None:
        try:
            _create(stub, f"ORD-SLOW-{i}", payment_pb2.PROVIDER_MOMO)
            outcomes.append("answered")
        except grpc.RpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            retry = (
                any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details) if status else False
            )
            outcomes.append(f"{error.code().name}{' retry-info' if retry else ''}")

    creators = [threading.Thread(target=slow_create, args=(i,)) for i in range(CREATES)]
    for thread in creators:
        thread.start()
    deadline = time.monotonic() + GATEWAY_SECONDS
    while slow.seen < 8 and time.monotonic() < deadline:
        time.sleep(0.02)  # the gateway is busy with the first calls

    def one_ipn(i: int) -> float:
        reference = references[i % len(references)]
        query = signed_vnpay_query(vnpay_ipn_params(reference, 150_000), TEST_VNPAY.hash_secret)
        start = time.monotonic()
        assert ipn(stub, query) in ("00", "02")  # paid, or already confirmed
        return time.monotonic() - start

    storm_started = time.monotonic()
    with ThreadPoolExecutor(IPN_THREADS) as pool:
        latencies = sorted(pool.map(one_ipn, range(IPNS)))
    storm = time.monotonic() - storm_started
    for thread in creators:
        thread.join(timeout=60)

    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"\nIPN storm: {IPNS} IPNs in {storm:.2f} s, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms;"
        f" creates: {sorted(outcomes)}"
    )
    assert p99 < 1.0, f"p99 {p99:.2f} s while the gateway was slow"
    assert storm < GATEWAY_SECONDS, "the storm waited for the slow gateway"
    # Beyond the pool and its queue (8 + 4), calls are refused at once.
    assert outcomes.count("UNAVAILABLE retry-info") >= CREATES - 12
    assert slow.seen <= 12
