"""The Preferences dialog: keys, where marks are written (sidecars, inside the file), bursts."""
from __future__ import annotations

from photocull.config import Settings
from photocull.gui.dialogs import PreferencesDialog


def press_on(qtbot, win, path, key) -> None:
    """Select ``path`` in the grid of the active window and press ``key``."""
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
    win.grid.setFocus()
    row = next(r for r in range(win.proxy.rowCount()) if win.proxy.item(win.proxy.index(r, 0)).path == path)
    win.grid.setCurrentIndex(win.proxy.index(row, 0))
    qtbot.keyClick(win.grid, key)


def test_preferences_show_the_settings_and_write_back_only_what_changed(qtbot):
    s = Settings(auto_advance=True, embed_xmp=False, pick_as="stars:4", burst_gap_seconds=2.0)
    d = PreferencesDialog(s)
    qtbot.addWidget(d)
    assert d.auto_advance.isChecked() and not d.embed.isChecked()
    assert d.pick_as.currentData() == "stars:4" and not d.pick_as.isEnabled()  # only with embedding
    assert d.similarity.currentData() == "normal" and d.gap.value() == 2.0
    assert d.apply_to(s) == set()  # nothing touched: nothing changed

    d.embed.setChecked(True)
    assert d.pick_as.isEnabled()
    d.pick_as.setCurrentIndex(d.pick_as.findData("label:Green"))
    d.gap.setValue(3.5)
    d.similarity.setCurrentIndex(d.similarity.findData("loose"))
    d.style.setCurrentIndex(d.style.findData("darktable"))
    changed = d.apply_to(s)
    assert changed == {"embed_xmp", "pick_as", "burst_gap_seconds", "burst_similarity", "sidecar_style"}
    assert (s.embed_xmp, s.pick_as, s.burst_gap_seconds, s.burst_similarity, s.sidecar_style) == (
        True, "label:Green", 3.5, "loose", "darktable")


def test_a_hand_written_pick_setting_is_kept(qtbot):
    s = Settings(pick_as="label:Purple", embed_xmp=True)
    d = PreferencesDialog(s)
    qtbot.addWidget(d)
    assert d.pick_as.currentData() == "label:Purple"
    assert d.apply_to(s) == set()


def test_settings_round_trip_the_new_fields(tmp_path):
    s = Settings(burst_similarity="strict", burst_gap_seconds=4.0, embed_xmp=True)
    s.save(tmp_path / "s.json")
    t = Settings.load(tmp_path / "s.json")
    assert (t.burst_similarity, t.burst_gap_seconds, t.embed_xmp) == ("strict", 4.0, True)


def test_the_window_takes_the_preferences_and_writes_marks_into_the_file(qtbot, win, tmp_path, monkeypatch):
    """Edit ▸ Preferences: saved at once, the Edit menu's toggles follow, bursts are grouped
    again when their sensitivity changes; with 'write marks into files' a star key puts the
    rating into the JPEG's own XMP (Pillow reads it back), pixels unchanged."""
    import numpy as np
    from PIL import Image
    from PySide6.QtCore import Qt

    from conftest import make_photo
    from photocull.media.embedded import read_embedded

    d = tmp_path / "shoot"
    photo = make_photo(d / "IMG_0001.jpg", seed=1)
    make_photo(d / "IMG_0002.jpg", seed=2)
    before = np.asarray(Image.open(photo))
    win.autoscore = False
    assert win.open_folder(d)
    regrouped = []
    monkeypatch.setattr(win, "update_groups", lambda: regrouped.append(1))

    dlg = PreferencesDialog(win.settings, win)
    qtbot.addWidget(dlg)
    dlg.embed.setChecked(True)
    dlg.auto_advance.setChecked(not win.settings.auto_advance)
    dlg.gap.setValue(3.0)
    changed = win.apply_preferences(dlg)
    assert {"embed_xmp", "auto_advance", "burst_gap_seconds"} <= changed and regrouped == [1]
    assert win.auto_advance_action.isChecked() == win.settings.auto_advance
    saved = Settings.load(win.paths.settings_path)
    assert saved.embed_xmp and saved.burst_gap_seconds == 3.0

    win.settings.auto_advance = False
    press_on(qtbot, win, photo, Qt.Key.Key_4)
    assert win.flush_marks()
    assert read_embedded(photo).rating == 4
    assert Image.open(photo).getxmp()  # other programs read it
    np.testing.assert_array_equal(np.asarray(Image.open(photo)), before)


def test_the_window_shows_the_stars_lightroom_wrote_inside_jpegs_but_never_over_a_new_mark(
        qtbot, win, tmp_path, monkeypatch):
    """Marks inside JPEGs (Lightroom, Photo Mechanic, the camera) appear once the grid is
    shown, read in a thread; a photo marked by hand before they arrive keeps its mark, and
    nothing is written anywhere for the marks only read."""
    import threading

    from PySide6.QtCore import Qt

    from photocull.cull.catalog import Marks
    from photocull.gui import mainwindow
    from photocull.media.sidecar import find_sidecar
    from test_embedded_xmp import LIGHTROOM_PACKET, jpeg_with_exif_and_xmp

    d = tmp_path / "shoot"
    d.mkdir()
    a = jpeg_with_exif_and_xmp(d / "IMG_0001.jpg")  # 2 stars inside
    b = jpeg_with_exif_and_xmp(d / "IMG_0002.jpg", LIGHTROOM_PACKET.replace(b'"2"', b'"5" xmp:Label="Green"'), seed=1)
    c = jpeg_with_exif_and_xmp(d / "IMG_0003.jpg", seed=2)  # 2 stars inside, marked by hand first
    go = threading.Event()
    real = mainwindow.embedded_marks_job

    def held_back(paths, cancelled=lambda: False):
        go.wait(10)
        yield from real(paths, cancelled)

    monkeypatch.setattr(mainwindow, "embedded_marks_job", held_back)
    win.autoscore = False
    win.settings.auto_advance = False
    assert win.open_folder(d)
    assert all(it.rating == 0 for it in win.model.items)  # the grid did not wait for them
    press_on(qtbot, win, c, Qt.Key.Key_4)
    go.set()
    qtbot.waitUntil(lambda: win.embedded_worker is None, timeout=10000)
    marks = {it.path: Marks(it.flag, it.rating, it.label) for it in win.model.items}
    assert marks[a] == Marks(rating=2) and marks[b] == Marks(rating=5, label="Green")
    assert marks[c] == Marks(rating=4)
    assert win.flush_marks()
    assert find_sidecar(a) is None and find_sidecar(b) is None and find_sidecar(c) is not None
    assert win.catalog.get_marks([a, b]) == {}


def test_with_scoring_the_marks_inside_files_are_read_once_the_catalog_has_answered(qtbot, win, tmp_path):
    """Scoring on: the header reads wait until the catalog's scores are in (a reopened
    shoot sorts first), then the stars Lightroom wrote appear."""
    from test_embedded_xmp import jpeg_with_exif_and_xmp

    d = tmp_path / "shoot"
    d.mkdir()
    a = jpeg_with_exif_and_xmp(d / "IMG_0001.jpg")  # 2 stars inside
    jpeg_with_exif_and_xmp(d / "IMG_0002.jpg", xmp=None, seed=1)
    win.autoscore = True
    with qtbot.waitSignal(win.scoringDone, timeout=120_000):
        assert win.open_folder(d)
        assert win.embedded_worker is None  # not while the scores are looked up
    qtbot.waitUntil(lambda: win.model.item_for(a).rating == 2, timeout=10_000)
