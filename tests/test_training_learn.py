"""The one "learn my taste" pipeline (CLI and window), and the small shared helpers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from photocull.cull.catalog import FLAG_PICK, FLAG_REJECT, Catalog, Marks
from photocull.model import nima
from photocull.scoring import score_all
from photocull.training import personal
from photocull.training.heads import drive, torch_threads
from photocull.training.metrics import format_metric, without_nan


@pytest.fixture(scope="module")
def base():
    return nima.untrained_model(seed=0)


def _photos(folder, n):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"p{i}.jpg"
        Image.fromarray((rng.random((40, 56, 3)) * (40 + 25 * i)).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_learn_from_ratings_scores_once_then_reads_the_catalog(base, tmp_path):
    photos = _photos(tmp_path, 8)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    ratings = {p: s for p, s in zip(photos, [1, 2, 5, 4, 1, 2, 3, 5])}
    ratings[tmp_path / "broken.jpg"] = 3
    with Catalog(tmp_path / "catalog.sqlite") as cat:
        rows = []
        got = drive(personal.learn_from_ratings(ratings, base, cat, min_ratings=5), rows.append)
        assert isinstance(got.tuned, personal.FineTuneResult) and got.n_photos == 8 and got.tuned.n_ratings == 8
        assert [p.name for p, _ in got.unreadable] == ["broken.jpg"]
        feats = [r for r in rows if r["phase"] == "features"]
        assert feats[0]["total"] == 9 and feats[-1]["photos"] == 8 and len(feats[-1]["unreadable"]) == 1
        assert any(r["phase"] == "select" for r in rows)

        # the same features as the CLI computed before: the personal model is the one fine_tune gives
        fresh = score_all(photos, base)
        x = np.stack([r.features for r in fresh])
        alone = drive(personal.fine_tune(x, personal.ratings_to_targets([ratings[p] for p in photos]), base,
                                         min_ratings=5))
        f = torch.from_numpy(x)
        with torch.no_grad():
            torch.testing.assert_close(got.tuned.model.heads(f)[0], alone.model.heads(f)[0], rtol=0, atol=0)

        # a second run reads the stored features: only the broken photo is tried again
        rows = []
        drive(personal.learn_from_ratings(ratings, base, cat, min_ratings=5), rows.append)
        assert [r["total"] for r in rows if r["phase"] == "features"][-1] == 1


def test_learn_from_ratings_guard_rails_and_cancel(base, tmp_path):
    photos = _photos(tmp_path, 6)
    with Catalog(tmp_path / "catalog.sqlite") as cat:
        with pytest.raises(personal.TrainingError, match="at least 20"):
            next(personal.learn_from_ratings({p: 1 + i % 5 for i, p in enumerate(photos)}, base, cat))
        with pytest.raises(personal.TrainingError, match="same"):
            next(personal.learn_from_ratings({p: 3 for p in photos}, base, cat, min_ratings=5))
        gen = personal.learn_from_ratings({p: 1 + i % 5 for i, p in enumerate(photos)}, base, cat, min_ratings=5,
                                          cancelled=lambda: True)
        assert drive(gen) is None


def test_ratings_from_marks():
    marks = {"a": Marks(FLAG_PICK), "b": Marks(FLAG_REJECT, 4), "c": Marks(rating=2), "d": Marks(),
             "e": Marks(FLAG_PICK, 3)}
    assert personal.ratings_from_marks(marks, pick_stars=5, reject_stars=1) == {"a": 5, "b": 1, "c": 2, "e": 3}


def test_format_metric_and_without_nan():
    assert format_metric(0.12345) == "0.123" and format_metric(0.12345, nd=2) == "0.12"
    assert format_metric(float("nan")) == "n/a" and format_metric(None, missing="-") == "-"
    assert without_nan({"a": float("nan"), "b": 1.5, "n": 3}) == {"a": None, "b": 1.5, "n": 3}


def test_drive_and_torch_threads():
    def gen():
        yield 1
        yield 2
        return "done"

    seen = []
    assert drive(gen(), seen.append) == "done" and seen == [1, 2]
    old = torch.get_num_threads()
    with torch_threads(old + 1):
        assert torch.get_num_threads() == old + 1
    assert torch.get_num_threads() == old
