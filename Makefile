# memserve developer entry points. `make serve` and `make test` are the two commands a new user needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# FAISS comes as mutually exclusive extras: gpu where an NVIDIA driver is visible, else cpu.
FAISS_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
# The CPU build of torch, installed before anything that depends on torch, so pip never pulls the CUDA
# wheels on a CPU machine. Where PyPI serves only CUDA builds, add TORCH_INDEX=<PyTorch's CPU wheel index>.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# The TypeScript SDK (clients/typescript): Node >= 20 and npm.
NPM ?= npm
TS_DIR := clients/typescript
DATA_DIR ?= memserve-data
PORT ?= 50051

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: setup setup-test setup-ts serve test test-py test-ts test-fast protos check-protos bench clean

setup: $(VENV)/.setup-done
setup-test: $(VENV)/.test-done

$(VENV)/.setup-done: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e clients/python -e ".[$(FAISS_EXTRA)]"
	touch $@

# npm ci only when node_modules is missing or older than the lock file.
setup-ts: $(TS_DIR)/node_modules/.npm-ci-done

$(TS_DIR)/node_modules/.npm-ci-done: $(TS_DIR)/package.json $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && $(NPM) ci --no-audit --no-fund
	touch $@

$(VENV)/.test-done: $(VENV)/.setup-done
	$(BIN)/python -m pip install --quiet -e ".[$(FAISS_EXTRA),test]"
	touch $@

serve: setup
	$(BIN)/memserve serve --data-dir $(DATA_DIR) --port $(PORT)

# setup-ts first: the Python suite checks the generated TypeScript too (tests/unit/test_ts_codegen.py).
test: setup-ts test-py test-ts

test-py: setup-test
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/python -m pytest -q -ra

# The node tests start `python -m memserve serve` with this interpreter (TEST_PYTHON: the server reads every
# MEMSERVE_* variable as a setting).
test-ts: setup-test setup-ts
	$(BIN)/python scripts/gen_ts_protos.py --check
	cd $(TS_DIR) && TEST_PYTHON=$(abspath $(BIN)/python) $(NPM) test

test-fast: setup-test
	$(BIN)/python -m pytest -q -m "not slow"

protos: setup-test setup-ts
	$(BIN)/python scripts/gen_protos.py
	$(BIN)/python scripts/gen_ts_protos.py

bench: setup-test
	$(BIN)/python evals/bench_ingest_query.py

clean:
	rm -rf $(VENV) .pytest_cache $(TS_DIR)/node_modules $(TS_DIR)/dist
