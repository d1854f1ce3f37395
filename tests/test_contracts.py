"""The checked-in gen/ matches proto/, and the contract names clients rely on exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "genproto.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_descriptor_set_has_the_payment_service_and_error_details() -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen" / "descriptor.pb").read_bytes())
    files = {f.name: f for f in fds.file}
    assert "google/rpc/error_details.proto" in files
    service = next(s for s in files["payment/v1/payment_service.proto"].service if s.name == "PaymentService")
    assert {m.name for m in service.method} == {
        "CreateOrGetPayment",
        "GetPaymentByOrder",
        "GetPayment",
        "CancelPayment",
        "HandleCallback",
        "StreamPaymentEvents",
        "ConfirmCodPayment",
        "AdvanceClock",  # development only; no HTTP binding
        "RefundPayment",
        "ListPaymentsNeedingReview",
        "ResolveReview",
        "SearchPayments",  # the operator console's
        "GetPaymentDetail",
        "ReconcilePayment",
        "ReplayCallback",
    }
    # Bound to HTTP: the gateway callback, and the operator's RPCs under
    # /admin/v1/ (Envoy lets only tokens with the admin claim reach them).
    # Creating payments, the event stream and the test clock stay internal.
    bound = {m.name for m in service.method if m.options.HasExtension(annotations_pb2.http)}
    assert bound == {
        "HandleCallback",
        "GetPayment",
        "RefundPayment",
        "ListPaymentsNeedingReview",
        "ResolveReview",
        "SearchPayments",
        "GetPaymentDetail",
        "ReconcilePayment",
        "ReplayCallback",
    }
