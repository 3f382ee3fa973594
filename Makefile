# webinfra.stack developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(VENV)/collections
# Debian release the molecule scenarios boot: 12 (bookworm) or 13 (trixie).
DISTRO ?= 12
export WEBINFRA_DISTRO := $(DISTRO)
export WEBINFRA_IMAGE ?= $(or $(WEBINFRA_IMAGE_DEBIAN$(DISTRO)),webinfra/systemd-debian:$(DISTRO))
# Scenario for `make molecule` and `make converge`.
SCENARIO ?= smoke

.PHONY: help setup venv docker aptproxy images lint unit sanity build galaxy min-ansible molecule converge verify \
        test e2e day2 demo demo-down bench bench-seed clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

setup: venv docker aptproxy images ## Install everything the tests and the lab need

venv: ## Create .venv with the pinned controller tools, and .venv-min with the oldest ansible-core
	@scripts/setup-venv.sh

docker: ## Install and start the Docker engine when needed
	@scripts/setup-docker.sh

aptproxy: ## Install and start the caching apt proxy the test containers use
	@scripts/setup-apt-proxy.sh

images: docker ## Build the Debian 12 and 13 systemd base images (cached)
	@scripts/build-images.sh 12 13

lint: venv ## yamllint, ansible-lint (production profile), ruff, mypy
	@$(VENV)/bin/python -m tools.run_tests lint

unit: venv ## Python unit tests (no containers)
	@$(VENV)/bin/python -m tools.run_tests unit

sanity: venv ## ansible-test sanity on the local Python
	@$(VENV)/bin/python -m tools.run_tests sanity

build: venv ## Build the collection and syntax-check it from a consumer project
	@$(VENV)/bin/python -m tools.run_tests build

galaxy: venv ## Build the collection and import it with galaxy-importer (no error or warning allowed)
	@$(VENV)/bin/python -m tools.run_tests galaxy

min-ansible: setup ## Syntax check and smoke scenario with the oldest ansible-core claimed (.venv-min)
	@$(VENV)/bin/python -m tools.run_tests min-ansible

molecule: setup ## Run one scenario: make molecule SCENARIO=haproxy [DISTRO=13]
	molecule test -s $(SCENARIO)

converge: setup ## Converge one scenario and keep it: make converge SCENARIO=haproxy
	molecule converge -s $(SCENARIO)

verify: venv ## Run the tests of a converged scenario: make verify SCENARIO=haproxy
	molecule verify -s $(SCENARIO)

test: setup ## Run every test: lint, unit, sanity, build, galaxy, min-ansible, all molecule scenarios
	@$(VENV)/bin/python -m tools.run_tests all

e2e: venv ## End-to-end tests against the lab (make demo first; WEBINFRA_E2E_FAILURE=1 adds the failure tests)
	$(VENV)/bin/pytest tests/e2e --target lab -v

day2: venv ## Grow and shrink the live lab under load: web-03, then lb-03 and the VIP holder (make demo first; ~40 min)
	WEBINFRA_E2E_DAY2=1 $(VENV)/bin/pytest tests/e2e/day2 --target lab -v -s -p no:cacheprovider

demo: setup ## Bring up the lab and deploy the whole stack into it
	@$(VENV)/bin/python -m tools.lab up

demo-down: venv ## Remove the lab's containers and network
	@$(VENV)/bin/python -m tools.lab down

bench: setup ## Benchmark the lab (paths, converge, memory, failures); report in .cache/bench/
	@$(VENV)/bin/python tools/bench.py $(BENCH_ARGS)

bench-seed: setup ## Seed a replica of a 1 GB primary by backup and by dump under writes (mysql scenario, ~10 min); figures in .cache/bench/
	WEBINFRA_MYSQL_VERIFY=bench $(VENV)/bin/python -m tools.run_tests molecule --scenario mysql

clean: demo-down ## Remove the lab, build artefacts and the virtualenv
	rm -rf $(VENV) .venv-min .cache *.tar.gz
