"""The order service process: OrderService on paykit's gRPC server (health,
reflection, graceful stop), the payment event follower and the expiry
sweeper, with graceful shutdown."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from order.v1 import order_service_pb2, order_service_pb2_grpc

from order_service.bootstrap import OrderApp
from order_service.entrypoints.follower import PaymentEventFollower
from order_service.entrypoints.servicer import OrderServicer
from paykit import tls
from paykit.clock import OffsetClock, advance_development_clock
from paykit.grpc_server import GrpcServer, ServedBy, start_grpc_server
from paykit.metrics import DbPoolCollector
from paykit.observability import Observability
from paykit.settings import DEFAULT_PORTS, GrpcBind

log = logging.getLogger("order_service.server")
SERVICE_NAME = order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


@dataclass
class RunningOrderServer(ServedBy):
    serving: GrpcServer
    app: OrderApp
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    follower: PaymentEventFollower | None = None

    def stop(self, grace: float | None = None) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.serving.stop(self.app.settings.shutdown_grace_seconds if grace is None else grace)
        self.app.channel.close()  # ends the event stream
        for thread in self.threads:
            thread.join(timeout=5)
        self.app.close()
        log.info("stopped", extra={"port": self.port})


def observability_from_env(env: Mapping[str, str] | None = None) -> Observability:
    """ORDER_METRICS_PORT (default 9465; 0: a free port; empty or "off": none)."""
    env = os.environ if env is None else env
    return Observability.from_env(env, "ORDER_METRICS_PORT", DEFAULT_PORTS["order_metrics"])


def start(
    app: OrderApp,
    port: int | None = None,
    *,
    follow: bool = True,
    sweep: bool = True,
    observability: Observability | None = None,
    reuse_port: bool = False,
) -> RunningOrderServer:
    """`observability`: RPC metrics, tracing and the /metrics endpoint (with
    the pool collector); None for none of them. `reuse_port`: one of several
    worker processes on the same port (payments.workers)."""
    settings = app.settings
    if observability is not None:
        observability.collectors.append(DbPoolCollector({"order": app.engine}))
    tls.warn_if_exposed(
        "order_service",
        GrpcBind(settings.host, settings.order_grpc_port, settings.grpc_tls, settings.grpc_insecure),
    )
    servicer = OrderServicer(app.use_cases, lambda by: advance_clock(app, by))
    serving = start_grpc_server(
        lambda server: order_service_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        host=settings.host,
        port=settings.order_grpc_port if port is None else port,
        max_workers=settings.grpc_workers,
        observability=observability,
        tls=settings.grpc_tls,
        reuse_port=reuse_port,
    )
    running = RunningOrderServer(serving=serving, app=app)
    if follow:
        running.threads.append(threading.Thread(target=follow_payment_events, args=(running,), name="events"))
    if sweep:
        running.threads.append(threading.Thread(target=_sweep, args=(running,), name="sweeper"))
    for thread in running.threads:
        thread.daemon = True
        thread.start()
    return running


def follow_payment_events(running: RunningOrderServer) -> None:
    """Follows the payment event stream until the server stops (see
    entrypoints.follower)."""
    follower = PaymentEventFollower(
        running.app.use_cases, running.stopping, running.app.settings.lag_log_seconds
    )
    running.follower = follower
    follower.run()


def advance_clock(app: OrderApp, by: timedelta) -> OffsetClock:
    """AdvanceClock (development only): moves the clock, then expires the
    orders due (each asks the payment service about its money first)."""
    clock = advance_development_clock(app.clock, by, development=app.settings.development)
    app.use_cases.expire_due_orders()
    return clock


def _sweep(running: RunningOrderServer) -> None:
    prune_every = running.app.settings.prune_interval_seconds
    next_prune = time.monotonic() + min(prune_every, 300.0)
    while not running.stopping.wait(running.app.settings.sweep_interval_seconds):
        if prune_every > 0 and time.monotonic() >= next_prune:
            next_prune = time.monotonic() + prune_every
            try:
                running.app.use_cases.prune(running.app.settings.retention())
            except Exception:
                log.warning("order retention prune failed; will retry", exc_info=True)
        try:
            # One call settles every due order (paging inside); orders
            # whose money is still uncertain wait for the next sweep.
            running.app.use_cases.expire_due_orders()
        except Exception:
            log.warning("order expiry sweep failed; will retry", exc_info=True)
