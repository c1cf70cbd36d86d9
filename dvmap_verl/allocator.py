"""Memory settings for a process that runs one long batch job allocating and freeing gigabytes (the
``dvmap prepare wvs`` command wraps its run in :func:`batch_memory`; the library function ``prepare_wvs`` does not).

A wide WVS prepare builds gigabytes of short-lived arrays (answer matrices, count tables, prompt text). With the
default settings each of them is fresh memory from the kernel: glibc serves every block over 32 MB with its own
``mmap`` and returns it with ``munmap`` on free (in a thread's arena, every block over 64 MB), and numpy asks for
transparent huge pages on every array over 4 MB. On a virtual machine a first touch of fresh memory is the slow part
(measured on the project's 2-core VM, a wide prepare: 1.2 million page faults, 5-9 s of system time out of 15 s;
``benchmarks/prep_bench.py``). Inside :func:`batch_memory` freed blocks stay in the process and are reused:

- glibc ``mallopt(M_MMAP_MAX, 0)``: large blocks come from the heap, which is reused after a free (glibc falls
  back to ``mmap`` by itself when the heap cannot grow); ``M_ARENA_MAX`` 1: the worker threads allocate from that
  heap too; ``M_TRIM_THRESHOLD`` high: the heap is not handed back between steps. On leaving, ``M_MMAP_MAX`` and
  ``M_TRIM_THRESHOLD`` get glibc's defaults back and ``malloc_trim(0)`` hands the memory back (on a side thread).
  Two effects outlast the block, which is why it wraps a command's process and not a library call: glibc caches
  its arena limit once a thread has asked for an arena, and any ``mallopt`` switches off its dynamic mmap
  threshold. A user who tunes malloc (``MALLOC_*`` or ``glibc.malloc`` in ``GLIBC_TUNABLES``) keeps that tuning:
  glibc is then left alone.
- numpy's huge-page advice is off (a huge-page fault zeroes 2 MB at once; on the VM above it cost more than the
  4 KB faults it saves), and set back on leaving.

Nothing changes what is computed. Other C libraries (musl, macOS) are left as they are; ``DVMAP_BATCH_MEMORY=0``
turns every setting off.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading
from typing import Iterator

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
#: glibc's documented defaults, set again on leaving (glibc has no call that reads the current values).
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEEP_BYTES = 2**31 - 1  # the largest value mallopt takes (a C int): in effect "never trim" while the job runs

_lock = threading.Lock()
_depth = 0


#: Environment variables through which a user tunes glibc's malloc (then we leave it alone).
USER_MALLOC_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                   "MALLOC_TOP_PAD_")


def user_tuned_malloc(environ=os.environ) -> bool:
    """Whether the environment tunes glibc's malloc itself."""
    return any(k in environ for k in USER_MALLOC_ENV) or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or user_tuned_malloc():
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _numpy_hugepages(enabled: bool) -> bool | None:
    """Set numpy's huge-page advice; returns the previous setting (None where numpy has no such switch)."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return bool(switch(enabled)) if switch is not None else None


@contextlib.contextmanager
def batch_memory() -> Iterator[None]:
    """Reuse freed memory inside the block (see the module's docstring); nested or concurrent uses are one."""
    global _depth
    if os.environ.get("DVMAP_BATCH_MEMORY", "1") == "0":
        yield
        return
    with _lock:
        _depth += 1
        first = _depth == 1
        libc = _glibc() if first else None
        hugepages = _numpy_hugepages(False) if first else None
        if libc is not None:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_ARENA_MAX, 1)
            libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if first:
                if libc is not None:
                    libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                    libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                    # Handing the freed memory back takes 0.1 s for a wide prepare: done on the side (a command
                    # that exits next need not wait for it).
                    threading.Thread(target=libc.malloc_trim, args=(0,), name="dvmap-malloc-trim",
                                     daemon=True).start()
                if hugepages is not None:
                    _numpy_hugepages(hugepages)


__all__ = ["batch_memory", "user_tuned_malloc"]
