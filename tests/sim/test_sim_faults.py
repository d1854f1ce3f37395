"""Every scripted fault, on every gateway it applies to."""

from __future__ import annotations

import time

import pytest

from gateway_simulator import GATEWAYS, Simulator
from tests.sim.support import CALLBACK_PATHS, Recorder, control, decode, open_session


def pay(sim: Simulator, gateway: str, reference: str) -> float:
    """Clicks "pay"; returns how long /_control/pay took."""
    started = time.monotonic()
    reply = control(sim, "pay", {"gateway": gateway, "reference": reference, "action": "pay"})
    assert reply.status == 200, reply.text
    return time.monotonic() - started


def fault(sim: Simulator, body: dict[str, object]) -> None:
    reply = control(sim, "faults", body)
    assert reply.status == 201, reply.text


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_no_fault(sim: Simulator, recorder: Recorder, gateway: str) -> None:
    ref = open_session(sim, gateway, 40_000)
    pay(sim, gateway, ref)
    (call,) = recorder.wait(1, CALLBACK_PATHS[gateway])
    assert decode(sim, gateway, call) == (True, ref, 40_000, True)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_duplicate_sends_the_same_callback_twice_at_once(
    sim: Simulator, recorder: Recorder, gateway: str
) -> None:
    fault(sim, {"gateway": gateway, "fault": "duplicate"})
    ref = open_session(sim, gateway)
    pay(sim, gateway, ref)
    first, second = recorder.wait(2, CALLBACK_PATHS[gateway])
    assert (first.query, first.body) == (second.query, second.body)
    assert abs(first.at - second.at) < 0.2
    assert decode(sim, gateway, first).valid
    assert sim.wait_idle(2)
    assert len(recorder.of(CALLBACK_PATHS[gateway])) == 2
    assert sorted(e["copy"] for e in sim.events(kind="callback")) == [1, 2]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_delay(sim: Simulator, recorder: Recorder, gateway: str) -> None:
    fault(sim, {"gateway": gateway, "fault": "delay", "seconds": 300})  # x 0.001
    ref = open_session(sim, gateway)
    started = time.monotonic()
    pay(sim, gateway, ref)
    (call,) = recorder.wait(1, CALLBACK_PATHS[gateway])
    assert call.at - started >= 0.3
    assert sim.events(kind="callback_delayed")[0]["seconds"] == pytest.approx(0.3)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_before_return_answers_the_callback_before_the_redirect(
    sim: Simulator, recorder: Recorder, gateway: str
) -> None:
    recorder.pause = 0.25  # the merchant takes its time answering
    ref = open_session(sim, gateway)
    took = pay(sim, gateway, ref)
    returned = time.monotonic()
    recorder.wait(1, CALLBACK_PATHS[gateway])
    assert sim.wait_idle(2)
    (event,) = sim.events(reference=ref, kind="callback")
    assert took < 0.2 and event["monotonic"] > returned  # default: the redirect first

    fault(sim, {"gateway": gateway, "fault": "before_return"})
    other = open_session(sim, gateway)
    took = pay(sim, gateway, other)
    returned = time.monotonic()
    (event,) = sim.events(reference=other, kind="callback")  # already there
    assert took >= 0.25 and event["monotonic"] < returned and event["acknowledged"]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_drop_sends_nothing_but_the_gateway_knows_it_is_paid(
    sim: Simulator, recorder: Recorder, gateway: str
) -> None:
    fault(sim, {"gateway": gateway, "fault": "drop"})
    ref = open_session(sim, gateway)
    pay(sim, gateway, ref)
    assert sim.wait_idle(2)
    time.sleep(0.1)
    assert recorder.of(CALLBACK_PATHS[gateway]) == []
    assert sim.events(kind="callback_dropped")[0]["reference"] == ref
    (txn,) = control(sim, f"transactions?gateway={gateway}").json()["transactions"]
    assert txn["status"] == "PAID"


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_wrong_amount_is_correctly_signed(sim: Simulator, recorder: Recorder, gateway: str) -> None:
    fault(sim, {"gateway": gateway, "fault": "wrong_amount"})
    ref = open_session(sim, gateway, 40_000)
    pay(sim, gateway, ref)
    (call,) = recorder.wait(1, CALLBACK_PATHS[gateway])
    assert decode(sim, gateway, call) == (True, ref, 41_000, True)
    fault(sim, {"gateway": gateway, "fault": "wrong_amount", "amount": 1_000})
    other = open_session(sim, gateway, 40_000)
    pay(sim, gateway, other)
    assert decode(sim, gateway, recorder.wait(2, CALLBACK_PATHS[gateway])[1]).amount == 1_000


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_bad_signature(sim: Simulator, recorder: Recorder, gateway: str) -> None:
    fault(sim, {"gateway": gateway, "fault": "bad_signature"})
    ref = open_session(sim, gateway, 40_000)
    pay(sim, gateway, ref)
    (call,) = recorder.wait(1, CALLBACK_PATHS[gateway])
    assert decode(sim, gateway, call) == (False, ref, 40_000, True)


@pytest.mark.parametrize("gateway", ["vnpay", "payos", "momo"])
def test_out_of_order_sends_a_failure_then_the_success(
    sim: Simulator, recorder: Recorder, gateway: str
) -> None:
    fault(sim, {"gateway": gateway, "fault": "out_of_order"})
    ref = open_session(sim, gateway)
    pay(sim, gateway, ref)
    first, second = recorder.wait(2, CALLBACK_PATHS[gateway])
    assert first.at <= second.at
    failure, success = decode(sim, gateway, first), decode(sim, gateway, second)
    assert failure.valid and success.valid
    assert (failure.reference, failure.success) == (ref, False)
    assert (success.reference, success.success) == (ref, True)
    assert sim.wait_idle(2)
    assert [e["result"] for e in sim.events(kind="callback")] == ["fail", "pay"]


def test_zalopay_has_no_failure_callback_to_send_out_of_order(sim: Simulator) -> None:
    reply = control(sim, "faults", {"gateway": "zalopay", "fault": "out_of_order"})
    assert reply.status == 400 and "only on success" in reply.json()["error"]


def test_a_fault_for_one_reference_waits_for_it(sim: Simulator, recorder: Recorder) -> None:
    first, second = open_session(sim, "momo"), open_session(sim, "momo")
    fault(sim, {"gateway": "momo", "fault": "drop", "reference": second})
    pay(sim, "momo", first)
    recorder.wait(1, CALLBACK_PATHS["momo"])
    pay(sim, "momo", second)
    assert sim.wait_idle(2)
    assert len(recorder.of(CALLBACK_PATHS["momo"])) == 1
    assert control(sim, "faults").json()["faults"] == []


def test_count_and_any_gateway(sim: Simulator, recorder: Recorder) -> None:
    fault(sim, {"gateway": "*", "fault": "drop", "count": 2})
    pay(sim, "vnpay", open_session(sim, "vnpay"))
    pay(sim, "zalopay", open_session(sim, "zalopay"))
    pay(sim, "momo", open_session(sim, "momo"))
    assert sim.wait_idle(2)
    assert [c.path for c in recorder.calls] == [CALLBACK_PATHS["momo"]]


def test_a_click_that_sends_no_callback_keeps_the_fault(sim: Simulator, recorder: Recorder) -> None:
    fault(sim, {"gateway": "payos", "fault": "bad_signature"})
    ref = open_session(sim, "payos")
    control(sim, "pay", {"gateway": "payos", "reference": ref, "action": "cancel"})
    assert len(control(sim, "faults").json()["faults"]) == 1
    pay(sim, "payos", open_session(sim, "payos"))
    assert not decode(sim, "payos", recorder.wait(1, CALLBACK_PATHS["payos"])[0]).valid


def test_faults_combine(sim: Simulator, recorder: Recorder) -> None:
    fault(sim, {"gateway": "vnpay", "fault": "duplicate"})
    fault(sim, {"gateway": "vnpay", "fault": "out_of_order"})
    ref = open_session(sim, "vnpay")
    pay(sim, "vnpay", ref)
    calls = recorder.wait(4, CALLBACK_PATHS["vnpay"])
    assert [decode(sim, "vnpay", c).success for c in calls] == [False, False, True, True]


@pytest.mark.parametrize(
    "body",
    [
        {"gateway": "paypal", "fault": "drop"},
        {"gateway": "momo", "fault": "explode"},
        {"gateway": "momo", "fault": "delay"},
        {"gateway": "momo", "fault": "delay", "seconds": -1},
        {"gateway": "momo", "fault": "drop", "count": 0},
        {"gateway": "momo", "fault": "wrong_amount", "amount": 0},
        {"gateway": "momo", "fault": "drop", "reference": ""},
    ],
)
def test_bad_fault_requests(sim: Simulator, body: dict[str, object]) -> None:
    assert control(sim, "faults", body).status == 400
