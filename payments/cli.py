"""`payments`: run, migrate and develop the platform."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from paykit import logs

if TYPE_CHECKING:
    from order_service.config import OrderSettings
    from paykit.observability import Observability
    from payment_service.config import Settings

log = logging.getLogger("payments")


def _payment_settings() -> Settings:
    from paykit.settings import ConfigError
    from payment_service.config import Settings

    try:
        return Settings.from_env()
    except ConfigError as error:
        sys.exit(f"configuration error: {error}")


def _order_settings() -> OrderSettings:
    from order_service.config import OrderSettings
    from paykit.settings import ConfigError

    try:
        return OrderSettings.from_env()
    except ConfigError as error:
        sys.exit(f"configuration error: {error}")


def payment_database(settings: Settings | None = None) -> str:
    """DATABASE_URL; else database `payments` on the embedded server."""
    from paykit import database

    if settings is None:
        url, data_dir = os.environ.get("DATABASE_URL", ""), Path(os.environ.get("DATA_DIR", ".data"))
    else:
        url, data_dir = settings.database_url, settings.data_dir
    return database.resolve(url, data_dir, "payments")


def order_database(settings: OrderSettings | None = None) -> str:
    """ORDER_DATABASE_URL; else database `orders` on the DATABASE_URL server;
    else `orders` on the embedded server."""
    from paykit import database

    if settings is None:
        url, data_dir = os.environ.get("ORDER_DATABASE_URL", ""), Path(os.environ.get("DATA_DIR", ".data"))
    else:
        url, data_dir = settings.database_url, settings.data_dir
    if url:
        return database.sqlalchemy_url(url)
    if os.environ.get("DATABASE_URL"):
        return database.ensure_database(os.environ["DATABASE_URL"], "orders")
    return database.resolve("", data_dir, "orders")


def _prepare_schema(url: str, service: str, development: bool) -> None:
    """Development migrates at start; production only checks the revision
    and refuses to serve on a mismatch (`payments migrate` is the deploy
    step). PAYMENTS_AUTO_MIGRATE=1 or 0 overrides either way."""
    from paykit import migrations
    from paykit.settings import ConfigError, env_flag

    try:
        explicit = os.environ.get("PAYMENTS_AUTO_MIGRATE", "")
        migrate = env_flag(os.environ, "PAYMENTS_AUTO_MIGRATE") if explicit else development
        if migrate:
            migrations.upgrade(url, service)
        else:
            migrations.check_schema(url, service)
    except (migrations.SchemaMismatch, ConfigError) as error:
        sys.exit(f"payments serve {service}: refusing to start: {error}")


def _refuse_development_keys(development: bool) -> None:
    from payment_service.config import development_keys_in_use

    if not development and (names := development_keys_in_use(os.environ)):
        sys.exit(
            f"payments serve: refusing to start: {', '.join(names)} "
            f"{'is' if len(names) == 1 else 'are'} the public development value outside development "
            "(set the gateway's real credentials, or PAYMENTS_ENV=development)"
        )


def cmd_migrate(_args: argparse.Namespace) -> None:
    from sqlalchemy.exc import OperationalError

    from paykit import migrations
    from paykit.settings import ConfigError

    try:
        for url, service in ((payment_database(), "payment"), (order_database(), "order")):
            migrations.upgrade(url, service)
            log.info("database migrated to head", extra={"service": service})
    except ConfigError as error:
        sys.exit(f"payments migrate: configuration error: {error}")
    except OperationalError as error:
        first = str(error.orig or error).strip().splitlines()[0]
        sys.exit(
            f"payments migrate: {first} (MIGRATION_LOCK_TIMEOUT_SECONDS, MIGRATION_STATEMENT_TIMEOUT_SECONDS)"
        )


def cmd_prune(_args: argparse.Namespace) -> None:
    """Retention, once: what each service no longer keeps (see
    payment_service/service_layer/retention.py). For a cron job or a
    Kubernetes CronJob; the services also run it every PRUNE_INTERVAL_SECONDS."""
    import json

    from order_service.bootstrap import bootstrap as bootstrap_orders
    from payment_service.bootstrap import bootstrap

    payment_settings = _payment_settings()
    payment_app = bootstrap(payment_settings, payment_database(payment_settings))
    try:
        payments = payment_app.retention.prune()
    finally:
        payment_app.close()
    order_settings = _order_settings()
    order_app = bootstrap_orders(order_settings, order_database(order_settings))
    try:
        orders = order_app.use_cases.prune(order_settings.retention())
    finally:
        order_app.close()
    print(json.dumps({"payment": payments, "order": orders}))


def start_payment() -> Callable[[], None]:
    from payment_service.bootstrap import bootstrap
    from payment_service.entrypoints import server

    settings = _payment_settings()
    _refuse_development_keys(settings.development)
    url = payment_database(settings)
    _prepare_schema(url, "payment", settings.development)
    observability = _observability(server.observability_from_env, "payment-service")
    return server.start(bootstrap(settings, url), observability=observability, reuse_port=_is_worker()).stop


def _is_worker() -> bool:
    """One of several worker processes sharing the port (payments.workers)."""
    from payments import workers

    return workers.INDEX_VARIABLE in os.environ


def start_order() -> Callable[[], None]:
    from order_service.bootstrap import bootstrap
    from order_service.entrypoints import server
    from paykit.settings import is_development

    settings = _order_settings()
    url = order_database(settings)
    _prepare_schema(url, "order", is_development(os.environ))
    from payments import workers

    observability = _observability(server.observability_from_env, "order-service")
    # The payment-event follower runs once per service, and so does the
    # expiry sweep (it reads due orders without SKIP LOCKED and asks the
    # payment service about each: correct under the row lock, but N times
    # the questions): in worker 0 only.
    first = workers.worker_index(os.environ) == 0
    return server.start(
        bootstrap(settings, url),
        observability=observability,
        follow=first,
        sweep=first,
        reuse_port=_is_worker(),
    ).stop


def _observability(from_env: Callable[[], Observability], service_name: str) -> Observability:
    """The metrics endpoint's settings, and tracing when an exporter is
    configured (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER); both
    before bootstrap, which instruments the pool and the channel."""
    from paykit import tracing
    from paykit.settings import ConfigError

    try:
        observability = from_env()
        tracing.configure_from_env(os.environ, service_name)
    except (ConfigError, ValueError) as error:
        sys.exit(f"configuration error: {error}")
    return observability


def cmd_refund(args: argparse.Namespace) -> None:
    """Refunds a payment through its gateway (or records a manual refund with
    --transfer-reference), as RefundPayment does; prints the refund as JSON.
    --request-id makes a retry of this command the same refund."""
    import json
    import uuid

    from paykit.errors import DomainError
    from payment_service.bootstrap import bootstrap

    try:
        payment_id = uuid.UUID(args.payment_id)
    except ValueError:
        sys.exit(f"payments refund: {args.payment_id!r} is not a payment id (UUID)")
    settings = _payment_settings()
    app = bootstrap(settings, payment_database(settings))
    try:
        assert app.refunds is not None
        refund = app.refunds.refund_payment(
            payment_id,
            args.amount,
            args.reason,
            args.request_id or f"cli-{uuid.uuid4().hex[:16]}",
            provider_transaction_id=args.transaction,
            transfer_reference=args.transfer_reference,
            restock=args.restock,
        )
    except DomainError as error:
        sys.exit(f"payments refund: {error.message}")
    finally:
        app.close()
    fields = ("id", "payment_id", "amount", "currency", "status", "provider_refund_id", "failure_reason")
    shown: dict[str, object] = {name: str(getattr(refund, name) or "") for name in fields}
    shown["restock"] = refund.restock
    print(json.dumps(shown, indent=2))


def cmd_check_config(_args: argparse.Namespace) -> None:
    """Every unsafe or missing production setting, one line each; exit 1 if
    any. What an explicit opt-out accepts is printed as a NOTE, not counted."""
    from payments.checks import production_report

    report = production_report(os.environ)
    for note in report.notes:
        print(f"NOTE {note}")
    problems = report.problems
    for problem in problems:
        print(f"UNSAFE {problem}")
    if problems:
        print(f"{len(problems)} problem(s): not ready for production", file=sys.stderr)
        sys.exit(1)
    print("OK: no unsafe or missing production setting found")


def cmd_sim(_args: argparse.Namespace) -> None:
    from gateway_simulator.__main__ import main as sim_main

    sim_main()


def run_until_signal(stops: list[Callable[[], None]]) -> None:
    """Blocks until SIGTERM/SIGINT, then stops everything, last started first."""
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    # Everything allocated while starting lives as long as the process: keep
    # it out of the collector's way (full collections dropped from ~100 ms to
    # ~1 ms in the benchmark).
    gc.freeze()
    done.wait()
    for stop in reversed(stops):
        stop()


def cmd_serve(args: argparse.Namespace) -> None:
    from paykit import metrics, tracing
    from paykit.settings import ConfigError
    from payments import workers

    try:
        count = workers.worker_count(args.service, os.environ)
    except ConfigError as error:
        sys.exit(f"payments serve {args.service}: configuration error: {error}")
    if count > 1:
        sys.exit(workers.serve_workers(args.service, count))
    stop = start_payment() if args.service == "payment" else start_order()
    # Last: the final spans are flushed and, in multi-process mode, this
    # process's live gauges leave /metrics.
    run_until_signal([metrics.mark_process_dead, tracing.shutdown, stop])


class _Stopping(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM while `payments dev` runs."""


def cmd_dev(_args: argparse.Namespace) -> None:
    from paykit.settings import ConfigError
    from payments.stack import Ports, Stack, StartupError

    env = {**os.environ, "PAYMENTS_ENV": os.environ.get("PAYMENTS_ENV") or "development"}
    try:
        ports = Ports.from_env(env)
    except ConfigError as error:
        sys.exit(f"payments dev: configuration error: {error}")
    stack = Stack(Path(env.get("DATA_DIR") or ".data"), ports, env, echo=sys.stderr)

    def on_signal(signum: int, _frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):  # one is enough; stopping is bounded
            signal.signal(sig, signal.SIG_IGN)
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        raise _Stopping

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        stack.start()
        print(DEV_BANNER.format(host="127.0.0.1", **vars(ports)), file=sys.stderr, flush=True)
        while not (cause := stack.exited()):
            time.sleep(0.2)
        raise StartupError(cause)
    except _Stopping:
        stack.stop()
    except Exception as error:
        stack.stop()
        log.debug("start-up failed", exc_info=True)
        sys.exit(f"payments dev: {_one_line(error)}")


def _one_line(error: BaseException) -> str:
    summary = getattr(error, "summary", None)
    text = summary if isinstance(summary, str) else str(error)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def cmd_token(args: argparse.Namespace) -> None:
    from ingress import auth

    keys = auth.load_or_create(Path(os.environ.get("DATA_DIR", ".data")))
    print(keys.token(args.user, ttl_seconds=args.ttl, admin=args.admin))


def cmd_vnpay_ipn(args: argparse.Namespace) -> None:
    """Prints the IPN URL VNPay would call after the shopper pays the given
    checkout URL, signed with the configured VNPAY_HASH_SECRET: the local
    stand-in for the gateway until the simulator exists."""
    from urllib.parse import parse_qsl, urlsplit

    from payment_service.domain.model import Provider
    from payment_service.gateways.vnpay import protocol as vnpay

    os.environ.setdefault("PAYMENTS_ENV", "development")
    config = _payment_settings().gateways.get(Provider.VNPAY)
    if not isinstance(config, vnpay.VnpayConfig):
        sys.exit("VNPay is not enabled (PAYMENT_PROVIDERS)")
    checkout = dict(parse_qsl(urlsplit(args.checkout_url).query))
    if "vnp_TxnRef" not in checkout or "vnp_Amount" not in checkout:
        sys.exit("not a VNPay checkout URL (no vnp_TxnRef/vnp_Amount)")
    success = args.response_code == "00"
    params = {
        "vnp_Amount": checkout["vnp_Amount"],
        "vnp_BankCode": "NCB",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": checkout.get("vnp_OrderInfo", ""),
        "vnp_PayDate": checkout.get("vnp_CreateDate", ""),
        "vnp_ResponseCode": args.response_code,
        "vnp_TmnCode": config.tmn_code,
        "vnp_TransactionNo": str(abs(hash(checkout["vnp_TxnRef"])) % 10**8),
        "vnp_TransactionStatus": "00" if success else "02",
        "vnp_TxnRef": checkout["vnp_TxnRef"],
    }
    signature = vnpay.sign(params, config.hash_secret)
    print(f"{args.ingress}/webhooks/vnpay/ipn?{vnpay.canonical_query(params)}&vnp_SecureHash={signature}")


def cmd_clock(args: argparse.Namespace) -> None:
    """Moves the test clock of the payment service, the simulator and the
    order service together (development only), each sweeping right after."""
    from paykit.clock import parse_duration
    from payments import devclock

    try:
        by = parse_duration(args.duration)
    except ValueError as error:
        sys.exit(f"payments clock: {error}")
    try:
        offsets = devclock.advance(by, devclock.Targets.from_env(os.environ))
    except devclock.ClockRefused as error:
        sys.exit(f"payments clock: {error}")
    print("clock advanced; ahead of real time by: " + ", ".join(f"{k} {v}" for k, v in offsets.items()))


def cmd_bench(args: argparse.Namespace) -> None:
    # The benchmark drives the platform from outside; nothing of ours imports it.
    os.execv(sys.executable, [sys.executable, "-m", "bench", *args.bench_args])  # noqa: S606


def cmd_envoy_config(_args: argparse.Namespace) -> None:
    from ingress import auth
    from ingress import envoy as ingress

    try:
        settings = ingress.IngressSettings.from_env()
        if settings.needs_development_keys:
            keys = auth.load_or_create(Path(os.environ.get("DATA_DIR", ".data")))
            settings = settings.with_jwks(keys.jwks)
        print(ingress.render_yaml(settings))
    except ValueError as error:  # ConfigError
        sys.exit(f"configuration error: {error}")


DEV_BANNER = """
Running (Ctrl-C stops everything, the embedded PostgreSQL too):
  payment.v1.PaymentService  grpc  {host}:{payment}   (internal; reflection on)
  order.v1.OrderService      grpc  {host}:{order}   (internal; reflection on)
  ingress (Envoy)            http  http://{host}:{ingress}   admin http://{host}:{admin}
  gateway simulator          http  http://{host}:{sim}   (checkout pages; control API under /_control)
  shop pages and console     http  http://{host}:{ingress}/shop/dev-login?user=u1
                                   http://{host}:{ingress}/console/dev-login?user=admin
Logs: DATA_DIR/logs/ (default .data/logs/)
Try:
  TOKEN=$(.venv/bin/payments token --user u1)
  curl -s http://{host}:{ingress}/v1/products
  curl -s -H "Authorization: Bearer $TOKEN" http://{host}:{ingress}/v1/orders
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="payments", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run everything locally on an embedded PostgreSQL").set_defaults(func=cmd_dev)
    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=["payment", "order"])
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="upgrade both databases to the latest schema").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser(
        "check-config", help="report every unsafe or missing production setting (exit 1 if any)"
    ).set_defaults(func=cmd_check_config)
    sub.add_parser(
        "prune", help="delete what retention no longer keeps (journal, outbox, keys)"
    ).set_defaults(func=cmd_prune)
    refund = sub.add_parser("refund", help="refund a paid payment (all that is left, or --amount)")
    refund.add_argument("payment_id")
    refund.add_argument("--amount", type=int, default=0, help="minor units; 0 (default): everything left")
    refund.add_argument("--reason", default="", help="ASCII letters, digits, space and .-_:/, only")
    refund.add_argument("--request-id", default="", help="idempotency key (default: a new one)")
    refund.add_argument("--transaction", default="", help="an extra payment's provider transaction id")
    refund.add_argument("--transfer-reference", default="", help="payOS/COD: the bank transfer's reference")
    refund.add_argument(
        "--restock", action="store_true", help="give the order's stock back (once, while the order holds it)"
    )
    refund.set_defaults(func=cmd_refund)
    token = sub.add_parser("token", help="print a development JWT the ingress accepts")
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument(
        "--admin", action="store_true", help="with the admin claim: the operator console and /admin/v1/"
    )
    token.set_defaults(func=cmd_token)
    sub.add_parser("sim", help="run the local gateway simulator (VNPay, payOS, MoMo, ZaloPay)").set_defaults(
        func=cmd_sim
    )
    ipn = sub.add_parser("vnpay-ipn", help="print a signed VNPay IPN URL for a checkout URL (development)")
    ipn.add_argument("checkout_url")
    ipn.add_argument("--response-code", default="00", help="vnp_ResponseCode (00 = paid, 24 = canceled, ...)")
    ipn.add_argument("--ingress", default=f"http://127.0.0.1:{os.environ.get('INGRESS_PORT', '8080')}")
    ipn.set_defaults(func=cmd_vnpay_ipn)
    clock = sub.add_parser("clock", help="move the development test clock (every service and the simulator)")
    clock_sub = clock.add_subparsers(dest="clock_command", required=True)
    advance = clock_sub.add_parser("advance", help="move time forward, e.g. 15m, 2h, 90s, 1h30m")
    advance.add_argument("duration")
    advance.set_defaults(func=cmd_clock)
    bench = sub.add_parser("bench", help="run the benchmark (same as make bench); extra arguments go to it")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    sub.add_parser("envoy-config", help="print the rendered Envoy configuration").set_defaults(
        func=cmd_envoy_config
    )
    args = parser.parse_args(argv)
    logs.configure(args.log_level.upper())
    args.func(args)


if __name__ == "__main__":
    main()
