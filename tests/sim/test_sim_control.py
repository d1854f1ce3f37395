"""Configuration, lifecycle and the control API."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from gateway_simulator import SimConfig, Simulator, VnpayCredentials
from gateway_simulator.state import utcnow
from paykit.settings import ConfigError
from payment_service.gateways.momo import settings as momo_settings
from payment_service.gateways.payos import settings as payos_settings
from payment_service.gateways.vnpay import settings as vnpay_settings
from payment_service.gateways.zalopay import settings as zalopay_settings
from tests.sim.support import CALLBACK_PATHS, Recorder, control, make_sim, open_session
from tests.sim.support import http as request

REPO = Path(__file__).resolve().parents[2]


def test_from_env_defaults_are_the_services_development_values() -> None:
    config = SimConfig.from_env({})
    assert config.vnpay.tmn_code == vnpay_settings.DEV_KEYS["tmn_code"]
    assert config.vnpay.hash_secret == vnpay_settings.DEV_KEYS["hash_secret"]
    assert config.payos.checksum_key == payos_settings.DEV_KEYS["checksum_key"]
    assert config.momo.secret_key == momo_settings.DEV_KEYS["secret_key"]
    assert config.zalopay.app_id == int(zalopay_settings.DEV_KEYS["app_id"])
    assert (config.host, config.port, config.ingress_base_url) == ("127.0.0.1", 8090, "http://127.0.0.1:8080")
    assert config.time_scale == 1.0


def test_from_env_reads_every_variable() -> None:
    env = {
        "VNPAY_TMN_CODE": "TMN2",
        "VNPAY_HASH_SECRET": "s1",
        "PAYOS_CLIENT_ID": "c",
        "PAYOS_API_KEY": "a",
        "PAYOS_CHECKSUM_KEY": "k",
        "MOMO_PARTNER_CODE": "P",
        "MOMO_ACCESS_KEY": "AK",
        "MOMO_SECRET_KEY": "SK",
        "ZALOPAY_APP_ID": "554",
        "ZALOPAY_KEY1": "k1",
        "ZALOPAY_KEY2": "k2",
        "SIM_PORT": "0",
        "INGRESS_PORT": "18080",
        "SIM_TIME_SCALE": "0.001",
    }
    c = SimConfig.from_env(env)
    assert (c.vnpay.tmn_code, c.vnpay.hash_secret) == ("TMN2", "s1")
    assert (c.payos.client_id, c.payos.api_key, c.payos.checksum_key) == ("c", "a", "k")
    assert (c.momo.partner_code, c.momo.access_key, c.momo.secret_key) == ("P", "AK", "SK")
    assert (c.zalopay.app_id, c.zalopay.key1, c.zalopay.key2) == (554, "k1", "k2")
    assert (c.port, c.ingress_base_url, c.time_scale) == (0, "http://127.0.0.1:18080", 0.001)
    assert "s1" not in repr(c) and "SK" not in repr(c) and "k2" not in repr(c)


@pytest.mark.parametrize(
    "env",
    [
        {"SIM_PORT": "x"},
        {"SIM_PORT": "70000"},
        {"SIM_TIME_SCALE": "-1"},
        {"SIM_TIME_SCALE": "fast"},
        {"SIM_TIME_SCALE": "nan"},
        {"ZALOPAY_APP_ID": "abc"},
    ],
)
def test_from_env_refuses_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        SimConfig.from_env(env)


def test_loopback_only() -> None:
    with pytest.raises(ConfigError):
        SimConfig(host="0.0.0.0")
    with pytest.raises(ConfigError):
        SimConfig(ingress_base_url="ftp://127.0.0.1")
    with pytest.raises(ConfigError):
        VnpayCredentials(tmn_code="T", hash_secret="")


def test_lifecycle(recorder: Recorder) -> None:
    with Simulator(SimConfig(port=0, ingress_base_url=recorder.url)) as sim:
        assert sim.port > 0 and sim.base_url == f"http://127.0.0.1:{sim.port}"
        assert control(sim, "health").json()["ok"] is True
        assert request("GET", sim.base_url + "/").status == 200
        assert request("GET", sim.base_url + "/nope").status == 404
        with pytest.raises(RuntimeError):
            sim.start()
        port = sim.port
    with pytest.raises(RuntimeError):
        _ = sim.port
    sim.stop()  # twice is fine
    with pytest.raises(OSError):
        request("GET", f"http://127.0.0.1:{port}/_control/health")


def test_stop_abandons_pending_retries_quickly(recorder: Recorder) -> None:
    sim = make_sim(recorder, time_scale=1.0)  # the next VNPay attempt would be 5 minutes away
    recorder.script(CALLBACK_PATHS["vnpay"], (200, b'{"RspCode":"99"}'))
    sim.pay("vnpay", open_session(sim, "vnpay"))
    recorder.wait(1, CALLBACK_PATHS["vnpay"])
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 1
    assert sim.engine.events.query(kind="callback_aborted")


def test_reset(sim: Simulator, recorder: Recorder) -> None:
    recorder.script(CALLBACK_PATHS["vnpay"], (200, b'{"RspCode":"99"}'))
    sim.pay("vnpay", open_session(sim, "vnpay"))
    recorder.wait(1, CALLBACK_PATHS["vnpay"])
    control(sim, "faults", {"gateway": "*", "fault": "drop"})
    assert control(sim, "reset", {}).json() == {"ok": True}
    assert control(sim, "transactions").json() == {"transactions": []}
    assert control(sim, "faults").json() == {"faults": []}
    assert [e["kind"] for e in control(sim, "events").json()["events"]] == ["reset"]
    assert sim.wait_idle(2)
    assert len(recorder.of(CALLBACK_PATHS["vnpay"])) == 1  # the pending retry was abandoned


def test_events_filters(sim: Simulator, recorder: Recorder) -> None:
    ref = open_session(sim, "momo")
    sim.pay("momo", ref)
    recorder.wait(1)
    assert sim.wait_idle(2)
    events = control(sim, "events").json()["events"]
    assert [e["kind"] for e in events] == ["created", "checkout", "callback"]
    callback = control(sim, f"events?gateway=momo&kind=callback&reference={ref}").json()["events"]
    assert callback == events[2:]
    assert callback[0]["status"] == 204 and callback[0]["answer"] == ""
    assert control(sim, f"events?since={events[1]['seq']}").json()["events"] == events[2:]
    assert control(sim, "events?gateway=vnpay").json()["events"] == []


def test_control_pay_errors(sim: Simulator) -> None:
    assert control(sim, "pay", {"gateway": "paypal", "reference": "x"}).status == 400
    assert control(sim, "pay", {"gateway": "momo", "reference": "missing"}).status == 404
    ref = open_session(sim, "momo")
    assert control(sim, "pay", {"gateway": "momo", "reference": ref, "action": "refund"}).status == 400
    assert control(sim, "pay", {"gateway": "momo", "url": "https://elsewhere.example/x"}).status == 400
    assert control(sim, "pay", {"gateway": "momo", "reference": ref}).status == 200
    again = control(sim, "pay", {"gateway": "momo", "reference": ref})
    assert again.status == 409 and "already PAID" in again.json()["error"]
    assert request("POST", sim.base_url + "/_control/pay", raw=b"{").status == 400
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    connection.putrequest("POST", "/_control/pay")
    connection.putheader("Content-Length", str(1024 * 1024 + 1))
    connection.endheaders()  # no body follows: refused on the header alone
    assert connection.getresponse().status == 413
    connection.close()


def test_an_expired_session_cannot_be_paid_unless_forced(sim: Simulator, recorder: Recorder) -> None:
    ref = open_session(sim, "zalopay")
    with sim.engine.ctx.lock:
        sim.engine.gateways["zalopay"].txns[ref].expires_at = utcnow() - timedelta(seconds=1)
    refused = control(sim, "pay", {"gateway": "zalopay", "reference": ref})
    assert refused.status == 409 and "EXPIRED" in refused.json()["error"]
    # The shopper paid just before the deadline: money after our expiry.
    late = control(sim, "pay", {"gateway": "zalopay", "reference": ref, "force": True})
    assert late.status == 200 and late.json()["status"] == "PAID"
    recorder.wait(1, CALLBACK_PATHS["zalopay"])


def test_python_module_entry_point() -> None:
    env = {**os.environ, "SIM_PORT": "0", "INGRESS_PORT": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway_simulator"], env=env, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stderr is not None
        lines = []
        while not any("VNPAY_API_URL=" in line for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        url = next(line for line in lines if "VNPAY_API_URL=" in line).split("=", 1)[1].strip()
        base = url.removesuffix("/vnpay/paymentv2/vpcpay.html")
        assert request("GET", base + "/_control/health").json()["ok"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
