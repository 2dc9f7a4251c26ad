# Developer entry points. `make test` is the full suite CI runs (see .ci/run and the README).
# Everything runs in a virtual environment of its own (.venv, made on first use); point PYTHON at
# another interpreter (e.g. `make test PYTHON=/path/to/venv/bin/python`) to use that instead.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
PIP ?= $(PYTHON) -m pip
# The console scripts (lint-imports) of the interpreter in use, wherever it installs them.
SCRIPTS = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')

.PHONY: install install-test lint typecheck upstream-crds obol-decode unit e2e-binaries e2e test test-newest \
	goldens bench bench-dataplane wrk serve image image-check targets

$(VENV)/bin/python:
	python3 -m venv $(VENV)

install: $(filter $(VENV)/bin/python,$(PYTHON))
	$(PIP) install --quiet .

install-test: $(filter $(VENV)/bin/python,$(PYTHON))
	$(PIP) install --quiet -e '.[test]' -c .ci/constraints.txt

lint: install-test
	$(PYTHON) -m ruff check hooks tests
	$(PYTHON) -m ruff format --check hooks tests
	$(SCRIPTS)/lint-imports

typecheck: install-test
	$(PYTHON) -m mypy hooks

# Gateway API and Traefik CRDs from their Go modules (module proxy, pinned hashes), cached outside
# the repo: the offline tests validate the hook's children against them. No compile.
upstream-crds:
	bash tests/e2e/build.sh --crds >/dev/null

# The obol-stack decode check (tests/obol_decode): a small Go program on k8s.io/apimachinery's
# converter, built from the module proxy into the same cache; the offline tests run it.
obol-decode:
	bash tests/e2e/build.sh --decode-check >/dev/null

unit: install-test upstream-crds obol-decode
	$(PYTHON) -m pytest -m "not e2e"

# Real etcd, kube-apiserver, kubectl and Traefik built from Go modules, cached outside the repo
# (with the upstream CRDs and the decode check above).
e2e-binaries:
	bash tests/e2e/build.sh

e2e: install-test e2e-binaries
	$(PYTHON) -m pytest -m e2e tests/e2e

# Everything: lint, types, the long robustness runs, then every other test including the
# real-stack end-to-end suite (last, so its summary line is the run's closing line).
test: lint typecheck e2e-binaries
	$(PYTHON) -m pytest -m slow
	$(PYTHON) -m pytest -m "not slow"

# The unit suite against the newest releases pyproject.toml allows (no constraints file), in a
# virtual environment of its own: a new release of a dependency breaks this before it breaks a
# user's `pip install`. CI runs it after `make test`.
NEWEST ?= .venv-newest
test-newest: upstream-crds obol-decode
	python3 -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install --quiet --upgrade -e '.[test]'
	$(NEWEST)/bin/python -m pip freeze --exclude-editable | grep -iE '^(flask|gunicorn|uvicorn|h11|pydantic|pyyaml|orjson|prometheus.client|click|pycryptodome)=='
	$(NEWEST)/bin/python -m pytest -q -m "not e2e and not slow" -p no:cacheprovider

# Benchmarks (need wrk; not part of `test`): the hook's floor side by side with bare Flask, and
# the data plane through real Traefik on the e2e binaries.
wrk:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

bench: install-test wrk
	$(PYTHON) tests/bench/run.py

bench-dataplane: install-test e2e-binaries wrk
	$(PYTHON) tests/bench/dataplane.py

# Rewrite the golden files from today's code over the frozen inputs (written by hand, never by
# the hook: tests/fixtures/sync/README.md): sync responses, obol-stack-shaped offers and obol
# sell's dry runs; review the diff.
goldens: install-test
	$(PYTHON) -m pytest tests/sync tests/api/test_obol_offers.py tests/cli/test_sell_dry_run.py --update-goldens -q

# The sync server (the Quickstart's main job); the busy responder is `obol hook busy`.
serve: install
	$(SCRIPTS)/obol hook serve

# The container image from the Dockerfile with podman, on a Debian bookworm base made here (no
# registry needed), and a run of both of its commands from it as uid 10001 on a read-only root
# (.ci/image.sh says what that proves). Elsewhere `docker build .` builds the same Dockerfile.
IMAGE ?= localhost/serviceoffer-hook:dev
image:
	IMAGE=$(IMAGE) bash .ci/image.sh build

image-check:
	IMAGE=$(IMAGE) bash .ci/image.sh check

# The issue-22 targets (idle memory, hooks/ size, request heads, slow clients) side by side
# with the design before it. That design's busy responder ran on httptools, which the hook no
# longer depends on: it is installed here for the "before" column only.
targets: install-test e2e-binaries
	$(PIP) install --quiet 'httptools>=0.6,<1'
	$(PYTHON) tests/bench/pod_targets.py
