from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Before anything imports litellm or transformers: no network at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))


def gpu_skip_reason() -> str | None:
    """Why GPU-marked tests cannot run here, or None when a GPU search backend is usable."""
    from memserve.vector._gpu import faiss_gpu_available, gpu_backend, torch_cuda_available

    if gpu_backend() is not None:
        return None
    import faiss

    faiss_why = ("this faiss build has no GPU support (install the [gpu] extra)"
                 if not hasattr(faiss, "StandardGpuResources") else "faiss sees no GPU")
    assert not faiss_gpu_available() and not torch_cuda_available()
    return f"needs a GPU: {faiss_why}, and PyTorch sees no CUDA device"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    reason = gpu_skip_reason()
    if reason is not None:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def local_llm(tmp_path_factory):
    """The packaged Gemma 3 270M behind llama.cpp's OpenAI-compatible server (tests/support/local_llm.py),
    started once per run; skipped with the reason where llama-cpp-python or the model is not installed."""
    from tests.support.local_llm import LocalLLM, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(f"real local LLM unavailable: {reason}")
    llm = LocalLLM(tmp_path_factory.mktemp("llama") / "server.log").start()
    try:
        yield llm
    finally:
        llm.close()
