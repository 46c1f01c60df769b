# faiss, typed as Any for mypy (pyproject.toml: mypy_path = "typings" is searched before site-packages).
# The __init__.pyi that faiss ships describes the SWIG-generated C++ signatures, not the numpy-friendly wrappers
# faiss installs at import time (remove_ids(array), IDSelectorBitmap(bits), SearchParametersHNSW, ...), so
# checking against it reports working calls as errors. tests/unit/test_vector_*.py exercise every call instead.
from typing import Any

def __getattr__(name: str) -> Any: ...
