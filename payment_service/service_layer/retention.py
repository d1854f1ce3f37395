"""Retention: what the payment service keeps, and for how long. The only
code that deletes rows or drops raw bytes; run by `payments prune` (a cron
job or a Kubernetes CronJob) and, at a low frequency, by the service's
sweeper. Each step deletes in short batches, one transaction each, so no
lock is held for long and a stopped run resumes where it stopped.

The outbox rule: an event goes once it is older than the outbox retention
AND every known consumer of StreamPaymentEvents has confirmed it (its
recorded cursor is at or past the event). Consumers are those recorded in
outbox_consumers (a named stream's after_cursor, written at each connect)
plus the required ones (OUTBOX_CONSUMERS, default "order_service"): while a
required consumer has never connected, no outbox event is pruned. Debezium
needs no rows: it reads the WAL, and its replication slot holds the WAL
until the connector confirms it, so pruning the table never loses an event
for it (an outbox connector must not snapshot the table: snapshot.mode
no_data). With no named consumer required (OUTBOX_CONSUMERS empty, e.g.
Kafka only), age alone decides."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from paykit.cursor import parse_cursor
from payment_service.service_layer.services import Clock
from payment_service.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger("payment_service.retention")


@dataclass(frozen=True)
class Retention:
    journal: timedelta = timedelta(days=400)  # JOURNAL_RETENTION_DAYS: audits need a year and more
    journal_raw: timedelta = timedelta(days=30)  # JOURNAL_RAW_RETENTION_DAYS: replay window
    outbox: timedelta = timedelta(days=7)  # OUTBOX_RETENTION_DAYS (and consumed)
    request_keys: timedelta = timedelta(days=2)  # REQUEST_KEY_RETENTION_DAYS
    required_consumers: tuple[str, ...] = ("order_service",)  # OUTBOX_CONSUMERS
    batch: int = 1000


class RetentionUseCases:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Clock, retention: Retention) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.retention = retention

    def confirm_consumer(self, name: str, cursor: str) -> None:
        """A named consumer resumes after `cursor`: it has applied everything
        up to it (the cursor is its committed checkpoint)."""
        if not name:
            return
        txid, seq = parse_cursor(cursor)
        with self.uow_factory() as uow:
            uow.payments.confirm_consumer(name[:64], txid, seq, self.clock())
            uow.commit()

    def outbox_floor(self) -> tuple[int, int] | bool | None:
        """The slowest consumer's position; None: no consumer to wait for;
        False: a required consumer has not confirmed anything yet."""
        with self.uow_factory() as uow:
            positions = uow.payments.consumer_positions()
        if any(name not in positions for name in self.retention.required_consumers):
            return False
        return min(positions.values()) if positions else None

    def prune(self) -> dict[str, int]:
        r, now = self.retention, self.clock()
        counts: dict[str, int] = {}
        floor = self.outbox_floor()
        steps: dict[str, Callable[[UnitOfWork], int]] = {
            "payment_request_keys": lambda u: u.payments.prune_request_keys(now - r.request_keys, r.batch),
            "callback_journal": lambda u: u.payments.prune_journal(now - r.journal, r.batch),
            "callback_journal_raw": lambda u: u.payments.expire_journal_raw(now - r.journal_raw, r.batch),
        }
        if floor is not False:
            upto = floor if isinstance(floor, tuple) else None
            steps["outbox_events"] = lambda u: u.payments.prune_outbox(now - r.outbox, upto, r.batch)
        else:
            log.warning("outbox not pruned: a required consumer never confirmed a position")
        for name, step in steps.items():
            counts[name] = 0
            while True:
                with self.uow_factory() as uow:
                    done = step(uow)
                    uow.commit()
                counts[name] += done
                if done < r.batch:
                    break
        log.info("pruned", extra={"counts": counts})
        return counts
