# memserve developer entry points. `make serve` and `make test` are the two commands a new user needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# An NVIDIA driver is visible when nvidia-smi is on PATH: then FAISS and torch come with CUDA, else CPU-only.
HAS_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 1)
# FAISS comes as mutually exclusive extras: gpu where an NVIDIA driver is visible, else cpu.
FAISS_EXTRA ?= $(if $(HAS_NVIDIA),gpu,cpu)
# torch is installed first, before anything that depends on it. PyPI's Linux torch wheel depends on the CUDA
# packages (several GB), so on a machine without an NVIDIA driver PyTorch's CPU wheel index is added as an
# *extra* index: pip then prefers its `2.13.0+cpu` build. scripts/torch_index.py adds it only if it answers,
# so where it cannot be reached (an offline mirror that serves a CPU wheel itself) pip uses the default index
# without retrying the dead one for every dependency. Override with TORCH_INDEX=<another index>, or
# TORCH_INDEX= to use only the default index.
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(if $(HAS_NVIDIA),,$(TORCH_CPU_INDEX))
# The TypeScript SDK (clients/typescript): Node >= 20 and npm.
NPM ?= npm
TS_DIR := clients/typescript
DATA_DIR ?= memserve-data
PORT ?= 50051

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: setup setup-test setup-ts serve test test-py test-ts test-fast lint lint-counts protos check-protos bench clean

setup: $(VENV)/.setup-done
setup-test: $(VENV)/.test-done

$(VENV)/.setup-done: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $$($(BIN)/python scripts/torch_index.py "$(TORCH_INDEX)")
	$(if $(HAS_NVIDIA),,$(BIN)/python scripts/check_torch.py)
	$(BIN)/python -m pip install --quiet -e clients/python -e ".[$(FAISS_EXTRA)]"
	touch $@

# npm ci only when node_modules is missing or older than the lock file.
setup-ts: $(TS_DIR)/node_modules/.npm-ci-done

$(TS_DIR)/node_modules/.npm-ci-done: $(TS_DIR)/package.json $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && $(NPM) ci --no-audit --no-fund
	touch $@

# The llm-local extra (a real LLM for tests/integration/test_local_llm.py) builds llama.cpp from source: ~10-25
# min on 2 cores the first time, seconds once pip has cached the wheel. Where it cannot be built (no compiler),
# the tests that need it are skipped with that reason and the rest of `make test` runs as before.
$(VENV)/.test-done: $(VENV)/.setup-done
	$(BIN)/python -m pip install --quiet -e ".[$(FAISS_EXTRA),test]"
	$(BIN)/python -m pip install --quiet -e ".[llm-local]" || \
		echo "warning: llama-cpp-python could not be installed; the real-LLM tests will be skipped"
	touch $@

serve: setup
	$(BIN)/memserve serve --data-dir $(DATA_DIR) --port $(PORT)

# setup-ts first: the Python suite checks the generated TypeScript too (tests/unit/test_ts_codegen.py).
test: setup-ts test-py test-ts

test-py: setup-test lint
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/python -m pytest -q -ra

# Style (ruff), types (mypy: files, strictness and exemptions in pyproject.toml) and code used nowhere (vulture,
# with vulture_whitelist.py). Any finding fails: `make test` runs this before pytest.
LINT_PATHS := memserve clients/python tests evals scripts
lint: setup-test
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/vulture

# The finding counts of the three tools (0 0 0 on a clean tree), for closing notes and merges; never fails.
lint-counts: setup-test
	@$(BIN)/python scripts/lint_counts.py

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
