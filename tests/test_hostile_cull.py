"""Issue 2/7, the cull room and its commands: unusable and damaged catalogs, marks read the
same way everywhere, rating while a move runs, what a killed photocull leaves behind, and
the smaller export cases.  Every hostile file is made here; processes are killed at hooked
points, never at a guessed moment."""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, make_photo
from photocull.cli import main
from photocull.config import AppPaths
from photocull.cull import export as cull_export
from photocull.cull import leftovers
from photocull.cull.catalog import Catalog, CatalogError, Marks, path_key
from photocull.cull.export import Candidate, ExportError, export
from photocull.cull.marks import load_marks, save_marks
from photocull.media.fileops import TMP_PREFIX
from photocull.media.sidecar import read_sidecar, write_sidecar

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
OLD = time.time() - 3600  # an hour ago: stale by any measure


@pytest.fixture
def fast(monkeypatch):
    """The CLI's model is a tiny conv net: these tests are about files and marks, not scores."""
    from reliability_helpers import fast_model

    m = fast_model()
    monkeypatch.setattr("photocull.model.registry.resolve_lazy", lambda spec, paths: m)
    return m


def shoot(folder: Path, n: int, size=(64, 48)) -> list[Path]:
    return [make_photo(folder / f"IMG_{i}.jpg", seed=i, size=size) for i in range(n)]


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def csv_rows(text: str) -> list[str]:
    return sorted(line for line in text.splitlines()[1:] if line)


# ----------------------------------------------------------------------------- 6. unusable catalog

READ_ONLY = Path("/sys/photocull-catalog.sqlite")  # sysfs: nobody, root included, creates files there


def _read_only_fs() -> bool:
    try:
        READ_ONLY.parent.joinpath(".photocull-probe").touch()
    except OSError:
        return True
    READ_ONLY.parent.joinpath(".photocull-probe").unlink()
    return False


needs_read_only_fs = pytest.mark.skipif(not READ_ONLY.parent.is_dir() or not _read_only_fs(),
                                        reason="no read-only file system to put a catalog on")


def test_a_folder_in_place_of_the_catalog_is_a_clear_error(app_paths):
    app_paths.catalog_path.mkdir()
    with pytest.raises(CatalogError) as err:
        Catalog(app_paths.catalog_path)
    assert str(app_paths.catalog_path) in str(err.value) and "folder" in str(err.value)


@needs_read_only_fs
def test_a_catalog_on_a_read_only_file_system_is_a_clear_error():
    with pytest.raises(CatalogError) as err:
        Catalog(READ_ONLY)
    assert str(READ_ONLY) in str(err.value) and "cannot write in /sys" in str(err.value)
    with pytest.raises(CatalogError, match="cannot create the catalog's folder"):
        Catalog(READ_ONLY.parent / "photocull" / "catalog.sqlite")


def test_a_catalog_that_cannot_be_written_any_more_refuses_marks_before_any_sidecar(app_paths, tmp_path):
    photos = shoot(tmp_path / "s", 2)
    with Catalog(app_paths.catalog_path) as cat:
        cat.con.execute("PRAGMA query_only = 1")  # every write now fails, as on a disk gone read-only
        with pytest.raises(CatalogError, match="readonly"):
            save_marks(cat, [(p, Marks(1, 3), [], None) for p in photos])
    assert not list((tmp_path / "s").glob("*.xmp"))  # nothing half-saved


def _unusable(kind: str, app_paths: AppPaths, monkeypatch) -> Path:
    if kind == "folder":
        app_paths.catalog_path.mkdir()
        return app_paths.catalog_path
    if not READ_ONLY.parent.is_dir() or not _read_only_fs():
        pytest.skip("no read-only file system to put a catalog on")
    monkeypatch.setattr(AppPaths, "catalog_path", property(lambda self: READ_ONLY))
    return READ_ONLY


@pytest.mark.parametrize("kind", ["folder", "read-only"])
def test_score_without_a_usable_catalog_warns_once_and_scores(kind, app_paths, tmp_path, capsys, fast, monkeypatch):
    d = tmp_path / "s"
    shoot(d, 4)
    rc, expected, _ = run(capsys, "score", d, "--format", "csv", "-q", "--no-cache")
    assert rc == 0
    where = _unusable(kind, app_paths, monkeypatch)
    rc, out, err = run(capsys, "score", d, "--format", "csv", "-q")
    assert rc == 0 and "Traceback" not in err
    assert csv_rows(out) == csv_rows(expected)  # the same scores, the same CSV
    assert err.count(str(where)) == 1 and "scoring without the catalog" in err


@pytest.mark.parametrize("kind", ["folder", "read-only"])
def test_rate_without_a_usable_catalog_saves_nothing_and_says_so(kind, app_paths, tmp_path, capsys, fast, monkeypatch):
    photos = shoot(tmp_path / "s", 2)
    where = _unusable(kind, app_paths, monkeypatch)
    rc, out, err = run(capsys, "rate", "--stars", "4", *photos)
    assert rc == 2 and "Traceback" not in err
    assert str(where) in err and "no marks were saved" in err
    assert not list((tmp_path / "s").glob("*.xmp"))  # neither half: no sidecar either


def test_export_and_trash_rejects_without_a_usable_catalog_say_so(app_paths, tmp_path, capsys, fast):
    d = tmp_path / "s"
    shoot(d, 2)
    app_paths.catalog_path.mkdir()
    rc, _, err = run(capsys, "export", d, tmp_path / "out", "--top", "1", "-q")
    assert rc == 2 and str(app_paths.catalog_path) in err and "nothing was exported" in err
    rc, _, err = run(capsys, "trash-rejects", d, "--yes")
    assert rc == 2 and str(app_paths.catalog_path) in err and "nothing was moved" in err


# ----------------------------------------------------------------------------- 7. damaged catalog, two processes

OPEN_AT_ONCE = textwrap.dedent("""
    import sys, time
    from photocull.cull.catalog import Catalog, Marks
    cat_path, photo, stars, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:
        time.sleep(0.0005)
    with Catalog(cat_path) as c:
        c.set_marks(photo, Marks(0, stars))
        print("aside" if c.recovered_from else "fresh")
""")


@pytest.mark.slow
def test_two_processes_opening_a_damaged_catalog_at_once(tmp_path):
    cat_path = tmp_path / "home" / "catalog.sqlite"
    cat_path.parent.mkdir()
    photos = shoot(tmp_path / "s", 2)
    damaged = []
    for trial in range(4):
        for p in cat_path.parent.glob("catalog.sqlite*"):
            if ".corrupt-" not in p.name:
                p.unlink()
        if trial % 2:  # a real catalog (WAL mode, valid header) with pages zeroed
            with Catalog(cat_path) as c:
                c.con.execute("CREATE TABLE padding(x)")
                c.con.executemany("INSERT INTO padding VALUES (?)", [(os.urandom(500),) for _ in range(100)])
                c.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            data = bytearray(cat_path.read_bytes())
            data[4096: 4096 * 6] = bytes(4096 * 5)
            garbage = bytes(data)
        else:
            garbage = f"trial {trial}: not a database\n".encode() * 400
        cat_path.write_bytes(garbage)
        damaged.append(garbage)
        start = time.time() + 2.0  # both are past their imports by then
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(cat_path), str(p), str(i + 1), str(start)],
                                  env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i, p in enumerate(photos)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err[-2000:]
        # one set the damaged file aside; the other went on with the fresh catalog it made
        assert sorted(out.strip() for out, _ in outs) == ["aside", "fresh"], outs
        with Catalog(cat_path) as c:
            assert c.recovered_from is None
            got = c.get_marks(photos)
        assert {Path(k).name: m.rating for k, m in got.items()} == {"IMG_0.jpg": 1, "IMG_1.jpg": 2}
    asides = sorted(cat_path.parent.glob("catalog.sqlite.corrupt-*"))
    assert sorted(p.read_bytes() for p in asides if not p.name.endswith(("-wal", "-shm"))) == sorted(damaged)


def test_an_open_that_fails_while_another_photocull_sets_the_catalog_aside_is_tried_again(tmp_path, monkeypatch):
    # while another photocull moves a damaged catalog's -wal and -shm aside, SQLite's open can
    # fail with "disk I/O error" (seen under load in the test above): looked at again holding
    # the lock, the fresh catalog opens; nothing is set aside
    cat_path = tmp_path / "catalog.sqlite"
    with Catalog(cat_path) as c:
        c.set_marks(str(tmp_path / "a.jpg"), Marks(0, 4))
    real = Catalog._checked_connection
    calls = []

    def flaky(self):
        calls.append(self._lock_depth)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self)

    monkeypatch.setattr(Catalog, "_checked_connection", flaky)
    with Catalog(cat_path) as c:
        assert c.recovered_from is None
        assert c.get_marks([str(tmp_path / "a.jpg")])[path_key(tmp_path / "a.jpg")].rating == 4
    assert calls == [0, 1]  # the second look holds the lock
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_set_aside_copies_made_in_the_same_second_never_overwrite_each_other(tmp_path, monkeypatch):
    from photocull.cull import catalog

    monkeypatch.setattr(catalog.time, "strftime", lambda fmt, *a: "20260101-120000")
    path = tmp_path / "catalog.sqlite"
    kept = []
    for i in range(3):
        for p in tmp_path.glob("catalog.sqlite*"):
            if ".corrupt-" not in p.name:
                p.unlink()
        path.write_bytes(f"damaged {i}".encode() * 500)
        with Catalog(path) as c:
            kept.append(c.recovered_from)
    assert [p.name for p in kept] == ["catalog.sqlite.corrupt-20260101-120000",
                                      "catalog.sqlite.corrupt-20260101-120000-1",
                                      "catalog.sqlite.corrupt-20260101-120000-2"]
    assert [p.read_bytes() for p in kept] == [f"damaged {i}".encode() * 500 for i in range(3)]


# ----------------------------------------------------------------------------- 9. marks read the same way

LR = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
      '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="{}"/></rdf:RDF></x:xmpmeta>')


def test_export_picks_and_stars_read_the_sidecars_when_the_catalog_has_nothing(app_paths, tmp_path, capsys, fast):
    d = tmp_path / "s"
    photos = shoot(d, 6)
    assert main(["rate", "--pick", *map(str, photos[:3])]) == 0
    (d / "IMG_4.xmp").write_text(LR.format(5))  # rated in Lightroom: only its sidecar knows
    (d / "IMG_5.xmp").write_text(LR.format(2))
    for p in app_paths.data_dir.glob("catalog.sqlite*"):  # a rebuilt catalog: the sidecars hold the marks
        p.unlink()
    rc, _, err = run(capsys, "export", d, tmp_path / "picks", "--picks", "-q")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "picks").glob("*.jpg")) == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    rc, _, err = run(capsys, "export", d, tmp_path / "stars", "--min-stars", "4", "-q")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "stars").glob("*.jpg")) == ["IMG_4.jpg"]


def test_load_marks_finds_what_save_marks_stored_under_the_same_spelling(app_paths, tmp_path, monkeypatch):
    p = shoot(tmp_path / "s", 1)[0]
    dotted = tmp_path / "s" / ".." / "s" / p.name  # the catalog keeps ".." (a link may sit there)
    monkeypatch.chdir(tmp_path)
    with Catalog(app_paths.catalog_path) as cat:
        for spelling in (dotted, Path("s") / ".." / "s" / p.name, p, Path("s") / p.name):
            save_marks(cat, [(spelling, Marks(1, 4), [], None)], write_sidecars=False)
            assert load_marks([spelling], cat)[os.path.abspath(spelling)] == Marks(1, 4), spelling
            cat.set_marks(spelling, Marks())


# ----------------------------------------------------------------------------- 10. rating while a move runs

class HookedCatalog(Catalog):
    """A catalog whose lock, once taken, runs ``during_lock`` (the last step of a move)."""

    during_lock = None

    @contextlib.contextmanager
    def exclusive(self):
        with super().exclusive():
            hook, self.during_lock = self.during_lock, None
            if hook is not None:
                hook()
            yield self


def _rate_in_thread(cat_path: Path, photo: Path, stars: int, started: threading.Event | None = None):
    """A rater with its own catalog connection and lock, as another photocull would be."""
    out: dict = {}

    def work():
        with Catalog(cat_path) as c:
            current = load_marks([photo], c).get(os.path.abspath(photo)) or Marks()
            if started is not None:
                started.set()
            out["problems"] = save_marks(c, [(photo, Marks(current.flag, stars, current.label), [], None)])

    t = threading.Thread(target=work)
    t.start()
    return t, out


@pytest.mark.parametrize("had_sidecar", [True, False])
def test_a_rating_saved_while_the_photo_is_copied_lands_with_it(app_paths, tmp_path, monkeypatch, had_sidecar):
    d = tmp_path / "s"
    photos = shoot(d, 3)
    with Catalog(app_paths.catalog_path) as c:
        if had_sidecar:
            save_marks(c, [(p, Marks(0, 1), [], None) for p in photos])
    target = photos[1]
    hook_after = target.with_suffix(".xmp") if had_sidecar else target
    real = cull_export.safe_copy
    fired = []

    def copy_then_rate(src, dest, name, **kw):
        out = real(src, dest, name, **kw)
        if Path(src) == hook_after and not fired:  # copied; the move has not finished: rate it now
            fired.append(src)
            t, res = _rate_in_thread(app_paths.catalog_path, target, 5)
            t.join(30)
            assert res["problems"] == []
        return out

    monkeypatch.setattr(cull_export, "safe_copy", copy_then_rate)
    dest = tmp_path / "dest"
    with Catalog(app_paths.catalog_path) as c:
        rep = export([Candidate(p) for p in photos], dest, move=True, catalog=c)
        assert not rep.errors
        moved = dest / target.name
        assert read_sidecar(moved).rating == 5  # the new rating went with the photo
        assert load_marks([moved], c)[str(moved)].rating == 5
        assert c.get_marks(photos) == {}  # no row left for a source that has gone
    assert sorted(p.name for p in d.iterdir()) == []  # and no orphan sidecar behind


def test_a_rating_saved_while_the_photo_leaves_is_refused_loudly(app_paths, tmp_path):
    d = tmp_path / "s"
    photos = shoot(d, 2)
    with Catalog(app_paths.catalog_path) as c:
        save_marks(c, [(p, Marks(0, 1), [], None) for p in photos])
    target = photos[0]
    waiting = threading.Event()
    rater = {}

    def rate_now():  # the mover holds the lock: the rater gets as far as the lock and waits
        rater["thread"], rater["out"] = _rate_in_thread(app_paths.catalog_path, target, 5, waiting)
        assert waiting.wait(30)

    dest = tmp_path / "dest"
    with HookedCatalog(app_paths.catalog_path) as c:
        c.during_lock = rate_now
        rep = export([Candidate(target)], dest, move=True, catalog=c)
        rater["thread"].join(30)
        assert not rep.errors and not target.exists()
        (photo, why), = rater["out"]["problems"]
        assert photo == target and "not found" in why and "not saved" in why
        assert read_sidecar(dest / target.name).rating == 1  # what it had when it moved
        assert c.get_marks([target]) == {}  # no row for the photo that left
        assert load_marks([dest / target.name], c)[str(dest / target.name)].rating == 1
    assert sorted(p.name for p in d.iterdir()) == ["IMG_1.jpg", "IMG_1.xmp"]  # no orphan IMG_0.xmp


def test_rate_of_a_photo_that_has_gone_says_so_and_writes_nothing(app_paths, tmp_path, capsys):
    p = shoot(tmp_path / "s", 1)[0]
    with Catalog(app_paths.catalog_path) as c:
        problems = save_marks(c, [(p.with_name("gone.jpg"), Marks(0, 3), [], None), (p, Marks(0, 3), [], None)])
        assert [q.name for q, _ in problems] == ["gone.jpg"]
        assert list(c.get_marks([p.with_name("gone.jpg"), p])) == [path_key(p)]
    assert not (tmp_path / "s" / "gone.xmp").exists()


# ----------------------------------------------------------------------------- 11. kill -9 litter and who wins

KILLED_RATE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from photocull.cull import marks
    from photocull.cull.catalog import Catalog, Marks
    folder, cat_path, stars, where, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    files = sorted(Path(folder).glob("*.jpg"))
    calls = {"n": 0}

    def killer(real):
        def hooked(*a, **k):
            calls["n"] += 1
            if calls["n"] > after:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        return hooked

    if where == "sidecar":  # killed between two sidecars
        marks.write_marks_sidecar = killer(marks.write_marks_sidecar)
    elif where == "replace":  # killed inside a sidecar save: its temporary file is written, not renamed
        real_replace = os.replace
        hooked = killer(real_replace)
        os.replace = lambda a, b, **k: hooked(a, b, **k) if str(b).endswith(".xmp") else real_replace(a, b, **k)
    with Catalog(cat_path) as c:
        marks.save_marks(c, [(f, Marks(0, stars, None), [], None) for f in files])
    print("done")
""")


def _rate_process(folder: Path, cat_path: Path, stars: int, where: str = "none", after: int = 0) -> int:
    p = subprocess.run([sys.executable, "-c", KILLED_RATE, str(folder), str(cat_path), str(stars), where, str(after)],
                       env=ENV, capture_output=True, text=True, timeout=60)
    return p.returncode


@pytest.mark.slow
def test_killed_rate_runs_leave_a_deterministic_winner_and_no_litter(app_paths, tmp_path):
    d = tmp_path / "s"
    photos = shoot(d, 8, size=(32, 24))
    cat_path = app_paths.catalog_path

    def on_open() -> dict[str, int]:
        with Catalog(cat_path) as c:
            return {Path(k).name: m.rating for k, m in load_marks(photos, c).items()}

    def sidecars() -> dict[str, int | None]:
        return {p.name: read_sidecar(p).rating for p in photos}

    assert _rate_process(d, cat_path, 4) == 0
    assert set(sidecars().values()) == {4}
    # killed after 2 of 8 sidecars: the catalog already says 0 stars ("no mark" is a mark too)
    assert _rate_process(d, cat_path, 0, "sidecar", 2) == -signal.SIGKILL
    assert list(sidecars().values()).count(4) == 6
    assert set(on_open().values()) == {0}
    assert set(on_open().values()) == {0}  # and again: the same answer every time
    # killed inside the 3rd sidecar save: its temporary file stays behind
    assert _rate_process(d, cat_path, 2, "replace", 2) == -signal.SIGKILL
    litter = [p for p in d.iterdir() if leftovers.SIDECAR_TEMP.fullmatch(p.name)]
    assert len(litter) == 1
    assert set(on_open().values()) == {2}
    # the next save in the folder sweeps stale temporaries, and only those
    for p in litter:
        os.utime(p, (OLD, OLD))
    fresh = d / ".IMG_7.xmp.0123abcd.tmp"  # another photocull writing right now
    fresh.write_bytes(b"<x:xmpmeta")
    foreign = d / ".IMG_7.xmp.notours.tmp"
    foreign.write_bytes(b"someone else's")
    os.utime(foreign, (OLD, OLD))
    assert _rate_process(d, cat_path, 3) == 0
    assert not any(p.exists() for p in litter) and fresh.exists() and foreign.exists()
    assert set(sidecars().values()) == {3} and set(on_open().values()) == {3}
    with Catalog(cat_path) as c:
        assert c.sidecars_pending(photos) == set()  # catalog and sidecars in step again


def test_a_pending_catalog_mark_wins_over_a_stale_sidecar_and_a_written_one_defers_to_it(app_paths, tmp_path):
    a, b = shoot(tmp_path / "s", 2)
    write_sidecar(a, rating=4)
    write_sidecar(b, rating=4)
    with Catalog(app_paths.catalog_path) as c:
        c.set_many_marks([(a, Marks()), (b, Marks())], sidecar_pending=True)  # a save that never wrote them
        c.sidecars_written([b])  # b: a sidecar-less save, long ago (e.g. --no-sidecar)
        got = load_marks([a, b], c)
    assert got[str(a)] == Marks() and got[str(b)].rating == 4


KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from photocull.cull.export import Candidate, export
    src, dest = Path(sys.argv[1]), Path(sys.argv[2])
    real_link, calls = os.link, {"n": 0}

    def link(a, b, **k):  # the copy is written and verified; killed before it takes its name
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_link(a, b, **k)

    os.link = link
    export([Candidate(p) for p in sorted(src.glob("*.jpg"))], dest, move=True)
""")


@pytest.mark.slow
def test_partial_copies_of_a_killed_export_are_swept_by_the_next_one(tmp_path):
    src, dest = tmp_path / "s", tmp_path / "dest"
    photos = shoot(src, 3)
    p = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(src), str(dest)], env=ENV, capture_output=True,
                       timeout=60)
    assert p.returncode == -signal.SIGKILL
    partial = [q for q in dest.iterdir() if q.name.startswith(TMP_PREFIX)]
    assert len(partial) == 1 and leftovers.PARTIAL_COPY.fullmatch(partial[0].name)
    fresh = dest / f"{TMP_PREFIX}{'ab' * 16}.jpg"  # an export running right now
    fresh.write_bytes(b"half")
    lookalikes = [dest / f"{TMP_PREFIX}mine.jpg", dest / f"{TMP_PREFIX}{'cd' * 16}.jpg.bak"]
    for q in lookalikes:
        q.write_bytes(b"not ours")
    folder_like = dest / f"{TMP_PREFIX}{'ef' * 16}"
    folder_like.mkdir()
    for q in [*partial, *lookalikes, folder_like]:
        os.utime(q, (OLD, OLD))
    rep = export([Candidate(q) for q in photos if q.exists()], dest, move=True)
    assert not rep.errors
    assert not partial[0].exists()
    assert fresh.exists() and folder_like.is_dir() and all(q.exists() for q in lookalikes)
    assert sorted(q.name for q in dest.glob("IMG_*.jpg")) == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]


# ----------------------------------------------------------------------------- smaller

def test_recursive_export_into_a_subfolder_of_the_source_never_takes_its_own_copies(tmp_path, capsys, fast):
    d = tmp_path / "shoot"
    shoot(d, 3)
    make_photo(d / "day2" / "DAY_0.jpg", seed=7, size=(64, 48))
    dest = d / "keepers"
    for n in (1, 2):
        rc, _, err = run(capsys, "export", d, dest, "--top", "100", "-r", "-q")
        assert rc == 0, err
        # the earlier copies under keepers/ are not photos to export; the second time they are there already
        assert ("copied 4 of 4 photos" if n == 1 else "copied 0 of 4 photos to") in err
        assert n == 1 or "(4 already there, the same bytes: not copied again)" in err
        assert len(list(dest.glob("*.jpg"))) == 4
    rc, _, err = run(capsys, "export", d, d, "--top", "1", "-q")
    assert rc == 2 and "the destination is the source folder" in err


def test_export_never_takes_a_photo_from_inside_its_destination(tmp_path):
    dest = tmp_path / "dest"
    inside = shoot(dest / "old", 1)[0]
    rep = export([Candidate(inside)], dest)
    assert rep.items == [] and "already in the destination" in rep.errors[0][1]
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["old", "old/IMG_0.jpg"]


def _read_only_source(monkeypatch, folder: Path) -> None:
    """Removing a file from ``folder`` fails as on a write-protected card (root ignores chmod)."""
    real = os.unlink

    def unlink(p, *a, **k):
        if Path(p).parent == folder:
            raise PermissionError(13, "Permission denied", str(p))
        return real(p, *a, **k)

    monkeypatch.setattr(os, "unlink", unlink)


def test_move_from_a_read_only_source_keeps_the_copies_blames_the_source_and_reports(tmp_path, monkeypatch):
    src = tmp_path / "card"
    photos = shoot(src, 3)
    (src / "IMG_0.CR2").write_bytes(b"raw")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    _read_only_source(monkeypatch, src)
    dest = tmp_path / "dest"
    with pytest.raises(ExportError) as err:
        export([Candidate(p) for p in photos], dest, move=True)
    msg = str(err.value)
    assert str(src) in msg and "cannot be removed" in msg and "copies are kept" in msg
    rep = err.value.report
    assert rep.report_path is not None and rep.report_path.exists()
    assert [it.source.name for it in rep.items] == ["IMG_0.jpg"] and not rep.items[0].moved
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # originals untouched
    for name in ("IMG_0.jpg", "IMG_0.CR2"):
        assert (dest / name).read_bytes() == before[name]  # the verified copies kept
    assert "copy" in rep.report_path.read_text()


def test_cli_move_from_a_read_only_source_says_so_and_points_at_the_report(tmp_path, capsys, monkeypatch, fast):
    src = tmp_path / "card"
    shoot(src, 2)
    _read_only_source(monkeypatch, src)
    rc, out, err = run(capsys, "export", src, tmp_path / "dest", "--top", "2", "--move", "-q")
    assert rc == 1 and "Traceback" not in err
    assert "cannot be removed from" in err and str(src) in err and "report " in err
    assert "original kept" in out


def test_a_move_whose_catalog_fails_midway_still_moves_and_says_the_marks_stayed_behind(app_paths, tmp_path):
    photos = shoot(tmp_path / "s", 2)

    def broken(old, new):
        raise CatalogError(f"cannot use the catalog {app_paths.catalog_path}: disk I/O error")

    rep = export([Candidate(p) for p in photos], tmp_path / "dest", move=True, on_moved=broken)
    assert len(rep.items) == 2 and all(it.moved for it in rep.items)
    assert all("the catalog did not follow" in why for _, why in rep.errors) and len(rep.errors) == 2
    assert sorted(p.name for p in (tmp_path / "dest").glob("*.jpg")) == ["IMG_0.jpg", "IMG_1.jpg"]
