"""Vector indexes: one per namespace, behind the narrow ``VectorIndex`` protocol.

``ExactIndex`` (NumPy brute force) is the reference; ``FaissIndex`` (flat, then HNSW) is what the server runs.
"""

from memserve.vector._gpu import faiss_gpu_available, gpu_available, gpu_backend
from memserve.vector.base import Hits, IndexFileError, VectorIndex
from memserve.vector.exact import ExactIndex
from memserve.vector.factory import KINDS, load_index, make_index
from memserve.vector.faiss_index import FaissIndex

__all__ = [
    "KINDS",
    "ExactIndex",
    "FaissIndex",
    "Hits",
    "IndexFileError",
    "VectorIndex",
    "faiss_gpu_available",
    "gpu_available",
    "gpu_backend",
    "load_index",
    "make_index",
]
