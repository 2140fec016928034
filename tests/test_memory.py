"""Memory for big folders: the grid's thumbnails are bounded (decoded ones for the screen,
the scorer's kept packed), burst grouping remembers its tiny greys, and the heap's free
pages go back to the system after big jobs.  Behaviour only; the RSS figures are the
speed bench's (bench/speed.py, "peak RSS")."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("PySide6")

from conftest import make_photo  # noqa: E402


def _pil(w: int, h: int, rgb=(200, 40, 40)):
    from PIL import Image

    return Image.new("RGB", (w, h), rgb)


def _colour(pm) -> tuple[int, int, int]:
    c = pm.toImage().pixelColor(pm.width() // 2, pm.height() // 2)
    return c.red(), c.green(), c.blue()


def test_pack_thumbnail_is_a_small_jpeg_at_the_cell_size():
    from PySide6.QtCore import QSize, Qt
    from PySide6.QtGui import QImage

    from photocull.gui.photomodel import PhotoListModel, pack_thumbnail

    for w, h in [(256, 171), (171, 256), (256, 256), (160, 120)]:
        data = pack_thumbnail(_pil(w, h))
        assert data[:2] == b"\xff\xd8" and len(data) < 20_000
        img = QImage.fromData(data, "JPEG")
        want = QSize(w, h)
        if w > PhotoListModel.DISPLAY_SIZE.width() or h > PhotoListModel.DISPLAY_SIZE.height():
            want = want.scaled(PhotoListModel.DISPLAY_SIZE, Qt.AspectRatioMode.KeepAspectRatio)
        assert img.size() == want  # what the model stores: painting never rescales


def test_a_new_thumbnail_size_keeps_the_thumbnails_on_screen(qtbot, grid):
    """Smaller thumbnails: each kept pixmap is scaled down as its cell is painted, no file read
    again (the cells showed "…" for 1-3 s); larger ones: the old pixmap is shown while a sharper
    one is asked for, once."""
    from PySide6.QtCore import QSize, Qt
    from PySide6.QtGui import QImage

    m, _ = grid
    wanted = []
    m.thumbnailWanted.connect(lambda path, size: wanted.append(path))
    it = m.items[3]
    m.set_thumbnail(str(it.path), QImage(_pil(256, 171).tobytes(), 256, 171, 256 * 3, QImage.Format.Format_RGB888).copy())
    big = m.thumbnail(it)
    assert big is not None and wanted == []
    m.set_display_size(QSize(m.DISPLAY_SIZE.width() // 2, m.DISPLAY_SIZE.height() // 2))
    small = m.thumbnail(it)
    assert wanted == [] and small.size() == big.size().scaled(m.DISPLAY_SIZE, Qt.AspectRatioMode.KeepAspectRatio)
    r, g, b = _colour(small)
    assert r > 150 and g < 90 and b < 90
    m.set_display_size(QSize(m.DISPLAY_SIZE.width() * 4, m.DISPLAY_SIZE.height() * 4))
    assert m.thumbnail(it) is small and wanted == [str(it.path)]  # shown as it is, a sharper one asked for
    assert m.thumbnail(it) is small and wanted == [str(it.path)]  # once


def test_scored_thumbnails_stay_packed_until_their_cell_is_painted(qtbot, grid):
    from PySide6.QtCore import QSize, Qt

    from photocull.gui.photomodel import pack_thumbnail

    m, _ = grid
    wanted = []
    m.thumbnailWanted.connect(lambda path, size: wanted.append(path))
    it = m.items[7]
    m.set_packed_thumbnail(str(it.path), pack_thumbnail(_pil(256, 171)))
    assert it.key not in m._thumbs  # nothing decoded for a cell nobody looks at
    pm = m.thumbnail(it)  # painted: unpacked there, no file read, no request
    assert pm is not None and wanted == []
    assert pm.size() == QSize(256, 171).scaled(m.DISPLAY_SIZE, Qt.AspectRatioMode.KeepAspectRatio)
    r, g, b = _colour(pm)
    assert r > 150 and g < 90 and b < 90
    assert m.thumbnail(it) is pm  # and kept decoded while it is on screen


def test_a_cell_waiting_for_its_thumbnail_gets_the_scorers_at_once(qtbot, grid):
    from PySide6.QtGui import QImage

    from photocull.gui.photomodel import pack_thumbnail

    m, _ = grid
    it = m.items[3]
    assert m.thumbnail(it) is None  # painted before it was scored: asks the loader
    changed = []
    m.dataChanged.connect(lambda a, b: changed.append(a.row()))
    m.set_packed_thumbnail(str(it.path), pack_thumbnail(_pil(256, 171, (40, 200, 40))))
    assert it.key in m._thumbs and m.row_of(it.path) in changed
    # the loader's answer (an EXIF thumbnail, say) arriving later does not replace it
    exif = QImage(160, 120, QImage.Format.Format_RGB888)
    exif.fill(0x0000FF)
    m.set_thumbnail(str(it.path), exif)
    r, g, b = _colour(m.thumbnail(it))
    assert g > 150 and b < 90
    # a photo with no scorer's thumbnail takes the loader's
    other = m.items[4]
    m.set_thumbnail(str(other.path), exif)
    assert _colour(m.thumbnail(other))[2] > 150


def test_thumbnail_caches_are_bounded(qtbot, grid, monkeypatch):
    from photocull.gui.photomodel import PhotoListModel, pack_thumbnail

    m, _ = grid
    data = pack_thumbnail(_pil(256, 171))
    monkeypatch.setattr(PhotoListModel, "PACKED_BYTES", 10 * len(data) + 1)
    monkeypatch.setattr(PhotoListModel, "MAX_THUMBS", 5)
    for it in m.items:
        m.set_packed_thumbnail(str(it.path), data)
    assert len(m._packed) == 10 and m._packed_bytes == sum(map(len, m._packed.values())) <= m.PACKED_BYTES
    assert list(m._packed) == [it.key for it in m.items[-10:]]  # the most recent kept
    for it in m.items[-10:]:
        assert m.thumbnail(it) is not None
    assert len(m._thumbs) == 5 and list(m._thumbs) == [it.key for it in m.items[-5:]]
    wanted = []
    m.thumbnailWanted.connect(lambda path, size: wanted.append(path))
    assert m.thumbnail(m.items[0]) is None and wanted == [str(m.items[0].path)]  # evicted: read again
    m.set_items(list(m.items))
    assert not m._packed and not m._thumbs and m._packed_bytes == 0


def test_gui_keeps_every_scored_thumbnail_without_decoding_them_all(qtbot, win, tmp_path):
    d = tmp_path / "shoot"
    for i in range(12):
        make_photo(d / f"IMG_{i:04d}.jpg", seed=i, size=(320, 213))
    with qtbot.waitSignal(win.scoringDone, timeout=120_000):
        assert win.open_folder(d)
    m = win.model
    assert len(m._packed) == 12
    wanted = []
    m.thumbnailWanted.connect(lambda path, size: wanted.append(path))
    for it in m.items:
        pm = m.thumbnail(it)
        assert pm is not None and not pm.isNull()
    assert wanted == []


def test_burst_grouping_decodes_each_photo_once_across_opens(qtbot, app_paths, tmp_path, monkeypatch):
    """The tiny greys are remembered in the catalog: grouping the folder again (as on
    reopening it) decodes nothing and finds the same groups."""

    from photocull.cull.catalog import Catalog
    from photocull.gui.jobs import group_job

    d = tmp_path / "shoot"
    paths = []
    for i, seed in enumerate([1, 1, 2, 2, 3]):  # two bursts of two identical frames, one single
        paths.append(make_photo(d / f"IMG_{i:04d}.jpg", seed=seed))
    t0 = 1_700_000_000.0

    def snapshot(shift=0.0):
        return [SimpleNamespace(path=p, capture_time=t0 + 0.5 * i, exposure_bias=0.0, mean=5.0 + i + shift)
                for i, p in enumerate(paths)]

    first = group_job(snapshot(), app_paths.catalog_path)
    assert [g for g, *_ in first] == [0, 0, 1, 1, None]
    with Catalog(app_paths.catalog_path) as cat:
        assert all(cat.tiny_gray(p, 64) is not None for p in paths)

    def no_decoding(*a, **k):
        raise AssertionError("decoded a photo whose grey the catalog has")

    from photocull.media import loaders

    monkeypatch.setattr(loaders, "open_image", no_decoding)
    # another time gap (so the folder's stored groups do not apply): compared again, from the stored greys
    assert group_job(snapshot(), app_paths.catalog_path, gap_seconds=2.5) == first
    # cancelled while it reads greys: stops, without a result
    assert group_job(snapshot(), app_paths.catalog_path, gap_seconds=3.0,
                     cancelled=iter([False, True, True, True]).__next__) is None


def test_burst_groups_of_an_unchanged_folder_come_from_the_catalog(app_paths, tmp_path, monkeypatch):
    """Reopening a folder: its groups as found last time, without comparing a frame, each
    group's best frame chosen from the scores of the day; any change the groups depend on (a
    file, a capture time, the gap) groups it again."""
    import os

    from photocull.cull import bursts
    from photocull.cull.catalog import Catalog
    from photocull.gui.jobs import group_job

    d = tmp_path / "shoot"
    paths = [make_photo(d / f"IMG_{i:04d}.jpg", seed=seed) for i, seed in enumerate([1, 1, 2, 2, 3])]
    t0 = 1_700_000_000.0

    def snapshot(mean0=5.0):
        return [SimpleNamespace(path=p, capture_time=t0 + 0.5 * i, exposure_bias=0.0, mean=mean0 + i)
                for i, p in enumerate(paths)]

    real, calls = bursts.find_groups_for_items, []

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(bursts, "find_groups_for_items", counting)
    first = group_job(snapshot(), app_paths.catalog_path)
    assert [g for g, *_ in first] == [0, 0, 1, 1, None] and len(calls) == 1
    assert group_job(snapshot(), app_paths.catalog_path) == first and len(calls) == 1  # from the catalog
    # other scores: the same groups from the catalog, their best frames by the new scores
    swapped = snapshot()
    swapped[0].mean, swapped[1].mean = 9.0, 1.0
    again = group_job(swapped, app_paths.catalog_path)
    assert len(calls) == 1 and [g[:3] for g in again] == [g[:3] for g in first]
    assert [g.best for g in again][:2] == [True, False] and [g.best for g in first][:2] == [False, True]
    # what the groups depend on: each change groups the folder again
    apart = [SimpleNamespace(**{**vars(s), "capture_time": t0 + 100.0 * i}) for i, s in enumerate(snapshot())]
    far = group_job(apart, app_paths.catalog_path)
    assert len(calls) == 2 and [g for g, *_ in far] == [None] * 5  # minutes apart: no bursts
    assert group_job(snapshot(), app_paths.catalog_path, gap_seconds=0.1) != first and len(calls) == 3
    st = os.stat(paths[4])
    os.utime(paths[4], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a photo edited since
    assert group_job(snapshot(), app_paths.catalog_path) == first and len(calls) == 4
    assert group_job(snapshot(), app_paths.catalog_path) == first and len(calls) == 4
    # a damaged stored row is not trusted: grouped again
    with Catalog(app_paths.catalog_path) as cat:
        cat.con.execute("UPDATE groupings SET result='[[\"junk\"]]'")
    assert group_job(snapshot(), app_paths.catalog_path) == first and len(calls) == 5


def test_release_free_memory():
    from photocull.gui import memory

    if not sys.platform.startswith("linux"):
        assert memory.release_free_memory() is False
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    junk = [np.ones(2048) for _ in range(2000)]  # 16 KB blocks on the heap, then freed
    del junk
    assert memory.release_free_memory() is True


def test_gui_hands_freed_memory_back_after_a_scoring_run_not_after_a_catalog_answer(qtbot, win, tmp_path,
                                                                                      monkeypatch):
    from photocull.gui import mainwindow

    calls = []
    monkeypatch.setattr(mainwindow, "release_free_memory", lambda: calls.append(1))
    monkeypatch.setattr(win, "RELEASE_AFTER", 3)
    d = tmp_path / "shoot"
    for i in range(4):
        make_photo(d / f"IMG_{i:04d}.jpg", seed=i)
    with qtbot.waitSignal(win.scoringDone, timeout=120_000):
        assert win.open_folder(d)
    qtbot.waitUntil(lambda: win.group_worker is None, timeout=60_000)
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=5_000)  # after scoring, after grouping
    with qtbot.waitSignal(win.scoringDone, timeout=120_000):
        assert win.open_folder(d)  # every score from the catalog
    qtbot.waitUntil(lambda: win.group_worker is None, timeout=60_000)
    qtbot.waitUntil(lambda: len(calls) == 3, timeout=5_000)  # after grouping only
