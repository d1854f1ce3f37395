"""The README's first command, as a newcomer runs it: `make dev` in a fresh
copy of the repository, no project variables set (so DATA_DIR is the
relative default `.data`), only the ports moved to free ones. It must serve,
stop entirely on Ctrl-C (the embedded PostgreSQL included), survive an
earlier run killed with SIGKILL, and fail fast and whole when a port is taken."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import devstack
from tests.devstack import Run, alive, postmaster_pid, wait_gone

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_copy() -> Iterator[Path]:
    with devstack.fresh_copy() as copy:
        yield copy


@pytest.fixture
def ports() -> dict[str, int]:
    return devstack.free_ports()


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    devstack.stop_all(started)


def test_make_dev_serves_and_ctrl_c_stops_everything(
    fresh_copy: Path, ports: dict[str, int], runs: list[Run]
) -> None:
    run = Run(fresh_copy, devstack.user_env(ports))
    runs.append(run)
    run.wait_serving(ports["INGRESS_PORT"])
    pids = run.stack_pids()
    assert postmaster_pid(fresh_copy) in pids  # relative DATA_DIR: .data in the copy
    assert len(pids) >= 6, pids  # make, supervisor, simulator, payment, order, envoy, postgres
    os.killpg(run.proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    took = wait_gone(pids, timeout=10)
    print(f"FRONT DOOR: Ctrl-C stopped {len(pids)} processes in {took:.1f} s")


def test_a_run_killed_with_sigkill_leaves_nothing_the_next_run_cannot_stop(
    fresh_copy: Path, ports: dict[str, int], runs: list[Run]
) -> None:
    env = devstack.user_env(ports)
    first = Run(fresh_copy, env)
    runs.append(first)
    first.wait_serving(ports["INGRESS_PORT"])
    supervisor = first.supervisor()
    children = first.stack_pids() - {first.proc.pid, supervisor, postmaster_pid(fresh_copy)}
    os.kill(supervisor, signal.SIGKILL)  # the supervisor alone, not its children
    # The services and Envoy die with the supervisor; PostgreSQL stays, attached to a dead pid.
    wait_gone(children, timeout=10)
    assert alive({postmaster_pid(fresh_copy) or 0})
    first.proc.wait(10)

    second = Run(fresh_copy, env)
    runs.append(second)
    second.wait_serving(ports["INGRESS_PORT"])
    pids = second.stack_pids()
    os.kill(second.supervisor(), signal.SIGTERM)  # as a process manager stops it
    took = wait_gone(pids, timeout=10)
    print(f"FRONT DOOR: after a SIGKILLed run, SIGTERM stopped {len(pids)} processes in {took:.1f} s")


def test_a_failure_during_start_up_stops_everything_and_says_why(
    fresh_copy: Path, ports: dict[str, int], runs: list[Run]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["INGRESS_PORT"]))
        taken.listen()
        run = Run(fresh_copy, devstack.user_env(ports))
        runs.append(run)
        started = time.monotonic()
        code = run.proc.wait(60)
        took = time.monotonic() - started
    last = run.output().strip().splitlines()[-4:]  # the cause, then make's own error line(s)
    assert code != 0
    assert any(line.startswith("payments dev: ") and str(ports["INGRESS_PORT"]) in line for line in last), (
        last
    )
    assert postmaster_pid(fresh_copy) is None or not alive({postmaster_pid(fresh_copy) or 0})
    assert not alive(run.stack_pids() - {run.proc.pid})
    print(f"FRONT DOOR: port taken -> exit {code} in {took:.1f} s: {last[0]}")
