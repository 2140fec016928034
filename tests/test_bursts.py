"""Burst / bracket / panorama grouping on generated frames with real backbone features."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from photocull.model import nima

from photocull.model import spec as modelspec
from photocull.cull.bursts import BurstInput, best_of_groups_changes, find_groups_for_items, group_bursts, likeness, tiny_gray

skdata = pytest.importorskip("skimage.data")

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def scenes():
    return {"astronaut": skdata.astronaut(), "coffee": skdata.coffee(), "chelsea": skdata.chelsea()}


def crop(a: np.ndarray, x: int, y: int, w: int, h: int) -> Image.Image:
    assert 0 <= y and y + h <= a.shape[0] and 0 <= x and x + w <= a.shape[1]
    return Image.fromarray(np.ascontiguousarray(a[y:y + h, x:x + w]))


def expose(im: Image.Image, ev: float) -> Image.Image:
    lin = (np.asarray(im) / 255.0) ** 2.2 * 2.0 ** ev
    return Image.fromarray((np.clip(lin, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8))


def features(model, ims: list[Image.Image]) -> np.ndarray:
    x = nima.preprocess([modelspec.to_model_input(im, model.cfg) for im in ims], model.cfg)
    _, _, f = nima.predict(model.model, x)
    return f.astype(np.float16)  # as stored by scoring/catalog


class Frames:
    """Features for every test image, computed in one batch (one model call is much
    cheaper than one per test)."""

    def __init__(self, model):
        self.model = model
        self.cache: dict[bytes, np.ndarray] = {}

    def prime(self, ims: list[Image.Image]) -> None:
        todo = [im for im in ims if im.tobytes() not in self.cache]
        for im, f in zip(todo, features(self.model, todo) if todo else []):
            self.cache[im.tobytes()] = f

    def __call__(self, ims: list[Image.Image]) -> np.ndarray:
        self.prime(ims)
        return np.stack([self.cache[im.tobytes()] for im in ims])


# Every image the feature-using tests need, so that one batch covers them all.
A_SHOTS = [(40, 40), (43, 41), (38, 44), (46, 37), (41, 40), (42, 41), (44, 39), (41, 43), (42, 42), (44, 41),
           (45, 42), (43, 40), (43, 42)]
C_SHOTS = [(100, 20), (103, 22), (102, 23)]


def _all_test_images(sc) -> list[Image.Image]:
    a, c, ch = sc["astronaut"], sc["coffee"], sc["chelsea"]
    base = crop(c, 100, 20, 350, 350)
    out = [crop(a, x, y, 400, 400) for x, y in A_SHOTS] + [crop(a, 40 + k, 40, 400, 400) for k in range(3)]
    out += [crop(c, x, y, 350, 350) for x, y in C_SHOTS] + [crop(ch, 50, 0, 300, 300)]
    out += [crop(sc[k], 0, 0, 300, 300) for k in ("astronaut", "coffee", "chelsea")]
    out += [expose(base, ev) for ev in (0.0, -1.0, 1.0)]
    out += [expose(crop(a, 40, 40, 400, 400), ev) for ev in (-2.0, 0.0, 2.0)]
    out += [crop(c, x, 0, 300, 400) for x in (0, 100, 200, 300)]
    return out


@pytest.fixture(scope="module")
def frames(tiny_model, scenes) -> Frames:
    fr = Frames(tiny_model)
    fr.prime(_all_test_images(scenes))
    return fr


def inputs(frames, ims, times=None, biases=None, scores=None, names=None) -> list[BurstInput]:
    f = frames(ims)
    n = len(ims)
    times = times if times is not None else [None] * n
    biases = biases if biases is not None else [0.0] * n
    scores = scores if scores is not None else [5.0] * n
    names = names or [f"IMG_{k:04d}.JPG" for k in range(n)]
    return [BurstInput(Path(names[k]), times[k], biases[k], f[k], tiny_gray(ims[k]), scores[k]) for k in range(n)]


def kinds(groups):
    return [(g.members, g.kind) for g in groups]


# --- bursts -----------------------------------------------------------------------------------

def test_burst_with_small_shifts_is_one_group(frames, scenes):
    a = scenes["astronaut"]
    shots = [(40, 40), (43, 41), (38, 44), (46, 37), (41, 40)]  # a few px of camera shake
    ims = [crop(a, x, y, 400, 400) for x, y in shots]
    scores = [5.1, 5.6, 4.2, 5.3, 4.9]
    items = inputs(frames, ims, times=[T0 + 0.2 * k for k in range(5)], scores=scores)
    groups = group_bursts(items)
    assert kinds(groups) == [([0, 1, 2, 3, 4], "burst")]
    assert groups[0].best == 1


def test_distinct_scenes_at_the_same_time_stay_apart(frames, scenes):
    ims = [crop(scenes[k], 0, 0, 300, 300) for k in ("astronaut", "coffee", "chelsea")]
    items = inputs(frames, ims, times=[T0, T0, T0 + 0.5])
    groups = group_bursts(items)
    assert kinds(groups) == [([0], "single"), ([1], "single"), ([2], "single")]
    assert not [g for g in groups if g.kind == "burst"]  # nothing the Select menu's "best of bursts" touches


def test_interleaved_bursts_of_two_scenes(frames, scenes):
    a, c = scenes["astronaut"], scenes["coffee"]
    ims = [crop(a, 40, 40, 400, 400), crop(c, 100, 20, 350, 350), crop(a, 42, 41, 400, 400),
           crop(c, 103, 22, 350, 350), crop(a, 44, 39, 400, 400)]
    items = inputs(frames, ims, times=[T0 + 0.3 * k for k in range(5)])
    assert kinds(group_bursts(items)) == [([0, 2, 4], "burst"), ([1, 3], "burst")]


def test_same_scene_much_later_is_another_group(frames, scenes):
    a = scenes["astronaut"]
    ims = [crop(a, 40, 40, 400, 400), crop(a, 42, 41, 400, 400), crop(a, 41, 43, 400, 400)]
    items = inputs(frames, ims, times=[T0, T0 + 0.5, T0 + 60])
    assert kinds(group_bursts(items)) == [([0, 1], "burst"), ([2], "single")]


def test_members_come_in_shooting_order(frames, scenes):
    a = scenes["astronaut"]
    ims = [crop(a, 40 + k, 40, 400, 400) for k in range(3)]
    items = inputs(frames, ims, times=[T0 + 1.0, T0, T0 + 0.5])
    assert kinds(group_bursts(items)) == [([1, 2, 0], "burst")]


# --- brackets and panoramas ------------------------------------------------------------------------

def test_exposure_bracket_is_kept_together_and_never_rejected(frames, scenes):
    base = crop(scenes["coffee"], 100, 20, 350, 350)
    evs = [0.0, -1.0, 1.0]
    ims = [expose(base, ev) for ev in evs]
    items = inputs(frames, ims, times=[T0, T0 + 0.2, T0 + 0.4], biases=evs, scores=[5.0, 3.0, 4.0])
    groups = group_bursts(items)
    assert kinds(groups) == [([0, 1, 2], "bracket")]
    assert groups[0].protected
    assert not [g for g in groups if g.kind == "burst"]  # nothing the Select menu's "best of bursts" touches


def test_wide_bracket_of_two_stops(frames, scenes):
    base = crop(scenes["astronaut"], 40, 40, 400, 400)
    evs = [-2.0, 0.0, 2.0]
    items = inputs(frames, [expose(base, ev) for ev in evs], times=[T0, T0 + 0.3, T0 + 0.6], biases=evs)
    assert kinds(group_bursts(items)) == [([0, 1, 2], "bracket")]


def test_panorama_sequence_is_kept_together_and_never_rejected(frames, scenes):
    c = scenes["coffee"]  # 400 x 600
    ims = [crop(c, x, 0, 300, 400) for x in (0, 100, 200, 300)]  # a third of a frame per step
    items = inputs(frames, ims, times=[T0, T0 + 1.5, T0 + 3.0, T0 + 4.5])
    groups = group_bursts(items)
    assert kinds(groups) == [([0, 1, 2, 3], "panorama")]
    assert not [g for g in groups if g.kind == "burst"]  # nothing the Select menu's "best of bursts" touches


# --- frames without a capture time -----------------------------------------------------------------

def test_untimed_frames_group_by_look_alone(frames, scenes):
    a, c, ch = scenes["astronaut"], scenes["coffee"], scenes["chelsea"]
    ims = [crop(a, 40, 40, 400, 400), crop(c, 100, 20, 350, 350), crop(a, 43, 42, 400, 400),
           crop(ch, 50, 0, 300, 300), crop(c, 102, 23, 350, 350)]
    names = ["x/b.jpg", "x/a.jpg", "x/e.jpg", "x/c.jpg", "x/z.jpg"]  # look-alikes not name neighbours
    items = inputs(frames, ims, names=names)
    assert kinds(group_bursts(items)) == [([0, 2], "burst"), ([1, 4], "burst"), ([3], "single")]


def test_untimed_without_features_uses_name_neighbours(scenes):
    a, ch = scenes["astronaut"], scenes["chelsea"]
    ims = [crop(a, 40, 40, 400, 400), crop(a, 42, 41, 400, 400), crop(ch, 50, 0, 300, 300)]
    items = [BurstInput(Path(f"IMG_{k}.png"), gray=tiny_gray(im)) for k, im in enumerate(ims)]
    assert kinds(group_bursts(items, gray_loader=None)) == [([0, 1], "burst"), ([2], "single")]


def test_greys_are_loaded_from_files_when_missing(frames, scenes, tmp_path):
    a, ch = scenes["astronaut"], scenes["chelsea"]
    ims = [crop(a, 40, 40, 400, 400), crop(a, 43, 40, 400, 400), crop(ch, 50, 0, 300, 300)]
    f = frames(ims)
    items = []
    for k, im in enumerate(ims):
        p = tmp_path / f"IMG_{k}.jpg"
        im.save(p, quality=90)
        items.append(BurstInput(p, T0 + 0.4 * k, None, f[k], None, float(k)))
    (tmp_path / "IMG_1.jpg").write_bytes(b"broken")  # unreadable: no pixels, no link
    assert kinds(group_bursts(items)) == [([0], "single"), ([1], "single"), ([2], "single")]
    ims[1].save(tmp_path / "IMG_1.jpg", quality=90)
    assert kinds(group_bursts(items)) == [([0, 1], "burst"), ([2], "single")]


def test_missing_pixels_never_link(scenes):
    items = [BurstInput(Path("a.jpg"), T0), BurstInput(Path("b.jpg"), T0)]
    assert kinds(group_bursts(items, gray_loader=None)) == [([0], "single"), ([1], "single")]


# --- pieces ------------------------------------------------------------------------------------------

def test_likeness_separates_shift_from_difference(scenes):
    a, ch = scenes["astronaut"], scenes["chelsea"]
    g = tiny_gray(crop(a, 40, 40, 400, 400))
    near = likeness(g, tiny_gray(crop(a, 45, 42, 400, 400)))
    assert near.ssim > 0.8 and near.shift < 0.05
    far = likeness(g, tiny_gray(crop(ch, 50, 0, 300, 300)))
    assert far.ssim < 0.5
    c = scenes["coffee"]
    step = likeness(tiny_gray(crop(c, 0, 0, 300, 400)), tiny_gray(crop(c, 100, 0, 300, 400)))
    assert step.shift > 0.2 and step.ncc > 0.6


def test_best_without_scores_is_the_first_frame():
    g = np.zeros((64, 64), np.float32)
    g[16:48, 16:40] = 1
    items = [BurstInput(Path(f"{k}.jpg"), T0 + k * 0.1, gray=g) for k in range(3)]
    (grp,) = group_bursts(items, gray_loader=None)
    assert grp.kind == "burst" and grp.best == 0


def test_gui_adapters(frames, scenes):
    a, c = scenes["astronaut"], scenes["coffee"]
    base = crop(c, 100, 20, 350, 350)
    ims = [crop(a, 40, 40, 400, 400), crop(a, 42, 42, 400, 400), crop(a, 44, 41, 400, 400),
           expose(base, -1), expose(base, 1), crop(scenes["chelsea"], 0, 0, 300, 300)]
    f = frames(ims)
    grays = {f"/p/IMG_{k}.jpg": tiny_gray(im) for k, im in enumerate(ims)}
    items = [SimpleNamespace(path=Path(f"/p/IMG_{k}.jpg"), capture_time=T0 + 0.3 * k if k < 5 else None,
                             exposure_bias=[0, 0, 0, -1, 1, None][k], mean=[4.0, 6.0, 5.0, 5.0, 4.0, 5.0][k],
                             flag=[1, 0, 0, 0, 0, 0][k], group=None, group_size=1, group_kind="", group_best=True)
             for k in range(6)]
    feats = {str(it.path): f[k] for k, it in enumerate(items)}
    before = [vars(it).copy() for it in items]
    alone = find_groups_for_items(items, feats)  # no pixels, no decoding: nothing is grouped
    assert alone == [(None, 1, "", True)] * 6
    got = find_groups_for_items(items, feats, grays={k: grays[k] for k in list(grays)[:3]},
                                gray_loader=lambda p: grays[str(p)])
    assert [vars(it) for it in items] == before  # the items are only read
    assert got == [(0, 3, "burst", False), (0, 3, "burst", True), (0, 3, "burst", False),
                   (1, 2, "bracket", True), (1, 2, "bracket", False), (None, 1, "", True)]
    assert got[0].group == 0 and got[0].kind == "burst" and got[1].best
    for it, g in zip(items, got):  # as the window applies them
        it.group, it.group_size, it.group_kind, it.group_best = g
    changes = best_of_groups_changes(items)
    # IMG_0 was picked by hand: it is the burst's pick (not rejected, no second pick: the
    # group's best, IMG_1, is rejected with the rest); the bracket is left alone
    assert [(it.path.name, flag) for it, flag in changes] == [("IMG_1.jpg", -1), ("IMG_2.jpg", -1)]
    assert [it.path.name for it in changes.left] == ["IMG_0.jpg"]


# --- pick best of each burst: your marks rule ----------------------------------------------------

def _frame(name, group=0, kind="burst", best=False, mean=5.0, flag=0, rating=0, label=None):
    return SimpleNamespace(path=Path(f"/p/{name}.jpg"), group=group, group_kind=kind, group_best=best, mean=mean,
                           flag=flag, rating=rating, label=label)


def _plan(result):
    return [(it.path.stem, flag) for it, flag in result]


def test_pick_best_unmarked_bursts_pick_the_best_and_reject_the_rest():
    items = [_frame("a0", best=True, mean=6), _frame("a1", mean=5), _frame("a2", mean=4),
             _frame("s", group=None, kind="", best=True)]  # a single photo: never touched
    got = best_of_groups_changes(items)
    assert _plan(got) == [("a0", 1), ("a1", -1), ("a2", -1)]
    assert [it.path.stem for it in got.picks] == ["a0"] and [it.path.stem for it in got.rejects] == ["a1", "a2"]
    assert got.left == [] and len(got) == 3
    assert got.summary == "1 pick, 2 rejects; 0 photos you marked are left as they are"
    assert [vars(it)["flag"] for it in items] == [0, 0, 0, 0]  # only a plan: nothing changed


def test_pick_best_never_changes_a_frame_you_marked():
    items = [
        # you rated a frame that is not the best: it is your pick; the best is rejected, no second pick
        _frame("a0", best=True, mean=6), _frame("a1", mean=5, rating=5), _frame("a2", mean=4),
        # you picked one: no second pick
        _frame("b0", 1, best=True), _frame("b1", 1, flag=1),
        # you rejected the best: the best unmarked frame is picked instead (never the whole burst rejected)
        _frame("c0", 2, best=True, mean=7, flag=-1), _frame("c1", 2, mean=5), _frame("c2", 2, mean=6),
        # a colour label alone keeps a frame as it is, without choosing it
        _frame("d0", 3, best=True, mean=7, label="Red"), _frame("d1", 3, mean=6), _frame("d2", 3, mean=5),
        # every frame marked: nothing to do
        _frame("e0", 4, best=True, flag=-1), _frame("e1", 4, label="Green"),
        # a rejected frame with stars does not choose the pick
        _frame("f0", 5, best=True, mean=6), _frame("f1", 5, mean=5, flag=-1, rating=3),
    ]
    got = best_of_groups_changes(items)
    assert _plan(got) == [("a0", -1), ("a2", -1), ("b0", -1), ("c1", -1), ("c2", 1), ("d1", 1), ("d2", -1),
                          ("f0", 1)]
    left = [it.path.stem for it in got.left]
    assert left == ["a1", "b1", "c0", "d0", "e0", "e1", "f1"]
    assert not {it.path.stem for it, _ in got} & set(left)
    assert got.summary == "3 picks, 5 rejects; 7 photos you marked are left as they are"
    one = best_of_groups_changes([_frame("x0", best=True), _frame("x1", rating=2)])
    assert one.summary == "0 picks, 1 reject; 1 photo you marked is left as it is"


def test_pick_best_leaves_brackets_and_panoramas_alone():
    items = [_frame(f"k{i}", 0, "bracket", best=i == 0) for i in range(3)]
    items += [_frame(f"p{i}", 1, "panorama", best=i == 0) for i in range(3)]
    got = best_of_groups_changes(items)
    assert not got and got.changes == [] and got.left == []


def test_pick_best_when_the_best_is_marked_ranks_the_rest():
    # the best is rejected; the unmarked frames are ranked by score, ties by path, unscored last
    items = [_frame("z", best=True, mean=9, flag=-1), _frame("c", mean=None), _frame("b", mean=5), _frame("a", mean=5)]
    assert _plan(best_of_groups_changes(items)) == [("c", -1), ("b", -1), ("a", 1)]
    items = [_frame("z", best=True, flag=-1), _frame("c", mean=None), _frame("b", mean=None)]
    assert _plan(best_of_groups_changes(items)) == [("c", 1), ("b", -1)]


# --- memory and the catalog's greys -----------------------------------------------------------

def test_greys_kept_as_uint8_and_float16_features_group_the_same(frames, scenes):
    """What the GUI's grouping keeps (uint8 greys, float16 features as stored) gives the same
    groups as float32 greys and features."""
    from photocull.cull.bursts import gray_as_float, tiny_gray_u8

    a, c = scenes["astronaut"], scenes["coffee"]
    base = crop(c, 100, 20, 350, 350)
    ims = [crop(a, 40, 40, 400, 400), crop(a, 42, 42, 400, 400), crop(a, 44, 41, 400, 400),
           expose(base, -1), expose(base, 1), crop(scenes["chelsea"], 0, 0, 300, 300),
           crop(c, 0, 0, 300, 400), crop(c, 100, 0, 300, 400)]
    times = [T0, T0 + 0.3, T0 + 0.6, T0 + 0.9, T0 + 1.2, None, T0 + 9, T0 + 11]
    biases = [0, 0, 0, -1, 1, None, 0, 0]
    f = frames(ims)
    for im in ims:
        assert np.array_equal(gray_as_float(tiny_gray_u8(im)), tiny_gray(im))
    ref = group_bursts([BurstInput(Path(f"{k}.jpg"), times[k], biases[k], f[k].astype(np.float32), tiny_gray(im))
                        for k, im in enumerate(ims)], gray_loader=None)
    lean = group_bursts([BurstInput(Path(f"{k}.jpg"), times[k], biases[k], f[k].astype(np.float16),
                                    tiny_gray_u8(im)) for k, im in enumerate(ims)], gray_loader=None)
    assert kinds(lean) == kinds(ref) == [([0, 1, 2], "burst"), ([3, 4], "bracket"), ([5], "single"),
                                         ([6, 7], "panorama")]


def test_frame_likeness_measures_equal_scikit_images(scenes):
    """The shift and SSIM grouping compares frames by are scikit-image's, computed without its
    argument handling (grouping a shoot is a few thousand such pairs): equal on real crops,
    shifted, noisy and brightened copies, float32 and float64, whole frames and overlaps."""
    from scipy.fft import fftn
    from skimage.metrics import structural_similarity
    from skimage.registration import phase_cross_correlation

    from photocull.cull.bursts import _shift, _ssim7

    rng = np.random.default_rng(5)
    checked = 0
    for name, im in scenes.items():
        g = np.asarray(Image.fromarray(im).convert("L").resize((64, 64)), dtype=np.float32) / 255
        for _ in range(12):
            dy, dx = (int(v) for v in rng.integers(-24, 25, 2))
            g2 = np.roll(g, (dy, dx), (0, 1)) * rng.uniform(0.6, 1.4) + rng.normal(0, rng.uniform(0, 0.1), g.shape)
            for dtype in (np.float32, np.float64):
                a, b = g.astype(dtype), g2.astype(dtype)
                ref, _, _ = phase_cross_correlation(fftn(a), fftn(b), normalization=None, space="fourier")
                assert _shift(fftn(a), fftn(b)) == tuple(int(round(float(v))) for v in ref)
                h, w = (int(v) for v in rng.integers(16, 65, 2))
                pa, pb = a[:h, :w], b[64 - h:, 64 - w:]
                assert _ssim7(pa, pb) == float(structural_similarity(pa, pb, data_range=1.0, win_size=7))
                checked += 1
    assert checked >= 48


def test_cached_gray_loader_decodes_each_photo_once(tmp_path, app_paths):
    from conftest import make_photo
    from photocull.cull.bursts import CachedGrayLoader, load_tiny_gray, load_tiny_gray_u8
    from photocull.cull.catalog import Catalog

    photos = [make_photo(tmp_path / "shoot" / f"IMG_{k}.jpg", seed=k) for k in range(3)]
    (tmp_path / "shoot" / "broken.jpg").write_bytes(b"not a jpeg")
    decoded = []

    def decode(p):
        decoded.append(Path(p).name)
        return load_tiny_gray_u8(p)

    with Catalog(app_paths.catalog_path) as cat:
        first = CachedGrayLoader(cat, flush_every=2, decode=decode)
        got = [first(p) for p in photos]
        assert first(tmp_path / "shoot" / "broken.jpg") is None
        first.flush()
        assert decoded == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg", "broken.jpg"]
        for g, p in zip(got, photos):
            assert g.dtype == np.uint8 and np.array_equal(g.astype(np.float32) / 255.0, load_tiny_gray(p))
        # a later grouping (another loader, as on reopening the folder) decodes none of them
        again = CachedGrayLoader(cat, decode=decode)
        assert all(np.array_equal(again(p), g) for p, g in zip(photos, got))
        assert again.hits == 3 and again.decoded == 0 and len(decoded) == 4
        # a photo edited since: decoded again
        make_photo(photos[1], seed=9, size=(300, 200))
        assert not np.array_equal(again(photos[1]), got[1]) and decoded[-1] == "IMG_1.jpg"


def test_find_groups_cached_takes_a_catalog_and_remembers_the_groups(tmp_path, app_paths, monkeypatch):
    """The grouping the window runs off its thread, without Qt: the catalog passed in keeps
    the greys and the groups; ``cancelled`` stops it without a result."""
    from conftest import make_photo
    from photocull.cull import bursts
    from photocull.cull.catalog import Catalog

    paths = [make_photo(tmp_path / "shoot" / f"IMG_{i}.jpg", seed=s) for i, s in enumerate([1, 1, 2])]
    snap = [SimpleNamespace(path=p, capture_time=T0 + 0.5 * i, exposure_bias=0.0, mean=5.0 + i)
            for i, p in enumerate(paths)]
    with Catalog(app_paths.catalog_path) as cat:
        assert bursts.find_groups_cached(snap, cat, cancelled=lambda: True) is None
        got = bursts.find_groups_cached(snap, cat)
        assert got == [(0, 2, "burst", False), (0, 2, "burst", True), (None, 1, "", True)]
        monkeypatch.setattr(bursts, "find_groups_for_items", None)  # not called again: from the catalog
        assert bursts.find_groups_cached(snap, cat) == got
        assert all(isinstance(g, bursts.ItemGroup) for g in bursts.find_groups_cached(snap, cat))


def test_groups_found_once_serve_whoever_asks_in_any_order_with_any_scores(tmp_path, app_paths, monkeypatch):
    """``photocull score`` groups a folder with the technical means, in the order given; the
    window asks with the overall scores, in its own order: the groups come from the catalog
    (a 10,000-photo folder was grouped again: ~50 s of CPU), and each group's best frame
    follows the scores it is asked with."""
    from conftest import make_photo
    from photocull.cull import bursts
    from photocull.cull.catalog import Catalog

    paths = [make_photo(tmp_path / "shoot" / f"IMG_{i}.jpg", seed=s) for i, s in enumerate([1, 1, 2, 1])]
    times = [T0, T0 + 0.5, T0 + 1.0, T0 + 60]
    cli = [SimpleNamespace(path=p, capture_time=t, exposure_bias=0.0, mean=m)
           for p, t, m in zip(paths, times, [7.0, 6.0, 5.0, 4.0])]
    with Catalog(app_paths.catalog_path) as cat:
        first = bursts.find_groups_cached(cli, cat)
        assert [g[:3] for g in first] == [(0, 2, "burst"), (0, 2, "burst"), (None, 1, ""), (None, 1, "")]
        assert [g.best for g in first] == [True, False, True, True]
        monkeypatch.setattr(bursts, "find_groups_for_items", None)  # from the catalog, or this fails
        window = [SimpleNamespace(path=str(it.path), capture_time=it.capture_time, exposure_bias=0.0, mean=m)
                  for it, m in zip(reversed(cli), [4.5, 5.5, 6.5, 3.5])]  # IMG_3, 2, 1, 0
        again = bursts.find_groups_cached(window, cat)
        assert [g[:3] for g in again] == [g[:3] for g in reversed(first)]
        assert [g.best for g in again] == [True, True, True, False]  # IMG_1 (6.5) now beats IMG_0 (3.5)
        # a frame that changed is grouped again (the catalog's groups are not for these files)
        make_photo(paths[1], seed=5)
        with pytest.raises(TypeError):
            bursts.find_groups_cached(window, cat)


def test_burst_similarity_setting_loosens_or_tightens_what_is_one_burst(frames, scenes):
    """The Preferences' burst similarity: a frame zoomed in a little (tiny greys' SSIM ~0.6) is
    its own shot at "normal" and "strict", part of the burst at "loose"; a frame a few px off
    is one burst at every setting.  The grouping cache tells the settings apart."""
    from photocull.cull.bursts import SIMILARITY, grouping_signature, similarity_thresholds

    a = scenes["astronaut"]
    base = crop(a, 40, 40, 400, 400)
    zoomed = crop(a, 60, 60, 360, 360).resize((400, 400))
    shifted = crop(a, 43, 41, 400, 400)
    items = inputs(frames, [base, zoomed], times=[T0, T0 + 0.5])
    near = inputs(frames, [base, shifted], times=[T0, T0 + 0.5])
    got = {s: kinds(group_bursts(items, 2.0, *similarity_thresholds(s))) for s in SIMILARITY}
    assert got["loose"] == [([0, 1], "burst")]
    assert got["normal"] == got["strict"] == [([0], "single"), ([1], "single")]
    for s in SIMILARITY:
        assert kinds(group_bursts(near, 2.0, *similarity_thresholds(s))) == [([0, 1], "burst")]
    assert similarity_thresholds("bogus") == SIMILARITY["normal"]
    its = [SimpleNamespace(path=f"/x/{k}.jpg", capture_time=T0, exposure_bias=0.0, mean=5.0) for k in range(2)]
    sigs = {s: grouping_signature(its, {}, 2.0, s) for s in SIMILARITY}
    assert len(set(sigs.values())) == 3 and sigs["normal"] == grouping_signature(its, {}, 2.0)
