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

## mockfarm-up: the mock farm's seven nodes through the Vagrantfile (podman containers by default,
## MOCKFARM_PROVIDER=libvirt or virtualbox with a hypervisor), provisioned by site.yml; the host's
## side first (scripts/mockfarm/host.sh); up without provisioning, then provision (no race)
MOCKFARM_PROVIDER ?= docker
export VAGRANT_CHECKPOINT_DISABLE := 1
mockfarm-up: setup
	./scripts/mockfarm/host.sh $(MOCKFARM_PROVIDER)
	vagrant up --no-provision --provider=$(MOCKFARM_PROVIDER)
	vagrant provision

## mockfarm-down: vagrant destroy, then the host's side (ft-farm network; caches in .mockfarm/ stay)
mockfarm-down:
	vagrant destroy -f
	./scripts/mockfarm/down.sh
