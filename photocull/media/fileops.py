"""File operations that must never lose or overwrite a photo.

* :func:`safe_copy`: copy to a temporary name in the destination, flush, verify (size +
  SHA-256 against the source), then link to the final name with a call that fails if that
  name exists (so a clash can never overwrite), and remove the temporary name;
* :func:`trash`: the operating system's trash, never a permanent delete;
* :func:`outside_reason`: whether a path (a link, or a path through a linked folder)
  resolves outside a folder tree.

Links.  Exports and trashing work on the files of one source tree (the folder being culled).
A photo or companion that resolves outside that tree (``IMG_1.CR2 -> ~/.ssh/id_rsa``, a link
loop, a broken link to somewhere else) is never read, copied, moved or trashed through:
:func:`safe_copy` refuses it when told the tree (``within=``), and callers report it per
file.  A link that stays inside the tree (an album folder linking to a photo of the same
shoot) is copied as a regular file holding its target's bytes (never as a link); a move
or :func:`trash` removes the link itself, never its target.
"""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
import uuid
from pathlib import Path
from typing import Iterable

TMP_PREFIX = ".photocull-partial-"


class CopyError(Exception):
    """A copy that was refused (unsafe name) or did not verify; ``str(exc)`` is the reason."""


def sha256_of(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/"))
    if base in ("", ".", ".."):
        raise CopyError(f"refusing unsafe file name {name!r}")
    return base


def is_within(path: os.PathLike | str, folder: os.PathLike | str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (links resolved, at every level)."""
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def outside_reason(path: os.PathLike | str, tree: os.PathLike | str) -> str | None:
    """Why ``path`` must not be read as a file of the folder tree ``tree``, or None.

    None for a file whose real path (links resolved at every level) lies in ``tree``, and
    for a path that does not exist at all (the caller's own "not found").  A reason for a
    link (or a path through a linked folder) that resolves outside ``tree``, for a link
    loop, and for a broken link."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a link loop: not followed"
        if not os.path.islink(path):
            return None
        target = os.path.realpath(path)
        if not is_within(target, tree):
            return f"a broken link to {target}, outside the source folder {tree}: not followed"
        return f"a broken link (to {target}): nothing to copy"
    if not is_within(path, tree):
        return f"a link to {os.path.realpath(path)}, outside the source folder {tree}: not followed"
    return None


def _inside(dest: Path, target: Path) -> bool:
    return os.path.dirname(os.path.abspath(target)) == os.path.abspath(dest)


# open the resolved source: never a link (its last step), never blocking (a FIFO swapped in)
_OPEN_SOURCE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def safe_copy(src: Path, dest_dir: Path, final_name: str, *, within: os.PathLike | str | None = None) -> Path:
    """Copy ``src`` to ``dest_dir/final_name`` via a verified temporary file.

    ``within``: the source tree; a ``src`` that resolves outside it (see
    :func:`outside_reason`) is refused with CopyError before anything is opened.  A link
    inside it is copied as a regular file holding the target's bytes.

    Raises FileExistsError if the final name exists (never overwrites), CopyError
    for a refused source or a verification failure, OSError for I/O trouble (disk full...).
    On any failure the temporary file is removed and nothing sits under the final name.
    """
    final = dest_dir / safe_name(final_name)
    if not _inside(dest_dir, final):
        raise CopyError(f"refusing to write outside the destination: {final_name!r}")
    if os.path.lexists(final):
        raise FileExistsError(errno.EEXIST, "exists", str(final))
    if within is not None and (why := outside_reason(src, within)):
        raise CopyError(f"{Path(src).name}: {why}")
    real = os.path.realpath(src)
    if not stat.S_ISREG(os.stat(real).st_mode):  # open() on a FIFO would block for ever
        raise CopyError(f"refusing to copy {src.name}: not a regular file")
    if within is not None and not is_within(real, within):  # swapped since it was checked
        raise CopyError(f"{Path(src).name}: resolves outside the source folder {within}: not followed")
    tmp = dest_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}{src.suffix}"
    try:
        h = hashlib.sha256()
        fd = os.open(real, _OPEN_SOURCE)
        with os.fdopen(fd, "rb") as fi:
            if not stat.S_ISREG(os.fstat(fi.fileno()).st_mode):  # replaced after the check
                raise CopyError(f"refusing to copy {src.name}: not a regular file")
            with open(tmp, "xb") as fo:
                while chunk := fi.read(1 << 20):
                    h.update(chunk)
                    fo.write(chunk)
                fo.flush()
                os.fsync(fo.fileno())
        shutil.copystat(real, tmp)
        if os.path.getsize(tmp) != os.path.getsize(real) or sha256_of(tmp) != h.hexdigest():
            raise CopyError(f"verification failed for {src.name}: the copy differs from the original")
        try:
            os.link(tmp, final)  # fails if final exists: can never overwrite
            os.unlink(tmp)
        except FileExistsError:
            raise
        except OSError:
            # file systems without hard links (FAT, some network shares)
            if os.path.lexists(final):
                raise FileExistsError(errno.EEXIST, "exists", str(final))
            os.rename(tmp, final)
        return final
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def trash(paths: Iterable[os.PathLike | str]) -> list[tuple[Path, str]]:
    """Send files to the OS trash (recoverable).  photocull never deletes a photo for good.
    A link goes to the trash itself, never its target: the path is handed over as it is
    (made absolute, never resolved).  Returns (path, reason) for the files that could not
    be trashed."""
    import send2trash

    failed = []
    for p in paths:
        try:
            send2trash.send2trash(os.path.abspath(p))
        except Exception as exc:  # noqa: BLE001 - send2trash raises several types
            failed.append((Path(p), str(exc)))
    return failed


NAME_MAX = 255  # bytes in one file name: ext4, XFS, APFS, NTFS (UTF-16 units), exFAT


def fit_stem(stem: str, tails, suffix: str = "", name_max: int = NAME_MAX) -> str:
    """``stem`` cut (whole characters, from the end) so that ``stem + suffix + tail`` fits in
    ``name_max`` bytes (as the file system stores them) for every tail."""
    budget = name_max - len(os.fsencode(suffix)) - max((len(os.fsencode(t)) for t in tails), default=0)
    while stem and len(os.fsencode(stem)) > budget:
        stem = stem[:-1]
    return stem


def _tmp_stem(path: Path) -> str:
    """``path``'s name, its stem shortened when needed so that ``.{name}.{8 hex}.tmp`` fits
    in one file name (a 255-byte photo name has a 255-byte Adobe sidecar name)."""
    extra = ".01234567.tmp"
    name = path.name
    if len(os.fsencode("." + name + extra)) <= NAME_MAX:
        return name
    suffix = path.suffix if len(os.fsencode(path.suffix)) < NAME_MAX // 4 else ""
    return fit_stem(name[: len(name) - len(suffix)], ["." + extra], suffix) + suffix


def discard_temp(fd: int, tmp) -> None:
    """After a temporary-file write: close ``fd`` if still open (>= 0) and remove ``tmp`` if
    it was not renamed into place (None: it was)."""
    if fd >= 0:
        os.close(fd)
    if tmp is not None:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def fsync_folder(path: Path) -> None:
    """Make a rename into ``path``'s folder durable (POSIX: fsync the folder; elsewhere a no-op)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        dfd = os.open(Path(path).parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def atomic_write(path: os.PathLike | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a hidden temporary file beside it, fsync,
    ``os.replace`` (keeping an existing file's permissions), then fsync of the folder.  The
    one way photocull writes a file in place; the temporary file never outlives a failure."""
    path = Path(path)
    tmp = None
    fd = -1
    for _ in range(100):
        candidate = path.with_name(f".{_tmp_stem(path)}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            tmp = candidate
            break
        except FileExistsError:
            continue
    if tmp is None:
        raise OSError(f"no free temporary name beside {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            try:
                os.chmod(tmp, path.stat().st_mode & 0o7777)
            except OSError:
                pass
        os.replace(tmp, path)
        tmp = None
    finally:
        discard_temp(fd, tmp)
    fsync_folder(path)
