"""The order service process: gRPC server (health, reflection), the payment
event follower and the expiry sweeper, with graceful shutdown."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from order.v1 import order_service_pb2, order_service_pb2_grpc

from order_service.bootstrap import OrderApp
from order_service.entrypoints.servicer import OrderServicer
from paykit.grpc_errors import RejectUndecodableRequests

log = logging.getLogger("order_service.server")
SERVICE_NAME = order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


@dataclass
class RunningOrderServer:
    server: grpc.Server
    health: health.HealthServicer
    port: int
    app: OrderApp
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def stop(self, grace: float | None = None) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.app.settings.shutdown_grace_seconds if grace is None else grace).wait()
        self.app.channel.close()  # ends the event stream
        for thread in self.threads:
            thread.join(timeout=5)
        self.app.close()
        log.info("stopped", extra={"port": self.port})


def start(
    app: OrderApp, port: int | None = None, *, follow: bool = True, sweep: bool = True
) -> RunningOrderServer:
    settings = app.settings
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="rpc"),
        # 16 KiB of metadata: the ingress forwards request headers (up to its own
        # 8 KiB cap) plus the original path; grpcio refuses some above 8 KiB.
        options=[("grpc.so_reuseport", 0), ("grpc.max_metadata_size", 16 * 1024)],
        interceptors=[RejectUndecodableRequests()],
    )
    order_service_pb2_grpc.add_OrderServiceServicer_to_server(OrderServicer(app.use_cases), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{settings.host}:{settings.order_grpc_port if port is None else port}")
    if bound == 0:
        raise OSError(f"cannot bind {settings.host}:{port}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = RunningOrderServer(server=server, health=health_servicer, port=bound, app=app)
    if follow:
        running.threads.append(threading.Thread(target=follow_payment_events, args=(running,), name="events"))
    if sweep:
        running.threads.append(threading.Thread(target=_sweep, args=(running,), name="sweeper"))
    for thread in running.threads:
        thread.daemon = True
        thread.start()
    log.info("serving", extra={"service": SERVICE_NAME, "host": settings.host, "port": bound})
    return running


def follow_payment_events(running: RunningOrderServer) -> None:
    """Follows PaymentService.StreamPaymentEvents from the stored checkpoint,
    applying each event and its checkpoint in one transaction; reconnects
    with backoff. At least once in, exactly once in effect."""
    use_cases = running.app.use_cases
    backoff = 0.2
    while not running.stopping.is_set():
        try:
            cursor = use_cases.stream_cursor()
            for item in use_cases.payments.stream_events(cursor):
                use_cases.apply_payment_event(item.cursor, item.event)
                backoff = 0.2
                if running.stopping.is_set():
                    return
        except grpc.RpcError as error:
            if running.stopping.is_set():
                return
            log.warning("payment event stream interrupted; reconnecting", extra={"code": str(error.code())})
        except Exception:
            log.exception("applying payment events failed; retrying from the checkpoint")
        running.stopping.wait(backoff)
        backoff = min(backoff * 2, 5.0)


def _sweep(running: RunningOrderServer) -> None:
    while not running.stopping.wait(running.app.settings.sweep_interval_seconds):
        try:
            while running.app.use_cases.expire_due_orders() and not running.stopping.is_set():
                pass
        except Exception:
            log.warning("order expiry sweep failed; will retry", exc_info=True)
