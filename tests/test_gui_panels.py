"""The detail panel (shooting info, marks, always the selection), the loupe's histogram and
clipping overlay (J), the thumbnail size, and a grid that stays put while scores come in."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QItemSelectionModel, Qt  # noqa: E402

from conftest import make_photo  # noqa: E402


def open_and_score(qtbot, win, folder, timeout=120_000):
    with qtbot.waitSignal(win.scoringDone, timeout=timeout):
        assert win.open_folder(folder)
    return win


def _with_exif(path: Path, seed: int = 0, lens="EF 50mm f/1.8 STM", focal=50.0, shutter=(1, 250), fnum=2.8,
               iso=400, bias=0.7, when="2024:05:01 12:00:00") -> Path:
    from PIL import Image

    make_photo(path, seed=seed)
    im = Image.open(path)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R6"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = when
    sub[0xA434] = lens
    sub[0x920A] = focal
    sub[0x829A] = shutter[0] / shutter[1]
    sub[0x829D] = fnum
    sub[0x8827] = iso
    sub[0x9204] = bias
    im.save(path, quality=90, exif=exif.tobytes())
    return path


def test_shooting_lines_read_from_exif(tmp_path):
    from photocull.media.exif import read_any_exif, shooting_lines

    info = read_any_exif(_with_exif(tmp_path / "a.jpg"))
    assert info.lens == "EF 50mm f/1.8 STM" and info.iso == 400 and info.has_shooting()
    assert shooting_lines(info) == ["Canon EOS R6", "EF 50mm f/1.8 STM", "50 mm · 1/250 s · f/2.8 · ISO 400 · +0.7 EV"]
    bare = read_any_exif(make_photo(tmp_path / "b.jpg"))
    assert not bare.has_shooting() and shooting_lines(bare) == []


def _select(win, row):
    ix = win.proxy.index(row, 0)
    win.grid.selectionModel().setCurrentIndex(ix, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    return win.proxy.item(ix)


def test_detail_panel_shooting_info_and_live_marks(qtbot, win, tmp_path):
    d = tmp_path / "shoot"
    _with_exif(d / "a.jpg", seed=1)
    _with_exif(d / "b.jpg", seed=2, lens="RF 24-70mm F2.8 L IS USM", focal=35.0, shutter=(1, 60), fnum=4.0, iso=3200,
               bias=-1.0)
    open_and_score(qtbot, win, d)
    for row in (0, 1):
        it = _select(win, row)
        want = "1/250 s · f/2.8 · ISO 400" if it.name == "a.jpg" else "1/60 s · f/4 · ISO 3200 · -1.0 EV"
        qtbot.waitUntil(lambda: want in win.detail.shooting.text(), timeout=10_000)
        assert "Canon EOS R6" in win.detail.shooting.text()
    # marks follow the keys at once (also through undo)
    assert "unflagged" in win.detail.marks.text()
    win.set_flag(1)
    assert "Pick" in win.detail.marks.text()
    win.set_rating(3)
    assert "★★★</span>" in win.detail.marks.text()
    win.toggle_label("Green")
    assert "Green" in win.detail.marks.text()
    win.undo()
    assert "no label" in win.detail.marks.text()
    win.set_flag(-1)
    assert "Rejected" in win.detail.marks.text()


def test_reopened_folder_reads_shooting_info_in_the_loader(qtbot, win, tmp_path, monkeypatch):
    """The catalog answers a reopened folder without EXIF settings: the loader reads them
    for the selected photo (never the GUI thread)."""
    d = tmp_path / "shoot"
    _with_exif(d / "a.jpg", seed=1)
    _with_exif(d / "b.jpg", seed=2, iso=800)
    open_and_score(qtbot, win, d)
    for it in win.model.items:  # as the catalog's answer leaves them
        it.exif = None
    row = 1 - win.grid.currentIndex().row()
    it = _select(win, row)
    assert win.detail.item is it
    want = "ISO 400" if it.name == "a.jpg" else "ISO 800"
    qtbot.waitUntil(lambda: want in win.detail.shooting.text(), timeout=10_000)
    assert it.exif is not None and it.exif.lens == "EF 50mm f/1.8 STM"


def test_panel_always_shows_the_selection(qtbot, win, tmp_path):
    """On opening, and as scores re-sort the grid and bursts fold away, the panel shows the
    photo that is selected (and the current photo is selected)."""
    from test_gui import _burst_folder

    d = _burst_folder(tmp_path)
    with qtbot.waitSignal(win.groupsDone, timeout=180_000):
        open_and_score(qtbot, win, d)
    cur = win.current_item()
    assert cur is not None and win.detail.item is cur
    assert cur is win.proxy.visible_items()[0]  # no photo chosen yet: the cursor stays on the best
    assert [cur] == win.selected_items() and win.grid.selectionModel().isSelected(win.grid.currentIndex())


# -- the loupe: histogram and clipping (J) ------------------------------------------------

def _half_blown(path: Path) -> Path:
    """Left third pure white, right third pure black, a grey ramp between."""
    from PIL import Image

    arr = np.zeros((120, 300, 3), np.uint8)
    arr[:, :100] = 255
    arr[:, 100:200] = np.linspace(40, 200, 100, dtype=np.uint8)[None, :, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)  # PNG: exact values
    return path


def test_histogram_and_clipping_are_counted_once():
    from PySide6.QtGui import QImage

    from photocull.gui.viewers import PreviewStats, qimage_rgb

    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = (255, 128, 0)  # red channel blown
    arr[:, 5:10] = (0, 1, 0)  # crushed
    arr[:, 10:] = (100, 150, 200)
    img = QImage(arr.tobytes(), 20, 10, 60, QImage.Format.Format_RGB888).copy()
    np.testing.assert_array_equal(qimage_rgb(img), arr)
    st = PreviewStats(img)
    assert st.histogram.shape == (3, 256) and st.histogram[0, 255] == 50 and st.histogram[2, 200] == 100
    assert st.blown == pytest.approx(0.25) and st.crushed == pytest.approx(0.25)
    clip = st.clipping_image()
    assert clip is st.clipping_image()  # cached
    assert clip.pixelColor(1, 1).red() == 255 and clip.pixelColor(1, 1).alpha() == 255
    assert clip.pixelColor(7, 1).blue() == 255 and clip.pixelColor(15, 1).alpha() == 0
    assert st.histogram_image() is st.histogram_image() and st.histogram_image().width() == 256


def test_loupe_histogram_and_j_toggles_clipping_remembered(qtbot, win, app_paths, tmp_path, monkeypatch):
    from photocull.config import Settings
    from photocull.gui import viewers

    d = tmp_path / "shoot"
    _half_blown(d / "blown.png")
    make_photo(d / "other.jpg", seed=3)
    open_and_score(qtbot, win, d)
    made = []
    real = viewers.PreviewStats
    monkeypatch.setattr(viewers, "PreviewStats", lambda image: made.append(1) or real(image))
    blown = next(it for it in win.model.items if it.name == "blown.png")
    win.grid.setCurrentIndex(win.proxy.index(win.proxy.visible_items().index(blown), 0))
    win.open_loupe()
    pane = win.loupe.pane
    qtbot.waitUntil(lambda: pane.pixmap is not None and win.loader.idle(), timeout=10_000)
    qtbot.wait(50)  # (a preview asked twice arrives twice)
    pane.repaint()
    assert pane.painted_histogram and not pane.painted_clipping
    assert not win.show_clipping
    qtbot.keyClick(win.loupe, Qt.Key.Key_J)
    assert win.show_clipping and pane.show_clipping and win.clipping_action.isChecked()
    n = len(made)
    pane.repaint()
    pane.repaint()
    assert pane.painted_clipping and len(made) == n <= 2  # counted once per image, not per paint
    assert any("highlights 33" in n and "shadows 33" in n for n in pane.overlay_notes())
    # what the screen shows: red over the white third, blue over the black one
    shot = pane.grab().toImage()
    r = pane.target_rect()
    y = int(r.center().y())
    left, right = shot.pixelColor(int(r.left() + r.width() / 6), y), shot.pixelColor(int(r.right() - r.width() / 6), y)
    assert (left.red(), left.green()) == (255, 0) and right.blue() > 200 and right.red() < 100
    assert Settings.load(app_paths.settings_path).show_clipping  # remembered, as O and M
    qtbot.keyClick(win.loupe, Qt.Key.Key_J)
    pane.repaint()
    assert not pane.painted_clipping and not Settings.load(app_paths.settings_path).show_clipping
    # H hides the histogram (it covers the corner at 100 %), remembered; H again shows it
    qtbot.keyClick(win.loupe, Qt.Key.Key_H)
    pane.repaint()
    assert not pane.painted_histogram and not win.histogram_action.isChecked()
    assert not Settings.load(app_paths.settings_path).show_histogram
    assert "Histogram off" in win.statusBar().currentMessage()
    qtbot.keyClick(win.loupe, Qt.Key.Key_H)
    pane.repaint()
    assert pane.painted_histogram and Settings.load(app_paths.settings_path).show_histogram


# -- thumbnail size and columns that fill the width ---------------------------------------

def test_thumbnail_size_and_columns_fill_the_width(qtbot, win, app_paths, tmp_path):
    from photocull.config import Settings

    d = tmp_path / "shoot"
    for i in range(12):
        make_photo(d / f"p{i:02d}.jpg", seed=i, size=(160, 120))
    open_and_score(qtbot, win, d)

    def check():
        vw = win.grid.viewport().width()
        cell = win.grid.gridSize()
        cols = win.grid_columns
        assert cell.width() >= win.thumb_size and vw - cols * cell.width() <= cols  # no dead strip
        r0 = win.grid.visualRect(win.proxy.index(0, 0))
        rl = win.grid.visualRect(win.proxy.index(cols - 1, 0))
        assert r0.left() <= 1 and rl.right() >= vw - cols - 2  # the last column reaches the edge
        assert win.grid.visualRect(win.proxy.index(cols, 0)).top() > r0.top()  # the next row
        assert win.model.DISPLAY_SIZE == win.grid.itemDelegate().picture_size()
        return cols

    qtbot.waitUntil(lambda: win.grid.visualRect(win.proxy.index(0, 0)).isValid(), timeout=5000)
    medium = check()
    win.set_thumb_size(150)
    assert win.size_slider.value() == 150
    small = check()
    win.size_slider.setValue(300)
    large = check()
    assert small > medium > large >= 1
    win.resize(900, 800)
    qtbot.waitUntil(lambda: win.grid_columns < large or large == 1, timeout=5000)
    check()
    win._save_thumb_size.timeout.emit()
    assert Settings.load(app_paths.settings_path).thumb_size == 300
    # thumbnails are kept at the new picture size: painting never rescales them
    win.grid.viewport().repaint()
    pm = win.model.thumbnail(win.proxy.item(win.proxy.index(0, 0)))
    qtbot.waitUntil(lambda: win.model.thumbnail(win.proxy.item(win.proxy.index(0, 0))) is not None, timeout=5000)
    pm = win.model.thumbnail(win.proxy.item(win.proxy.index(0, 0)))
    fit = win.model.DISPLAY_SIZE
    assert pm.width() == fit.width() or pm.height() == fit.height()


# -- a grid that stays put while scores come in ----------------------------------------------

def test_resort_keeps_the_selected_photo_where_it_was_on_screen(qtbot, win, tmp_path):
    d = tmp_path / "shoot"
    for i in range(60):
        make_photo(d / f"p{i:02d}.jpg", seed=i, size=(160, 120))
    open_and_score(qtbot, win, d)
    win.set_thumb_size(150)
    grid, proxy, model = win.grid, win.proxy, win.model
    qtbot.waitUntil(lambda: grid.verticalScrollBar().maximum() > 0, timeout=5000)
    # the photo in the middle of the screen, scrolled part way down
    row = win.grid_columns * 4 + 1
    grid.selectionModel().setCurrentIndex(proxy.index(row, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect)
    grid.scrollTo(proxy.index(row, 0), grid.ScrollHint.PositionAtCenter)
    it = win.current_item()
    before = grid.visualRect(grid.currentIndex()).top()
    assert 0 <= before < grid.viewport().height()
    # new scores put it further down the order
    it_rank = it.rank
    order = sorted((x for x in model.items if x is not it), key=lambda x: x.name)
    order.insert(win.grid_columns * 7 + 2, it)  # ... three rows further down
    for k, x in enumerate(order):
        x.rank = k + 1
    model.resort()
    assert win.current_item() is it and it_rank != it.rank
    qtbot.wait(50)
    after = grid.visualRect(grid.currentIndex())
    assert after.top() == before  # and stays where it was on the screen
    # scrolled away from it: a re-sort leaves the scroll where the user put it
    grid.verticalScrollBar().setValue(0)
    for k, x in enumerate(sorted(model.items, key=lambda x: x.name)):
        x.rank = k + 1
    model.resort()
    qtbot.wait(50)
    assert grid.verticalScrollBar().value() == 0


def test_the_photo_opened_in_the_loupe_stays_the_current_one_as_scores_come_in(qtbot, win, tmp_path):
    """Just after opening a folder the cursor follows the best photo so far; once the user
    opens the loupe on it (or marks it) it is theirs: a re-sort never moves the cursor to
    another photo, so the filmstrip and the arrow keys go on from the photo on screen."""
    d = tmp_path / "shoot"
    for i in range(6):
        make_photo(d / f"p{i}.jpg", seed=i, size=(160, 120))
    win.autoscore = False
    assert win.open_folder(d)
    model = win.model
    for k, x in enumerate(sorted(model.items, key=lambda x: x.name)):
        x.rank = k + 1
    model.resort()
    first = win.current_item()
    assert first is win.proxy.item(win.proxy.index(0, 0))
    # before any choice: a new best takes the cursor (the top photo)
    for k, x in enumerate(sorted(model.items, key=lambda x: x.name, reverse=True)):
        x.rank = k + 1
    model.resort()
    top = win.current_item()
    assert top is not first and top is win.proxy.item(win.proxy.index(0, 0))
    win.open_loupe()
    assert win.loupe.item() is top
    for k, x in enumerate(sorted(model.items, key=lambda x: x.name)):
        x.rank = k + 1
    model.resort()
    assert win.current_item() is top and win.loupe.item() is top
    assert win.proxy.item(win.proxy.index(0, 0)) is not top


def test_rescore_greys_old_scores_until_replaced(qtbot, win, photo_folder):
    open_and_score(qtbot, win, photo_folder)
    scored = [it for it in win.model.items if it.scored]
    seen = []
    win.model.dataChanged.connect(lambda *a: seen.append(sum(it.stale for it in scored)))
    with qtbot.waitSignal(win.scoringDone, timeout=120_000):
        win.start_scoring()
        assert all(it.stale for it in scored)  # greyed from the start of the rescore
    assert not any(it.stale for it in win.model.items)  # every one replaced


def test_the_detail_panel_counts_every_scored_photo_once_scoring_ends(qtbot, win, tmp_path):
    """The panel's "rank r of N" is refreshed with the last batch (it said "of 24" beside a
    status bar saying 25 photos scored)."""
    d = tmp_path / "shoot"
    for i in range(21):
        make_photo(d / f"p{i:02d}.jpg", seed=i, size=(160, 120))
    open_and_score(qtbot, win, d)
    n = win._n_scored()
    assert n == 21
    assert f"of {n} (" in win.detail.info.text(), win.detail.info.text()
