# Developer entry points. `make test` is the full suite CI runs (see .ci/run and the README).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install install-test lint typecheck upstream-crds unit e2e-binaries e2e test goldens bench bench-dataplane wrk serve

install:
	$(PIP) install --quiet .

install-test:
	$(PIP) install --quiet -e '.[test]' -c .ci/constraints.txt

lint: install-test
	ruff check hooks tests
	ruff format --check hooks tests
	lint-imports

typecheck: install-test
	mypy hooks

# Gateway API and Traefik CRDs from their Go modules (module proxy, pinned hashes), cached outside
# the repo: the offline tests validate the hook's children against them. No compile.
upstream-crds:
	bash tests/e2e/build.sh --crds >/dev/null

unit: install-test upstream-crds
	$(PYTHON) -m pytest -m "not e2e"

# Real etcd, kube-apiserver, kubectl and Traefik built from Go modules, cached outside the repo
# (with the upstream CRDs above).
e2e-binaries:
	bash tests/e2e/build.sh

e2e: install-test e2e-binaries
	$(PYTHON) -m pytest -m e2e tests/e2e

# Everything: lint, types, the long robustness runs, then every other test including the
# real-stack end-to-end suite (last, so its summary line is the run's closing line).
test: install-test e2e-binaries
	ruff check hooks tests
	ruff format --check hooks tests
	lint-imports
	mypy hooks
	$(PYTHON) -m pytest -m slow
	$(PYTHON) -m pytest -m "not slow"

# Benchmarks (need wrk; not part of `test`): the hook's floor side by side with bare Flask, and
# the data plane through real Traefik on the e2e binaries.
wrk:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

bench: install-test wrk
	$(PYTHON) tests/bench/run.py

bench-dataplane: install-test e2e-binaries wrk
	$(PYTHON) tests/bench/dataplane.py

# Rewrite the golden responses from today's sync() over the frozen request fixtures (which are
# written by hand, never by the hook: tests/fixtures/sync/README.md); review the diff.
goldens: install-test
	$(PYTHON) -m pytest tests/sync --update-goldens -q

serve: install
	obol hook serve
