# keras-vae: `make test` and `make train` set up .venv (pinned by constraints.txt) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install browser test smoke-newest train benchmarks clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

# The studio's browser tests drive Debian's chromium through chromedriver (selenium is in the test extra), and the
# docs' shell examples call curl. Missing ones are installed with apt-get (CI runs as root); elsewhere without root,
# the browser tests skip.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
SYSTEM_PACKAGES = $(if $(wildcard $(CHROMIUM)),,chromium) $(if $(wildcard $(CHROMEDRIVER)),,chromium-driver) \
	$(if $(shell command -v curl),,curl)

browser:
	@if [ -z "$(strip $(SYSTEM_PACKAGES))" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); \
	else echo "make browser: no root to install $(strip $(SYSTEM_PACKAGES)); the studio's browser tests will skip"; fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# The newest Python the pinned stack supports (setup.cfg python_requires): a fresh venv, the pinned install and
# .ci/smoke.py (build, fit, export to SavedModel and TFLite, sample). Skipped with a note where it is missing.
# (pyenv's python3.13 shim answers only where 3.13 is selected, so its install folder is tried too.)
NEWEST_PYTHON ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)
NEWEST_VENV := .venv-newest

smoke-newest:
	@if [ -z "$(NEWEST_PYTHON)" ]; then echo "smoke-newest: no Python 3.13 found, skipped"; exit 0; fi; \
	set -e; test -x $(NEWEST_VENV)/bin/python || $(NEWEST_PYTHON) -m venv $(NEWEST_VENV); \
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"; \
	$(NEWEST_VENV)/bin/python -m pip install --quiet -c constraints.txt -e .; \
	$(NEWEST_VENV)/bin/python .ci/smoke.py

RUN_DIR := runs/sprites_quick
MODEL_NAME := sprites_vae

# Train on the procedural sprites (evaluates at the end, fits a gmm sampler), export the decoder for TF Serving and
# TFLite into saved_models/, and draw sample grids from the exported SavedModel: with the prior and with the gmm.
train: $(STAMP)
	$(BIN)/keras-vae train --config configs/sprites_quick.yaml --run-dir $(RUN_DIR)
	$(BIN)/keras-vae export $(RUN_DIR) --name $(MODEL_NAME) --base-dir saved_models --tflite --with-encoder
	$(BIN)/keras-vae sample saved_models/$(MODEL_NAME) -n 36 --seed 0 --out saved_models/$(MODEL_NAME)/samples_prior.png
	$(BIN)/keras-vae sample saved_models/$(MODEL_NAME) -n 36 --seed 0 --sampler gmm --out saved_models/$(MODEL_NAME)/samples.png

clean:
	rm -rf runs .pytest_cache .venv-newest
