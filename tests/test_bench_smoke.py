"""`make bench` in its smoke mode (a fraction of a second per run, a few
hundred payments): the whole harness runs, so it cannot rot, without
benchmarking anything. The numbers it prints mean nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "trivial",
    "new",
    "reuse",
    "get",
    "ipn_envoy",
    "ipn_direct",
    "retry",
    "retry_reuse",
    "propagation",
}
# The payment paths again on a payment service with PAYMENT_WORKERS=2.
SCENARIOS |= {"new_2w", "reuse_2w", "get_2w", "ipn_direct_2w"}


@pytest.mark.slow
def test_bench_smoke(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    [result] = tmp_path.glob("*.json")
    assert result.with_suffix(".md").exists()
    data = json.loads(result.read_text())

    assert set(data["scenarios"]) == SCENARIOS
    for key, scenario in data["scenarios"].items():
        runs = [scenario["closed"], scenario["open"]]
        if key in {"new", "reuse", "get", "ipn_direct"}:
            runs += [scenario["open_before_growing"], scenario["open_large_table"]]
        for stats in runs:
            assert stats["requests"] > 0, (key, stats)
            assert stats["errors"] == 0, (key, stats)
            assert stats["p50_ms"] <= stats["p99_ms"], (key, stats)

    # Both limits were measured: the ceiling above, pgbench on the captured SQL.
    new, reuse = data["limits"]["pgbench_new"], data["limits"]["pgbench_reuse"]
    assert new["tps"] > 0 and new["failed"] == 0 and new["rows_written"] > 0
    assert reuse["tps"] > 0 and reuse["failed"] == 0
    captured = data["limits"]["captured"]
    # Reuse: one SELECT in autocommit (no transaction, no lock, no write).
    assert [s["sql"].split()[0] for s in captured["reuse"]] == ["SELECT"]
    assert any(s["sql"].startswith("INSERT INTO payments") for s in captured["new"])

    # The event-apply run: a burst of IPNs on real orders, all applied.
    apply = data["limits"]["event_apply"]
    assert apply["events"] > 0 and apply["errors"] == 0
    assert apply["drain_seconds"] >= 0 and apply["cpu_ms_per_event"]["order"] > 0

    # Every target is evaluated (met or not is the machine's business).
    names = " ".join(t["target"] for t in data["targets"])
    fragments = (
        "reuse path",
        "new-payment path",
        "pgbench",
        "IPN through Envoy",
        "p99",
        "p50 at",
        "RSS",
        "2 workers",
        "CPU per",
        "gateway HTTP connections",
        "events applied per s",
        "drains in",
    )
    for fragment in fragments:
        assert fragment in names
    assert all(isinstance(t["met"], bool) for t in data["targets"])
    plans = [p["summary"] for label in ("small", "large") for p in data["plans"][label]["plans"]]
    assert plans and all("Index Scan" in p for p in plans)
    assert data["setup"]["rows at large runs"] >= 3_000
    assert "targets met" in run.stdout
    # 100 gateway calls against the simulator reuse their connections.
    opened = data["limits"]["gateway_connections"]["opened"]
    assert opened["1 thread"] == 1 and 1 <= opened["4 threads"] <= 4
