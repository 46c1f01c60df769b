"""The packaged MiniLM on CUDA gives the CPU's embeddings (float noise only), and ``auto`` picks CUDA."""

from __future__ import annotations

import numpy as np
import pytest

from memserve.embed.sentence_transformer import SentenceTransformerEmbedder
from memserve.vector._gpu import torch_cuda_available

pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not torch_cuda_available(), reason="needs PyTorch with a CUDA device")]

TEXTS = ["Alice moved to Paris in 2019.", "Who composed the symphony?", "ünïcödé and emoji 🚀", "x" * 4000]


def test_cuda_embeddings_match_cpu() -> None:
    cuda, cpu = SentenceTransformerEmbedder(device="cuda"), SentenceTransformerEmbedder(device="cpu")
    assert SentenceTransformerEmbedder(device="auto").device == "cuda"
    a, b = np.asarray(cuda.embed(TEXTS)), np.asarray(cpu.embed(TEXTS))
    assert a.shape == b.shape == (len(TEXTS), cpu.dim)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.999
