"""Python gRPC's ceiling on this machine: `python -m bench.trivial RESPONSE`
serves payment.v1.PaymentService/CreateOrGetPayment through a generic
handler that parses the request and answers with the stored response (a
real one, so messages are the same size), and does nothing else.

The server is built with the settings the payment service's own start()
passes to grpc.server (executor size, channel options), recorded by calling
it, so that the ceiling follows the service's configuration."""

from __future__ import annotations

import json
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any, cast
from unittest import mock

import grpc
from payment.v1 import payment_service_pb2 as ps

from paykit.grpc_server import start_grpc_server

SERVICE = "payment.v1.PaymentService"


def service_server_settings() -> dict[str, Any]:
    """The executor size and options payment_service's start() gives
    grpc.server, with settings from the environment (as `payments serve`)."""
    from payment_service.bootstrap import App
    from payment_service.config import Settings
    from payment_service.entrypoints import server as service_server

    recorded: dict[str, Any] = {}
    real_server = grpc.server

    def recording(executor: futures.ThreadPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        recorded["workers"] = executor._max_workers
        recorded["options"] = [tuple(option) for option in kwargs.get("options", ())]
        recorded["other_arguments"] = sorted(k for k in kwargs if k != "options") + ["positional"] * len(args)
        return real_server(executor, *args, **kwargs)

    # Only the server's construction matters: no database, no use cases.
    app = App(Settings.from_env(), cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None))
    with mock.patch("grpc.server", recording):
        running = service_server.start(app, port=0, sweep=False)
    running.server.stop(0).wait()
    return recorded


def main() -> None:
    response = ps.CreateOrGetPaymentResponse.FromString(Path(sys.argv[1]).read_bytes())
    settings = service_server_settings()

    def create_or_get_payment(
        request: ps.CreateOrGetPaymentRequest, context: grpc.ServicerContext
    ) -> ps.CreateOrGetPaymentResponse:
        return response

    handler = grpc.unary_unary_rpc_method_handler(
        create_or_get_payment,
        request_deserializer=ps.CreateOrGetPaymentRequest.FromString,
        response_serializer=ps.CreateOrGetPaymentResponse.SerializeToString,
    )
    generic = grpc.method_handlers_generic_handler(SERVICE, {"CreateOrGetPayment": handler})
    # The same factory as the services, without their interceptor: nothing
    # but the call itself.
    running = start_grpc_server(
        lambda server: server.add_generic_rpc_handlers([generic]),
        service_names=[SERVICE],
        host="127.0.0.1",
        port=0,
        max_workers=settings["workers"],
        options=settings["options"],
        interceptors=[],
    )
    port = running.port
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    line = {"event": "serving", "port": port, "server_settings": settings}
    print(json.dumps(line), file=sys.stderr, flush=True)
    done.wait()
    running.stop(0)


if __name__ == "__main__":
    main()
