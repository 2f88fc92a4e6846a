# One command per task. Each target creates .venv when it is missing.
PYTHON ?= python3
# operator/ would shadow the standard library for `python -c` run from here; see README, Layout.
export PYTHONSAFEPATH := 1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test unit lint format demo control-plane tools bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)

## The programs the tests and the demo run for real: Alertmanager, Prometheus, git, openssl,
## and the control plane (etcd, kube-apiserver, kubectl) built once from Go modules.
tools:
	bash hack/install-tools.sh

control-plane:
	bash hack/build-control-plane.sh

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: $(STAMP) tools lint
	$(BIN)/pytest

demo: $(STAMP) tools
	$(BIN)/rescue demo

## Every benchmark on real components, each figure beside its baseline (bench/README.md);
## QUICK=1 runs a reduced version of each part in under three minutes; ARGS="--only intake" one part.
bench: $(STAMP) tools
	$(BIN)/python bench/run.py $(if $(QUICK),--quick) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
