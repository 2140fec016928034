"""The scoring generator: batches, progress, errors, cancel, order, and the catalog cache."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import make_photo
from photocull import scoring
from photocull.cull.catalog import Catalog
from photocull.media.listing import list_images
from photocull.scoring import iter_scores, iter_scores_cached, score_all

BAD = {"broken.jpg", "empty.jpg"}


def test_iter_scores_batches_progress_and_errors(photo_folder, tiny_model):
    paths = list_images(photo_folder)
    assert len(paths) == 8
    progs = list(iter_scores(paths, tiny_model, batch_size=3, workers=2))
    assert [len(p.results) for p in progs] == [3, 3, 2]
    dones = [p.done for p in progs]
    assert dones == sorted(dones) and dones[-1] == 8
    assert all(p.total == 8 for p in progs)
    results = [r for p in progs for r in p.results]
    assert sorted(r.path.name for r in results) == sorted(p.name for p in paths)
    for r in results:
        if r.path.name in BAD:
            assert not r.ok and r.error and r.probs is None and r.mean is None
        else:
            assert r.ok, r.error
            assert r.probs.shape == (10,) and r.probs.sum() == pytest.approx(1.0, abs=1e-4)
            assert 1.0 <= r.mean <= 10.0 and r.std >= 0
            assert r.features is not None and r.features.ndim == 1
            assert r.why == ""  # an untrained model gives no reasons
    errors = {r.path.name: r.error for r in results if not r.ok}
    assert "empty" in errors["empty.jpg"]
    assert progs[-1].elapsed > 0 and progs[-1].rate > 0


def test_iter_scores_returns_count_and_handles_empty(tiny_model, photo_folder):
    gen = iter_scores([], tiny_model)
    with pytest.raises(StopIteration) as si:
        next(gen)
    assert si.value.value == 0


def test_cancel_stops_within_one_batch(photo_folder, tiny_model):
    paths = list_images(photo_folder)
    state = {"cancel": False}
    yields = 0
    gen = iter_scores(paths, tiny_model, batch_size=2, cancelled=lambda: state["cancel"], workers=1)
    for prog in gen:
        yields += 1
        state["cancel"] = True  # the user pressed Cancel after the first batch
    assert 1 <= yields <= 2
    assert yields * 2 < len(paths)  # it did stop early


def test_cancel_before_start_yields_nothing(photo_folder, tiny_model):
    assert list(iter_scores(list_images(photo_folder), tiny_model, cancelled=lambda: True)) == []


def test_score_all_keeps_input_order(photo_folder, tiny_model):
    paths = list_images(photo_folder)
    shuffled = [paths[i] for i in np.random.default_rng(3).permutation(len(paths))]
    shuffled.append(photo_folder / "missing.jpg")
    results = score_all(shuffled, tiny_model, batch_size=3, workers=2)
    assert [r.path for r in results] == shuffled
    assert "not found" in results[-1].error
    # a photo scored again, alone, gets the same distribution as inside a mixed batch
    i = next(k for k, r in enumerate(results) if r.ok)
    (again,) = score_all([shuffled[i]], tiny_model)
    np.testing.assert_allclose(again.probs, results[i].probs, atol=1e-4)


def test_thumbnails_when_asked(photo_folder, tiny_model):
    p = photo_folder / "IMG_0000.jpg"
    (r,) = score_all([p], tiny_model, want_thumbnails=True, want_features=False)
    assert r.thumbnail is not None and max(r.thumbnail.size) <= scoring.THUMB_SIDE
    assert r.features is None


def test_model_failure_on_a_batch_is_reported_not_raised(photo_folder, tiny_model, monkeypatch):
    def boom(*a, **kw):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr("photocull.model.nima.predict", boom)
    results = score_all(list_images(photo_folder), tiny_model, batch_size=4)
    assert len(results) == 8 and not any(r.ok for r in results)
    assert sum("model error" in r.error for r in results) == 6


def _decoded_paths(monkeypatch):
    seen = []
    real = scoring.decode

    def spy(path, *a, **kw):
        seen.append(path.name)
        return real(path, *a, **kw)

    monkeypatch.setattr(scoring, "decode", spy)
    return seen


def test_iter_scores_cached_answers_from_catalog(photo_folder, tiny_model, app_paths, monkeypatch):
    cat = Catalog(app_paths.catalog_path)
    paths = list_images(photo_folder)
    first = [r for p in iter_scores_cached(paths, tiny_model, cat, batch_size=4) for r in p.results]
    assert len(first) == 8 and sum(r.ok for r in first) == 6
    means = {r.path.name: r.mean for r in first}

    # second run: everything from the cache, the model is never called
    def no_model(*a, **kw):
        raise AssertionError("the model was called for a cached photo")

    monkeypatch.setattr("photocull.model.runtime.make_runner", no_model)
    progs = list(iter_scores_cached(paths, tiny_model, cat, batch_size=4))
    assert len(progs) == 1 and progs[0].done == progs[0].total == 8
    second = {r.path.name: r for r in progs[0].results}
    assert set(second) == {p.name for p in paths}
    for name, r in second.items():
        if name in BAD:
            assert r.error  # errors are remembered too
        else:
            assert r.mean == pytest.approx(means[name], abs=1e-4)
    monkeypatch.undo()

    # a touched file and a new one are scored again; nothing else is
    touched = photo_folder / "IMG_0001.jpg"
    st = touched.stat()
    os.utime(touched, (st.st_atime, st.st_mtime + 10))
    make_photo(photo_folder / "IMG_0099.jpg", seed=99, size=(160, 120))
    seen = _decoded_paths(monkeypatch)
    paths = list_images(photo_folder)
    progs = list(iter_scores_cached(paths, tiny_model, cat, batch_size=4))
    assert sorted(seen) == ["IMG_0001.jpg", "IMG_0099.jpg"]
    assert len(progs[0].results) == 7  # the cached ones come first, in one yield
    assert progs[-1].done == progs[-1].total == 9
    assert sum(len(p.results) for p in progs) == 9

    # and they are cached now
    seen.clear()
    list(iter_scores_cached(paths, tiny_model, cat))
    assert seen == []


def test_iter_scores_cached_is_per_model(photo_folder, tiny_model, app_paths, monkeypatch):
    from dataclasses import replace

    cat = Catalog(app_paths.catalog_path)
    paths = list_images(photo_folder)[:2]
    list(iter_scores_cached(paths, tiny_model, cat))
    seen = _decoded_paths(monkeypatch)
    other = replace(tiny_model, model_id="another-model")
    list(iter_scores_cached(paths, other, cat))
    assert len(seen) == 2


def test_batch_size_must_be_positive(photo_folder, tiny_model):
    # batch_size=0 used to yield empty batches forever
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_scores(list_images(photo_folder), tiny_model, batch_size=0))


# --- analyses: fed by the one decode ----------------------------------------------------------

def test_an_analysis_gets_its_larger_view_and_fills_its_field(tmp_path, tiny_model):
    """An analysis asking for a bigger view gets the one decode at that size; the model's
    input is still made at DECODE_SIDE; a failing analysis costs only its own field."""
    big = make_photo(tmp_path / "big.jpg", size=(2400, 1600))
    sizes = []

    def view_size(im):
        sizes.append(im.size)
        return im.size

    wide = scoring.Analysis("thumbnail", view_size, side=1000)
    (r,) = score_all([big], tiny_model, analyses=(wide,))
    assert r.ok and r.thumbnail == sizes[0]
    assert 1000 <= max(sizes[0]) <= 2400 and sizes[0][0] > sizes[0][1]  # upright, landscape, DCT-scaled
    d_big = scoring.decode(big, tiny_model.cfg, (wide,))
    d_std = scoring.decode(big, tiny_model.cfg)
    assert d_big.array.shape == d_std.array.shape == (224, 224, 3)
    # the model's view is made from the larger decode: close to the direct one, not far off
    assert np.abs(d_big.array.astype(int) - d_std.array.astype(int)).mean() < 3.0

    def broken(im):
        raise RuntimeError("analysis bug")

    (r2,) = score_all([big], tiny_model, analyses=(scoring.Analysis("thumbnail", broken),))
    assert r2.ok and r2.probs is not None and r2.thumbnail is None


def test_the_default_decode_is_the_focus_view(tmp_path, tiny_model):
    """Focus needs a short side of FOCUS_SIDE (a 24 MP JPEG at 1/2 DCT scale), faces
    FACE_SIDE; the thumbnail alone would not make the decode larger than the model's."""
    assert scoring.decode_side(scoring.ANALYSES) == scoring.FOCUS_SIDE >= scoring.FACE_SIDE
    assert scoring.decode_side([scoring.THUMBNAIL]) == scoring.DECODE_SIDE


def test_a_folder_scored_by_one_network_gets_only_the_other(tmp_path, monkeypatch):
    """A catalog made before the aesthetic network existed (technical scores only): the next
    run decodes each photo once for the aesthetic network alone, keeps the stored technical
    scores as they were, and a third run decodes nothing."""
    from reliability_helpers import fast_model

    tech, aest = fast_model(64), fast_model(32)
    files = [make_photo(tmp_path / f"p{i}.jpg", seed=i, size=(160, 120)) for i in range(5)]
    with Catalog(tmp_path / "c.sqlite") as cat:
        for _ in iter_scores_cached(files, tech, cat, torch_threads=1):
            pass
        before = cat.lookup(files, tech.model_id)
        calls = []
        real = scoring.decode

        def spy(path, cfgs, analyses=(), need=None):
            calls.append(tuple(need) if need is not None else None)
            return real(path, cfgs, analyses, need)

        monkeypatch.setattr(scoring, "decode", spy)
        results = [r for prog in iter_scores_cached(files, tech, cat, aesthetic=aest, torch_threads=1)
                   for r in prog.results]
        assert sorted(calls) == [(False, True)] * 5  # each photo once, for the aesthetic network only
        assert all(r.aesthetic is not None and r.probs is not None and r.error is None for r in results)
        after = cat.lookup(files, tech.model_id)
        for k, s in before.items():
            assert np.array_equal(after[k].probs, s.probs) and after[k].mtime == s.mtime
        calls.clear()
        again = [r for prog in iter_scores_cached(files, tech, cat, aesthetic=aest) for r in prog.results]
        assert calls == [] and all(r.aesthetic is not None for r in again)


def test_stored_analyses_are_kept_and_found_once_for_a_folder_scored_before(tmp_path, monkeypatch):
    """An analysis with ``load`` is kept in the catalog: reopening never runs it again; a
    folder scored before it existed is decoded once for it alone (its scores are kept)."""
    from reliability_helpers import fast_model

    class Found:
        def __init__(self, side):
            self.side = side

        def to_json(self):
            return {"side": self.side}

        @classmethod
        def from_json(cls, v):
            if not isinstance(v, dict) or not isinstance(v.get("side"), int):
                raise ValueError("not a Found")
            return cls(v["side"])

    runs = []

    def run(im, faces=None):
        runs.append(im.size)
        return Found(max(im.size))

    model = fast_model(64)
    files = [make_photo(tmp_path / f"p{i}.jpg", seed=i, size=(640, 480)) for i in range(4)]
    with Catalog(tmp_path / "c.sqlite") as cat:
        list(iter_scores_cached(files, model, cat, analyses=()))  # before the analysis existed
        before = cat.lookup(files, model.model_id)
        wide = scoring.Analysis("focus", run, side=600, uses=("faces",), load=Found.from_json)
        monkeypatch.setattr(scoring, "ANALYSES", (wide,))
        got = [r for prog in iter_scores_cached(files, model, cat, analyses=(wide,)) for r in prog.results]
        assert runs == [(640, 480)] * 4  # the decode itself: at least 600 px would need more than 480
        assert all(isinstance(r.focus, Found) and r.focus.side == 640 and r.error is None for r in got)
        after = cat.lookup(files, model.model_id)
        assert all(np.array_equal(after[k].probs, v.probs) for k, v in before.items())  # scores kept
        runs.clear()
        again = [r for prog in iter_scores_cached(files, model, cat, analyses=(wide,)) for r in prog.results]
        assert runs == [] and all(r.focus.side == 640 for r in again)  # reopening: from the catalog
        # a damaged stored value is found again, never a crash
        cat.con.execute("UPDATE scores SET analyses='{\"focus\": 7}'")
        cat.con.commit()
        fixed = [r for prog in iter_scores_cached(files, model, cat, analyses=(wide,)) for r in prog.results]
        assert all(r.focus is None or r.focus.side == 640 for r in fixed)


def test_the_tiny_greys_for_burst_grouping_come_from_the_one_decode(tmp_path, monkeypatch):
    """Scoring keeps each photo's tiny grey in the catalog: grouping bursts afterwards decodes
    nothing again."""
    from reliability_helpers import fast_model

    from photocull.cull import bursts

    files = [make_photo(tmp_path / f"p{i}.jpg", seed=i, size=(320, 240)) for i in range(4)]
    with Catalog(tmp_path / "c.sqlite") as cat:
        results = [r for prog in iter_scores_cached(files, fast_model(64), cat) for r in prog.results]
        assert all(r.tiny_gray is not None and r.tiny_gray.shape == (64, 64) for r in results)
        assert all(cat.tiny_gray(f, bursts.TINY_SIDE) is not None for f in files)

        def no_decode(path):
            raise AssertionError(f"{path} decoded again for grouping")

        monkeypatch.setattr(bursts, "load_tiny_gray_u8", no_decode)
        loader = bursts.CachedGrayLoader(cat, decode=no_decode)
        assert all(loader(f) is not None for f in files) and loader.decoded == 0


def test_progress_rate_counts_only_the_photos_scored_now():
    """39 of 43 answered by the catalog, 2 scored in the second since: 2 photos/s, 1 s left
    (not 41 photos/s and no time left)."""
    from photocull.scoring import BatchProgress

    p = BatchProgress([], 41, 43, 1.0, cached=39)
    assert p.rate == pytest.approx(2.0) and p.eta == pytest.approx(1.0)
    first = BatchProgress([], 39, 43, 0.05, cached=39)
    assert first.rate == 0.0 and first.eta != first.eta  # (nan: not known yet)
    assert BatchProgress([], 8, 43, 2.0).rate == pytest.approx(4.0)


def test_stored_reports_are_one_json_object_and_rows_of_strings_still_load(tmp_path):
    """What the analyses found is kept as one JSON object with the reports inside as objects
    (one parse per photo on a reopen); rows written before, with each report as a string of
    JSON inside the JSON, still load; a NaN smuggled into a nested report is refused."""
    import json

    from reliability_helpers import fast_model

    from photocull.analysis.exposure import ExposureReport
    from photocull.analysis.faces import FaceReport
    from photocull.analysis.focus import FocusReport

    model = fast_model(64)
    files = [make_photo(tmp_path / f"p{i}.jpg", seed=i, size=(640, 480)) for i in range(3)]
    with Catalog(tmp_path / "c.sqlite") as cat:
        first = {str(r.path): r for prog in iter_scores_cached(files, model, cat) for r in prog.results}
        texts = [t for (t,) in cat.con.execute("SELECT analyses FROM scores WHERE model_id=?", (model.model_id,))]
        assert len(texts) == 3 and all(isinstance(v, dict) for t in texts for v in json.loads(t).values())

        def loaded():
            return {str(r.path): r for prog in iter_scores_cached(files, model, cat) for r in prog.results}

        def same(a, b):
            return (a.faces.to_json() == b.faces.to_json() and a.focus.to_json() == b.focus.to_json()
                    and a.exposure.to_json() == b.exposure.to_json())

        again = loaded()
        assert all(isinstance(r.faces, FaceReport) and isinstance(r.focus, FocusReport)
                   and isinstance(r.exposure, ExposureReport) and same(r, first[k]) for k, r in again.items())
        # the format written before: each report a string
        for (path, text) in cat.con.execute("SELECT path, analyses FROM scores WHERE model_id=?",
                                            (model.model_id,)).fetchall():
            old = json.dumps({k: json.dumps(v, separators=(",", ":")) for k, v in json.loads(text).items()})
            cat.con.execute("UPDATE scores SET analyses=? WHERE path=? AND model_id=?", (old, path, model.model_id))
        cat.con.commit()
        assert all(same(r, first[k]) for k, r in loaded().items())
        # a hostile value inside a nested report: that report is left out, the photo still loads
        (path, text), *_ = cat.con.execute("SELECT path, analyses FROM scores WHERE model_id=?",
                                           (model.model_id,)).fetchall()
        d = json.loads(text)
        d["exposure"] = json.loads(d["exposure"]) if isinstance(d["exposure"], str) else d["exposure"]
        d["exposure"]["mid"] = float("nan")
        cat.con.execute("UPDATE scores SET analyses=? WHERE path=? AND model_id=?", (json.dumps(d), path, model.model_id))
        cat.con.commit()
        hurt = loaded()[path]
        assert hurt.exposure is None and hurt.probs is not None and hurt.focus is not None and hurt.faces is not None
