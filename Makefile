# The two commands of the README.  Both set the machine up first (idempotent).
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit

setup:
	./scripts/setup.sh

## demo: the main job: a mock data challenge through the whole chain on this machine
demo: setup
	./scripts/demo.sh

## test: lint, type-check and the whole test suite (real servers started by the fixtures)
test: setup lint
	$(VENV)/pytest $(PYTEST_ARGS)

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

unit: setup
	$(VENV)/pytest -m "not xrootd and not postgres and not slurm and not browser and not farm and not slow" $(PYTEST_ARGS)
