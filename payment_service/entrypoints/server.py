"""The payment service process: PaymentService on paykit's gRPC server
(health, reflection, graceful stop), an expiry sweeper, and a shutdown that
goes NOT_SERVING, stops with grace, then closes the pool."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from payment.v1 import payment_service_pb2, payment_service_pb2_grpc

from paykit import tls
from paykit.clock import OffsetClock, advance_development_clock
from paykit.grpc_server import GrpcServer, ServedBy, start_grpc_server
from paykit.metrics import DbPoolCollector
from paykit.observability import Observability
from paykit.settings import DEFAULT_PORTS, GrpcBind
from payment_service.adapters.metrics import OutboxCollector
from payment_service.adapters.outbox_wakeup import Doorbell, OutboxListener
from payment_service.bootstrap import App
from payment_service.entrypoints.pages import return_renderer
from payment_service.entrypoints.servicer import PaymentServicer

log = logging.getLogger("payment_service.server")
SERVICE_NAME = payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


@dataclass
class RunningServer(ServedBy):
    serving: GrpcServer
    app: App
    servicer: PaymentServicer
    stopping: threading.Event = field(default_factory=threading.Event)
    sweeper: threading.Thread | None = None
    listener: OutboxListener | None = None

    def stop(self, grace: float | None = None) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.servicer.doorbell is not None:
            self.servicer.doorbell.ring()  # streams waiting for events end now
        self.serving.stop(self.app.settings.shutdown_grace_seconds if grace is None else grace)
        if self.sweeper is not None:
            self.sweeper.join(timeout=5)
        if self.listener is not None:
            self.listener.join(timeout=5)
        self.app.close()
        log.info("stopped", extra={"port": self.port})


def observability_from_env(env: Mapping[str, str] | None = None) -> Observability:
    """PAYMENT_METRICS_PORT (default 9464; 0: a free port; empty or "off": none)."""
    env = os.environ if env is None else env
    return Observability.from_env(env, "PAYMENT_METRICS_PORT", DEFAULT_PORTS["payment_metrics"])


def start(
    app: App,
    port: int | None = None,
    *,
    sweep: bool = True,
    observability: Observability | None = None,
    reuse_port: bool = False,
) -> RunningServer:
    """`observability`: RPC metrics, tracing and the /metrics endpoint (with
    the pool and outbox collectors); None for none of them. `reuse_port`:
    one of several worker processes on the same port (payments.workers)."""
    settings = app.settings
    tls.warn_if_exposed(
        "payment_service",
        GrpcBind(settings.host, settings.payment_grpc_port, settings.grpc_tls, settings.grpc_insecure),
    )
    stopping = threading.Event()
    doorbell = Doorbell()
    # One LISTEN connection wakes every stream of this process on commit
    # (none without a database: bench.trivial builds a server for its settings).
    listener = OutboxListener(app.engine, doorbell, stopping).start() if app.engine is not None else None
    servicer = PaymentServicer(
        app.use_cases,
        app.callbacks,
        stopping,
        render_return=return_renderer(settings.payment_result_url, settings.shop_url),
        retention=app.retention,
        stream_max_seconds=settings.stream_max_seconds,
        advance_clock=lambda by: advance_clock(app, by),
        refunds=app.refunds,
        doorbell=doorbell,
        fallback_poll_seconds=settings.stream_fallback_poll_seconds,
    )
    serving = start_grpc_server(
        lambda server: payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        host=settings.host,
        port=settings.payment_grpc_port if port is None else port,
        max_workers=settings.grpc_workers,
        observability=_with_collectors(observability, app, servicer),
        tls=settings.grpc_tls,
        reuse_port=reuse_port,
    )
    running = RunningServer(serving=serving, app=app, servicer=servicer, stopping=stopping, listener=listener)
    if sweep:
        running.sweeper = threading.Thread(target=_sweep, args=(running,), name="expiry-sweeper", daemon=True)
        running.sweeper.start()
    return running


def _with_collectors(
    observability: Observability | None, app: App, servicer: PaymentServicer
) -> Observability | None:
    if observability is not None:
        observability.collectors += [
            DbPoolCollector({"payment": app.engine}),
            OutboxCollector(app.engine, servicer.streams),
        ]
    return observability


def advance_clock(app: App, by: timedelta) -> OffsetClock:
    """AdvanceClock (development only): moves the clock, then sweeps once."""
    clock = advance_development_clock(app.clock, by, development=app.settings.development)
    sweep_once(app)
    return clock


def sweep_once(app: App, stopping: threading.Event | None = None) -> None:
    """Expires every attempt due, then asks the gateways about those due."""
    while app.use_cases.expire_due_payments() and not (stopping is not None and stopping.is_set()):
        pass
    app.callbacks.reconcile_due(limit=1000 if stopping is None else 20)


def _sweep(running: RunningServer) -> None:
    """Expires pending attempts whose checkout window (plus grace) has passed,
    so that payment.expired events flow even when nobody asks again."""
    interval = running.app.settings.expiry_sweep_seconds
    prune_every = running.app.settings.prune_interval_seconds
    next_prune = time.monotonic() + min(prune_every, 300.0)
    while not running.stopping.wait(interval):
        if prune_every > 0 and time.monotonic() >= next_prune:
            # Low frequency; replicas may overlap harmlessly (batched deletes).
            next_prune = time.monotonic() + prune_every
            try:
                running.app.retention.prune()
            except Exception:
                log.warning("retention prune failed; will retry", exc_info=True)
        try:
            sweep_once(running.app, running.stopping)
        except Exception:
            log.warning("expiry sweep failed; will retry", exc_info=True)
        try:
            if running.app.refunds is not None:
                running.app.refunds.reconcile_due()
        except Exception:
            log.warning("refund reconciliation failed; will retry", exc_info=True)
