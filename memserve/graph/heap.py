"""Give freed heap memory back to the operating system after the graph's bulk steps.

Restoring a graph from columns and building its PPR matrix allocate and free many temporary arrays of a few
hundred KB to a few MB (sorts, groupings, CSR assembly). glibc serves blocks of that size from the heap once
its mmap threshold has grown past them, and keeps what is freed there: on a 100k-phrase graph that was ~320
bytes of resident memory per node that no object used any more (evals/bench_graph_scale.py; tracemalloc saw
253 B/node of live Python and NumPy memory against 1,067 B/node of RSS growth). ``malloc_trim(0)`` returns it.
Larger graphs gain less (their temporaries are big enough to be mmapped and unmapped on free).

Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from functools import cache

_lock = threading.Lock()


@cache
def _malloc_trim():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> bool:
    """Return freed heap pages to the OS (glibc ``malloc_trim(0)``); False where that is not available. The
    foreign call releases the GIL; one at a time, since concurrent trims would only contend for the arenas."""
    trim = _malloc_trim()
    if trim is None:
        return False
    with _lock:
        trim(0)
    return True
