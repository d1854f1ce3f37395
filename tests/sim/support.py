"""Helpers for the simulator tests: a tiny in-test ingress that records every
callback and answers as the payment service would, HTTP without redirects,
and the gateway configs as the payment service builds them. No database."""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from gateway_simulator import SimConfig, Simulator
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.payos import protocol as payos
from payment_service.gateways.vnpay import protocol as vnpay
from payment_service.gateways.zalopay import protocol as zalopay

# What our service answers when all is well.
DEFAULT_ANSWERS: dict[str, tuple[int, bytes]] = {
    "/webhooks/vnpay/ipn": (200, b'{"RspCode":"00","Message":"Confirm Success"}'),
    "/webhooks/payos": (200, b'{"success":true}'),
    "/webhooks/momo/ipn": (204, b""),
    "/webhooks/zalopay/callback": (200, b'{"return_code":1,"return_message":"success"}'),
}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class Recorder:
    """Stands in for the ingress: records callbacks, answers from a script
    per path (then the default answer), optionally after a pause."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._cond = threading.Condition()
        self._scripts: dict[str, deque[tuple[int, bytes]]] = defaultdict(deque)
        self.pause = 0.0  # seconds to wait before answering
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = Call(
                    self.command,
                    path,
                    query,
                    body,
                    {k.lower(): v for k, v in self.headers.items()},
                    time.monotonic(),
                )
                with recorder._cond:
                    recorder.calls.append(call)
                    recorder._cond.notify_all()
                    script = recorder._scripts[path]
                    status, answer = script.popleft() if script else DEFAULT_ANSWERS.get(path, (404, b""))
                if recorder.pause:
                    time.sleep(recorder.pause)
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(answer)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01})
        self._thread.daemon = True
        self._thread.start()

    def script(self, path: str, *answers: tuple[int, bytes]) -> None:
        with self._cond:
            self._scripts[path].extend(answers)

    def wait(self, count: int, path: str | None = None, timeout: float = 5.0) -> list[Call]:
        """The first ``count`` calls (to ``path``); fails after ``timeout``."""

        def matching() -> list[Call]:
            return [c for c in self.calls if path is None or c.path == path]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError(f"expected {count} calls to {path or 'any path'}, got {matching()}")
            return matching()

    def of(self, path: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_sim(recorder: Recorder, time_scale: float = 0.001) -> Simulator:
    return Simulator(
        SimConfig(port=0, ingress_base_url=recorder.url, time_scale=time_scale, callback_timeout=2.0)
    ).start()


# --- HTTP helpers ---------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    raw: bytes | None = None,
) -> Reply:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with _OPENER.open(request, timeout=10) as response:
            return Reply(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
            )
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def control(sim: Simulator, path: str, body: Any = None) -> Reply:
    return http("POST" if body is not None else "GET", f"{sim.base_url}/_control/{path}", body)


# --- the service's side: configs as the payment service builds them -------------


def vnpay_config(sim: Simulator) -> vnpay.VnpayConfig:
    return vnpay.VnpayConfig(
        tmn_code=sim.config.vnpay.tmn_code,
        hash_secret=sim.config.vnpay.hash_secret,
        pay_url=sim.service_urls()["VNPAY_API_URL"],
        return_url="https://shop.example/webhooks/vnpay/return",
    )


def payos_config(sim: Simulator) -> payos.PayosConfig:
    c = sim.config.payos
    return payos.PayosConfig(
        client_id=c.client_id,
        api_key=c.api_key,
        checksum_key=c.checksum_key,
        base_url=sim.service_urls()["PAYOS_BASE_URL"],
        return_url="https://shop.example/result",
        cancel_url="https://shop.example/result?cancelled=1",
    )


def momo_config(sim: Simulator) -> momo.MomoConfig:
    c = sim.config.momo
    return momo.MomoConfig(
        partner_code=c.partner_code,
        access_key=c.access_key,
        secret_key=c.secret_key,
        endpoint=sim.service_urls()["MOMO_ENDPOINT"],
        redirect_url="https://shop.example/result",
        ipn_url="https://shop.example/webhooks/momo/ipn",
    )


def zalopay_config(sim: Simulator) -> zalopay.ZalopayConfig:
    c = sim.config.zalopay
    return zalopay.ZalopayConfig(
        app_id=c.app_id,
        key1=c.key1,
        key2=c.key2,
        endpoint=sim.service_urls()["ZALOPAY_ENDPOINT"],
        callback_url="https://shop.example/webhooks/zalopay/callback",
        redirect_url="https://shop.example/result",
    )


# --- one payment session per gateway, and its callback decoded ------------------

CALLBACK_PATHS = {
    "vnpay": "/webhooks/vnpay/ipn",
    "payos": "/webhooks/payos",
    "momo": "/webhooks/momo/ipn",
    "zalopay": "/webhooks/zalopay/callback",
}
_order_codes = itertools.count(int(time.time() * 1000) * 1000 + 500)


def open_session(sim: Simulator, gateway: str, amount: int = 40_000) -> str:
    """Creates a checkout session the way the payment service does; returns its reference."""
    now = datetime.now(UTC)
    token = secrets.token_hex(6)
    if gateway == "vnpay":
        url = vnpay.build_payment_url(
            vnpay_config(sim),
            txn_ref=f"T{token}",
            amount=amount,
            order_info="Thanh toan don hang",
            ip_addr="127.0.0.1",
            create_time=now,
            expire_time=now + timedelta(minutes=15),
        )
        assert http("GET", url).status == 200
        return f"T{token}"
    if gateway == "payos":
        config = payos_config(sim)
        body = payos.build_create_payload(
            config,
            order_code=next(_order_codes),
            amount=amount,
            description="DH",
            expired_at=now + timedelta(minutes=15),
        )
        reply = http(
            "POST", config.base_url + payos.PAYMENT_REQUESTS_PATH, body, payos.request_headers(config)
        )
        assert reply.json()["code"] == "00"
        return str(body["orderCode"])
    if gateway == "momo":
        momo_cfg = momo_config(sim)
        body = momo.build_create_payload(
            momo_cfg, order_id=f"O{token}", request_id=f"O{token}", amount=amount, order_info="Don hang"
        )
        assert http("POST", momo_cfg.endpoint + momo.CREATE_PATH, body).json()["resultCode"] == 0
        return f"O{token}"
    zlp = zalopay_config(sim)
    body = zalopay.build_create_payload(
        zlp,
        app_trans_id=zalopay.app_trans_id(now, token),
        app_user="u1",
        amount=amount,
        app_time_ms=int(now.timestamp() * 1000),
        description="Don hang",
        embed_data=zalopay.build_embed_data(zlp),
    )
    assert http("POST", zlp.endpoint + zalopay.CREATE_PATH, body).json()["return_code"] == 1
    return str(body["app_trans_id"])


class Decoded(NamedTuple):
    valid: bool  # the signature verifies with the pure module
    reference: str
    amount: int  # VND
    success: bool


def decode(sim: Simulator, gateway: str, call: Call) -> Decoded:
    """A received callback, checked with the payment service's own verifiers."""
    if gateway == "vnpay":
        v = vnpay.verify_query(call.query, sim.config.vnpay.hash_secret)
        p = v.data
        return Decoded(v.valid, p["vnp_TxnRef"], int(p["vnp_Amount"]) // 100, vnpay.is_successful_payment(p))
    if gateway == "payos":
        w = payos.verify_webhook(call.body, sim.config.payos.checksum_key)
        d = w.data
        return Decoded(w.valid, str(d["orderCode"]), d["amount"], payos.is_successful_payment(d))
    if gateway == "momo":
        m = momo.verify_ipn(call.body, momo_config(sim))
        d = m.data
        return Decoded(m.valid, d["orderId"], d["amount"], momo.is_success(d["resultCode"]))
    z = zalopay.verify_callback(call.body, sim.config.zalopay.key2)
    return Decoded(z.valid, z.data["app_trans_id"], z.data["amount"], True)
