# ferry.migrate — `make demo` and `make test` set up everything they need on their own.
SHELL := /bin/bash
VENV  := $(CURDIR)/.venv
PY    := $(VENV)/bin/python
RUN   := $(CURDIR)/.run
export PATH := $(VENV)/bin:$(PATH)
export FERRY_RUN_DIR := $(RUN)

.PHONY: bootstrap demo test pytest sanity units integration lint molecule build bench servers-up servers-down clean

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	@bash scripts/demo.sh

test: bootstrap
	@bash scripts/test.sh all

pytest: bootstrap
	@bash scripts/test.sh pytest

sanity: bootstrap
	@bash scripts/test.sh sanity

integration: bootstrap
	@bash scripts/test.sh integration

units: bootstrap
	@bash scripts/test.sh units

lint: bootstrap
	@bash scripts/test.sh lint

molecule: bootstrap
	@bash scripts/test.sh molecule

build: bootstrap
	@bash scripts/test.sh build

bench: bootstrap
	@$(PY) bench/run.py

servers-up: bootstrap
	@$(PY) scripts/test-servers up

servers-down:
	@$(PY) scripts/test-servers down

clean: servers-down
	rm -rf $(RUN) build dist *.tar.gz
