"""Temporary files a killed photocull left behind, and how they are swept away.

photocull writes through temporary files that a crash or ``kill -9`` can leave behind:

* :func:`photocull.media.fileops.safe_copy` (exports) and the export report:
  ``.photocull-partial-<32 hex digits><extension>`` in the destination;
* :func:`photocull.media.fileops.atomic_write` (sidecars): ``.<name>.xmp.<8 hex digits>.tmp``
  beside the photo.

Only files named exactly like that, regular files (never a link or a folder), and not
modified for :data:`STALE_AFTER` seconds are removed: a copy or a save in progress (in
this or another photocull) writes to its file all the time, so it is never taken for
litter.  Exports sweep their destination when they start; saving marks sweeps the folders
of the photos it writes sidecars for (each folder at most once a minute).
"""
from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from pathlib import Path

from photocull.media.fileops import TMP_PREFIX

log = logging.getLogger(__name__)

STALE_AFTER = 10 * 60.0  # seconds without a write
PARTIAL_COPY = re.compile(re.escape(TMP_PREFIX) + r"[0-9a-f]{32}(\.[^./\\]*)?", re.S)
SIDECAR_TEMP = re.compile(r"\.[^/\\]+\.[xX][mM][pP]\.[0-9a-f]{8}\.tmp", re.S)

_swept: dict[tuple[str, str], float] = {}  # (folder, pattern) -> when it was last swept
_swept_lock = threading.Lock()


def remove_stale(folder: os.PathLike | str, pattern: re.Pattern, *, older_than: float = STALE_AFTER,
                 now: float | None = None) -> list[Path]:
    """Remove the regular files in ``folder`` whose whole name matches ``pattern`` and that
    were last modified more than ``older_than`` seconds ago.  Returns what was removed;
    a folder that cannot be listed, or a file that cannot be removed, is left as it is."""
    now = time.time() if now is None else now
    removed = []
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if pattern.fullmatch(e.name)]
    except OSError:
        return removed
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < older_than:
                continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError as exc:
            log.debug("left %s: %s", e.path, exc)
    if removed:
        log.info("removed %d stale temporary file(s) left in %s by an interrupted photocull", len(removed), folder)
    return removed


def sweep_once_in_a_while(folder: os.PathLike | str, pattern: re.Pattern, every: float = 60.0) -> list[Path]:
    """:func:`remove_stale` unless this process swept ``folder`` for ``pattern`` in the last
    ``every`` seconds (saving marks one photo at a time does not list the folder each time)."""
    key, now = (os.path.abspath(folder), pattern.pattern), time.monotonic()
    with _swept_lock:
        if now - _swept.get(key, -every) < every:
            return []
        _swept[key] = now
    return remove_stale(folder, pattern)
