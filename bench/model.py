"""The values a benchmark run produces, shared by the runner and the report."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class Config:
    seconds: float  # closed loop, per scenario, after the warm-up
    warmup: float  # closed loop: first seconds not counted
    open_seconds: float  # open loop, per scenario
    workers: int  # load processes
    open_threads: int  # open loop: senders per load process
    rows: int  # payments in the table for the main runs
    large_rows: int  # ... for the repeated runs
    reuse_orders: int
    pgbench_seconds: float
    dataset_seconds: float  # each open-loop run just before and after the table grows
    max_closed_rate: float  # sizes the inputs a closed run may consume
    lead: float  # seconds between handing out a run and its start (connections open meanwhile)
    smoke: bool
    profile: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        if args.smoke:
            return cls(
                seconds=0.15,
                warmup=0.0,
                open_seconds=0.15,
                workers=2,
                open_threads=2,
                rows=300,
                large_rows=args.large_rows or 3_000,
                reuse_orders=20,
                pgbench_seconds=1,
                dataset_seconds=0.15,
                max_closed_rate=400,
                lead=0.05,
                smoke=True,
                profile=args.profile,
            )
        return cls(
            seconds=args.seconds,
            warmup=args.warmup,
            open_seconds=args.open_seconds,
            workers=args.workers,
            open_threads=args.open_threads,
            rows=args.rows,
            large_rows=args.large_rows or 1_000_000,
            reuse_orders=args.reuse_orders,
            pgbench_seconds=args.pgbench_seconds,
            dataset_seconds=args.dataset_seconds,
            max_closed_rate=args.max_closed_rate,
            lead=0.2,
            smoke=False,
            profile=args.profile,
        )


@dataclass
class RunStats:
    mode: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    concurrency: int
    offered_rps: float = 0.0  # open loop
    late_sends: int = 0  # open loop: sends that left > 1 ms after their slot
    exhausted: bool = False  # ran out of inputs before the time was up
    first_error: str = ""
    started_at: float = 0.0  # time.time()
    ended_at: float = 0.0
    cpu: dict[str, Any] = field(default_factory=dict)  # CPU per request and per process group
    slowest: list[tuple[float, float]] = field(default_factory=list)  # (due at s, latency ms), worst 20
    outputs: list[Any] = field(default_factory=list, repr=False)
    used: list[int] = field(default_factory=list, repr=False)  # inputs consumed, per load process

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("outputs")
        data.pop("used")
        return data

    def remaining(self, items: list[Any]) -> list[Any]:
        """The inputs this run did not consume (each process took a prefix of its share)."""
        workers = len(self.used)
        return [x for w in range(workers) for x in items[w::workers][self.used[w] :]]


@dataclass
class Scenario:
    name: str
    closed: RunStats | None = None
    open: RunStats | None = None
    open_small: RunStats | None = None  # short open-loop run just before the table grows
    open_large: RunStats | None = None  # ... and just after
    note: str = ""


class Results(Protocol):
    """What the report reads of a finished run (bench.run.Bench)."""

    stamp: str
    scenarios: dict[str, Scenario]
    setup: dict[str, Any]
    limits: dict[str, Any]
    plans: dict[str, Any]
    timings: dict[str, float]
    profiles: dict[str, Any]
    gc: dict[str, list[tuple[int, float, float]]]
