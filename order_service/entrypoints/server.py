"""The order service process: OrderService on paykit's gRPC server (health,
reflection, graceful stop), the payment event follower and the expiry
sweeper, with graceful shutdown."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health
from order.v1 import order_service_pb2, order_service_pb2_grpc

from order_service.bootstrap import OrderApp
from order_service.entrypoints.follower import PaymentEventFollower
from order_service.entrypoints.servicer import OrderServicer
from paykit.grpc_server import GrpcServer, start_grpc_server

log = logging.getLogger("order_service.server")
SERVICE_NAME = order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


@dataclass
class RunningOrderServer:
    serving: GrpcServer
    app: OrderApp
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    follower: PaymentEventFollower | None = None

    @property
    def server(self) -> grpc.Server:
        return self.serving.server

    @property
    def health(self) -> health.HealthServicer:
        return self.serving.health

    @property
    def port(self) -> int:
        return self.serving.port

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


def start(
    app: OrderApp, port: int | None = None, *, follow: bool = True, sweep: bool = True
) -> RunningOrderServer:
    settings = app.settings
    servicer = OrderServicer(app.use_cases)
    serving = start_grpc_server(
        lambda server: order_service_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        host=settings.host,
        port=settings.order_grpc_port if port is None else port,
        max_workers=settings.grpc_workers,
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


def _sweep(running: RunningOrderServer) -> None:
    while not running.stopping.wait(running.app.settings.sweep_interval_seconds):
        try:
            # One call settles every due order (paging inside); orders
            # whose money is still uncertain wait for the next sweep.
            running.app.use_cases.expire_due_orders()
        except Exception:
            log.warning("order expiry sweep failed; will retry", exc_info=True)
