"""Files made by photocull before the restructuring (issue 1/7) open unchanged.

``tests/fixtures/v0`` was written once by the last version with ``photocull.core``
(catalog with scores, marks, tiny greys and a stored grouping; a settings file; a personal
model): see ``tests/fixtures/v0/README.md``.  Paths inside the catalog are those of the
machine that made it; rows are found through them as stored.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from photocull.config import AppPaths, Settings
from photocull.cull.catalog import SCHEMA_VERSION, Catalog, Marks

V0 = Path(__file__).parent / "fixtures" / "v0"
EXPECTED = json.loads((V0 / "expected.json").read_text())


@pytest.fixture
def old_catalog(tmp_path) -> tuple[Path, list[Path]]:
    """The v0 catalog and its photos, moved here: the rows are pointed at the copies (as if
    the same files had always been here), nothing else in the file is touched."""
    p = tmp_path / "catalog.sqlite"
    shutil.copy(V0 / "catalog.sqlite", p)
    photos = tmp_path / "photos"
    shutil.copytree(V0 / "photos", photos)
    con = sqlite3.connect(p)
    try:
        for table, has_folder in (("scores", True), ("marks", True), ("grays", False)):
            for (old,) in con.execute(f"SELECT DISTINCT path FROM {table}").fetchall():
                new = photos / Path(old).name
                st = new.stat()
                sets = "path=?" + (", folder=?" if has_folder else "") + (", size=?, mtime=?" if table != "marks" else "")
                args = [str(new)] + ([str(photos)] if has_folder else []) + ([st.st_size, st.st_mtime] if table != "marks" else [])
                con.execute(f"UPDATE {table} SET {sets} WHERE path=?", (*args, old))
        con.commit()
    finally:
        con.close()
    return p, sorted(photos.glob("*.jpg"))


def test_old_catalog_opens_with_scores_marks_greys_and_groups(old_catalog):
    path, photos = old_catalog
    assert len(photos) == 3
    with Catalog(path) as cat:
        assert cat.recovered_from is None  # not mistaken for a damaged file
        scores = cat.lookup(photos, EXPECTED["model_id"])
        means = {Path(p).name: round(s.mean, 4) for p, s in scores.items()}
        assert means == EXPECTED["means"]
        marks = cat.get_marks(photos)
        by_name = {Path(p).name: (m.flag, m.rating, m.label) for p, m in marks.items()}
        assert by_name == {"p0.jpg": (1, 5, "Red"), "p1.jpg": (-1, 0, None)}
        assert cat.tiny_gray(photos[2], 64) is not None
        assert cat.grouping("sig-v0") == [[None, 1, "", False]]
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        con.close()


def test_old_settings_load():
    s = Settings.load(V0 / "settings.json")
    assert s.batch_size == 4 and s.recent_folders and s.sidecar_style == "adobe"


def test_old_personal_model_resolves_and_scores(tmp_path):
    from photocull.model.registry import list_models, resolve
    from photocull.scoring import score_all

    paths = AppPaths.default(tmp_path / "home").ensure()
    shutil.copy(V0 / "v0-taste.pt", paths.models_dir / "v0-taste.pt")
    assert "v0-taste" in [m.name for m in list_models(paths)]
    loaded = resolve("v0-taste", paths)
    assert loaded.trained and loaded.meta.get("kind") == "personal taste"
    photos = sorted((V0 / "photos").glob("*.jpg"))
    res = score_all(photos, loaded, batch_size=4)
    assert all(r.ok for r in res)
    assert all(np.isclose(r.probs.sum(), 1.0, atol=1e-4) for r in res)


def test_catalog_opened_by_the_old_version_in_between_still_opens(old_catalog):
    """The previous photocull sets user_version back to 3 whenever it differs: a catalog
    opened by new, then old, then new photocull must migrate again without failing."""
    path, photos = old_catalog
    with Catalog(path) as cat:
        cat.set_many_marks([(photos[2], Marks(0, 3, None))])
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA user_version = 3")  # what the old version's open does
    finally:
        con.close()
    with Catalog(path) as cat:
        assert cat.recovered_from is None
        marks = cat.get_marks(photos)
        assert marks[str(photos[2])].rating == 3 and marks[str(photos[0])].rating == 5
