"""True 100 % in the loupe and compare: the file's own pixels, one per device pixel, decoded
at full resolution in the loader's thread only when asked for (a zoom), the preview on
screen until they come; zoom to the clicked point; the same 1:1 on a 2x screen."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PIL import Image  # noqa: E402
from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QPixmap  # noqa: E402

from conftest import make_photo  # noqa: E402

W, H = 6000, 4000
EXPECT_DPR = float(os.environ.get("PHOTOCULL_TEST_DPR", "1"))


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> Path:
    """A 24 MP PNG (lossless) of 1-pixel black and white squares, and a small photo."""
    d = tmp_path_factory.mktemp("checker")
    y, x = np.indices((H, W))
    Image.fromarray((((x + y) & 1) * 255).astype(np.uint8), "L").save(d / "A_checker.png", compress_level=1)
    make_photo(d / "B_photo.jpg", seed=3, size=(640, 480))
    return d


@pytest.fixture
def lwin(qtbot, app_paths):
    """The window, unscored (no model needed), on a folder."""
    from photocull.gui.mainwindow import MainWindow

    w = MainWindow(app_paths, autoscore=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    yield w
    w.shutdown()


@pytest.fixture
def decodes(monkeypatch):
    """Every full-resolution decode, by path (and the thread it ran in)."""
    from photocull.gui import workers

    calls, real = [], workers.decode_full

    def spy(path):
        calls.append((path, threading.get_ident()))
        return real(path)

    monkeypatch.setattr(workers, "decode_full", spy)
    return calls


def open_loupe(qtbot, win, folder, row=0):
    assert win.open_folder(folder)
    win.grid.setCurrentIndex(win.proxy.index(row, 0))
    win.open_loupe()
    pane = win.loupe.pane
    qtbot.waitUntil(lambda: pane.pixmap is not None and pane.full_size is not None, timeout=20_000)
    return pane


def physical_region(pane, half: int = 24) -> np.ndarray:
    """The grey levels of the pane's central ``2 half`` x ``2 half`` device pixels, as grabbed."""
    pane.repaint()
    img = pane.grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    assert img.devicePixelRatio() == pytest.approx(EXPECT_DPR)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, :img.width()]
    cy, cx = img.height() // 2, img.width() // 2
    return a[cy - half:cy + half, cx - half:cx + half].astype(int)


def assert_one_to_one(a: np.ndarray) -> None:
    assert ((a < 20) | (a > 235)).all(), f"grey pixels, not the file's black and white: {np.unique(a)[:10]}"
    b = a > 128
    assert (b[:, 1:] != b[:, :-1]).all() and (b[1:, :] != b[:-1, :]).all(), "not alternating pixel by pixel"


def test_100_percent_shows_every_pixel_one_to_one(qtbot, lwin, checker, decodes):
    pane = open_loupe(qtbot, lwin, checker)
    assert pane.full_size == (W, H)  # from the PNG's header, before any decode
    assert pane.devicePixelRatioF() == pytest.approx(EXPECT_DPR)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Z)
    assert pane.zoom_100
    qtbot.waitUntil(lambda: pane.full is not None, timeout=60_000)
    assert (pane.full.width(), pane.full.height()) == (W, H)
    assert pane.target_rect().width() == pytest.approx(W / EXPECT_DPR)
    assert_one_to_one(physical_region(pane))
    assert pane.painted_source == "full"
    assert [p for p, _ in decodes] == [str(pane.item.path)]
    assert all(t != threading.get_ident() for _, t in decodes)  # never in the GUI thread

    pane.set_centre(QPointF(0.9, 0.1))  # panned: still 1:1 (the corner lands on a device pixel)
    assert_one_to_one(physical_region(pane))

    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Z)  # fit: the preview again, 24 MP scaled down to grey
    a = physical_region(pane)
    assert not pane.zoom_100 and pane.painted_source == "preview" and a.std() < 40


BLOWN_PX, CRUSHED_PX, MID_PX = (255, 90, 40), (0, 1, 0), (128, 128, 128)  # red blown; near black


def clip_pattern(x, y) -> np.ndarray:
    """0 mid grey, 1 blown (red channel only), 2 crushed, in a 1-pixel pattern: every other
    pixel blown (a checker), the rest crushed on even rows and grey on odd ones."""
    return np.where((x + y) % 2 == 0, 1, np.where(y % 2 == 0, 2, 0))


@pytest.fixture(scope="module")
def clipped(tmp_path_factory) -> Path:
    """A 24 MP PNG whose clipped pixels are a 1-pixel pattern: the 1280 px preview cannot
    show where they are, only the full image can."""
    d = tmp_path_factory.mktemp("clipped")
    y, x = np.indices((H, W))
    colours = np.array([MID_PX, BLOWN_PX, CRUSHED_PX], np.uint8)
    Image.fromarray(colours[clip_pattern(x, y)], "RGB").save(d / "A_clipped.png", compress_level=1)
    return d


def test_clipping_at_100_percent_marks_exactly_the_full_images_clipped_pixels(qtbot, lwin, clipped):
    """J at 100 %: the overlay comes from the full image, one overlay pixel per image pixel:
    red on exactly the blown pixels, blue on exactly the crushed ones, the photo elsewhere;
    its percentages are the full image's, counted off the GUI thread."""
    from photocull.gui import viewers

    pane = open_loupe(qtbot, lwin, clipped)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_J)
    pane.repaint()
    assert pane.painted_clipping and pane.clipping_source == "preview"  # fitted: the preview's
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Z)
    qtbot.waitUntil(lambda: pane.full is not None, timeout=60_000)
    expected = np.array([MID_PX, (255, 0, 0), (40, 90, 255)])  # the photo's grey, CLIP_RED, CLIP_BLUE
    for centre in (QPointF(0.5, 0.5), QPointF(0.13, 0.87)):  # and panned: still on the pixels
        pane.set_centre(centre)
        pane.repaint()
        assert pane.painted_source == "full" and pane.clipping_source == "full"
        img = pane.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        assert img.devicePixelRatio() == pytest.approx(EXPECT_DPR)
        shot = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
        shot = shot[:, :img.width() * 3].reshape(img.height(), img.width(), 3).astype(int)
        r, dpr = pane.target_rect(), pane.devicePixelRatioF()
        left, top = round(r.left() * dpr), round(r.top() * dpr)  # the image's corner, in device pixels
        cy, cx, half = img.height() // 2, img.width() // 2, 32
        gy, gx = np.mgrid[cy - half:cy + half, cx - half:cx + half]
        want = expected[clip_pattern(gx - left, gy - top)]
        got = shot[cy - half:cy + half, cx - half:cx + half]
        assert (got == want).all(), f"{(got != want).any(axis=2).sum()} device pixels off the full image's clipping"
    # the numbers under the overlay: the full image's (half blown, a quarter crushed), from a thread
    clip = pane.full_clipping()
    assert clip._thread.ident != threading.get_ident()
    qtbot.waitUntil(lambda: clip.blown is not None, timeout=20_000)
    assert (clip.blown, clip.crushed) == (0.5, 0.25)
    assert any(n.startswith("clipping: highlights 50.0% (red) · shadows 25.0% (blue)") and "full resolution" in n
               for n in pane.overlay_notes())
    made = clip.made_tiles
    pane.repaint()
    assert clip.made_tiles == made  # a repaint reuses the tiles on screen
    assert isinstance(clip, viewers.FullClipping)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Z)  # fitted again: the preview's overlay
    pane.repaint()
    assert pane.clipping_source == "preview"


def test_the_same_on_a_2x_screen():
    """The 1:1 tests above in a fresh process where Qt scales by 2: the grab is 2x and its
    physical pixels must still alternate one by one, the clipping overlay land on them."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="2", PHOTOCULL_TEST_DPR="2")
    here = Path(__file__).resolve()
    tests = [f"{here}::test_100_percent_shows_every_pixel_one_to_one",
             f"{here}::test_clipping_at_100_percent_marks_exactly_the_full_images_clipped_pixels"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                       cwd=here.parent.parent, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 passed" in r.stdout


def test_preview_stays_until_the_full_image_comes(qtbot, lwin, checker, monkeypatch):
    from photocull.gui import workers

    go, real = threading.Event(), workers.decode_full

    def slow(path):
        go.wait(30)
        return real(path)

    monkeypatch.setattr(workers, "decode_full", slow)
    try:
        pane = open_loupe(qtbot, lwin, checker)
        lwin.loupe.toggle_zoom(QPointF(pane.width() / 2, pane.height() / 2))
        assert pane.zoom_100 and pane.full is None
        # laid out at 100 % already (from the header), the preview scaled up, and it says so
        assert pane.target_rect().width() == pytest.approx(W / pane.devicePixelRatioF())
        a = physical_region(pane)
        assert pane.painted_source == "preview" and a.std() < 40  # the preview: grey, not 1:1
        assert pane.overlay_notes() == ["100 %: loading full resolution…"]
    finally:
        go.set()
    qtbot.waitUntil(lambda: pane.full is not None, timeout=60_000)
    assert_one_to_one(physical_region(pane))
    assert pane.painted_source == "full" and pane.overlay_notes() == []


def test_nothing_decodes_full_resolution_unless_zoomed(qtbot, lwin, checker, decodes):
    pane = open_loupe(qtbot, lwin, checker)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Right)  # the next photo, and back, at fit
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: pane.pixmap is not None, timeout=20_000)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Escape)
    sel = lwin.grid.selectionModel()
    sel.select(lwin.proxy.index(1, 0), sel.SelectionFlag.Select)
    lwin.open_compare()
    qtbot.waitUntil(lambda: all(p.pixmap is not None for p in lwin.compare.panes), timeout=20_000)
    qtbot.wait(200)
    assert decodes == [] and len(lwin.full_cache) == 0

    lwin.compare.toggle_zoom()  # compare at 100 %: both photos, synced
    qtbot.waitUntil(lambda: all(p.full is not None for p in lwin.compare.panes), timeout=60_000)
    assert sorted(Path(p).name for p, _ in decodes) == ["A_checker.png", "B_photo.jpg"]
    assert len(lwin.full_cache) == 2
    qtbot.keyClick(lwin.compare, Qt.Key.Key_Escape)  # back to the grid: the pixels go
    assert len(lwin.full_cache) == 0 and all(p.full is None for p in lwin.compare.panes)


def test_zoom_keeps_the_clicked_point_under_the_mouse(qtbot, lwin, checker, decodes):
    pane = open_loupe(qtbot, lwin, checker)
    at = QPointF(pane.width() * 3 // 10, pane.height() * 7 // 10)
    fit = pane.target_rect()
    fx, fy = (at.x() - fit.left()) / fit.width(), (at.y() - fit.top()) / fit.height()
    qtbot.mouseClick(pane, Qt.MouseButton.LeftButton, pos=at.toPoint())  # a click zooms there
    assert pane.zoom_100
    r = pane.target_rect()
    px = 1 / pane.devicePixelRatioF()  # one device pixel
    assert abs(r.left() + fx * r.width() - at.x()) <= px + 1 and abs(r.top() + fy * r.height() - at.y()) <= px + 1
    qtbot.waitUntil(lambda: pane.full is not None, timeout=60_000)
    assert pane.target_rect() == r  # the full image lands exactly where its preview was
    qtbot.mouseClick(pane, Qt.MouseButton.LeftButton, pos=at.toPoint())  # and back to fit
    assert not pane.zoom_100


def test_the_loupe_opened_from_the_grid_shows_the_whole_photo(qtbot, lwin, checker, decodes):
    """100 % stays from photo to photo inside the loupe (a burst is checked frame by frame),
    but Esc from 100 % and Space on another photo of the grid opens it whole, at fit (it
    opened at 100 %: a small photo showed as a small image in a black field)."""
    pane = open_loupe(qtbot, lwin, checker)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Z)
    assert pane.zoom_100
    lwin.move_current(1)  # the next photo, inside the loupe: still at 100 %
    assert pane.zoom_100
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Escape)
    assert lwin._viewer() is None
    lwin.grid.setCurrentIndex(lwin.proxy.index(0, 0))
    lwin.open_loupe()
    assert not pane.zoom_100


def test_compare_zooms_to_the_double_clicked_point_in_every_pane(qtbot, lwin, checker, decodes):
    assert lwin.open_folder(checker)
    lwin.grid.setCurrentIndex(lwin.proxy.index(0, 0))
    sel = lwin.grid.selectionModel()
    sel.select(lwin.proxy.index(1, 0), sel.SelectionFlag.Select)
    lwin.open_compare()
    panes = lwin.compare.panes
    qtbot.waitUntil(lambda: all(p.pixmap is not None and p.full_size for p in panes), timeout=20_000)
    qtbot.mouseClick(panes[1], Qt.MouseButton.LeftButton)  # a click only focuses
    assert not panes[1].zoom_100 and lwin.compare.focused_item() is panes[1].item
    at = QPointF(panes[0].width() // 4, panes[0].height() // 4)
    expected = panes[0].centre_for(at)
    qtbot.mouseDClick(panes[0], Qt.MouseButton.LeftButton, pos=at.toPoint())
    assert all(p.zoom_100 for p in panes)
    assert all(abs(p.centre.x() - expected.x()) < 1e-9 and abs(p.centre.y() - expected.y()) < 1e-9 for p in panes)
    qtbot.waitUntil(lambda: all(p.full is not None for p in panes), timeout=60_000)


def test_a_pan_moves_one_image_pixel_per_device_pixel(qtbot):
    from photocull.gui.photomodel import PhotoItem
    from photocull.gui.viewers import ImagePane

    pane = ImagePane()
    qtbot.addWidget(pane)
    pane.resize(400, 300)
    pane.set_item(PhotoItem(Path("/shoot/x.jpg")))
    pm = QPixmap(600, 400)
    pm.fill(Qt.GlobalColor.gray)
    pane.pixmap = pm
    pane.set_full_size("/shoot/x.jpg", 6000, 4000)
    pane.set_zoom(True)
    before = pane.target_rect()
    pane.mousePressEvent(_mouse(QEvent.Type.MouseButtonPress, 200, 150))
    pane.mouseMoveEvent(_mouse(QEvent.Type.MouseMove, 150, 130))
    pane.mouseReleaseEvent(_mouse(QEvent.Type.MouseButtonRelease, 150, 130))
    after = pane.target_rect()
    assert (after.left() - before.left(), after.top() - before.top()) == (-50, -20)
    assert pane.zoom_100  # a drag is not a click


from PySide6.QtCore import QEvent  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402


def _mouse(kind, x, y):
    return QMouseEvent(kind, QPointF(x, y), QPointF(x, y), Qt.MouseButton.LeftButton,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)


def test_f_is_full_screen_and_esc_leaves_it(qtbot, lwin, checker):
    pane = open_loupe(qtbot, lwin, checker)
    lwin.activateWindow()
    qtbot.waitUntil(lwin.isActiveWindow, timeout=5000)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_F)
    assert lwin.isFullScreen() and lwin.stack.currentWidget() is lwin.loupe
    assert not lwin.menuBar().isVisible() and not lwin.toolbar.isVisible() and not lwin.statusBar().isVisible()
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Z)  # the loupe's keys still work
    assert pane.zoom_100
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_3)  # so do the marks, and undo (a menu key, its menu hidden)
    assert pane.item.rating == 3
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert pane.item.rating == 0
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Escape)  # Esc leaves full screen, in the loupe
    assert not lwin.isFullScreen() and lwin.stack.currentWidget() is lwin.loupe
    assert lwin.menuBar().isVisible() and lwin.toolbar.isVisible()
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_F)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_F)  # F again leaves it too
    assert not lwin.isFullScreen()
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Escape)  # then Esc is back to the grid
    assert lwin.stack.currentIndex() == 0
    qtbot.keyClick(lwin.grid, Qt.Key.Key_F)  # from the grid, F opens the loupe full screen
    assert lwin.isFullScreen() and lwin.stack.currentWidget() is lwin.loupe
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Space)  # and leaving the loupe leaves full screen
    assert not lwin.isFullScreen() and lwin.stack.currentIndex() == 0


def test_the_filmstrip_under_the_loupe(qtbot, lwin, tmp_path):
    folder = tmp_path / "strip"
    for i in range(4):
        make_photo(folder / f"IMG_{i}.jpg", seed=i)
    assert lwin.open_folder(folder)
    lwin.set_sort("name")
    lwin.grid.setCurrentIndex(lwin.proxy.index(0, 0))
    lwin.open_loupe()
    strip = lwin.loupe.strip
    assert strip.isVisible() and strip.model() is lwin.proxy and strip.model().rowCount() == 4
    assert strip.selectionModel() is lwin.grid.selectionModel()
    src = lwin.model
    qtbot.waitUntil(lambda: all(src.thumbnail(it) is not None for it in src.items), timeout=20_000)  # the grid's cache
    third = lwin.proxy.index(2, 0)
    qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=strip.visualRect(third).center())
    assert lwin.loupe.item().name == "IMG_2.jpg" and lwin.stack.currentWidget() is lwin.loupe
    assert lwin.grid.currentIndex().row() == 2
    lwin.activateWindow()
    qtbot.waitUntil(lwin.isActiveWindow, timeout=5000)
    qtbot.keyClick(lwin.loupe, Qt.Key.Key_Right)  # the strip follows the loupe
    assert lwin.loupe.item().name == "IMG_3.jpg" and strip.currentIndex().row() == 3


def test_a_raw_without_a_full_size_preview_is_demosaiced_at_full_size(tmp_path):
    """open_image gives a RAW without a usable preview at half size (plenty for the grid);
    100 % demosaics every photosite, upright, and the headers say that size beforehand."""
    pytest.importorskip("pidng")
    from test_formats import astronaut, write_dng

    from photocull.media.loaders import full_size, open_full, open_image

    raw = write_dng(tmp_path / "IMG_0001.dng", astronaut()[:, :384], orientation=6)  # 384 x 512, turned
    half, full = open_image(raw), open_full(raw)
    assert full.size == full_size(raw) == (512, 384)  # upright: turned a quarter
    assert half.size == (256, 192)


def test_an_unreadable_full_image_leaves_the_preview_and_says_why(qtbot, lwin, checker, monkeypatch):
    from photocull.gui import workers
    from photocull.media.loaders import ImageError

    def broken(path):
        raise ImageError("truncated or corrupt image (test)")

    monkeypatch.setattr(workers, "decode_full", broken)
    pane = open_loupe(qtbot, lwin, checker)
    lwin.loupe.toggle_zoom(QPointF(10, 10))
    qtbot.waitUntil(lambda: pane.full_error != "", timeout=20_000)
    pane.repaint()
    assert pane.zoom_100 and pane.painted_source == "preview" and not pane.wants_full()
    assert pane.overlay_notes() == ["100 % of the preview: full resolution unreadable "
                                    "(truncated or corrupt image (test))"]
