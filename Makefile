# The two commands of the README.  Both set the machine up first (idempotent).
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit mockfarm-up mockfarm-down

setup:
	./scripts/setup.sh

## demo: the main job: a mock data challenge through the whole chain on this machine
demo: setup
	./scripts/demo.sh

## test: lint, type-check and the whole test suite (real servers started by the fixtures).
## Strict: a real-server test whose server is missing fails, never skips (tests/servers/strict.py)
test: setup lint
	FARMTOOLS_ALLOW_SKIP=0 $(VENV)/pytest $(PYTEST_ARGS)

lint:
	$(VENV)/ansible-lint --offline -q site.yml
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

unit: setup
	$(VENV)/pytest -m "not xrootd and not postgres and not slurm and not browser and not farm and not slow" $(PYTEST_ARGS)

## mockfarm-up: podman containers evb, storage, head, worker1, worker2, l2, provisioned by site.yml
mockfarm-up: setup
	./scripts/mockfarm/up.sh
	./scripts/mockfarm/provision.sh

## mockfarm-down: remove the mock farm's ft- containers and network (caches in .mockfarm/ stay)
mockfarm-down:
	./scripts/mockfarm/down.sh
