"""The load generator: what each load process runs. Importable by spawned
children (functions in __main__ cannot be pickled under `python -m bench`).

A Job is one process's share of a run. Closed loop: `threads` senders in the
process send back to back until the duration ends or the items run out.
Open loop: the run has a constant-rate schedule (slot j of the whole run is
due at start + j / rate); this process owns every `workers`-th slot, and its
senders take the next due slot as soon as they are free. Latency is measured
from the slot's *intended* send time, not from when a sender got to it, so a
stalled server is charged for the requests that should have gone out while it
stalled (coordinated omission corrected, as wrk2 does)."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from payment_service.gateways.vnpay import protocol as vnpay

SECRET = "BENCHSECRETBENCHSECRETBENCHSECRE"  # noqa: S105 - local benchmark only
TMN = "BENCHTMN"
USER = "bench"
AMOUNT = 150_000
ORDER_AMOUNT = 25_000  # one sticker pack, the order the RetryPayment runs pay
IPN_PATH = "/webhooks/vnpay/ipn"
TIMEOUT = 10.0
# Propagation: how often the shopper's page polls GetOrder until PAID.
POLL_SECONDS = 0.005
ORDER_BODY = json.dumps(
    {
        "items": [{"variant_id": "sticker-pack", "quantity": 1}],
        "receiver_name": "Nguyen Van A",
        "receiver_phone": "0901234567",
        "shipping_address": "1 Le Loi, District 1, HCMC",
    }
).encode()


def signed_ipn(txn_ref: str, amount: int) -> str:
    """The query string of a successful VNPay IPN for txn_ref, signed."""
    params = {
        "vnp_Amount": str(amount * 100),
        "vnp_BankCode": "NCB",
        "vnp_BankTranNo": "VNP14226112",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": "Thanh toan don hang",
        "vnp_PayDate": "20260501103512",
        "vnp_ResponseCode": "00",
        "vnp_TmnCode": TMN,
        "vnp_TransactionNo": "14226112",
        "vnp_TransactionStatus": "00",
        "vnp_TxnRef": txn_ref,
    }
    return f"{vnpay.canonical_query(params)}&vnp_SecureHash={vnpay.sign(params, SECRET)}"


def create_request(order_id: str) -> ps.CreateOrGetPaymentRequest:
    return ps.CreateOrGetPaymentRequest(
        order_id=order_id, user_id=USER, amount=AMOUNT, provider=payment_pb2.PROVIDER_VNPAY
    )


@dataclass(frozen=True)
class Job:
    kind: str  # a key of CALLERS
    target: str  # host:port (gRPC server or the ingress)
    mode: str  # "closed" | "open"
    start_at: float  # time.time() when sending starts (same for every process)
    duration: float  # seconds, upper bound
    threads: int = 1  # concurrent senders in this process
    items: tuple[Any, ...] = ()  # this process's inputs, used in order
    prefix: str = ""  # instead of items: item i is f"{prefix}{i}" (never runs out)
    cycle: bool = False  # read-only scenarios may reuse their items
    rate: float = 0.0  # open loop: requests/s of the whole run
    workers: int = 1  # open loop: processes sharing the schedule
    index: int = 0  # open loop: this process's position among them
    keep_outputs: bool = False


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds
    starts: list[float] = field(default_factory=list)  # intended send times, seconds after the start
    outputs: list[Any] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    end: float = 0.0  # time.time() of the last completion
    late: int = 0  # open loop: sends that left more than 1 ms after their slot
    exhausted: bool = False  # ran out of items before the duration
    used: int = 0  # items consumed (always the first `used` of the job's items)


Call = Callable[[Any], Any]


class _Grpc:
    """One channel per load process, shared by its senders (as a client would)."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        self.stub = payment_service_pb2_grpc.PaymentServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


class _Http:
    """One keep-alive HTTP/1.1 connection per sender."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.host, self.port = host, int(port)
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        conn.connect()
        return conn

    def request(
        self, method: str, path: str, body: bytes | None = None, token: str = ""
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            self.conn.request(method, path, body, headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = self._connect()
            raise

    def close(self) -> None:
        self.conn.close()


def _check(ok: bool, what: str, reply: Any) -> None:
    if not ok:
        raise RuntimeError(f"unexpected {what}: {str(reply)[:300]}")


def _txn_ref(checkout_url: str) -> str:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(checkout_url).query))["vnp_TxnRef"]


# Each caller factory gets the process-wide gRPC client (or None) and returns
# a sender's call plus its cleanup.
def _create(expect_reused: bool | None) -> Callable[[_Grpc | None, str], tuple[Call, Callable[[], None]]]:
    def factory(client: _Grpc | None, target: str) -> tuple[Call, Callable[[], None]]:
        assert client is not None
        method = client.stub.CreateOrGetPayment

        def call(order_id: str) -> tuple[str, str]:
            reply = method(create_request(order_id), timeout=TIMEOUT)
            if expect_reused is not None:
                _check(reply.reused == expect_reused, "reused flag", reply.reused)
            return order_id, reply.payment.provider_reference

        return call, lambda: None

    return factory


def _get_by_order(client: _Grpc | None, target: str) -> tuple[Call, Callable[[], None]]:
    assert client is not None
    method = client.stub.GetPaymentByOrder

    def call(order_id: str) -> None:
        reply = method(ps.GetPaymentByOrderRequest(order_id=order_id, user_id=USER), timeout=TIMEOUT)
        _check(reply.payment.order_id == order_id, "payment", reply)

    return call, lambda: None


def _ipn_grpc(client: _Grpc | None, target: str) -> tuple[Call, Callable[[], None]]:
    assert client is not None
    method = client.stub.HandleCallback

    def call(query: str) -> None:
        reply = method(
            httpbody_pb2.HttpBody(),
            metadata=[("x-envoy-original-path", f"{IPN_PATH}?{query}")],
            timeout=TIMEOUT,
        )
        _check(b'"RspCode":"00"' in reply.data, "IPN answer", reply.data)

    return call, lambda: None


def _ipn_http(client: _Grpc | None, target: str) -> tuple[Call, Callable[[], None]]:
    http_ = _Http(target)

    def call(query: str) -> None:
        status, body = http_.request("GET", f"{IPN_PATH}?{query}")
        _check(status == 200 and b'"RspCode":"00"' in body, "IPN answer", (status, body))

    return call, http_.close


def _create_order(client: _Grpc | None, target: str) -> tuple[Call, Callable[[], None]]:
    http_ = _Http(target)

    def call(token: str) -> tuple[str, str]:
        status, body = http_.request("POST", "/v1/orders", ORDER_BODY, token)
        _check(status == 200, "CreateOrder answer", (status, body))
        return token, str(json.loads(body)["order"]["id"])

    return call, http_.close


def _retry_payment(client: _Grpc | None, target: str) -> tuple[Call, Callable[[], None]]:
    http_ = _Http(target)

    def call(item: tuple[str, str]) -> tuple[str, str, str]:
        token, order_id = item
        status, body = http_.request("POST", f"/v1/orders/{order_id}:retryPayment", b"{}", token)
        _check(status == 200, "RetryPayment answer", (status, body))
        url = json.loads(body)["checkout_url"]
        _check(bool(url), "checkout_url", body)
        return token, order_id, _txn_ref(url)

    return call, http_.close


def _propagation(client: _Grpc | None, target: str) -> tuple[Call, Callable[[], None]]:
    """IPN through the ingress, then the shopper's page polling GetOrder
    (through the ingress, with the shopper's JWT) until the order is PAID."""
    ipn, poll = _Http(target), _Http(target)

    def call(item: tuple[str, str, str]) -> None:
        token, order_id, query = item
        status, body = ipn.request("GET", f"{IPN_PATH}?{query}")
        _check(status == 200 and b'"RspCode":"00"' in body, "IPN answer", (status, body))
        deadline = time.monotonic() + TIMEOUT
        while True:
            status, body = poll.request("GET", f"/v1/orders/{order_id}", None, token)
            _check(status == 200, "GetOrder answer", (status, body))
            if b'"ORDER_STATUS_PAID"' in body:
                return
            _check(time.monotonic() < deadline, "order status after 10 s", body)
            time.sleep(POLL_SECONDS)

    def close() -> None:
        ipn.close()
        poll.close()

    return call, close


CALLERS: dict[str, Callable[[_Grpc | None, str], tuple[Call, Callable[[], None]]]] = {
    "create": _create(None),
    "create-new": _create(False),
    "create-reuse": _create(True),
    "get-by-order": _get_by_order,
    "ipn-grpc": _ipn_grpc,
    "ipn-http": _ipn_http,
    "create-order": _create_order,
    "retry-payment": _retry_payment,
    "propagation": _propagation,
}
GRPC_KINDS = {"create", "create-new", "create-reuse", "get-by-order", "ipn-grpc"}


def run_job(job: Job) -> Outcome:
    """Runs one process's share of a run (in a load process)."""
    client = _Grpc(job.target) if job.kind in GRPC_KINDS else None
    senders = [CALLERS[job.kind](client, job.target) for _ in range(job.threads)]
    outcome = Outcome()
    lock = threading.Lock()
    slots = itertools.count()
    # This process's clock, aligned on the shared wall-clock start.
    t0 = time.perf_counter() + (job.start_at - time.time())
    stop = t0 + job.duration
    n_items = len(job.items)

    def item(i: int) -> Any:
        if job.prefix:
            return f"{job.prefix}{i}"
        if job.cycle:
            return job.items[i % n_items]
        return job.items[i] if i < n_items else None

    def sender(call: Call) -> None:
        latencies: list[float] = []
        starts: list[float] = []
        used = 0
        outputs: list[Any] = []
        errors, late, first_error = 0, 0, ""
        interval = job.workers / job.rate if job.mode == "open" else 0.0
        phase = job.index / job.rate if job.mode == "open" else 0.0
        _sleep_until(t0)
        while True:
            i = next(slots)
            if job.mode == "open":
                intended = t0 + phase + i * interval
                if intended >= stop:
                    break
                now = time.perf_counter()
                if now < intended:
                    _sleep_until(intended)
                elif now - intended > 0.001:
                    late += 1
            else:
                intended = time.perf_counter()
                if intended >= stop:
                    break
            value = item(i)
            if value is None:
                with lock:
                    outcome.exhausted = True
                break
            used = max(used, i + 1)
            try:
                output = call(value)
            except Exception as error:  # noqa: BLE001 - counted and reported, the run goes on
                errors += 1
                first_error = first_error or f"{type(error).__name__}: {error}"[:500]
                continue
            latencies.append(time.perf_counter() - intended)
            starts.append(intended - t0)
            if job.keep_outputs:
                outputs.append(output)
        with lock:
            outcome.latencies += latencies
            outcome.starts += starts
            outcome.used = max(outcome.used, used)
            outcome.outputs += outputs
            outcome.errors += errors
            outcome.late += late
            outcome.first_error = outcome.first_error or first_error

    threads = [threading.Thread(target=sender, args=(call,), daemon=True) for call, _ in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.end = time.time()
    for _, close in senders:
        close()
    if client is not None:
        client.close()
    return outcome


def _sleep_until(deadline: float) -> None:
    while (left := deadline - time.perf_counter()) > 0:
        time.sleep(left if left > 0.002 else left / 2)


def warm_up(_: int) -> int:
    """Run in every load process once, so that imports and the first channel
    are not part of any measurement."""
    import os

    time.sleep(0.05)  # long enough for every process of the pool to get one
    return os.getpid()


def safe_run_job(job: Job) -> Outcome:
    """run_job, with a failure to set up reported instead of raised (a pool
    re-raising in the parent loses the child's traceback)."""
    try:
        return run_job(job)
    except Exception:  # noqa: BLE001 - reported as the run's error
        return Outcome(errors=1, first_error=traceback.format_exc()[-1500:], end=time.time())
