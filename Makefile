# `make dev` and `make test` need only Python >= 3.11: they create .venv and
# install the pinned dependencies the first time (and when pyproject changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf

.PHONY: dev test test-fast lint gen gen-check buf bench ci clean deploy-envoy

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version.split()[0]'
	PYTHON=$(PYTHON) sh tools/install-venv.sh $(VENV) '[dev]'
	@# The browser tests drive Debian's chromium (Playwright's own download cannot work here).
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && { apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; }; } \
		|| echo "warning: /usr/bin/chromium is missing: the browser tests will be skipped (apt-get install chromium)"
	@touch $(STAMP)

dev: $(STAMP) ## run the stack locally (embedded PostgreSQL in $$DATA_DIR, default .data)
	$(BIN)/payments dev

test: $(STAMP) ## the whole suite, slow tests included
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check paykit payment_service order_service gateway_simulator ingress web payments tools tests bench alembic/*/env.py
	$(BIN)/mypy

bench: $(STAMP) ## throughput and latency of the hot paths (results in bench/results/)
	$(BIN)/python -m bench

gen: $(STAMP) ## regenerate gen/ from proto/
	$(BIN)/python tools/genproto.py

gen-check: $(STAMP)
	$(BIN)/python tools/genproto.py --check

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

buf: $(BUF) ## buf lint, and buf breaking against the previous commit (BUF_AGAINST overrides)
	$(BUF) lint
	bash tools/buf-breaking.sh $(BUF)

deploy-envoy: $(STAMP) ## rewrite deploy/envoy/configmap.yaml from ingress/envoy.py (the test checks it is fresh)
	$(BIN)/python tools/render_envoy_k8s.py

ci: lint gen-check buf test

clean:
	rm -rf $(VENV) .tools
