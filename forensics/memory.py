"""Handing freed memory back to the operating system between the phases of a large case.

Why: Arrow's memory pool (mimalloc) and glibc's heap keep pages a process has freed, so that it can reuse
them; a step that decoded a million exchanges and then dropped them still holds their gigabytes, and the
next phase's peak lands on top of them (measured in ``benchmarks/bench_memory.py``: ``forensics run``'s
preparation held 3.4 GiB of a freed join while it loaded the model and verified the store). Releasing is
cheap and never changes a result; on a platform without glibc it does only what Arrow can.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util


def release_unused_memory() -> None:
    """Return the pages Arrow's pool and the C heap keep for reuse to the operating system."""
    with contextlib.suppress(ImportError):
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).malloc_trim(0)
