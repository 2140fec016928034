"""The SQLite catalog: scores keyed by file identity and model, marks, sharing, recovery."""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import make_photo
from photocull.cull.catalog import FLAG_PICK, FLAG_REJECT, Catalog, CatalogError, Marks
from photocull.media.exif import ExifInfo
from photocull.scoring import ScoreResult


@pytest.fixture
def cat(app_paths):
    with Catalog(app_paths.catalog_path) as c:
        yield c


@pytest.fixture
def photos(tmp_path):
    return [make_photo(tmp_path / "shoot" / f"IMG_{i}.jpg", seed=i, size=(32, 24)) for i in range(3)]


def _result(path, seed=0, error=None):
    if error:
        return ScoreResult(Path(path), error=error)
    rng = np.random.default_rng(seed)
    p = rng.random(10)
    return ScoreResult(Path(path), (p / p.sum()).astype(np.float32), rng.random(9).astype(np.float32),
                       rng.random(16).astype(np.float16), None, "blurry / out of focus",
                       ExifInfo(1717236000.25, -0.7, "demo camera"))


def test_store_lookup_round_trip(cat, photos):
    broken = photos[0].parent / "broken.jpg"
    broken.write_bytes(b"junk")
    results = [_result(photos[0], 1), _result(photos[1], 2), _result(broken, error="not an image")]
    cat.store_results(results, "m1")
    got = cat.lookup(photos[:2] + [broken, photos[2]], "m1")
    assert set(got) == {str(photos[0].absolute()), str(photos[1].absolute()), str(broken.absolute())}
    s = got[str(photos[0].absolute())]
    np.testing.assert_allclose(s.probs, results[0].probs, rtol=1e-6)
    np.testing.assert_allclose(s.severities, results[0].severities, rtol=1e-6)
    assert s.why == "blurry / out of focus" and s.error is None
    assert s.capture_time == pytest.approx(1717236000.25) and s.exposure_bias == pytest.approx(-0.7)
    assert s.camera == "demo camera"
    assert s.mean == pytest.approx(float(results[0].probs @ np.arange(1, 11)), rel=1e-5)
    e = got[str(broken.absolute())]
    assert e.error == "not an image" and e.probs is None and e.mean is None
    feats = cat.features(photos, "m1")
    assert set(feats) == {str(photos[0].absolute()), str(photos[1].absolute())}
    np.testing.assert_allclose(feats[str(photos[0].absolute())], results[0].features.astype(np.float32))


def test_relative_and_absolute_paths_are_the_same_key(cat, photos, monkeypatch):
    monkeypatch.chdir(photos[0].parent)
    cat.store_results([_result(Path(photos[0].name), 1)], "m1")
    assert str(photos[0].absolute()) in cat.lookup([photos[0]], "m1")


def test_changed_mtime_or_size_invalidates(cat, photos):
    cat.store_results([_result(p, i) for i, p in enumerate(photos)], "m1")
    assert len(cat.lookup(photos, "m1")) == 3
    st = photos[0].stat()
    os.utime(photos[0], (st.st_atime, st.st_mtime + 5))
    with open(photos[1], "ab") as f:
        f.write(b"\0")
    os.utime(photos[1], (photos[1].stat().st_atime, photos[2].stat().st_mtime))
    got = cat.lookup(photos, "m1")
    assert set(got) == {str(photos[2].absolute())}
    assert cat.any_features(photos).keys() == {str(photos[2].absolute())}


def test_deleted_file_is_not_found_and_not_stored(cat, photos):
    cat.store_results([_result(photos[0], 1)], "m1")
    photos[0].unlink()
    assert cat.lookup([photos[0]], "m1") == {}
    cat.store_results([_result(photos[0], 1)], "m1")  # gone: silently nothing


def test_scores_are_per_model(cat, photos):
    cat.store_results([_result(photos[0], 1)], "m1")
    cat.store_results([_result(photos[0], 2)], "m2")
    a = cat.lookup([photos[0]], "m1")[str(photos[0].absolute())]
    b = cat.lookup([photos[0]], "m2")[str(photos[0].absolute())]
    assert not np.allclose(a.probs, b.probs)
    assert cat.lookup([photos[0]], "m3") == {}
    # storing again replaces, does not duplicate
    cat.store_results([_result(photos[0], 3)], "m1")
    c = cat.lookup([photos[0]], "m1")[str(photos[0].absolute())]
    np.testing.assert_allclose(c.probs, _result(photos[0], 3).probs, rtol=1e-6)
    n = cat.con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    assert n == 2


def test_marks_set_get(cat, photos):
    assert cat.get_marks(photos) == {}
    cat.set_marks(photos[0], Marks(FLAG_PICK, 5, "red"))
    cat.set_many_marks([(photos[1], Marks(FLAG_REJECT, 1)), (photos[2], Marks(rating=3))])
    got = cat.get_marks(photos)
    k = [str(p.absolute()) for p in photos]
    assert got[k[0]] == Marks(FLAG_PICK, 5, "red")
    assert got[k[1]] == Marks(FLAG_REJECT, 1, None)
    assert got[k[2]] == Marks(0, 3, None)
    assert set(cat.get_marks(photos[:1])) == {k[0]}  # only what was asked for
    cat.set_marks(photos[0], Marks())
    assert cat.get_marks(photos[:1])[k[0]].is_empty
    # marks belong to the photo, not to a version of it
    os.utime(photos[1], (0, 12345))
    assert cat.get_marks([photos[1]])[k[1]].flag == FLAG_REJECT


def test_rename_path_keeps_marks_and_scores(cat, photos, tmp_path):
    cat.store_results([_result(photos[0], 1)], "m1")
    cat.set_marks(photos[0], Marks(FLAG_PICK, 4))
    new = tmp_path / "picked" / "IMG_0.jpg"
    new.parent.mkdir()
    os.rename(photos[0], new)
    cat.rename_path(photos[0], new)
    assert cat.get_marks([new])[str(new.absolute())] == Marks(FLAG_PICK, 4)
    assert cat.get_marks([photos[0]]) == {}
    assert str(new.absolute()) in cat.lookup([new], "m1")


def test_data_survives_reopening(app_paths, photos):
    c1 = Catalog(app_paths.catalog_path)
    c1.store_results([_result(photos[0], 1)], "m1")
    c1.set_marks(photos[0], Marks(FLAG_PICK, 2))
    c1.close()
    c2 = Catalog(app_paths.catalog_path)
    assert c2.recovered_from is None
    assert len(c2.lookup([photos[0]], "m1")) == 1
    assert c2.get_marks([photos[0]])[str(photos[0].absolute())].rating == 2


def test_two_instances_writing_concurrently(app_paths, photos, tmp_path):
    many = [make_photo(tmp_path / "burst" / f"B_{i}.png", seed=i, size=(8, 8)) for i in range(40)]
    errors = []
    barrier = threading.Barrier(2)

    def writer(k):
        try:
            c = Catalog(app_paths.catalog_path)
            barrier.wait()
            for i, p in enumerate(many):
                if i % 2 == k:
                    c.set_marks(p, Marks(FLAG_PICK, 1 + k))
                    c.store_results([_result(p, i)], f"model-{k}")
            c.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    c = Catalog(app_paths.catalog_path)
    marks = c.get_marks(many)
    assert len(marks) == 40
    assert all(marks[str(p.absolute())].rating == 1 + i % 2 for i, p in enumerate(many))
    assert len(c.lookup(many, "model-0")) == 20 and len(c.lookup(many, "model-1")) == 20


def test_one_instance_used_from_two_threads(cat, photos):
    errors = []

    def work(k):
        try:
            for _ in range(20):
                cat.set_marks(photos[k], Marks(FLAG_PICK, k + 1))
                cat.get_marks(photos)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    ts = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []
    assert len(cat.get_marks(photos)) == 2


def test_corrupt_catalog_is_moved_aside(app_paths, photos):
    path = app_paths.catalog_path
    garbage = np.random.default_rng(0).bytes(8192)
    path.write_bytes(garbage)
    c = Catalog(path)
    assert c.recovered_from is not None
    aside = list(path.parent.glob(path.name + ".corrupt-*"))
    assert aside == [c.recovered_from] and aside[0].read_bytes() == garbage  # kept for the user
    # the fresh catalog works
    c.store_results([_result(photos[0], 1)], "m1")
    c.set_marks(photos[0], Marks(FLAG_PICK, 5))
    assert len(c.lookup([photos[0]], "m1")) == 1
    c.close()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert Catalog(path).recovered_from is None


def test_catalog_that_is_a_text_file_is_moved_aside(app_paths):
    path = app_paths.catalog_path
    path.write_text("SQLite format 3 -- not really\n" * 100)
    c = Catalog(path)
    assert c.recovered_from is not None and c.recovered_from.exists()
    assert c.get_marks([path]) == {}


def test_catalog_key_is_path_absolute_whatever_the_spelling(tmp_path, monkeypatch):
    from pathlib import Path

    from photocull.cull.catalog import path_key

    monkeypatch.chdir(tmp_path)
    a = str(tmp_path / "shoot" / "IMG_1.jpg")
    for p in (a, Path(a), "shoot/IMG_1.jpg", "./shoot/IMG_1.jpg", str(tmp_path) + "/shoot/../shoot/IMG_1.jpg",
              str(tmp_path) + "//shoot/./IMG_1.jpg", "IMG_2.jpg"):
        assert path_key(p) == str(Path(p).absolute()), p


# --- tiny greys for burst grouping --------------------------------------------------------

def _grey(seed: int, side: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)


def test_tiny_greys_round_trip_and_follow_the_file(cat, photos, tmp_path):
    g = _grey(1)
    assert cat.tiny_gray(photos[0], 64) is None
    cat.store_tiny_grays([(photos[0], g), (photos[1], _grey(2)), (tmp_path / "gone.jpg", _grey(3))])
    got = cat.tiny_gray(photos[0], 64)
    assert got.dtype == np.uint8 and np.array_equal(got, g)
    assert np.array_equal(cat.tiny_gray(str(photos[1]), 64), _grey(2))
    assert cat.tiny_gray(tmp_path / "gone.jpg", 64) is None
    assert cat.tiny_gray(photos[0], 32) is None  # another size: not this grey
    # a file changed on disk is not the photo whose grey was stored
    st = photos[0].stat()
    os.utime(photos[0], (st.st_atime, st.st_mtime + 5))
    assert cat.tiny_gray(photos[0], 64) is None
    # moved by photocull: the grey moves with it
    new = tmp_path / "picked" / "IMG_1.jpg"
    new.parent.mkdir()
    os.rename(photos[1], new)
    cat.rename_path(photos[1], new)
    assert np.array_equal(cat.tiny_gray(new, 64), _grey(2))
    with pytest.raises(ValueError):
        cat.store_tiny_grays([(photos[2], np.zeros((4, 8), np.uint8))])


def test_catalog_of_the_first_schema_gets_the_greys_table(app_paths, photos):
    """A catalog written before greys were kept: its scores stay, greys can be stored."""
    path = app_paths.catalog_path
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE scores (path TEXT NOT NULL, model_id TEXT NOT NULL, folder TEXT NOT NULL, size INTEGER NOT NULL,
            mtime REAL NOT NULL, probs BLOB, severities BLOB, features BLOB, why TEXT NOT NULL DEFAULT '', error TEXT,
            capture_time REAL, exposure_bias REAL, camera TEXT, PRIMARY KEY (path, model_id));
        CREATE TABLE marks (path TEXT PRIMARY KEY, folder TEXT NOT NULL, flag INTEGER NOT NULL DEFAULT 0,
            rating INTEGER NOT NULL DEFAULT 0, label TEXT, updated REAL NOT NULL);
        PRAGMA user_version = 1;""")
    con.close()
    c = Catalog(path)
    try:
        c.store_results([_result(photos[0], 1)], "m1")
        c.store_tiny_grays([(photos[0], _grey(4))])
        assert np.array_equal(c.tiny_gray(photos[0], 64), _grey(4))
        assert len(c.lookup([photos[0]], "m1")) == 1
        c.store_grouping("sig", [[0, 2, "burst", True]])
        assert c.grouping("sig") == [[0, 2, "burst", True]]
    finally:
        c.close()


def test_groupings_kept_newest_first(cat, monkeypatch):
    from photocull.cull import catalog

    monkeypatch.setattr(catalog, "GROUPINGS_KEPT", 3)
    assert cat.grouping("nothing") is None
    for k in range(5):
        cat.store_grouping(f"s{k}", [[None, 1, "", True]] * k)
    assert [cat.grouping(f"s{k}") is not None for k in range(5)] == [False, False, True, True, True]
    assert cat.grouping("s4") == [[None, 1, "", True]] * 4
    cat.con.execute("UPDATE groupings SET result='not json' WHERE signature='s3'")
    cat.con.commit()
    assert cat.grouping("s3") is None


def test_any_features_as_stored(cat, photos):
    cat.store_results([_result(photos[0], 1)], "m1")
    f32 = cat.any_features(photos)[str(photos[0].absolute())]
    f16 = cat.any_features(photos, dtype=np.float16)[str(photos[0].absolute())]
    assert f32.dtype == np.float32 and f16.dtype == np.float16
    assert np.array_equal(f16.astype(np.float32), f32)


# --- schema migrations -----------------------------------------------------------------------

def _user_version(path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def _tables(path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def test_a_new_catalog_has_every_migration(app_paths):
    from photocull.cull.catalog import MIGRATIONS, SCHEMA_VERSION

    with Catalog(app_paths.catalog_path):
        pass
    assert SCHEMA_VERSION == len(MIGRATIONS) == 5
    assert _user_version(app_paths.catalog_path) == SCHEMA_VERSION
    assert {"scores", "marks", "grays", "groupings"} <= _tables(app_paths.catalog_path)


def test_catalog_is_a_context_manager_that_closes(app_paths):
    with Catalog(app_paths.catalog_path) as c:
        assert c.con.execute("SELECT 1").fetchone() == (1,)
        con = c.con
    with pytest.raises(sqlite3.ProgrammingError):
        con.execute("SELECT 1")  # closed on the way out


# a later issue's migration: a new column (and a log row, to count how often it ran)
FAKE_MIGRATION = """
    ALTER TABLE scores ADD COLUMN sharpness REAL;
    CREATE TABLE IF NOT EXISTS fake_ran (n INTEGER);
    INSERT INTO fake_ran VALUES (1)
"""


def test_an_appended_migration_runs_once_on_an_old_catalog_and_keeps_its_data(app_paths, photos, monkeypatch):
    from photocull.cull import catalog

    path = app_paths.catalog_path
    with Catalog(path) as c:  # made by today's code (version 4)
        c.store_results([_result(photos[0], 1)], "m1")
        c.set_marks(photos[0], Marks(FLAG_PICK, 4, "Red"))
        c.store_tiny_grays([(photos[1], _grey(5))])
        c.store_grouping("sig", [[None, 1, "", True]])
        before = c.lookup([photos[0]], "m1")[str(photos[0].absolute())]
    monkeypatch.setattr(catalog, "MIGRATIONS", [*catalog.MIGRATIONS, FAKE_MIGRATION])
    for _ in range(2):  # the second opening finds nothing to do
        with Catalog(path) as c:
            assert c.recovered_from is None
            got = c.lookup([photos[0]], "m1")[str(photos[0].absolute())]
            assert np.array_equal(got.probs, before.probs) and got.why == before.why
            assert c.get_marks([photos[0]])[str(photos[0].absolute())] == Marks(FLAG_PICK, 4, "Red")
            assert np.array_equal(c.tiny_gray(photos[1], 64), _grey(5))
            assert c.grouping("sig") == [[None, 1, "", True]]
            c.store_results([_result(photos[2], 2)], "m1")  # still writable with the new column there
            assert [r[1] for r in c.con.execute("PRAGMA table_info(scores)")][-1] == "sharpness"
            assert c.con.execute("SELECT count(*) FROM fake_ran").fetchone() == (1,)
    assert _user_version(path) == catalog.SCHEMA_VERSION + 1


def test_a_catalog_of_version_1_gets_the_missing_migrations_in_order(app_paths, photos, monkeypatch):
    from photocull.cull import catalog

    path = app_paths.catalog_path
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    for stmt in catalog.MIGRATIONS[0].split(";"):
        con.execute(stmt)
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    monkeypatch.setattr(catalog, "MIGRATIONS", [*catalog.MIGRATIONS, FAKE_MIGRATION])
    with Catalog(path) as c:
        c.store_tiny_grays([(photos[0], _grey(4))])
        c.store_grouping("sig", [[0, 2, "burst", True]])
    assert _user_version(path) == catalog.SCHEMA_VERSION + 1 and {"grays", "groupings", "fake_ran"} <= _tables(path)


def test_a_failing_migration_changes_nothing(app_paths, photos, monkeypatch):
    from photocull.cull import catalog

    path = app_paths.catalog_path
    with Catalog(path) as c:
        c.set_marks(photos[0], Marks(FLAG_PICK, 3))
    monkeypatch.setattr(catalog, "MIGRATIONS", [*catalog.MIGRATIONS, FAKE_MIGRATION + "; ALTER TABLE nowhere ADD x"])
    with pytest.raises(CatalogError) as err:
        Catalog(path)
    assert isinstance(err.value.__cause__, sqlite3.OperationalError) and str(path) in str(err.value)
    assert _user_version(path) == catalog.SCHEMA_VERSION and "fake_ran" not in _tables(path)  # rolled back as a whole
    assert not list(path.parent.glob(path.name + ".corrupt-*"))  # not mistaken for a damaged file
    monkeypatch.undo()
    with Catalog(path) as c:
        assert c.get_marks([photos[0]])[str(photos[0].absolute())] == Marks(FLAG_PICK, 3)


def test_a_catalog_from_a_newer_photocull_is_opened_as_it_is(app_paths, photos):
    path = app_paths.catalog_path
    with Catalog(path) as c:
        c.set_marks(photos[0], Marks(FLAG_REJECT))
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE marks ADD COLUMN from_the_future TEXT")
    con.execute("PRAGMA user_version = 9")
    con.commit()
    con.close()
    with Catalog(path) as c:
        assert c.recovered_from is None
        assert c.get_marks([photos[0]])[str(photos[0].absolute())] == Marks(FLAG_REJECT)
        c.set_marks(photos[1], Marks(FLAG_PICK, 2))  # names its columns: the newer one stays empty
        c.store_results([_result(photos[0], 1)], "m1")
    assert _user_version(path) == 9  # never downgraded


def test_a_damaged_catalog_starts_afresh_with_every_migration(app_paths, monkeypatch):
    from photocull.cull import catalog

    monkeypatch.setattr(catalog, "MIGRATIONS", [*catalog.MIGRATIONS, FAKE_MIGRATION])
    path = app_paths.catalog_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(1).bytes(8192))
    with Catalog(path) as c:
        assert c.recovered_from is not None
    assert _user_version(path) == catalog.SCHEMA_VERSION + 1 and "fake_ran" in _tables(path)


def test_any_features_keeps_one_kind_of_features(tmp_path):
    """Features stored by models with different backbones (2224-d technical, 1024-d
    aesthetic) are never mixed: one size asked for, or the size most photos have."""
    from types import SimpleNamespace

    import numpy as np

    from photocull.cull.catalog import Catalog

    photos = []
    for i in range(3):
        p = tmp_path / f"p{i}.jpg"
        p.write_bytes(b"x" * (i + 1))
        photos.append(p)
    with Catalog(tmp_path / "c.sqlite") as cat:
        def store(paths, dim, model_id):
            cat.store_results([SimpleNamespace(path=p, probs=np.full(10, 0.1), severities=None,
                                               features=np.ones(dim, np.float16), why="", error=None,
                                               exif=SimpleNamespace(capture_time=None, exposure_bias=None,
                                                                    camera=None)) for p in paths], model_id)
        store(photos, 2224, "technical")
        store(photos[:1], 1024, "aesthetic")
        assert {v.shape for v in cat.any_features(photos, dim=2224).values()} == {(2224,)}
        assert len(cat.any_features(photos, dim=2224)) == 3
        assert {v.shape for v in cat.any_features(photos, dim=1024).values()} == {(1024,)}
        assert {v.shape for v in cat.any_features(photos).values()} == {(2224,)}


def test_a_lock_held_too_long_is_a_clear_error(tmp_path, monkeypatch):
    import fcntl
    import os

    import pytest

    from photocull.cull import catalog as catalog_mod
    from photocull.cull.catalog import Catalog, CatalogError, Marks

    monkeypatch.setattr(catalog_mod, "LOCK_TIMEOUT_S", 0.3)
    with Catalog(tmp_path / "c.sqlite") as cat:
        fd = os.open(f"{cat.path}.lock", os.O_RDWR | os.O_CREAT)  # another photocull holding it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with pytest.raises(CatalogError, match="locked by another photocull"):
                with cat.exclusive():
                    cat.set_marks(tmp_path / "a.jpg", Marks(1, 0, None))
        finally:
            os.close(fd)
        with cat.exclusive():  # free again: goes on
            pass
