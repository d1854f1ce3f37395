"""The results of one run: tables on stdout, bench/results/<time>.json and .md."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.model import Config, Results, RunStats, Scenario

if TYPE_CHECKING:
    from bench.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
P99_LIMIT_MS = 25.0
RSS_LIMIT_MB = 200.0


def machine(stack: Stack) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(_meminfo_kb("MemTotal") / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        import grpc

        info["grpcio"] = grpc.__version__
    except ImportError:  # pragma: no cover
        pass
    with stack.payment_sql() as conn:
        row = conn.execute("SHOW server_version").fetchone()
        info["postgresql"] = row[0] if row else "?"
        settings = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections')"
        ).fetchall()
        info["postgresql_settings"] = {name: value for name, value in settings}
    try:
        from ingress.envoy import envoy_binary

        out = subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True, timeout=10)
        info["envoy"] = out.stdout.strip().split("version:")[-1].strip().split("/")[1]
    except (OSError, IndexError, subprocess.SubprocessError):
        info["envoy"] = "?"
    info["revision"] = git_revision()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meminfo_kb(key: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _flags(stats: RunStats | None) -> str:
    if stats is None:
        return ""
    flags = []
    if stats.errors:
        flags.append(f"{stats.errors} errors")
    if stats.exhausted:
        flags.append("inputs ran out")
    if stats.mode == "open" and stats.requests and stats.late_sends > stats.requests / 100:
        flags.append(f"{100 * stats.late_sends / stats.requests:.0f} % sent > 1 ms late")
    return ", ".join(flags)


def scenario_table(bench: Results) -> str:
    header = (
        "| scenario | max req/s (closed, conc.) | p50 / p99 ms at max | half-max rate req/s"
        " | p50 ms | p95 ms | p99 ms | max ms | p50 ms, table before / after growing | notes |\n"
        + "|---" * 10
        + "|"
    )
    lines = [header]
    for s in bench.scenarios.values():
        c, o, small, large = s.closed, s.open, s.open_small, s.open_large
        notes = "; ".join(x for x in (_flags(c), _flags(o), _flags(small), _flags(large)) if x)
        lines.append(
            "| "
            + " | ".join(
                [
                    s.name,
                    f"{c.rps:.0f} ({c.concurrency})" if c else "-",
                    f"{_ms(c.p50_ms)} / {_ms(c.p99_ms)}" if c else "-",
                    f"{o.rps:.0f} of {o.offered_rps:.0f}" if o else "-",
                    _ms(o.p50_ms) if o else "-",
                    _ms(o.p95_ms) if o else "-",
                    _ms(o.p99_ms) if o else "-",
                    _ms(o.max_ms) if o else "-",
                    f"{_ms(small.p50_ms)} / {_ms(large.p50_ms)}" if small and large else "",
                    notes,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


CPU_GROUPS = ("load generator", "trivial", "payment", "order", "envoy", "postgres", "other processes")


def cpu_table(bench: Results) -> str:
    """Where the CPU goes at maximum throughput: CPU ms per request of each
    process group, the busiest service process's share of one core (a
    GIL-bound Python server stops near 100 %), and how busy the machine was."""
    header = (
        "| closed-loop run | "
        + " | ".join(CPU_GROUPS)
        + " | total CPU ms/req | payment, order process (% of a core) | machine busy |\n"
        + "|---" * (len(CPU_GROUPS) + 4)
        + "|"
    )
    lines = [header]
    for s in bench.scenarios.values():
        cpu = s.closed.cpu if s.closed else {}
        if not cpu:
            continue
        per = cpu["ms_per_request"]
        share = cpu["percent_of_one_core"]
        cells = [f"{per[g]:.2f}" if g in per else "" for g in CPU_GROUPS]
        busy = f"{share.get('payment', 0):.0f} %, {share.get('order', 0):.0f} %"
        lines.append(
            f"| {s.name} | "
            + " | ".join(cells)
            + f" | {sum(per.values()):.2f} | {busy} | {cpu['machine_busy_percent']:.0f} % |"
        )
    return "\n".join(lines)


def other_share(stats: RunStats | None) -> float:
    """The share (%) of the machine that processes outside the benchmark used during a run."""
    if stats is None or not stats.cpu:
        return 0.0
    return float(stats.cpu["percent_of_one_core"].get("other processes", 0.0)) / (os.cpu_count() or 1)


def _noise(*runs: RunStats | None) -> str:
    worst = max(runs, key=other_share)
    share = other_share(worst)
    if share <= 10 or worst is None:
        return ""
    top = worst.cpu.get("busiest_other_processes") or [("?", 0)]
    return f"; other processes took {share:.0f} % of the CPU (e.g. `{top[0][0][:60]}`): unreliable"


def gc_table(bench: Results) -> str:
    """Garbage collections of each service during each open-loop run: a
    collection stops every thread of the process, so a long one is a tail
    latency by itself."""
    if not bench.gc:
        return "(no garbage-collection log)"
    names = sorted(bench.gc)
    header = "| open-loop run | " + " | ".join(f"{n}: collections (gen 2), longest ms" for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for s in bench.scenarios.values():
        for label, run in (
            ("", s.open),
            (", table before growing", s.open_small),
            (", large table", s.open_large),
        ):
            if run is None or not run.started_at:
                continue
            cells = []
            for name in names:
                during = [c for c in bench.gc[name] if run.started_at <= c[2] <= run.ended_at]
                longest = max((c[1] for c in during), default=0.0) * 1000
                gen2 = sum(1 for c in during if c[0] == 2)
                cells.append(f"{len(during)} ({gen2}), {longest:.1f}")
            lines.append(f"| {s.name}{label} | " + " | ".join(cells) + " |")
    whole = []
    for name in names:
        pauses = bench.gc[name]
        oldest = [c[1] for c in pauses if c[0] == 2]
        whole.append(
            f"{name}: {len(pauses)} collections in the whole run, {len(oldest)} of generation 2"
            f" (longest {max(oldest, default=0) * 1000:.0f} ms), longest of all"
            f" {max((c[1] for c in pauses), default=0) * 1000:.0f} ms"
        )
    return "\n".join(lines) + "\n\n" + "; ".join(whole) + "."


def interference(bench: Results) -> float:
    """The share of the machine's CPU that processes outside the benchmark
    used during the closed-loop runs (another test suite, say): the numbers
    of a run with much of it are not worth comparing."""
    runs = [r for s in bench.scenarios.values() for r in (s.closed, s.open, s.open_small, s.open_large) if r]
    shares = [other_share(r) for r in runs if r.cpu]
    return round(sum(shares) / len(shares), 1) if shares else 0.0


def evaluate(bench: Results, memory: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Every target of issues 6 and 13 this run measures, as (name,
    measured, threshold, met)."""
    sc = bench.scenarios
    targets: list[dict[str, Any]] = []

    def rps(key: str) -> float:
        stats = sc[key].closed if key in sc else None
        return stats.rps if stats else float("nan")

    def closed(key: str) -> RunStats | None:
        return sc[key].closed if key in sc else None

    def ratio_target(name: str, num: float, den: float, minimum: float, detail: str) -> None:
        value = num / den if den else float("nan")
        targets.append(
            {
                "target": name,
                "measured": round(value, 2),
                "detail": detail,
                "threshold": f"≥ {minimum:g}",
                "met": bool(value >= minimum),
            }
        )

    ceiling = rps("trivial")
    # Issue 13's ratios, for one payment-service process and for two (the
    # *_2w scenarios, PAYMENT_WORKERS=2).
    for suffix, label in (("", ""), ("_2w", ", 2 workers")):
        for key, name, minimum in (
            ("reuse", "reuse path", 0.5),
            ("new", "new-payment path", 0.3),
            ("get", "GetPaymentByOrder path", 0.5),
            ("ipn_direct", "VNPay IPN direct path", 0.3),
        ):
            if key + suffix not in sc:
                continue
            ratio_target(
                f"{name}{label} ≥ {minimum:g} x trivial-servicer ceiling",
                rps(key + suffix),
                ceiling,
                minimum,
                f"{rps(key + suffix):.0f} / {ceiling:.0f} req/s"
                + _noise(closed(key + suffix), closed("trivial")),
            )
    pg_new = bench.limits.get("pgbench_new", {}).get("tps", float("nan"))
    ratio_target(
        "pgbench replay of the new path's SQL ≥ 3 x the service's new-path rate",
        pg_new,
        rps("new"),
        3.0,
        f"{pg_new:.0f} tps / {rps('new'):.0f} req/s",
    )
    ratio_target(
        "IPN through Envoy ≥ 0.9 x direct gRPC",
        rps("ipn_envoy"),
        rps("ipn_direct"),
        0.9,
        f"{rps('ipn_envoy'):.0f} / {rps('ipn_direct'):.0f} req/s"
        + _noise(closed("ipn_envoy"), closed("ipn_direct")),
    )
    if "retry" in sc:
        ratio_target(
            "RetryPayment through Envoy ≥ 0.2 x trivial-servicer ceiling",
            rps("retry"),
            ceiling,
            0.2,
            f"{rps('retry'):.0f} / {ceiling:.0f} req/s" + _noise(closed("retry"), closed("trivial")),
        )
    for key, name, limit in (("new", "new payment", 1.0), ("reuse", "reuse", 0.4)):
        stats = closed(key)
        per = stats.cpu.get("ms_per_request", {}) if stats and stats.cpu else {}
        if "payment" in per:
            targets.append(
                {
                    "target": f"payment service CPU per {name} ≤ {limit:g} ms",
                    "measured": round(per["payment"], 2),
                    "detail": f"closed loop, {stats.rps:.0f} req/s" if stats else "",
                    "threshold": f"≤ {limit:g} ms",
                    "met": bool(per["payment"] <= limit),
                }
            )
    connections = bench.limits.get("gateway_connections")
    if connections:
        opened = max(connections["opened"].values())
        targets.append(
            {
                "target": f"gateway HTTP connections opened per {connections['calls']} calls ≤ 4",
                "measured": opened,
                "detail": ", ".join(f"{k}: {v}" for k, v in connections["opened"].items())
                + " (VNPay querydr against the simulator)",
                "threshold": "≤ 4",
                "met": bool(opened <= 4),
            }
        )
    for key, s in sc.items():
        if key == "trivial" or s.open is None:
            continue
        targets.append(
            {
                "target": f"p99 ≤ 25 ms at half max: {s.name}",
                "measured": s.open.p99_ms,
                "detail": f"at {s.open.offered_rps:.0f} req/s offered" + _noise(s.open),
                "threshold": f"≤ {P99_LIMIT_MS:g} ms",
                "met": bool(s.open.p99_ms <= P99_LIMIT_MS and not s.open.errors),
            }
        )
    small_rows = bench.setup.get("rows at small runs", 0)
    large_rows = bench.setup.get("rows at large runs", 0)
    for s in sc.values():
        if s.open_small is None or s.open_large is None:
            continue
        small, large = s.open_small, s.open_large
        value = large.p50_ms / small.p50_ms if small.p50_ms else float("nan")
        targets.append(
            {
                "target": f"p50 at {large_rows:,} payments ≤ 1.3 x p50 at {small_rows:,}: {s.name}",
                "measured": round(value, 2),
                "detail": f"{small.p50_ms:.2f} → {large.p50_ms:.2f} ms at {small.offered_rps:.0f} req/s"
                + _noise(small, large),
                "threshold": "≤ 1.3",
                "met": bool(value <= 1.3),
            }
        )
    targets += event_targets(bench)
    for name, values in memory.items():
        if name == "envoy":
            continue
        mb = values.get("VmHWM", 0) / 1024
        targets.append(
            {
                "target": f"peak RSS ≤ 200 MB: {name}",
                "measured": round(mb, 1),
                "detail": f"VmHWM {mb:.0f} MB, VmRSS now {values.get('VmRSS', 0) / 1024:.0f} MB",
                "threshold": f"≤ {RSS_LIMIT_MB:g} MB",
                "met": bool(mb <= RSS_LIMIT_MB),
            }
        )
    return targets


def event_targets(bench: Results) -> list[dict[str, Any]]:
    """The event-apply targets: the order service applies events as fast
    as IPNs at their maximum produce them, and a 10 s burst drains in 1 s."""
    apply = bench.limits.get("event_apply")
    if not apply:
        return []
    ipn_rate = apply["burst_ipn_rps"] or float("nan")
    # Kept up (no backlog to speak of): it applied what came; with a
    # backlog, its pace is the drain's.
    kept_up = apply["backlog_at_burst_end"] <= max(0.01 * apply["events"], 5)
    pace = apply["burst_ipn_rps"] if kept_up else (apply["drain_per_second"] or apply["applied_per_second"])
    ratio = pace / ipn_rate if ipn_rate else float("nan")
    order_cpu = apply["cpu_ms_per_event"].get("order", float("nan"))
    return [
        {
            "target": "events applied per s ≥ 1.0 x IPN max per s",
            "measured": round(ratio, 2),
            "detail": f"{pace:.0f} events/s ({'kept up' if kept_up else 'drain pace'}) / IPN burst"
            f" {ipn_rate:.0f} req/s (IPN max {apply['ipn_max_rps']:.0f}); backlog at the burst's end"
            f" {apply['backlog_at_burst_end']} of {apply['events']}",
            "threshold": "≥ 1",
            "met": bool(ratio >= 1.0 or kept_up),
        },
        {
            "target": f"a {apply['burst_seconds']:g} s IPN burst drains in ≤ 1 s",
            "measured": apply["drain_seconds"],
            "detail": f"{apply['events']} events, {apply['applied_per_second']:.0f} applied/s overall",
            "threshold": "≤ 1 s",
            "met": bool(apply["drain_seconds"] <= 1.0),
        },
        {
            "target": "order service CPU per applied event ≤ 0.5 ms",
            "measured": order_cpu,
            "detail": "during the burst and its drain (the order service does nothing else then)",
            "threshold": "≤ 0.5 ms",
            "met": bool(order_cpu <= 0.5),
        },
    ]


def targets_table(targets: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | threshold | met? | detail |", "|---|---|---|---|---|"]
    for t in targets:
        met = "met" if t["met"] else "**NOT MET**"
        lines.append(f"| {t['target']} | {t['measured']} | {t['threshold']} | {met} | {t['detail']} |")
    return "\n".join(lines)


def limits_table(bench: Results) -> str:
    lines = ["| limit | value | how |", "|---|---|---|"]
    trivial = bench.scenarios.get("trivial")
    if trivial and trivial.closed:
        settings = bench.limits.get("trivial_server_settings", {})
        sizes = bench.limits.get("message_bytes", {})
        lines.append(
            f"| Python gRPC ceiling | {trivial.closed.rps:.0f} req/s | trivial generic handler,"
            f" {settings.get('workers')} workers, options {settings.get('options')},"
            f" request {sizes.get('request')} B / response {sizes.get('response')} B, same generator |"
        )
    for path in ("new", "reuse"):
        result = bench.limits.get(f"pgbench_{path}")
        if result:
            statements = result["round_trips"]
            lines.append(
                f"| PostgreSQL floor, {path} path | {result['tps']:.0f} tps"
                f" (latency {result['latency_ms']} ms)"
                f" | pgbench, captured SQL ({statements} round trips), {result['clients']} clients,"
                f" prepared, {result['rows_in_table']:,} payments, {result['failed']} failed |"
            )
    connections = bench.limits.get("gateway_connections")
    if connections:
        opened = ", ".join(f"{v} from {k}" for k, v in connections["opened"].items())
        lines.append(
            f"| gateway HTTP connections per {connections['calls']} calls | {opened} |"
            " VNPay querydr against the gateway simulator, the service's pooled client |"
        )
    return "\n".join(lines)


def plans_text(bench: Results) -> str:
    lines = []
    for label, data in bench.plans.items():
        lines.append(f"EXPLAIN (GENERIC_PLAN) at {data['rows']:,} payments ({label} table):")
        for plan in data["plans"]:
            lines.append(f"  [{plan['path']}] {_sql_head(plan['sql'])}\n      → {plan['summary']}")
    return "\n".join(lines)


def _sql_head(sql: str) -> str:
    flat = " ".join(sql.split())
    if flat.startswith("SELECT payments.id"):
        flat = "SELECT payments.* " + flat[flat.index("FROM payments") :]
    return flat if len(flat) <= 140 else flat[:137] + "..."


def _stats(stats: RunStats | None) -> dict[str, Any] | None:
    return stats.public() if stats else None


def _scenario(s: Scenario) -> dict[str, Any]:
    return {
        "name": s.name,
        "note": s.note,
        "closed": _stats(s.closed),
        "open": _stats(s.open),
        "open_before_growing": _stats(s.open_small),
        "open_large_table": _stats(s.open_large),
    }


def write(
    bench: Results, cfg: Config, results: Path, memory: dict[str, Any], total: float, stack: Stack
) -> Path:

    info = machine(stack)
    targets = evaluate(bench, memory)
    met = sum(t["met"] for t in targets)
    scen, limits, tgt, plans = (
        scenario_table(bench),
        limits_table(bench),
        targets_table(targets),
        plans_text(bench),
    )
    cpu = cpu_table(bench)
    gc_text = gc_table(bench)
    machine_line = (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB, Linux {info['kernel']},"
        f" Python {info['python']}, grpcio {info.get('grpcio')}, PostgreSQL {info['postgresql']},"
        f" Envoy {info['envoy']}; revision {info['revision']}"
    )
    settings = (
        f"load: {cfg.workers} processes; closed loop {cfg.seconds:g} s (+{cfg.warmup:g} s warm-up)"
        f" one request in flight per process; open loop {cfg.open_seconds:g} s at half the closed-loop rate,"
        f" up to {cfg.workers * cfg.open_threads} in flight, latency from the intended send time;"
        f" payments in the table: {bench.setup.get('rows at start', 0):,} at start,"
        f" {bench.setup.get('rows at small runs', 0):,} before growing it,"
        f" {bench.setup.get('rows at large runs', 0):,} after"
    )
    print(
        f"\n{machine_line}\n{settings}\n\n{scen}\n\n{limits}\n\n{tgt}\n\n{met}/{len(targets)} targets met\n"
    )
    print(f"CPU ms per request at maximum throughput:\n\n{cpu}\n")
    other = interference(bench)
    warning = (
        f"WARNING: processes outside the benchmark used {other:g} % of the machine's CPU during the runs;"
        " these numbers are not comparable with a run on a quiet machine."
        if other > 10
        else f"Processes outside the benchmark used {other:g} % of the machine's CPU during the runs."
    )
    print(warning + "\n")
    print(f"Garbage collections in the services during the open-loop runs:\n\n{gc_text}\n")
    print(plans + "\n")
    memory_lines = ", ".join(f"{name} {v.get('VmHWM', 0) / 1024:.0f} MB peak" for name, v in memory.items())
    print(f"memory: {memory_lines}\nphases (s): {bench.timings}")

    results.mkdir(parents=True, exist_ok=True)
    stamp = bench.stamp
    base = results / stamp
    data = {
        "stamp": stamp,
        "machine": info,
        "config": asdict(cfg),
        "total_seconds": round(total, 1),
        "scenarios": {key: _scenario(s) for key, s in bench.scenarios.items()},
        "limits": bench.limits,
        "targets": targets,
        "memory_kb": memory,
        "plans": bench.plans,
        "setup": bench.setup,
        "phases_seconds": bench.timings,
        "other_processes_cpu_percent": interference(bench),
        "profiles": bench.profiles,
        "gc": {
            name: {
                "collections": len(c),
                "by_generation": {g: sum(1 for x in c if x[0] == g) for g in (0, 1, 2)},
                "longest_ms": round(max((x[1] for x in c), default=0) * 1000, 1),
                "over_5_ms": [(round(x[2], 3), x[0], round(x[1] * 1000, 1)) for x in c if x[1] > 0.005],
            }
            for name, c in bench.gc.items()
        },
    }
    base.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str))
    md = [
        f"# Benchmark {stamp}",
        "",
        f"Machine: {machine_line}",
        "",
        f"Run: `.venv/bin/python -m bench` ({'smoke' if cfg.smoke else 'full'}), {total:.0f} s. {settings}.",
        "",
        "## Scenarios",
        "",
        scen,
        "",
        *[f"- {s.name}: {s.note}" for s in bench.scenarios.values() if s.note],
        "",
        warning,
        "",
        "## Where the CPU goes at maximum throughput",
        "",
        "CPU milliseconds per request of each group of processes during the closed-loop run (warm-up"
        " included), from /proc; the load generator shares the 2 cores with everything else.",
        "",
        cpu,
        "",
        "## Garbage collection in the services",
        "",
        gc_text,
        "",
        "## Limits measured in the same run",
        "",
        limits,
        "",
        f"## Targets ({met}/{len(targets)} met)",
        "",
        tgt,
        "",
        "## Hot queries",
        "",
        "```",
        plans,
        "```",
        "",
        *_plans_md(bench),
        "## Captured SQL and pgbench scripts",
        "",
        *_scripts_md(bench),
        f"Memory: {memory_lines}.",
        "",
        *_profiles_md(bench),
    ]
    base.with_suffix(".md").write_text("\n".join(md) + "\n")
    return base


def _plans_md(bench: Results) -> list[str]:
    out = []
    for label, data in bench.plans.items():
        out += [f"<details><summary>Full plans, {label} table ({data['rows']:,} payments)</summary>", ""]
        for plan in data["plans"]:
            out += ["```", _sql_head(plan["sql"]), *plan["plan"], "```"]
        out += ["</details>", ""]
    return out


def _scripts_md(bench: Results) -> list[str]:
    out = []
    for path in ("new", "reuse"):
        result = bench.limits.get(f"pgbench_{path}")
        if result:
            out += [f"pgbench script, {path} path:", "", "```sql", result["script"].rstrip(), "```", ""]
    return out


def _profiles_md(bench: Results) -> list[str]:
    out = []
    for key, profile in bench.profiles.items():
        out += [f"## Profile: {key}", ""]
        if "error" in profile:
            out += [profile["error"], ""]
            continue
        out += [
            f"{profile['samples']} samples with the GIL held, at {profile.get('rps_while_sampled')} req/s"
            f" ({profile.get('file', '')}).",
            "",
            "| % of GIL samples | part |",
            "|---|---|",
        ]
        out += [f"| {pct} | {name} |" for name, pct in profile.get("components_percent", [])]
        out += ["", "| own % | function |", "|---|---|"]
        out += [f"| {pct} | `{name}` |" for name, pct in profile["own_percent"]]
        out += ["", "| inclusive % | function |", "|---|---|"]
        out += [f"| {pct} | `{name}` |" for name, pct in profile["inclusive_percent"]]
        out.append("")
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        return rev + (" (uncommitted changes)" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
