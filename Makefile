# cleanroom: quick start is `make run` and `make test` on a fresh Debian machine.
# Both install what is missing first (Debian packages with apt-get, Python test peers with pip
# into .venv/), so they work on a new machine and in CI alike.

SWIFT        ?= swift
DEB_PACKAGES := libssl-dev libsqlite3-dev libcurl4-openssl-dev pkg-config
VENV         := .venv
PYTHON       := $(VENV)/bin/python
PIP_STAMP    := $(VENV)/.installed-$(shell cat requirements-test.txt 2>/dev/null | cksum | cut -d' ' -f1)
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CLEANROOM_ARGS ?=

.PHONY: run test build release deps python-deps clean fuzz bench demo help

help:
	@echo "make run    install what is missing, build release, start cleanroomd on its embedded defaults"
	@echo "make test   install what is missing (Debian packages, Python test peers) and run every test"

# Debian packages: install only what dpkg does not already have.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Python test peers (AWS Encryption SDK, moto, XGBoost, ...) in a virtual environment.
python-deps: $(PIP_STAMP)
$(PIP_STAMP): requirements-test.txt
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	@rm -f $(VENV)/.installed-*; touch $@

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	.build/release/cleanroomd serve $(CLEANROOM_ARGS)

test: deps python-deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CLEANROOM_PYTHON="$(CURDIR)/$(PYTHON)" \
	  $(SWIFT) build --build-tests
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CLEANROOM_PYTHON="$(CURDIR)/$(PYTHON)" \
	  $(SWIFT) test --skip-build --parallel

clean:
	rm -rf .build
