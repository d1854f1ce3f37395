"""Fixtures: a recording ingress and a simulator on an ephemeral port whose
callbacks go to it, with time compressed 1000 times."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway_simulator import Simulator
from tests.sim.support import Recorder, make_sim


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


@pytest.fixture
def sim(recorder: Recorder) -> Iterator[Simulator]:
    s = make_sim(recorder)
    yield s
    started = time.monotonic()
    s.stop()
    assert time.monotonic() - started < 3, "stop() must join its threads quickly"
