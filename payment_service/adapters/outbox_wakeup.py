"""Wakes event streams when an outbox event commits: one LISTEN connection
per process (the outbox_events trigger sends NOTIFY payment_outbox, which
PostgreSQL delivers only when the writing transaction commits), fanned out
to every waiting stream through a Doorbell. The connection is re-opened
after a database restart; while it is down, streams fall back to polling."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

log = logging.getLogger("payment_service.outbox_wakeup")
CHANNEL = "payment_outbox"


class Doorbell:
    """A generation counter streams wait on: read generation() before
    looking for events, then wait(seen, ...) returns at once if anything
    rang in between, so no wake-up is lost."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self.listening = False  # True while a LISTEN connection is up

    def generation(self) -> int:
        return self._generation

    def ring(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """True when it rang after `seen`; False after `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self._generation != seen, timeout)


class OutboxListener:
    """The process's one LISTEN connection, in a daemon thread."""

    def __init__(
        self,
        engine: Engine,
        doorbell: Doorbell,
        stopping: threading.Event,
        *,
        retry_seconds: float = 1.0,
        check_seconds: float = 15.0,
    ) -> None:
        self.doorbell = doorbell
        self.stopping = stopping
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        args, params = engine.dialect.create_connect_args(engine.url)
        self._connect_args: tuple[Any, ...] = tuple(args)
        self._connect_params: dict[str, Any] = {
            **params,
            "autocommit": True,
            "connect_timeout": 5,
            "application_name": "payment_service.outbox_listener",
            # A peer gone without a FIN is noticed (TCP only; ignored on a socket file).
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        self.connects = 0
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxListener:
        self._thread = threading.Thread(target=self._run, name="outbox-listener", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        warned = False  # one warning per outage, not one per retry
        while not self.stopping.is_set():
            connects = self.connects
            try:
                self._listen()
            except Exception as error:  # noqa: BLE001 - a database restart: re-open
                warned = warned and self.connects == connects
                if not self.stopping.is_set() and not warned:
                    warned = True
                    log.warning(
                        "outbox listener lost its connection; streams poll until it is back",
                        extra={"error": str(error)},
                    )
            finally:
                self.doorbell.listening = False
                # Whatever committed while nobody listened: streams look again.
                self.doorbell.ring()
            self.stopping.wait(self.retry_seconds)

    def _listen(self) -> None:
        with psycopg.connect(*self._connect_args, **self._connect_params) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.connects += 1
            self.doorbell.listening = True
            self.doorbell.ring()  # anything committed before LISTEN took effect
            checked = time.monotonic()
            while not self.stopping.is_set():
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    self.doorbell.ring()
                    checked = time.monotonic()
                if time.monotonic() - checked >= self.check_seconds:
                    conn.execute("SELECT 1")  # a dead server fails here, not never
                    self.doorbell.ring()  # in case a notification came in during it
                    checked = time.monotonic()
