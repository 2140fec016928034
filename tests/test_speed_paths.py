"""The code paths added for speed (issue #6): behaviour only, no timings.

The CUDA transfer path (pinned uint8 batch, non_blocking copy, normalise on the device)
runs here on the CPU with pinning off: the same batching, the same numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_photo
from photocull.model import nima
from photocull.model import devices, runtime
from photocull import scoring


def _arrays(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(n)]


def test_batch_to_device_on_cpu_matches_preprocess(tiny_model):
    cfg = tiny_model.cfg
    arrs = _arrays()
    x = runtime.batch_to_device(arrs, cfg, torch.device("cpu"), pin=False)
    ref = nima.preprocess(arrs, cfg)
    assert x.shape == ref.shape == (3, 3, 224, 224) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-6)


def test_pin_memory_only_for_cuda():
    assert devices.pin_memory_for(torch.device("cpu")) is False
    assert devices.pin_memory_for(torch.device("cuda")) is torch.cuda.is_available()


def test_thread_plan_shares_cores_between_decoding_and_torch(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert devices.thread_plan(torch.device("cpu"), cores=2) == (2, 1)
    assert devices.thread_plan(torch.device("cpu"), cores=1) == (1, 1)
    dec, tt = devices.thread_plan(torch.device("cpu"), cores=12)
    assert 1 <= tt < dec <= 12
    # on a GPU the CPU only decodes: torch's CPU threads are left alone
    assert devices.thread_plan(torch.device("cuda"), cores=2)[1] is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice wins
    assert devices.thread_plan(torch.device("cpu"), cores=2)[1] is None


def test_iter_scores_same_results_on_every_path_and_restores_torch_threads(tmp_path, tiny_model):
    files = [make_photo(tmp_path / f"p{i}.jpg", seed=i, size=(480, 320)) for i in range(5)]
    before = torch.get_num_threads()
    a = scoring.score_all(files, tiny_model, batch_size=2, device="cpu", pin_memory=False, torch_threads=1,
                          workers=1)
    assert torch.get_num_threads() == before
    b = scoring.score_all(files, tiny_model, batch_size=4, device="cpu", pin_memory=False, torch_threads=2,
                          workers=3)
    c = scoring.score_all(files, tiny_model, batch_size=8, device="cpu")  # the default plan
    assert torch.get_num_threads() == before
    assert [r.path for r in a] == [r.path for r in b] == [r.path for r in c] == files
    for x, y, z in zip(a, b, c):
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-4)
        np.testing.assert_allclose(x.probs, z.probs, atol=1e-4)


def test_cancelled_run_restores_torch_threads(tmp_path, tiny_model):
    files = [make_photo(tmp_path / f"c{i}.jpg", seed=i, size=(160, 120)) for i in range(6)]
    before = torch.get_num_threads()
    gen = scoring.iter_scores(files, tiny_model, batch_size=2, device="cpu", torch_threads=max(1, before % 2 + 1))
    next(gen)
    gen.close()
    assert torch.get_num_threads() == before


def test_one_reduced_size_decode_feeds_model_and_thumbnail(tmp_path, tiny_model):
    big = make_photo(tmp_path / "big.jpg", size=(3000, 2000))
    d = scoring.decode(big, tiny_model.cfg, (scoring.THUMBNAIL,))
    assert d.error is None
    assert d.array.shape == (224, 224, 3) and d.array.dtype == np.uint8
    thumb = d.found["thumbnail"]
    assert max(thumb.size) == scoring.THUMB_SIDE and thumb.size[0] > thumb.size[1]
    # draft: the JPEG was decoded at a reduced DCT scale, no bigger than needed
    with Image.open(big) as im:
        im.draft("RGB", (scoring.DECODE_SIDE, scoring.DECODE_SIDE))
        assert scoring.DECODE_SIDE <= min(im.size) < 2 * scoring.DECODE_SIDE and max(im.size) < 3000


# --- the grid model: sorting in Python, coalesced refreshes ---------------------------------

def _results(paths, means):
    out = []
    for p, mean in zip(paths, means):
        probs = np.zeros(10, np.float32)
        lo = int(np.floor(mean)) - 1
        probs[lo], probs[lo + 1] = 1 - (mean - np.floor(mean)), mean - np.floor(mean)
        out.append(scoring.ScoreResult(Path(p), probs))
    return out


def test_grid_model_sorts_batches_best_first_and_refreshes_coalesced(qtbot, qtmodeltester, grid):
    m, p = grid
    qtmodeltester.check(m)
    rng = np.random.default_rng(1)
    means = rng.uniform(2, 9, 50)
    paths = [it.path for it in m.items]
    for i in range(0, 50, 8):  # batches of 8, as the worker sends them
        m.update_results(_results(paths[i:i + 8], means[i:i + 8]))
    # the first batch is applied at once, the rest within REFRESH_MS
    qtbot.waitUntil(lambda: not m._dirty, timeout=5000)
    vis = p.visible_items()
    assert [round(it.mean, 4) for it in vis] == sorted((round(float(x), 4) for x in means), reverse=True)
    assert vis[0].rank == 1 and vis[-1].rank == 50
    assert [it.path for it in m.items] == paths  # items keep file order; only rows are sorted
    qtmodeltester.check(m)
    p.set_sort_key("name")
    assert [it.name for it in p.visible_items()] == sorted(it.name for it in m.items)


def test_grid_model_current_photo_follows_a_resort(qtbot, grid):
    from PySide6.QtCore import QPersistentModelIndex

    m, p = grid
    target = m.items[10]
    ix = QPersistentModelIndex(p.index(10, 0))
    assert p.item(p.index(ix.row(), 0)) is target
    m.update_results(_results([target.path], [9.5]), immediate=True)
    assert ix.row() == 0 and p.item(p.index(ix.row(), 0)) is target


def test_grid_proxy_score_filter_follows_new_scores(qtbot, grid):
    m, p = grid
    p.set_filter(min_score=5.0)
    assert p.rowCount() == 0
    m.update_results(_results([m.items[3].path, m.items[4].path], [7.0, 3.0]), immediate=True)
    assert [it.name for it in p.visible_items()] == [m.items[3].name]


def test_photo_item_key_and_name_follow_a_new_path():
    from photocull.gui.photomodel import PhotoItem

    it = PhotoItem(Path("a/IMG_1.JPG"))
    assert it.name == "IMG_1.JPG" and it.key == os.path.abspath("a/IMG_1.JPG") and it.sort_name == "img_1.jpg"
    it.path = Path("b/IMG_2.JPG")
    assert it.name == "IMG_2.JPG" and it.key == os.path.abspath("b/IMG_2.JPG") and it.sort_name == "img_2.jpg"


def test_thumbnails_are_stored_at_the_cell_size_so_paint_never_rescales(qtbot, grid):
    from PySide6.QtCore import QSize, Qt
    from PySide6.QtGui import QImage

    m, _ = grid
    for it, (w, h) in zip(m.items, [(256, 171), (160, 120), (120, 256), (204, 136)]):
        img = QImage(w, h, QImage.Format.Format_RGB888)
        img.fill(0x336699)
        m.set_thumbnail(str(it.path), img)
        pm = m.thumbnail(it)
        assert pm.size() == QSize(w, h).scaled(m.DISPLAY_SIZE, Qt.AspectRatioMode.KeepAspectRatio)
        # what the delegate asks for is what is stored already
        assert pm.scaled(m.DISPLAY_SIZE, Qt.AspectRatioMode.KeepAspectRatio).size() == pm.size()


def test_malloc_arena_cap(monkeypatch):
    import sys

    from photocull.gui import memory

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_malloc_arenas() is False  # the user's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):
            pytest.skip("not glibc")
        assert memory.limit_malloc_arenas() is True
    else:
        assert memory.limit_malloc_arenas() is False


def test_numpy_preprocess_is_torchs_exactly(tiny_model):
    """The ONNX path normalises with numpy (no torch import): the very same float32 values."""
    from photocull.model.spec import preprocess_np

    arrs = _arrays(4, seed=3)
    x = preprocess_np(arrs, tiny_model.cfg)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, nima.preprocess(arrs, tiny_model.cfg).numpy())


def test_device_is_found_without_torch_only_when_certain(monkeypatch):
    from photocull.model import devices

    monkeypatch.setenv("PHOTOCULL_DEVICE", "cuda:1")
    assert devices.device_name() == "cuda:1" and devices.device_type("cuda:1") == "cuda"
    assert devices.device_type(torch.device("cpu")) == "cpu"
    monkeypatch.delenv("PHOTOCULL_DEVICE")
    monkeypatch.setattr(devices, "_no_gpu_here", lambda: False)  # a GPU may be there: torch decides
    assert devices.device_name() == nima.select_device().type
    assert devices.thread_plan("cpu", cores=2) == devices.thread_plan(torch.device("cpu"), cores=2)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities: Linux")
def test_nice_lowers_only_the_scoring_threads(tmp_path, tiny_model, monkeypatch):
    """The GUI scores with nice=5: its own threads (thumbnails on screen) go first."""
    import threading

    files = [make_photo(tmp_path / f"p{i}.jpg", seed=i) for i in range(3)]
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = []
    real = scoring.decode

    def spy(*a, **kw):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real(*a, **kw)

    monkeypatch.setattr(scoring, "decode", spy)
    scoring.score_all(files, tiny_model, batch_size=2, nice=5)
    assert seen and all(p == min(19, base + 5) for p in seen)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller's thread is untouched
    seen.clear()
    scoring.score_all(files, tiny_model, batch_size=2)
    assert seen and all(p == base for p in seen)
