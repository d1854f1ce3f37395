"""Helpers shared by integration tests."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc
import psycopg
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from paykit.database import libpq_url
from payments.stack import ServiceProcess, StartupError, serve_argv

TABLES = ("payments", "payment_request_keys", "outbox_events", "callback_journal")


def counts(db_url: str) -> dict[str, int]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def rows(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def independent_vnpay_check(url: str, secret: str) -> dict[str, str]:
    """Verifies a VNPay URL the way VNPay's own Python demo does, without any
    of our code: decode, drop the hash, sort, quote_plus, HMAC-SHA512."""
    query = urlsplit(url).query
    params = dict(parse_qsl(query, keep_blank_values=True))
    received = params.pop("vnp_SecureHash")
    from urllib.parse import quote_plus

    data = "&".join(f"{k}={quote_plus(v)}" for k, v in sorted(params.items()))
    expected = hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()
    assert hmac.compare_digest(expected, received), "vnp_SecureHash does not verify"
    return params


def bad_request_fields(error: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    fields: set[str] = set()
    for detail in status.details:
        br = error_details_pb2.BadRequest()
        if detail.Unpack(br):
            fields |= {v.field for v in br.field_violations}
    return fields


# What `payments serve` needs to start in production mode (PAYMENTS_ENV
# unset) besides gateway keys: an https PUBLIC_BASE_URL, VNPay's sandbox by
# the explicit switch, the test shop's return origin. The schema is checked,
# not migrated: the test databases are migrated copies.
PRODUCTION_TEST_ENV = {
    "PUBLIC_BASE_URL": "https://shop.example",
    "VNPAY_SANDBOX": "1",
    "RETURN_URL_ALLOWED_ORIGINS": "https://shop.example",
    # One process per service (production defaults to one per core): the
    # tests stop, kill and watch services by their PID; test_workers.py runs two.
    "PAYMENT_WORKERS": "1",
    "ORDER_WORKERS": "1",
}


class ServerProcess(ServiceProcess):
    """`payments serve <service>` in a child process on an ephemeral port, every
    stderr line kept in `lines`. Stopped by PID. For the order service pass
    ORDER_DATABASE_URL and PAYMENT_TARGET in env."""

    def __init__(self, db_url: str, service: str = "payment", **env: str) -> None:
        from tests.conftest import TEST_VNPAY

        child_env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "PAYMENT_GRPC_PORT": "0",
            "ORDER_GRPC_PORT": "0",
            # Any free port: tests run several servers at once.
            "PAYMENT_METRICS_PORT": "0",
            "ORDER_METRICS_PORT": "0",
            "PAYMENTS_AUTO_MIGRATE": "0",
            **PRODUCTION_TEST_ENV,
            "VNPAY_TMN_CODE": TEST_VNPAY.tmn_code,
            "VNPAY_HASH_SECRET": TEST_VNPAY.hash_secret,
            "LOG_LEVEL": "INFO",
            **env,
        }
        super().__init__(service, serve_argv(service), child_env, keep_lines=None)
        try:
            self.wait_serving(30)
        except StartupError:
            self.kill()
            raise

    def terminate(self, timeout: float = 15) -> int:
        code = self.stop(timeout)
        assert code is not None
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def signed_vnpay_query(params: dict[str, str], secret: str) -> str:
    """An IPN/return query signed as VNPay signs it, written from the
    published algorithm without importing the service's signer."""
    from urllib.parse import quote_plus

    data = "&".join(f"{k}={quote_plus(v)}" for k, v in sorted(params.items()))
    digest = hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()
    return f"{data}&vnp_SecureHash={digest}"


def vnpay_ipn_params(
    txn_ref: str, amount: int, *, response_code: str = "00", status: str = "00"
) -> dict[str, str]:
    return {
        "vnp_Amount": str(amount * 100),
        "vnp_BankCode": "NCB",
        "vnp_BankTranNo": "VNP14226112",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": "Thanh toan don hang",
        "vnp_PayDate": "20260501103512",
        "vnp_ResponseCode": response_code,
        "vnp_TmnCode": "TESTTMN1",
        "vnp_TransactionNo": "14226112",
        "vnp_TransactionStatus": status,
        "vnp_TxnRef": txn_ref,
    }
