"""Prints the Envoy bootstrap for the current environment (INGRESS_PORT,
ENVOY_ADMIN_PORT, PAYMENT_GRPC_PORT, PAYMENTS_HOST):

    python envoy/render.py > envoy.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: make the repository importable without an install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from payments.ingress import IngressSettings, render_yaml


def main() -> None:
    try:
        settings = IngressSettings.from_env()
    except ValueError as error:
        sys.exit(f"configuration error: {error}")
    sys.stdout.write(render_yaml(settings))


if __name__ == "__main__":
    main()
