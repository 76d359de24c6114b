# keras-vae: `make test` and `make train` set up .venv (pinned by constraints.txt) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test train benchmarks clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

RUN_DIR := runs/sprites_quick
MODEL_NAME := sprites_vae

# Train on the procedural sprites (evaluates at the end), export the decoder for TF Serving and
# TFLite into saved_models/, and draw a sample grid from the exported SavedModel.
train: $(STAMP)
	$(BIN)/keras-vae train --config configs/sprites_quick.yaml --run-dir $(RUN_DIR)
	$(BIN)/keras-vae export $(RUN_DIR) --name $(MODEL_NAME) --base-dir saved_models --tflite --with-encoder
	$(BIN)/keras-vae sample saved_models/$(MODEL_NAME) -n 36 --seed 0 --out saved_models/$(MODEL_NAME)/samples.png

clean:
	rm -rf runs .pytest_cache
