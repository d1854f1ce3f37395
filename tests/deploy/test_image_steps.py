"""The image, built without a container runtime: the Dockerfile's COPY lines
assemble a build context in a temporary folder, its install step
(tools/install-venv.sh, no extras) makes a virtualenv there, and that
virtualenv runs what the manifests run: the migration Job's `payments
check-config` (it notes the plaintext opt-out and refuses the committed placeholders) and `payments
migrate`, and the payment Deployment's `payments serve payment`, with the
manifests' ConfigMap and Secret settings (database URLs pointed at a test
database, the bind at 127.0.0.1 on a free port), answering the gRPC health
check the probes use. Slow: it installs the dependencies (from pip's cache
when warm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments.stack import ServiceProcess
from tests.conftest import create_database, drop_database
from tests.deploy.test_manifests import DEPLOY, ROOT, dockerfile_instructions

pytestmark = pytest.mark.slow


def build_context(app: Path) -> None:
    """What the builder stage's COPY lines put in /app."""
    for op, args in dockerfile_instructions():
        if op != "COPY" or args.startswith("--from"):
            continue
        *sources, destination = args.split()
        for source in sources:
            target = app / destination if destination != "./" else app
            path = ROOT / source.rstrip("/")
            if path.is_dir():
                shutil.copytree(path, app / source.rstrip("/"), ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (target if destination.endswith("/") else target.parent).mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name if destination.endswith("/") else target)


def manifest_env() -> dict[str, str]:
    docs = [
        d
        for p in (DEPLOY / "config.yaml", DEPLOY / "secrets.yaml")
        for d in yaml.safe_load_all(p.read_text())
    ]
    env: dict[str, str] = {}
    for doc in docs:
        env.update(doc.get("data") or doc.get("stringData"))
    return env


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    app.mkdir()
    build_context(app)
    run = next(args for op, args in dockerfile_instructions() if op == "RUN" and "install-venv.sh" in args)
    install = run.split("&&")[0].strip().replace("/opt/venv", str(root / "venv"))
    done = subprocess.run(
        install, shell=True, cwd=app, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return root / "venv"


@pytest.fixture
def databases(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    payment_name, payment_url = create_database(pg_admin_url, None)
    order_name, order_url = create_database(pg_admin_url, None)
    yield payment_url, order_url
    drop_database(pg_admin_url, payment_name)
    drop_database(pg_admin_url, order_name)


def test_image_venv_migrates_and_serves_as_the_manifests_say(
    image_venv: Path, databases: tuple[str, str], tmp_path: Path
) -> None:
    payment_url, order_url = databases
    env = {
        "PATH": f"{image_venv}/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **manifest_env(),
        "DATABASE_URL": payment_url,
        "ORDER_DATABASE_URL": order_url,
        "PAYMENT_GRPC_HOST": "127.0.0.1",
        "PAYMENT_GRPC_PORT": "0",
        "PAYMENT_METRICS_PORT": "0",
        "DATA_DIR": str(tmp_path / "data"),
    }
    payments = str(image_venv / "bin" / "payments")
    # The migration Job's init container: check-config, with the binds as the
    # pods have them (the plaintext opt-out is noted, not refused); it refuses
    # the committed placeholders (VNPay's URLs)...
    job = yaml.safe_load((DEPLOY / "migrate-job.yaml").read_text())
    (check,) = job["spec"]["template"]["spec"]["initContainers"]
    check_env = {**env, "PAYMENT_GRPC_HOST": manifest_env()["PAYMENT_GRPC_HOST"]}
    done = subprocess.run(
        [payments, *check["args"]],
        env=check_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "UNSAFE VNPAY_API_URL is not an https URL (CHANGE_ME)" in done.stdout
    unsafe = [line for line in done.stdout.splitlines() if line.startswith("UNSAFE")]
    assert not [line for line in unsafe if "GRPC" in line or "PAYMENT_TARGET" in line], unsafe
    notes = [line for line in done.stdout.splitlines() if line.startswith("NOTE")]
    assert [note.split("=")[0] for note in notes] == [
        "NOTE PAYMENT_GRPC_HOST",
        "NOTE ORDER_GRPC_HOST",
        "NOTE PAYMENT_TARGET",
    ], notes
    # ...and passes once the operator has set them.
    vnpay = {
        "VNPAY_API_URL": "https://pay.vnpay.example/vpcpay.html",
        "VNPAY_QUERY_URL": "https://merchant.vnpay.example/merchant_webapi/api/transaction",
    }
    done = subprocess.run(
        [payments, *check["args"]],
        env={**check_env, **vnpay},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The migration Job.
    done = subprocess.run(
        [payments, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    migrated = [
        json.loads(line) for line in done.stderr.splitlines() if '"database migrated to head"' in line
    ]
    assert sorted(entry["service"] for entry in migrated) == ["order", "payment"]
    # The payment Deployment, probed as the kubelet does.
    server = ServiceProcess("payment", [payments, "serve", "payment"], env, cwd=tmp_path)
    try:
        server.wait_serving(60)
        assert server.serving.get("service") == "payment.v1.PaymentService"
        with grpc.insecure_channel(server.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "payment.v1.PaymentService"):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert server.stop() == 0, server.log_tail()
    assert not os.path.exists(tmp_path / "data"), "no embedded PostgreSQL when DATABASE_URL is set"
