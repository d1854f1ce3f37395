#!/bin/sh
# The one way this project installs itself: `make` runs it for .venv (with the
# dev extras) and the Dockerfile's builder stage runs it for /opt/venv (without).
# No container runtime exists on the development machines or in CI, so the
# image cannot be built there; sharing this script is how the image's install
# step stays the one CI runs (tests/deploy/test_manifests.py checks that both
# the Makefile and the Dockerfile call it).
#   usage: tools/install-venv.sh VENV [EXTRAS]     e.g. tools/install-venv.sh .venv '[dev]'
set -eu
venv=$1
extras=${2:-}
python=${PYTHON:-python3}
test -x "$venv/bin/python" || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# Editable: paykit.migrations and ingress.envoy find alembic/ and gen/ beside the
# packages (the source tree), so the tree is installed in place, here and in the image.
"$venv/bin/python" -m pip install --quiet -e ".$extras"
