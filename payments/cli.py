"""`payments`: run, migrate and develop the platform."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from payments import logs

if TYPE_CHECKING:
    from payment_service.config import Settings

log = logging.getLogger("payments")


def _settings() -> Settings:
    from payment_service.config import ConfigError, Settings

    try:
        return Settings.from_env()
    except ConfigError as error:
        sys.exit(f"configuration error: {error}")


def cmd_migrate(_args: argparse.Namespace) -> None:
    from payments import database, migrations

    settings = _settings()
    url = database.resolve(settings.database_url, settings.data_dir)
    migrations.upgrade(url)
    log.info("database migrated to head")


def _serve_payment(announce: bool) -> None:
    from payment_service.bootstrap import bootstrap
    from payment_service.entrypoints import server
    from payments import database, migrations

    settings = _settings()
    url = database.resolve(settings.database_url, settings.data_dir)
    if os.environ.get("PAYMENTS_AUTO_MIGRATE", "1") != "0":
        migrations.upgrade(url)
    running = server.start(bootstrap(settings, url))
    if announce:
        print(DEV_BANNER.format(host=settings.host, port=running.port), file=sys.stderr, flush=True)
    server.serve_until_signal(running)


def cmd_serve(args: argparse.Namespace) -> None:
    _serve_payment(announce=False)


def cmd_dev(_args: argparse.Namespace) -> None:
    os.environ.setdefault("PAYMENTS_ENV", "development")
    _serve_payment(announce=True)


DEV_BANNER = """
payment.v1.PaymentService on {host}:{port} (reflection and health on). Try:
  grpcurl -plaintext {host}:{port} list
  grpcurl -plaintext -d '{{"order_id":"ORD-1","user_id":"u1","amount":150000,"provider":"PROVIDER_VNPAY"}}' \\
      {host}:{port} payment.v1.PaymentService/CreateOrGetPayment
Ctrl-C stops it (and the embedded PostgreSQL).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="payments", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run the stack locally on an embedded PostgreSQL").set_defaults(func=cmd_dev)
    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=["payment"])
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(func=cmd_migrate)
    args = parser.parse_args(argv)
    logs.configure(args.log_level.upper())
    args.func(args)


if __name__ == "__main__":
    main()
