"""py-spy on a running service (`python -m bench --profile`): samples while a
closed-loop run loads it, then the functions that hold the CPU, by own time
and including what they call. py-spy is not a dependency:
`.venv/bin/pip install py-spy`."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


# Parts of a request worth a line of their own: name -> frame substrings.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "SQLAlchemy (ORM, Core, pool)": ("sqlalchemy/",),
    "psycopg (driver)": ("psycopg/",),
    "pool checkout and pre-ping": ("pool/base.py",),
    "protobuf JSON (outbox payloads)": ("json_format",),
    "serving the event stream (StreamPaymentEvents)": ("StreamPaymentEvents",),
    "applying payment events (order follower)": ("apply_payment_event",),
    "access log line": ("payments/logs.py", "logging/__init__.py"),
    "VNPay URL signing": ("checkout_url",),
    "payment_to_proto / order_to_proto": ("payment_to_proto", "order_to_proto"),
    "order service's gRPC client": ("payment_client.py",),
}


@contextmanager
def record(pids: dict[str, int], out: Path, rate: int = 200) -> Iterator[dict[str, dict[str, Any]]]:
    """Samples each process in `pids` (name -> pid) for as long as the block
    runs; the yielded dict gets one summary per name afterwards. Writes
    out-NAME.txt (collapsed stacks)."""
    results: dict[str, dict[str, Any]] = {name: {} for name in pids}
    binary = py_spy()
    if binary is None:
        for result in results.values():
            result["error"] = "py-spy not found: .venv/bin/pip install py-spy"
        yield results
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    running = {}
    for name, pid in pids.items():
        raw = out.parent / f"{out.name}-{name}.txt"
        # --gil: only the thread holding the GIL is sampled, i.e. the Python
        # CPU time a GIL-bound server is made of (waits on sockets and queues
        # are left out).
        command = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--gil", "--format", "raw"]
        command += ["--output", str(raw)]
        running[name] = (raw, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    time.sleep(0.5)  # attached before the load starts
    try:
        yield results
    finally:
        for _, process in running.values():
            process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    for name, (raw, process) in running.items():
        _, err = process.communicate(timeout=60)
        if not raw.exists():
            results[name]["error"] = f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"
            continue
        results[name].update(summarize(raw.read_text()))
        results[name]["file"] = str(raw)


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


def summarize(collapsed: str, top: int = 25) -> dict[str, Any]:
    """Own and inclusive share of samples per function, from py-spy's raw
    (collapsed stacks) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    handler = 0  # samples inside a servicer method (or the event follower)
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
        for part, needles in COMPONENTS.items():
            if any(needle in stack for needle in needles):
                parts[part] += count
        if any(x in stack for x in ("grpc_errors", "Servicer.", "follow_payment_events")):
            handler += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)] if total else []

    components = share(parts)
    if total:
        components.append(
            ("gRPC server and its thread pool, outside any handler", round(100 - 100 * handler / total, 1))
        )
    return {
        "samples": total,
        "components_percent": sorted(components, key=lambda x: -x[1]),
        "own_percent": share(own),
        "inclusive_percent": share(inclusive),
    }
