"""`python -m bench.gcshim OUT MODULE ARGS...`: runs MODULE as `python -m
MODULE ARGS...` would, and writes every garbage collection of the process
(generation, pause, wall-clock time) to OUT as JSON when it exits. The
service is unchanged; a collection stops every thread of a Python process,
so these pauses land directly in the latency percentiles."""

from __future__ import annotations

import atexit
import gc
import json
import runpy
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    out, module, *args = sys.argv[1:]
    collections: list[tuple[int, float, float]] = []  # (generation, pause s, time.time() at its end)
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections.append((info["generation"], time.perf_counter() - started[0], time.time()))

    def dump() -> None:
        tracked = len(gc.get_objects())
        Path(out).write_text(json.dumps({"collections": collections, "tracked_objects_at_exit": tracked}))

    gc.callbacks.append(callback)
    atexit.register(dump)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
