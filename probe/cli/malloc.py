"""The C allocator's arenas for a long crawl: few, so memory stays flat in the directory's size.

glibc gives each thread that contends for the allocator its own arena (up to 8 per core), and
memory freed in one arena is not reused by another: a crawl whose store writes, claims and
thread-pool hops run on many threads grew its resident memory with every endpoint (253 MiB at
10,000 endpoints, against 160 MiB at 1,000; 176 MiB with two arenas, bench/RESULTS.md). This
is the `MALLOC_ARENA_MAX=2` setting, applied from inside the process before its threads start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: glibc's mallopt() parameter for the most arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most `arenas` malloc arenas; False where there is no glibc (nothing to
    do: other allocators do not keep one arena per thread)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, or no C library found
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
