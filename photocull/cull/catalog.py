"""The catalog: a SQLite file that remembers scores, errors and the user's marks.

Scores are keyed by file identity (absolute path + size + mtime) and model id: a file
that changed on disk is scored again, an unchanged one never is.  So are the tiny greys
that burst grouping compares (:mod:`photocull.cull.bursts`, 4 KB a photo, any model):
reopening a folder groups its bursts without decoding a photo again; and so are the
groups found for a whole folder, under a digest of everything they depend on (an
unchanged folder gets them back without comparing a frame).  Marks (flag,
stars, colour label) are keyed by path only: they belong to the photo, not to a version
of it.

WAL mode and short transactions let two photocull windows share one catalog.  Each
thread gets its own connection.  A catalog file that SQLite cannot read is moved aside
(``catalog.sqlite.corrupt-<time>``, ``-1``, ``-2``... when one of that second exists: an
earlier copy is never overwritten) and a fresh one is made: scores are a cache, and
ratings live in the XMP sidecars as well.  Setting aside holds the catalog's lock (see
:meth:`Catalog.exclusive`) and checks the file again first: when two photocull processes
find the same damaged file, one sets it aside and the other opens the fresh catalog.

A catalog that cannot be used at all (a folder in its place, a read-only file system, a
folder photocull may not write to) raises :class:`CatalogError`, whose text says what is
wrong and where; so does any SQLite failure later on (disk full, file removed).

:meth:`Catalog.exclusive` is a lock shared by every photocull process and thread using
this catalog (``flock`` on ``catalog.sqlite.lock``; released by the system if the
process dies).  Saving marks (:func:`photocull.cull.marks.save_marks`) and the last step
of moving a photo (:func:`photocull.cull.export.export`) hold it, so a photo never moves
away between the check that it is there and its sidecar being written.

The schema grows by :data:`MIGRATIONS`, applied in order on opening; a catalog made by a
newer photocull is used as it is.  Use it as a context manager (``with Catalog(p) as cat``)
to close this thread's connection when done.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from photocull.model.losses import DistributionStats

log = logging.getLogger(__name__)

GROUPINGS_KEPT = 20

# The schema, as an ordered list of migrations: entry i brings a catalog from version i to
# i + 1 (``PRAGMA user_version``).  Append one to change the schema; never edit one that
# has shipped.  Each is a few SQL statements separated by ";" (see :func:`_statements`).
MIGRATIONS: list[str] = [
    # 1: scores and marks
    """
    CREATE TABLE IF NOT EXISTS scores (
        path TEXT NOT NULL,
        model_id TEXT NOT NULL,
        folder TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        probs BLOB,
        severities BLOB,
        features BLOB,
        why TEXT NOT NULL DEFAULT '',
        error TEXT,
        capture_time REAL,
        exposure_bias REAL,
        camera TEXT,
        PRIMARY KEY (path, model_id)
    );
    CREATE INDEX IF NOT EXISTS scores_folder ON scores(folder, model_id);
    CREATE TABLE IF NOT EXISTS marks (
        path TEXT PRIMARY KEY,
        folder TEXT NOT NULL,
        flag INTEGER NOT NULL DEFAULT 0,
        rating INTEGER NOT NULL DEFAULT 0,
        label TEXT,
        updated REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS marks_folder ON marks(folder);
    """,
    # 2: tiny greys for burst grouping
    """
    CREATE TABLE IF NOT EXISTS grays (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        side INTEGER NOT NULL,
        gray BLOB NOT NULL
    );
    """,
    # 3: burst groups found
    """
    CREATE TABLE IF NOT EXISTS groupings (
        signature TEXT PRIMARY KEY,
        stored REAL NOT NULL,
        result TEXT NOT NULL
    );
    """,
    # 4: marks whose sidecars are not yet known to hold them (see photocull.cull.marks)
    """
    ALTER TABLE marks ADD COLUMN sidecar_pending INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: what the analyses of the decode found (faces, focus...): a JSON object, field -> value
    """
    ALTER TABLE scores ADD COLUMN analyses TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
LOCK_TIMEOUT_S = 120.0  # a locked step (one photo of a move, one save of marks) takes well under a second

_SCORE_COLUMNS = ("path", "model_id", "folder", "size", "mtime", "probs", "severities", "features", "why",
                  "error", "capture_time", "exposure_bias", "camera", "analyses")
MAX_ANALYSES_CHARS = 4_000_000  # a stored analyses text longer than this is not read (a damaged catalog)


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def _version(con: sqlite3.Connection) -> int:
    return con.execute("PRAGMA user_version").fetchone()[0]


_ADD_COLUMN = re.compile(r"\s*ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)", re.I)


def _apply(con: sqlite3.Connection, stmt: str) -> None:
    """One migration statement, safe to run again: photocull before schema 4 set
    ``user_version`` back to 3 on every open, so a catalog it opened may already have what a
    migration adds (tables use ``IF NOT EXISTS``; a column that is there is not added again)."""
    m = _ADD_COLUMN.match(stmt)
    if m and m.group(2).lower() in {row[1].lower() for row in con.execute(f"PRAGMA table_info({m.group(1)})")}:
        return
    con.execute(stmt)


def migrate(con: sqlite3.Connection) -> int:
    """Bring the catalog on ``con`` (autocommit) up to :data:`SCHEMA_VERSION`: the missing
    :data:`MIGRATIONS` in one write transaction.  A catalog made by a newer photocull is
    left as it is.  Returns the version it was at."""
    found = _version(con)
    if found >= len(MIGRATIONS):
        return found
    con.execute("BEGIN IMMEDIATE")
    try:
        found = _version(con)  # another photocull may have migrated it while we waited
        for script in MIGRATIONS[found:]:
            for stmt in _statements(script):
                _apply(con, stmt)
        if found < len(MIGRATIONS):
            con.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    if found < len(MIGRATIONS):
        log.info("catalog schema %d -> %d", found, len(MIGRATIONS))
    return found


_INSERT_MARKS = ("INSERT OR REPLACE INTO marks (path, folder, flag, rating, label, updated, sidecar_pending) "
                 "VALUES (?,?,?,?,?,?,?)")


class CatalogError(Exception):
    """The catalog cannot be used; ``str(exc)`` says what is wrong and where, for the user."""


def _busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _explain(path: Path, exc: BaseException) -> str:
    """What is wrong with the catalog at ``path``, in words a photographer can act on."""
    reason = getattr(exc, "strerror", None) or str(exc)
    if path.is_dir():
        return f"the catalog {path} is a folder, not a catalog file: move it away or choose another photocull home folder (PHOTOCULL_HOME)"
    folder = path.parent
    if not folder.is_dir():
        return f"cannot create the catalog's folder {folder}: {reason}"
    hint = ""
    try:  # the folder's permission bits say little (root, ACLs, read-only mounts): try it
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as probe:
        hint = f" (photocull cannot write in {folder}: {probe.strerror or probe}; a read-only disk or folder?)"
    else:
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            hint = " (photocull may not read and write that file)"
        elif isinstance(exc, sqlite3.Error) and _busy(exc):
            hint = " (another program keeps it locked)"
    return f"cannot use the catalog {path}: {reason}{hint}"


def _reports_errors(method):
    """Turn SQLite's failures in a public :class:`Catalog` method into :class:`CatalogError`."""
    @functools.wraps(method)
    def wrapper(self, *a, **kw):
        try:
            return method(self, *a, **kw)
        except sqlite3.Error as exc:
            raise CatalogError(_explain(self.path, exc)) from exc
    return wrapper

FLAG_REJECT, FLAG_NONE, FLAG_PICK = -1, 0, 1


@dataclass
class StoredScore(DistributionStats):
    path: str
    size: int
    mtime: float
    probs: np.ndarray | None
    severities: np.ndarray | None
    why: str
    error: str | None
    capture_time: float | None
    exposure_bias: float | None
    camera: str | None
    analyses: dict | None = None  # field -> JSON value, as stored (None: none stored)


def _analyses(text) -> dict | None:
    if not isinstance(text, str) or len(text) > MAX_ANALYSES_CHARS:
        return None
    try:
        d = json.loads(text)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


@dataclass
class Marks:
    flag: int = FLAG_NONE
    rating: int = 0
    label: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.flag == FLAG_NONE and self.rating == 0 and not self.label


def _blob(a: np.ndarray | None, dtype) -> bytes | None:
    return None if a is None else np.asarray(a, dtype=dtype).tobytes()


def _unblob(b: bytes | None, dtype) -> np.ndarray | None:
    return None if b is None else np.frombuffer(b, dtype=dtype).copy()


def _analyses_text(found: dict | None) -> str | None:
    """What the analyses found (field -> each report's JSON text, as ``to_json`` writes it) as
    one JSON object with the reports inside it as objects, not as strings in a string: read
    back with one parse (10,000 photos on a reopen: three parses a photo fewer).  Rows written
    before hold strings; the reports' ``from_json`` take either."""
    if not found:
        return None
    nested = {k: json.loads(v) if isinstance(v, str) else v for k, v in found.items()}
    return json.dumps(nested, separators=(",", ":"), allow_nan=False)


def path_key(path) -> str:
    """The catalog's key of a path: ``Path.absolute()`` (which, unlike ``abspath``, keeps "..")."""
    s = os.fspath(path)
    if isinstance(s, str):
        if not os.path.isabs(s):
            s = os.path.join(os.getcwd(), s)
        if _plain_posix(s) or os.path.normpath(s) == s:
            return s  # already what Path.absolute() gives, without building a Path (10,000 of them on open)
    return str(Path(path).absolute())


def abspath(path) -> str:
    """``os.path.abspath``, without ``normpath`` when ``path`` is a plain absolute POSIX path
    (the window keys its 10,000 rows and their marks by it)."""
    s = os.fspath(path)
    return s if isinstance(s, str) and _plain_posix(s) else os.path.abspath(s)


_POSIX = os.sep == "/" and os.altsep is None


def _plain_posix(s: str) -> bool:
    """An absolute POSIX path that ``normpath`` leaves as it is, told in a few string
    tests (``normpath`` costs ~10 us: three calls per photo were 0.3 s of a 10,000-photo reopen)."""
    return (_POSIX and s[:1] == "/" and s[1:2] != "/" and "//" not in s and "/./" not in s and "/../" not in s
            and not s.endswith(("/", "/.", "/..")))


def _db(text: str) -> str:
    """``text`` as SQLite can store it.  A file name that is not valid UTF-8 (a card
    written by an old camera or Windows tool) reaches Python with surrogate escapes,
    which SQLite refuses; its undecodable bytes are stored as ``\\xNN`` instead.
    Rows are matched back through the keys asked for, never decoded."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _folder(key: str) -> str:
    return _db(os.path.dirname(key))  # keys are absolute and normalised (see path_key): same as Path(key).parent


class Catalog:
    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.RLock()  # the in-process half of exclusive()
        self._lock_depth = 0
        self._lock_fd = -1
        self.recovered_from: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise IsADirectoryError(21, "is a folder", str(self.path))
            deadline = time.monotonic() + 60.0
            while True:
                try:
                    self._open_checked()
                    break
                except sqlite3.OperationalError as exc:
                    # another photocull is creating or switching the file to WAL right now
                    if not _busy(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        except (OSError, sqlite3.Error) as exc:
            raise CatalogError(_explain(self.path, exc)) from exc

    # -- connections ---------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout = 30000")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            con.close()
            raise
        return con

    def _checked_connection(self) -> sqlite3.Connection:
        """A connection to a catalog that passed SQLite's quick check and is migrated;
        sqlite3.DatabaseError (not Operational) when the file is damaged."""
        con = self._connect()
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()  # fetch all: no read left open
            if rows != [("ok",)]:
                raise sqlite3.DatabaseError(rows[0][0] if rows else "quick_check failed")
            migrate(con)
        except BaseException:
            con.close()
            raise
        return con

    def _open_checked(self) -> None:
        # busy or locked (another photocull is writing): the caller waits and tries again.
        # Any other error may come from another photocull setting a damaged catalog aside at
        # this moment (its -wal and -shm moving under our open: "disk I/O error"): the file is
        # looked at again holding the lock, when nobody moves it.  Only a file damaged then
        # (DatabaseError) is set aside; no permission or a full disk (OperationalError) never is
        con = None
        first: sqlite3.OperationalError | None = None
        try:
            con = self._checked_connection()
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise
            first = exc
        except sqlite3.DatabaseError:  # "file is not a database", "malformed", quick_check
            pass
        if con is None:
            try:
                with self.exclusive():
                    try:
                        # another photocull may have set it aside and made a fresh one meanwhile
                        con = self._checked_connection()
                    except sqlite3.OperationalError:
                        raise
                    except sqlite3.DatabaseError as exc:
                        aside = self._set_aside()
                        log.error("catalog %s is damaged (%s); moved aside to %s and starting afresh",
                                  self.path, exc, aside)
                        self.recovered_from = aside
                        con = self._connect()
                        migrate(con)
            except CatalogError:  # no lock (only the lock raises it here)
                if first is not None:  # a folder we cannot write in: say what SQLite said
                    raise first from None
                raise
        self._local.con = con

    def _set_aside(self) -> Path:
        """Move the damaged catalog (and its -wal, -shm) to a name no earlier copy has;
        called with the lock held.  Returns the new name."""
        base = f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
        for i in range(10_000):
            aside = self.path.with_name(base if i == 0 else f"{base}-{i}")
            if any(os.path.lexists(f"{aside}{ext}") for ext in ("-wal", "-shm")):
                continue
            try:  # claim the name: never replace a file someone else made
                os.close(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                continue
            break
        else:
            raise OSError(f"no free name to set the damaged catalog {self.path} aside")
        # its -wal and -shm first: once the main file has gone, another photocull may make a
        # fresh catalog (and its -wal) there at any moment, and those must stay where they are
        for ext in ("-wal", "-shm"):
            try:
                os.replace(f"{self.path}{ext}", f"{aside}{ext}")
            except FileNotFoundError:  # none, or another photocull's SQLite removed it on closing
                pass
        try:
            os.replace(self.path, aside)  # onto the empty file just claimed
        except FileNotFoundError:  # gone meanwhile: nothing to keep
            os.unlink(aside)
        return aside

    @contextlib.contextmanager
    def exclusive(self) -> Iterator["Catalog"]:
        """Hold the catalog's lock: one holder at a time among every photocull process and
        thread using this catalog.  Re-entrant in one thread.  Holders take it before any
        SQLite transaction, never inside one.  :class:`CatalogError` if the lock file
        cannot be made."""
        with self._lock:
            if self._lock_depth == 0:
                self._lock_fd = self._acquire_file_lock()
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    fd, self._lock_fd = self._lock_fd, -1
                    os.close(fd)  # closing the file releases the lock

    def _acquire_file_lock(self) -> int:
        lock_path = f"{self.path}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CatalogError(f"cannot lock the catalog {self.path}: {exc.strerror or exc} ({lock_path})") from exc
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        try:
            try:
                import fcntl

                def try_lock() -> bool:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        return True
                    except BlockingIOError:
                        return False
            except ImportError:  # Windows
                import msvcrt

                def try_lock() -> bool:
                    try:
                        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                        return True
                    except PermissionError:  # held by another process
                        return False
            while not try_lock():
                if time.monotonic() > deadline:  # (the fd is closed below)
                    raise CatalogError(f"the catalog {self.path} has been locked by another photocull for over "
                                       f"{LOCK_TIMEOUT_S:g} s (a stopped or stuck export?); nothing was written")
                time.sleep(0.02)
        except OSError as exc:  # a file system without locks (some network shares): go on, as before locks
            log.warning("cannot lock the catalog %s (%s): two photocull processes are not kept apart", self.path, exc)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @property
    def con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = self._local.con = self._connect()
            except sqlite3.Error as exc:
                raise CatalogError(_explain(self.path, exc)) from exc
        return con

    def close(self) -> None:
        """Close this thread's connection (another use opens a new one)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, et, ev, tb) -> None:
        self.close()

    # -- scores --------------------------------------------------------------------
    @_reports_errors
    def store_results(self, results: Iterable, model_id: str) -> None:
        """Store ScoreResults (scored or failed) for ``model_id`` in one transaction."""
        rows = []
        for r in results:
            try:
                st = os.stat(r.path)
            except OSError:
                continue  # gone since it was scored: nothing to remember
            ex = r.exif
            rows.append((
                _db(path_key(r.path)), model_id, _folder(path_key(r.path)), st.st_size, st.st_mtime,
                _blob(r.probs, np.float32), _blob(r.severities, np.float32), _blob(r.features, np.float16),
                r.why or "", r.error, ex.capture_time, ex.exposure_bias, ex.camera,
                _analyses_text(getattr(r, "analyses_json", None)),
            ))
        if not rows:
            return
        with self._tx() as con:
            con.executemany(f"INSERT OR REPLACE INTO scores ({','.join(_SCORE_COLUMNS)}) "
                            f"VALUES ({','.join('?' * len(_SCORE_COLUMNS))})", rows)

    @_reports_errors
    def lookup(self, paths: Sequence, model_id: str) -> dict[str, StoredScore]:
        """Stored scores for the paths whose size and mtime still match; keyed by absolute path."""
        return self.lookup_models(paths, (model_id,))[0]

    @_reports_errors
    def lookup_models(self, paths: Sequence, model_ids: Sequence[str | None]) -> list[dict[str, StoredScore]]:
        """:meth:`lookup` for each of ``model_ids`` (None: nothing), each file stat'ed once."""
        stats = {}
        for k in map(path_key, paths):
            try:
                st = os.stat(k)
                stats[_db(k)] = (k, st.st_size, st.st_mtime)
            except OSError:
                pass
        folders = {_folder(k) for k, _, _ in stats.values()}
        cols = "path,size,mtime,probs,severities,why,error,capture_time,exposure_bias,camera,analyses"
        found = []
        for model_id in model_ids:
            out: dict[str, StoredScore] = {}
            for folder in folders if model_id is not None else ():
                for row in self.con.execute(f"SELECT {cols} FROM scores WHERE folder=? AND model_id=?",
                                            (folder, model_id)):
                    k, size, mtime = stats.get(row[0], (None, None, None))
                    if k is not None and (size, mtime) == (row[1], row[2]):
                        out[k] = StoredScore(k, row[1], row[2], _unblob(row[3], np.float32),
                                             _unblob(row[4], np.float32), row[5], row[6], row[7], row[8], row[9],
                                             _analyses(row[10]))
            found.append(out)
        return found

    @_reports_errors
    def store_analyses(self, items: Iterable[tuple], model_id: str) -> None:
        """Add what the analyses found (``(path, {field: JSON value})``, or ``(path, found,
        why)`` to replace the stored reasons too) to the stored scores of ``model_id`` (a folder
        scored before an analysis existed: its scores are kept)."""
        rows = [(_analyses_text(it[1]), it[2] if len(it) > 2 else None, _db(path_key(it[0])), model_id)
                for it in items]
        if rows:
            with self._tx() as con:
                con.executemany("UPDATE scores SET analyses=?, why=COALESCE(?, why) WHERE path=? AND model_id=?",
                                rows)

    @_reports_errors
    def features(self, paths: Sequence, model_id: str) -> dict[str, np.ndarray]:
        by_db = {_db(k): k for k in map(path_key, paths)}
        keys = list(by_db)
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT path, features FROM scores WHERE model_id=? AND features IS NOT NULL AND path IN ({','.join('?' * len(chunk))})"
            for k, b in self.con.execute(q, (model_id, *chunk)):
                out[by_db[k]] = _unblob(b, np.float16).astype(np.float32)
        return out

    @_reports_errors
    def any_features(self, paths: Sequence, dtype=np.float32, dim: int | None = None,
                     model_id: str | None = None) -> dict[str, np.ndarray]:
        """Backbone features stored under any model (they only depend on the backbone), of
        ``dim`` values each; without ``dim``, of the size most photos have (models with other
        backbones store other features: only features of one kind can be compared); with
        ``model_id``, those stored under that model only.
        ``dtype=np.float16`` gives them as stored, at half the memory."""
        by_db = {_db(k): k for k in map(path_key, paths)}
        keys = list(by_db)
        found: dict[int, dict[str, bytes]] = {}  # feature bytes -> {path: blob}
        size_sql = "" if dim is None else f" AND length(features) = {2 * int(dim)}"
        model_sql, model_arg = ("", []) if model_id is None else (" AND model_id = ?", [model_id])
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = (f"SELECT path, features, size, mtime FROM scores WHERE features IS NOT NULL{size_sql}{model_sql} "
                 f"AND path IN ({','.join('?' * len(chunk))})")
            for k, b, size, mtime in self.con.execute(q, [*model_arg, *chunk]):
                k = by_db[k]
                try:
                    st = os.stat(k)
                except OSError:
                    continue
                if (st.st_size, st.st_mtime) == (size, mtime):
                    found.setdefault(len(b), {})[k] = b
        if not found:
            return {}
        rows = max(found.values(), key=len)  # (with dim: the one size asked for)
        return {k: _unblob(b, np.float16).astype(dtype, copy=False) for k, b in rows.items()}

    # -- tiny greys (burst grouping) -------------------------------------------------
    @_reports_errors
    def tiny_gray(self, path, side: int) -> np.ndarray | None:
        """The stored ``side`` x ``side`` uint8 grey of ``path`` if the file is unchanged
        (same size and mtime) since it was stored; else None."""
        k = path_key(path)
        try:
            st = os.stat(k)
        except OSError:
            return None
        row = self.con.execute("SELECT size, mtime, side, gray FROM grays WHERE path=?", (_db(k),)).fetchone()
        if row is None or (row[0], row[1], row[2]) != (st.st_size, st.st_mtime, side) or len(row[3]) != side * side:
            return None
        return np.frombuffer(row[3], dtype=np.uint8).reshape(side, side)

    @_reports_errors
    def store_tiny_grays(self, items: Iterable[tuple[object, np.ndarray]]) -> None:
        """Remember ``(path, square uint8 grey)`` pairs (one transaction), under the
        files' current size and mtime; files gone meanwhile are skipped."""
        rows = []
        for p, g in items:
            g = np.ascontiguousarray(g, dtype=np.uint8)
            if g.ndim != 2 or g.shape[0] != g.shape[1]:
                raise ValueError(f"a tiny grey is square, not {g.shape}")
            k = path_key(p)
            try:
                st = os.stat(k)
            except OSError:
                continue
            rows.append((_db(k), st.st_size, st.st_mtime, g.shape[0], g.tobytes()))
        if not rows:
            return
        with self._tx() as con:
            con.executemany("INSERT OR REPLACE INTO grays (path, size, mtime, side, gray) VALUES (?,?,?,?,?)", rows)

    @_reports_errors
    def carry_identity(self, items: Iterable[tuple[object, tuple[int, float]]]) -> int:
        """After a rewrite that kept the pixels (marks written into the file's XMP): for each
        ``(path, (old size, old mtime))``, what was stored under the old identity (scores,
        analyses, the tiny grey) is kept under the file's current size and mtime, so it is
        not scored again.  Returns the rows carried."""
        rows = []
        for p, (size, mtime) in items:
            k = path_key(p)
            try:
                st = os.stat(k)
            except OSError:
                continue
            rows.append((st.st_size, st.st_mtime, _db(k), size, mtime))
        n = 0
        if rows:
            with self._tx() as con:
                for table in ("scores", "grays"):
                    cur = con.executemany(f"UPDATE {table} SET size=?, mtime=? WHERE path=? AND size=? AND mtime=?",
                                          rows)
                    n += max(cur.rowcount, 0)
        return n

    # -- burst groups found (whole folders) --------------------------------------------
    @_reports_errors
    def grouping(self, signature: str) -> list | None:
        """The groups stored for :func:`photocull.cull.bursts.grouping_signature`, or None."""
        row = self.con.execute("SELECT result FROM groupings WHERE signature=?", (signature,)).fetchone()
        if row is None:
            return None
        try:
            out = json.loads(row[0])
        except ValueError:
            return None
        return out if isinstance(out, list) else None

    @_reports_errors
    def store_grouping(self, signature: str, result: list) -> None:
        """Remember a folder's groups (JSON-able rows); only the newest GROUPINGS_KEPT stay."""
        text = json.dumps(result)
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO groupings (signature, stored, result) VALUES (?,?,?)",
                        (signature, time.time(), text))
            con.execute("DELETE FROM groupings WHERE signature NOT IN "
                        "(SELECT signature FROM groupings ORDER BY stored DESC, rowid DESC LIMIT ?)", (GROUPINGS_KEPT,))

    # -- marks ---------------------------------------------------------------------
    @_reports_errors
    def get_marks(self, paths: Sequence) -> dict[str, Marks]:
        """The marks stored for ``paths``, keyed by :func:`path_key`.  Consumers read marks
        through :func:`photocull.cull.marks.load_marks`, which adds the sidecars' say."""
        return {k: m for k, (m, _) in self.stored_marks(paths).items()}

    @_reports_errors
    def sidecars_pending(self, paths: Sequence) -> set[str]:
        """The :func:`path_key` of each of ``paths`` whose marks were stored but whose
        sidecars are not known to hold them yet (a save interrupted, or a sidecar that
        could not be written): for these the catalog's marks win."""
        return {k for k, (_, pending) in self.stored_marks(paths).items() if pending}

    @_reports_errors
    def stored_marks(self, paths: Sequence) -> dict[str, tuple[Marks, bool]]:
        """(marks, sidecar pending) stored for ``paths``, keyed by :func:`path_key`: one
        query per folder for :meth:`get_marks` and :meth:`sidecars_pending` at once."""
        by_db = {_db(k): k for k in map(path_key, paths)}
        out = {}
        for folder in {_folder(k) for k in by_db.values()}:
            for path, flag, rating, label, pending in self.con.execute(
                    "SELECT path, flag, rating, label, sidecar_pending FROM marks WHERE folder=?", (folder,)):
                if path in by_db:
                    out[by_db[path]] = (Marks(flag, rating, label), bool(pending))
        return out

    def set_marks(self, path, marks: Marks) -> None:
        self.set_many_marks([(path, marks)])

    @_reports_errors
    def set_many_marks(self, items: Iterable[tuple[object, Marks]], *, sidecar_pending: bool = False) -> None:
        """Store marks (one transaction).  ``sidecar_pending``: their sidecars are about to
        be written (:meth:`sidecars_written` says when they are)."""
        now = time.time()
        rows = [(_db(path_key(p)), _folder(path_key(p)), int(m.flag), int(m.rating), m.label, now, int(sidecar_pending))
                for p, m in items]
        with self._tx() as con:
            con.executemany(_INSERT_MARKS, rows)

    @_reports_errors
    def sidecars_written(self, paths: Iterable) -> None:
        """The sidecars of ``paths`` now hold the marks stored for them."""
        keys = [(_db(path_key(p)),) for p in paths]
        if keys:
            with self._tx() as con:
                con.executemany("UPDATE marks SET sidecar_pending=0 WHERE path=?", keys)

    @_reports_errors
    def rename_path(self, old, new) -> None:
        """Keep marks and scores when photocull itself moves a file."""
        o, n = _db(path_key(old)), path_key(new)
        with self._tx() as con:
            con.execute("UPDATE OR REPLACE marks SET path=?, folder=? WHERE path=?", (_db(n), _folder(n), o))
            con.execute("UPDATE OR REPLACE scores SET path=?, folder=? WHERE path=?", (_db(n), _folder(n), o))
            con.execute("UPDATE OR REPLACE grays SET path=? WHERE path=?", (_db(n), o))

    # -- helpers -------------------------------------------------------------------
    class _Tx:
        def __init__(self, con):
            self.con = con

        def __enter__(self):
            self.con.execute("BEGIN IMMEDIATE")
            return self.con

        def __exit__(self, et, ev, tb):
            if et is None:
                try:
                    self.con.execute("COMMIT")
                    return False
                except sqlite3.Error:
                    self._rollback()
                    raise
            self._rollback()
            return False

        def _rollback(self):
            try:
                self.con.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite already rolled back (disk full, I/O error...)
                pass

    def _tx(self):
        return Catalog._Tx(self.con)
