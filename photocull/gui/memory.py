"""Process memory settings.

glibc gives each thread that allocates its own malloc arena (up to 8 per core).  The
scorer's decode threads allocate and free a few MB per photo, and freed memory stays
fragmented in each arena.  Two arenas: a 10,000-photo GUI session (open, score, group
bursts) peaked at 1,284 MB instead of 1,362 MB in the same script, at no measurable cost
in speed (the decoders spend their time inside libjpeg, not in malloc).  After a big job
the GUI also hands the heap's free pages back (:func:`release_free_memory`).
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc <malloc.h>


def limit_malloc_arenas(n: int = 2) -> bool:
    """Cap glibc's malloc arenas (for threads started from now on).  Linux/glibc only;
    ``MALLOC_ARENA_MAX`` set by the user wins.  Returns whether the cap was set."""
    if not sys.platform.startswith("linux") or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(M_ARENA_MAX, int(n)))
    except (OSError, AttributeError):  # not glibc (musl...), or no mallopt
        return False
    log.debug("malloc arenas capped at %d: %s", n, ok)
    return ok


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``).

    glibc returns freed memory only from the top of the heap; what a finished job freed
    in the middle (a whole folder's thumbnails, tiny greys and features, freed as they
    go) stays in the process's RSS and the next job's peak comes on top of it.  Takes
    about 0.25 s per GB of free heap (run it off the GUI thread), when a big job has
    finished.  Returns whether it ran (Linux/glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True
