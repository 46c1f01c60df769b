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
