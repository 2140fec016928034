"""The one "learn my taste" pipeline (CLI and window), and the small shared helpers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from photocull.cull.catalog import FLAG_PICK, FLAG_REJECT, Catalog, Marks
from photocull.model import nima
from photocull.scoring import score_all
from photocull.training import personal, ratings
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
    assert ratings.ratings_from_marks(marks, pick_stars=5, reject_stars=1) == {"a": 5, "b": 1, "c": 2, "e": 3}


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


# --- hostile ratings files (issue 2/7, item 8) ------------------------------------------------

def test_ratings_csv_survives_bad_rows_encodings_and_huge_fields(tmp_path):
    from photocull.training.ratings import read_ratings_csv

    good = tmp_path / "a.jpg"
    latin = "caf\xe9.jpg".encode("latin-1")  # a file name written by a legacy tool: not UTF-8
    csv_path = tmp_path / "r.csv"
    csv_path.write_bytes(b"path,rating\n" + b"a.jpg,4\n" + latin + b",3\n" + b"b.jpg,9\n" + b"c.jpg,0\n"
                         + b"d.jpg,nan\n" + b"e.jpg," + b"7" * 200_000 + b"\n" + b'"f.jpg,' + b"x" * 140_000
                         + b'",2\n' + b"g.jpg,pick\n" + b"h.jpg,abc\n" + b"only-a-name\n")
    got, skipped = read_ratings_csv(csv_path, pick_rating=5, reject_rating=1, scale=5)
    assert got[good] == 4.0 and got[tmp_path / "g.jpg"] == 5.0
    weird = [p for p in got if p.name.startswith("caf")]
    assert len(weird) == 1 and bytes(weird[0]).endswith(latin) and got[weird[0]] == 3.0  # the file's real bytes
    assert len(got) == 3
    text = " | ".join(skipped)
    assert "outside 1..5" in text and "not a number" in text and "field larger" in text and "no rating" in text
    assert len(skipped) == 7


def test_learn_cli_skips_out_of_range_ratings_with_a_message(tmp_path, capsys):
    from photocull.cli import main

    csv_path = tmp_path / "r.csv"
    csv_path.write_text("a.jpg,7\n", encoding="utf-8")
    rc = main(["--home", str(tmp_path / "home"), "learn", str(csv_path), "--name", "x"])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err
    assert "outside 1..5" in cap.err and "0 rated photos" in cap.out


def test_unreadable_ratings_file_is_a_clear_error(tmp_path, capsys):
    from photocull.cli import main

    rc = main(["--home", str(tmp_path / "home"), "learn", str(tmp_path / "missing.csv"), "--name", "x"])
    assert rc == 1 and "cannot read" in capsys.readouterr().err


def test_personal_models_never_take_a_shipped_name(tmp_path):
    from types import SimpleNamespace

    from photocull.training.personal import save_personal_model
    from photocull.training.ratings import TrainingError

    fake = SimpleNamespace(model=None, meta=lambda name, base: {})
    for name in ("default", "Aesthetic", "aesthetic"):
        with pytest.raises(TrainingError, match="shipped model"):
            save_personal_model(fake, name, tmp_path)
    assert not list(tmp_path.iterdir())


# --- the verdict: is the personal model better than the default? --------------------------------

def _held_out(n, seed=0):
    """Ratings and three predictors: one that follows them closely, one unrelated, and one
    a hair away from the close one."""
    rng = np.random.default_rng(seed)
    stars = rng.integers(1, 6, n).astype(float)
    close = stars + rng.normal(0, 0.4, n)
    unrelated = rng.normal(3, 1, n)
    return stars, close, unrelated, close + rng.normal(0, 1e-3, n)


def test_srcc_difference_bootstrap():
    from scipy.stats import spearmanr

    from photocull.training.metrics import srcc_difference

    stars, close, unrelated, twin = _held_out(40)
    better = srcc_difference(stars, unrelated, close, seed=1)
    assert better.n == 40 and better.personal == pytest.approx(spearmanr(close, stars)[0])
    assert better.default == pytest.approx(spearmanr(unrelated, stars)[0])
    assert 0 < better.low <= better.diff <= better.high and not better.includes_zero  # clearly better: above 0
    worse = srcc_difference(stars, close, unrelated, seed=1)
    assert worse.high < 0 and not worse.includes_zero
    same = srcc_difference(stars, close, close, seed=1)  # identical models
    assert same.diff == 0 and same.low <= 0 <= same.high and same.includes_zero
    assert srcc_difference(stars, close, twin, seed=1).includes_zero  # a hair's difference: chance
    # deterministic with a seed; another seed, another (close) interval
    assert srcc_difference(stars, unrelated, close, seed=1) == better
    other = srcc_difference(stars, unrelated, close, seed=2)
    assert other != better and other.low == pytest.approx(better.low, abs=0.15)
    # distributions (N, 10) are compared by their means, as scores are
    targets = personal.ratings_to_targets(stars)
    assert srcc_difference(targets, personal.ratings_to_targets(np.clip(unrelated, 1, 5)),
                           personal.ratings_to_targets(np.clip(close, 1, 5)), seed=1).low > 0
    # undefined: no interval, "can't tell"
    flat = srcc_difference(stars, np.full(40, 3.0), close)
    assert np.isnan(flat.default) and np.isnan(flat.low) and flat.includes_zero
    with pytest.raises(ValueError):
        srcc_difference(stars, close[:-1], close)


def test_resampled_ranks_are_the_ranks_of_the_resample():
    """The bootstrap ranks each resample in O(n); the same figures as ranking it."""
    from scipy.stats import spearmanr

    from photocull.training.metrics import _resampled_ranks, _weighted_corr

    rng = np.random.default_rng(3)
    t = rng.integers(1, 6, 25).astype(float)  # many ties
    p = np.round(t + rng.normal(0, 1, 25), 1)
    idx = rng.integers(0, 25, (30, 25))
    w = np.stack([np.bincount(r, minlength=25) for r in idx]).astype(float)
    fast = _weighted_corr(_resampled_ranks(t, w), _resampled_ranks(p, w), w)
    np.testing.assert_allclose(fast, [spearmanr(t[r], p[r])[0] for r in idx], atol=1e-12)


def test_taste_verdict_in_plain_words():
    from photocull.training.metrics import MIN_HELD_OUT, taste_verdict

    stars, close, unrelated, twin = _held_out(40)
    v = taste_verdict(stars, unrelated, close)
    assert v.outcome == "better" and v.suggest_saving and v.n == 40
    assert v.text.startswith("Your model agrees with your 40 held-out ratings better than the default")
    v = taste_verdict(stars, close, unrelated)
    assert v.outcome == "worse" and not v.suggest_saving
    assert "worse than the default" in v.text and "not suggested" in v.text
    v = taste_verdict(stars, close, twin)  # can't tell: the interval includes 0
    assert v.outcome == "unsure" and not v.suggest_saving and "could be chance" in v.text
    few = MIN_HELD_OUT - 1  # can't tell: too few, however clear the difference looks
    v = taste_verdict(stars[:few], close[:few], unrelated[:few], n_ratings=5 * few)
    assert v.outcome == "unsure" and f"{few} held-out ratings are too few" in v.text and "worse than" in v.text
    assert "about 100 rated photos" in v.text
    v = taste_verdict([], [], [])
    assert v.outcome == "unsure" and "No ratings were held out" in v.text


def test_fine_tune_keeps_the_held_out_predictions(base):
    """The verdict's inputs: what the before/after figures were measured on."""
    from photocull.training.metrics import score_metrics

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, base.model.heads.feat_mean.numel())).astype(np.float32)
    stars = np.tile([1, 2, 3, 4, 5], 6)
    res = drive(personal.fine_tune(x, personal.ratings_to_targets(stars), base, epochs=3))
    assert res.val_targets.shape == res.val_before.shape == res.val_after.shape == (res.n_val, 10)
    assert score_metrics(res.val_before, res.val_targets) == pytest.approx(res.before, nan_ok=True)
    assert score_metrics(res.val_after, res.val_targets) == pytest.approx(res.after, nan_ok=True)
    assert "val_targets" not in str(res.meta("x"))  # checkpoint metadata stays small


def test_learn_from_ratings_reads_the_aesthetic_features_too(base, tmp_path):
    """With the aesthetic model beside the base, both networks' features are computed once,
    stored under their own model, read back on the next run, and the personal model scores
    photos through both (as the scoring pipeline does, which refuses it without them)."""
    from photocull.model import checkpoint
    from photocull.model import spec
    from photocull.model.spec import ModelError
    from photocull.scoring import iter_scores

    aesthetic = checkpoint.load_model(spec.aesthetic_model_path(), "aesthetic")
    photos = _photos(tmp_path, 8)
    ratings = {p: s for p, s in zip(photos, [1, 2, 5, 4, 1, 2, 3, 5])}
    with Catalog(tmp_path / "catalog.sqlite") as cat:
        got = drive(personal.learn_from_ratings(ratings, base, cat, aesthetic=aesthetic, min_ratings=5))
        model = got.tuned.model
        assert model.cfg.extra_features == aesthetic.model.backbone.feature_dim
        assert got.tuned.meta("x")["extra_features_from"] == aesthetic.model_id
        stored = cat.any_features(photos, dim=model.cfg.extra_features, model_id=aesthetic.model_id)
        assert len(stored) == 8
        rows = []
        drive(personal.learn_from_ratings(ratings, base, cat, aesthetic=aesthetic, min_ratings=5), rows.append)
        assert [r["total"] for r in rows if r["phase"] == "features"][-1] == 0  # nothing scored again

    mine = nima.LoadedModel(model, "mine-id", "mine", trained=True, meta=got.tuned.meta("mine"))
    with pytest.raises(ModelError, match="aesthetic"):
        next(iter_scores(photos, mine))
    res = [r for prog in iter_scores(photos, mine, aesthetic=aesthetic) for r in prog.results]
    alone = {r.path: r for r in score_all(photos, base)}
    for r in res:
        with torch.no_grad():
            want = nima.with_extra(model.heads.extra, model.heads(torch.from_numpy(
                alone[r.path].features.astype(np.float32)[None]))[0].numpy(), r.aesthetic_features[None])[0]
        np.testing.assert_allclose(r.probs, want, atol=2e-3)
    # what the two-network head adds moves the scores: it is not the base head's answer
    assert max(abs(float(dist_mean_of(r.probs)) - float(dist_mean_of(alone[r.path].probs))) for r in res) > 1e-3


def dist_mean_of(p):
    from photocull.model.losses import dist_mean

    return dist_mean(np.asarray(p)[None])[0]
