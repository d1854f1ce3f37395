"""The gRPC server: PaymentService, standard health, reflection, an expiry
sweeper, and graceful shutdown (NOT_SERVING, stop with grace, close the pool)."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from payment.v1 import payment_service_pb2, payment_service_pb2_grpc

from paykit.grpc_errors import RejectUndecodableRequests
from payment_service.bootstrap import App
from payment_service.entrypoints.servicer import PaymentServicer

log = logging.getLogger("payment_service.server")
SERVICE_NAME = payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


@dataclass
class RunningServer:
    server: grpc.Server
    health: health.HealthServicer
    port: int
    app: App
    stopping: threading.Event = field(default_factory=threading.Event)
    sweeper: threading.Thread | None = None

    def stop(self, grace: float | None = None) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.app.settings.shutdown_grace_seconds if grace is None else grace).wait()
        if self.sweeper is not None:
            self.sweeper.join(timeout=5)
        self.app.close()
        log.info("stopped", extra={"port": self.port})


def start(app: App, port: int | None = None, *, sweep: bool = True) -> RunningServer:
    settings = app.settings
    stopping = threading.Event()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="rpc"),
        # 16 KiB of metadata: the ingress forwards request headers (up to its own
        # 8 KiB cap) plus the original path; grpcio refuses some above 8 KiB.
        options=[("grpc.so_reuseport", 0), ("grpc.max_metadata_size", 16 * 1024)],
        interceptors=[RejectUndecodableRequests()],
    )
    payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(
        PaymentServicer(app.use_cases, app.callbacks, stopping), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(
        f"{settings.host}:{settings.payment_grpc_port if port is None else port}"
    )
    if bound == 0:
        raise OSError(f"cannot bind {settings.host}:{port}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = RunningServer(server=server, health=health_servicer, port=bound, app=app, stopping=stopping)
    if sweep:
        running.sweeper = threading.Thread(target=_sweep, args=(running,), name="expiry-sweeper", daemon=True)
        running.sweeper.start()
    log.info("serving", extra={"service": SERVICE_NAME, "host": settings.host, "port": bound})
    return running


def _sweep(running: RunningServer) -> None:
    """Expires pending attempts whose checkout window (plus grace) has passed,
    so that payment.expired events flow even when nobody asks again."""
    interval = running.app.settings.expiry_sweep_seconds
    while not running.stopping.wait(interval):
        try:
            while running.app.use_cases.expire_due_payments() and not running.stopping.is_set():
                pass
            running.app.callbacks.reconcile_due()
        except Exception:
            log.warning("expiry sweep failed; will retry", exc_info=True)
