"""paykit.grpc_server: health SERVING per service once started, NOT_SERVING
on stop, reflection lists the services, and the port is the bound one."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from paykit.grpc_server import start_grpc_server

NAME = "example.v1.Example"


def test_health_reflection_and_graceful_stop() -> None:
    registered: list[grpc.Server] = []
    running = start_grpc_server(
        registered.append, service_names=[NAME], host="127.0.0.1", port=0, max_workers=2
    )
    try:
        assert running.port > 0 and len(registered) == 1
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", NAME):
                reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            (answer,) = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            listed = {s.name for s in answer.list_services_response.service}
            assert {NAME, "grpc.health.v1.Health"} <= listed
            running.health.enter_graceful_shutdown()
            reply = health.Check(health_pb2.HealthCheckRequest(service=NAME), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        running.stop(grace=0)
