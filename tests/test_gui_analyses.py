"""Faces and focus in the window: the closed-eyes badge and filter, the face-sharpness sort, and the
loupe's overlays (O face boxes, M focus map), fed with synthetic analyses through update_results."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QPointF, QItemSelectionModel, Qt  # noqa: E402

from conftest import make_photo  # noqa: E402
from photocull.analysis.faces import Face, FaceReport  # noqa: E402
from photocull.analysis.focus import FocusReport  # noqa: E402
from photocull.scoring import ScoreResult  # noqa: E402

OPEN, SHUT, AWAY = "open", "shut", "away"


def face(box, eyes=OPEN, sharpness=0.3):
    return Face(box=box, confidence=0.9, left_eye=0.08 if eyes == SHUT else 0.3,
                right_eye=0.08 if eyes == SHUT else 0.3, eyes_closed=eyes == SHUT,
                yaw=40.0 if eyes == AWAY else 2.0, looking_away=eyes == AWAY, sharpness=sharpness, size_px=120)


def focus(rows=6, cols=8, sharp_cols=4):
    """Sharp on the left half, soft on the right, one cell without detail."""
    grid = np.full((rows, cols), round(255 / (1 + 3.0)), np.uint8)  # blur 3 px: soft
    grid[:, :sharp_cols] = round(255 / (1 + 0.5))                   # blur 0.5 px: sharp
    grid[0, -1] = 0
    return FocusReport(grid, 0.66, 0.66, (0.1, 0.2, 0.5, 0.8), "sharp", subject_from="salient")


# name: (faces, focus, score bucket).  A: two open faces, sharp; B: one of two shut; C: a soft
# face, eyes shut; D: no face found; E: looking away, sharpest; F: faces not analysed (None)
CENTRE = (0.35, 0.3, 0.65, 0.7)
SHOOT = {
    "A.jpg": ([face((0.1, 0.1, 0.3, 0.4), sharpness=0.30), face((0.6, 0.1, 0.8, 0.4), sharpness=0.35)], True, 8),
    "B.jpg": ([face((0.1, 0.1, 0.3, 0.4), SHUT, 0.25), face((0.6, 0.1, 0.8, 0.4), sharpness=0.4)], True, 7),
    "C.jpg": ([face(CENTRE, SHUT, 0.08)], False, 6),
    "D.jpg": ([], True, 5),
    "E.jpg": ([face(CENTRE, AWAY, 0.45)], False, 4),
    "F.jpg": (None, False, 9),
}


def result(path: Path, faces, with_focus: bool, bucket: int) -> ScoreResult:
    probs = np.full(10, 0.02, np.float32)
    probs[bucket - 1] = 1.0
    return ScoreResult(path, probs / probs.sum(),
                       faces=None if faces is None else FaceReport(tuple(faces), 0.03),
                       focus=focus() if with_focus else None)


@pytest.fixture
def people(qtbot, win, tmp_path):
    """The window on SHOOT (unscored: the results below are fed as the scorer would feed them)."""
    d = tmp_path / "people"
    for i, name in enumerate(SHOOT):
        make_photo(d / name, seed=i, size=(480, 320))
    win.autoscore = False
    assert win.open_folder(d)
    win.model.update_results([result(d / n, f, fo, b) for n, (f, fo, b) in SHOOT.items()], immediate=True)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)  # window shortcuts need an active window
    win.grid.setFocus()
    return win


def names(win):
    return [it.name for it in win.proxy.visible_items()]


def select(win, name):
    row = names(win).index(name)
    ix = win.proxy.index(row, 0)
    win.grid.setCurrentIndex(ix)
    win.grid.selectionModel().select(ix, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    return win.proxy.item(ix)


def open_loupe(qtbot, win, name):
    it = select(win, name)
    qtbot.keyClick(win.grid, Qt.Key.Key_Return)
    assert win.stack.currentWidget() is win.loupe and win.loupe.item() is it
    qtbot.waitUntil(lambda: win.loupe.pane.pixmap is not None, timeout=10_000)
    return win.loupe.pane


def colour_near(img, x, y, r=2):
    """The most saturated pixel around (x, y) of a QImage, as (r, g, b)."""
    best, score = (0, 0, 0), -1
    for dx in range(-r, r + 1):
        for dy in range(-r, r + 1):
            if 0 <= x + dx < img.width() and 0 <= y + dy < img.height():
                c = img.pixelColor(int(x + dx), int(y + dy))
                s = max(c.red(), c.green(), c.blue()) - min(c.red(), c.green(), c.blue())
                if s > score:
                    best, score = (c.red(), c.green(), c.blue()), s
    return best


def box_edge_colour(pane, box):
    """The colour drawn on the middle of a face box's left edge, where the pane maps it."""
    pane.repaint()
    img = pane.grab().toImage()
    r = pane.target_rect()
    x = r.left() + box[0] * r.width()
    y = r.top() + (box[1] + box[3]) / 2 * r.height()
    return colour_near(img, round(x), round(y))


# -- the grid ------------------------------------------------------------------------------

def test_items_carry_faces_and_focus_from_the_results(people):
    a, d, f = (people.model.item_for(people.folder / n) for n in ("A.jpg", "D.jpg", "F.jpg"))
    assert a.faces.count == 2 and isinstance(a.focus, FocusReport)
    assert d.faces.count == 0 and d.face_sharpness is None and d.eyes_closed_count == 0
    assert f.faces is None and f.focus is None and f.eyes_closed_count == 0
    select(people, "B.jpg")  # the detail panel says what was found
    info = people.detail.info.text()
    assert "2 faces, 1 with eyes closed; face sharpness 0.25 (the softest)" in info and "focus: sharp" in info
    select(people, "D.jpg")  # searched, none found: said (not silence, as for a photo never searched)
    assert "no face found" in people.detail.info.text()
    select(people, "F.jpg")
    assert "face" not in people.detail.info.text()


def test_eyes_closed_filter_shows_only_photos_with_a_closed_eye(qtbot, people):
    win = people
    assert len(names(win)) == len(SHOOT)
    win.eyes_check.setChecked(True)
    assert sorted(names(win)) == ["B.jpg", "C.jpg"]
    # with the other filters: only B is a pick
    select(win, "B.jpg")
    win.set_flag(1)
    win.flag_combo.setCurrentIndex(win.flag_combo.findData("picks"))
    assert names(win) == ["B.jpg"]
    win.flag_combo.setCurrentIndex(win.flag_combo.findData("all"))
    win.eyes_check.setChecked(False)
    assert len(names(win)) == len(SHOOT)


def test_eyes_closed_filter_finds_the_blink_inside_a_collapsed_burst(qtbot, people):
    win = people
    a, c = win.model.item_for(win.folder / "A.jpg"), win.model.item_for(win.folder / "C.jpg")
    for it, best in ((a, True), (c, False)):  # C is a burst frame under A
        it.group, it.group_size, it.group_kind, it.group_best = 1, 2, "burst", best
    win.proxy.refilter()
    assert "C.jpg" not in names(win)
    win.eyes_check.setChecked(True)
    assert sorted(names(win)) == ["B.jpg", "C.jpg"]


def test_filter_follows_faces_that_arrive_later(qtbot, people):
    win = people
    win.eyes_check.setChecked(True)
    assert "F.jpg" not in names(win)
    win.model.update_results([result(win.folder / "F.jpg", [face(CENTRE, SHUT)], False, 9)], immediate=True)
    assert "F.jpg" in names(win)


def test_sort_by_face_sharpness_softest_face_decides_no_faces_last(qtbot, people):
    win = people
    win.sort_combo.setCurrentIndex(win.sort_combo.findData("face_sharpness"))
    # softest faces: E 0.45, A 0.30, B 0.25, C 0.08; then D and F (no faces) by score: F 9, D 5
    assert names(win) == ["E.jpg", "A.jpg", "B.jpg", "C.jpg", "F.jpg", "D.jpg"]
    assert win._sort_actions["face_sharpness"].isChecked()  # the View menu agrees
    win.set_sort("score")
    assert names(win)[0] == "F.jpg" and win._sort_actions["score"].isChecked()


def test_grid_badge_for_closed_eyes(qtbot, people):
    from photocull.gui.widgets import eyes_closed_badge

    win = people
    badge = {n: eyes_closed_badge(win.model.item_for(win.folder / n)) for n in SHOOT}
    assert badge == {"A.jpg": None, "B.jpg": "1/2", "C.jpg": "", "D.jpg": None, "E.jpg": None, "F.jpg": None}
    c = win.model.item_for(win.folder / "C.jpg")
    c.flag = 1  # beside a flag too
    win.grid.viewport().repaint()
    assert not win.grid.grab().isNull()


def test_the_score_badge_is_shortened_to_keep_clear_of_the_other_badges(qtbot, people):
    """At the smallest thumbnails a flag and a closed-eyes badge took the end of "4.87 · top
    94%" under them: the score badge says what fits beside them ("4.87"), all of it when it can."""
    from PySide6.QtGui import QFont, QFontMetrics

    from photocull.gui.widgets import score_badge

    it = people.model.item_for(people.folder / "B.jpg")
    bold = QFont()
    bold.setBold(True)
    fm = QFontMetrics(bold)
    full = score_badge(it, fm, 10_000)
    assert full.startswith(f"{it.mean:.2f}") and "top" in full
    assert score_badge(it, fm, fm.horizontalAdvance(full) + 10) == full
    short = score_badge(it, fm, fm.horizontalAdvance(full) + 9)
    assert short == f"{it.mean:.2f}" and fm.horizontalAdvance(short) + 10 <= fm.horizontalAdvance(full)
    assert score_badge(it, fm, 5) == f"{it.mean:.2f}"  # never nothing


# -- the loupe -----------------------------------------------------------------------------

def test_o_toggles_face_boxes_coloured_by_eyes_at_fit_and_100(qtbot, people):
    win = people
    pane = open_loupe(qtbot, win, "B.jpg")
    assert not pane.show_faces
    r, g, b = box_edge_colour(pane, (0.6, 0.1, 0.8, 0.4))
    assert not (g > 150 and r < 100)  # nothing drawn yet

    qtbot.keyClick(win.loupe, Qt.Key.Key_O)
    assert pane.show_faces and win.show_faces and win.faces_action.isChecked()
    img = pane.grab().toImage()
    assert not img.isNull() and pane.painted_faces == 2
    assert pane.overlay_notes() == ["2 faces, 1 with eyes closed"]
    r, g, b = box_edge_colour(pane, (0.6, 0.1, 0.8, 0.4))  # eyes open: green, where the face is
    assert g > 150 and r < 100, (r, g, b)
    r, g, b = box_edge_colour(pane, (0.1, 0.1, 0.3, 0.4))  # eyes shut: red
    assert r > 150 and g < 100, (r, g, b)

    qtbot.keyClick(win.loupe, Qt.Key.Key_Z)  # 100 %, panned: the boxes follow the photo
    assert pane.zoom_100
    pane.set_centre(QPointF(0.7, 0.25))
    r, g, b = box_edge_colour(pane, (0.6, 0.1, 0.8, 0.4))
    assert g > 150 and r < 100, (r, g, b)
    qtbot.keyClick(win.loupe, Qt.Key.Key_Z)

    qtbot.keyClick(win.loupe, Qt.Key.Key_O)
    assert not pane.show_faces and not win.faces_action.isChecked()
    pane.grab()
    assert pane.painted_faces == 0 and pane.overlay_notes() == []


def test_looking_away_is_orange(qtbot, people):
    win = people
    pane = open_loupe(qtbot, win, "E.jpg")
    qtbot.keyClick(win.loupe, Qt.Key.Key_O)
    r, g, b = box_edge_colour(pane, CENTRE)
    assert r > 200 and 100 < g < 200 and b < 100, (r, g, b)


def test_m_toggles_the_focus_map(qtbot, people):
    win = people
    pane = open_loupe(qtbot, win, "D.jpg")  # a focus map, no faces
    rect = pane.target_rect()
    at = (round(rect.left() + 0.75 * rect.width()), round(rect.top() + 0.6 * rect.height()))  # a soft cell
    pane.repaint()
    before = pane.grab().toImage().pixelColor(*at)

    qtbot.keyClick(win.loupe, Qt.Key.Key_M)
    assert pane.show_focus and win.show_focus and win.focus_action.isChecked()
    pane.repaint()
    after = pane.grab().toImage().pixelColor(*at)
    assert pane.painted_focus
    assert after.red() - after.green() > before.red() - before.green() + 30  # soft: tinted red
    assert pane.overlay_notes()[0].startswith("focus: sharp")

    qtbot.keyClick(win.loupe, Qt.Key.Key_M)
    assert not pane.show_focus
    pane.grab()
    assert not pane.painted_focus


def test_focus_map_colours_sharp_green_soft_red():
    from photocull.gui.viewers import focus_grid, focus_map_image

    img = focus_map_image(focus_grid(focus()))
    assert (img.width(), img.height()) == (8, 6)
    sharp, soft, empty = img.pixelColor(0, 3), img.pixelColor(7, 3), img.pixelColor(7, 0)
    assert sharp.green() > sharp.red() and soft.red() > soft.green()
    assert soft.alpha() > sharp.alpha() > 0 and empty.alpha() == 0
    assert focus_grid(None) is None
    assert focus_grid(FocusReport(np.zeros((0, 0), np.uint8), 0, 0, (0, 0, 1, 1), "unjudged", note="too small")) is None


def test_overlays_stay_on_from_photo_to_photo_and_say_when_there_is_nothing(qtbot, people):
    win = people
    pane = open_loupe(qtbot, win, "A.jpg")
    qtbot.keyClick(win.loupe, Qt.Key.Key_O)
    qtbot.keyClick(win.loupe, Qt.Key.Key_M)
    pane.grab()
    assert pane.painted_faces == 2 and pane.painted_focus

    select(win, "F.jpg")  # no faces analysed, no focus map
    win.open_loupe()
    assert win.loupe.pane is pane and pane.show_faces and pane.show_focus
    qtbot.waitUntil(lambda: pane.pixmap is not None, timeout=10_000)
    assert not pane.grab().isNull()
    assert pane.painted_faces == 0 and not pane.painted_focus
    assert pane.overlay_notes() == ["faces not analysed", "no focus map"]

    select(win, "C.jpg")  # a face, no focus map
    win.open_loupe()
    qtbot.waitUntil(lambda: pane.pixmap is not None, timeout=10_000)
    pane.grab()
    assert pane.painted_faces == 1 and not pane.painted_focus
    assert "no focus map" in pane.overlay_notes()

    select(win, "D.jpg")  # searched, none found
    win.open_loupe()
    qtbot.waitUntil(lambda: pane.pixmap is not None, timeout=10_000)
    pane.grab()
    assert pane.overlay_notes()[0] == "no faces found" and pane.painted_focus

    qtbot.keyClick(win.loupe, Qt.Key.Key_Right)  # the arrows keep them on too
    assert pane.show_faces and pane.show_focus
    qtbot.keyClick(win.loupe, Qt.Key.Key_Escape)
    win.open_loupe()
    assert pane.show_faces and pane.show_focus


def test_unjudged_focus_says_why_there_is_no_map(qtbot, people):
    win = people
    it = win.model.item_for(win.folder / "E.jpg")
    it.focus = FocusReport(np.zeros((0, 0), np.uint8), 0.0, 0.0, (0, 0, 1, 1), "unjudged", note="too small: 40x30")
    pane = open_loupe(qtbot, win, "E.jpg")
    qtbot.keyClick(win.loupe, Qt.Key.Key_M)
    pane.grab()
    assert not pane.painted_focus and pane.overlay_notes() == ["no focus map (too small: 40x30)"]


def test_overlays_in_compare(qtbot, people):
    win = people
    win.set_overlays(faces=True, focus=True)  # as O and M in the grid
    sel = win.grid.selectionModel()
    select(win, "A.jpg")
    sel.select(win.proxy.index(names(win).index("C.jpg"), 0), QItemSelectionModel.SelectionFlag.Select)
    qtbot.keyClick(win.grid, Qt.Key.Key_C)
    assert win.stack.currentWidget() is win.compare
    panes = win.compare.panes
    qtbot.waitUntil(lambda: all(p.pixmap is not None for p in panes), timeout=10_000)
    assert all(p.show_faces and p.show_focus for p in panes)
    for p in panes:
        p.grab()
    by_name = {p.item.name: p for p in panes}
    assert by_name["A.jpg"].painted_faces == 2 and by_name["A.jpg"].painted_focus
    assert by_name["C.jpg"].painted_faces == 1 and "no focus map" in by_name["C.jpg"].overlay_notes()
    r, g, b = box_edge_colour(by_name["C.jpg"], CENTRE)  # shut: red, in its own pane
    assert r > 150 and g < 100, (r, g, b)
    qtbot.keyClick(win.compare, Qt.Key.Key_O)
    assert not any(p.show_faces for p in panes) and all(p.show_focus for p in panes)


def test_a_burst_sorts_together_and_shows_your_pick_when_collapsed(qtbot):
    """Sorted by score, an expanded burst's frames sit side by side after its best frame (its
    shaken frames are not sent to the end of the shoot); collapsed, it shows the frame you
    picked, or its best frame that is not rejected; rejecting the frame shown does not make it
    vanish under the cursor (the cover changes when the grid is filtered again)."""
    from photocull.gui.photomodel import PhotoItem, PhotoListModel, PhotoProxy

    def dist(mean):
        p = np.zeros(10, np.float32)
        lo = int(mean)
        p[lo - 1], p[lo] = 1 - (mean - lo), mean - lo
        return p

    means = {"a": 8.0, "b": 7.5, "burst1": 7.2, "c": 6.5, "d": 6.0, "burst2": 5.0, "burst3": 3.0, "e": 2.0}
    items = [PhotoItem(Path(f"/shoot/{n}.jpg"), probs=dist(m)) for n, m in means.items()]
    for it in items:
        if it.name.startswith("burst"):
            it.group, it.group_size, it.group_kind = 1, 3, "burst"
    model = PhotoListModel()
    proxy = PhotoProxy()
    proxy.setSourceModel(model)
    model.set_items(items)
    model.set_mode("single", ())
    model.resort()

    def shown():
        return [it.name[:-4] for it in proxy.visible_items()]

    assert shown() == ["a", "b", "burst1", "c", "d", "e"]
    proxy.set_filter(expanded={1})
    assert shown() == ["a", "b", "burst1", "burst2", "burst3", "c", "d", "e"]
    proxy.set_filter(expanded=set())
    by = {it.name[:-4]: it for it in items}
    by["burst1"].flag = -1  # rejected where it is shown: it stays until the grid is filtered again
    assert shown() == ["a", "b", "burst1", "c", "d", "e"]
    proxy.refilter()
    assert shown() == ["a", "b", "burst2", "c", "d", "e"]  # the best frame not rejected, in the burst's place
    by["burst3"].flag = 1
    proxy.refilter()
    assert shown() == ["a", "b", "burst3", "c", "d", "e"]  # your pick, even below the others by score
    assert by["burst3"].group_cover and not by["burst2"].group_cover
    # each frame's place in its burst by rank, for the "▣ 2/3" badge of an expanded burst
    assert [by[n].group_pos for n in ("burst1", "burst2", "burst3")] == [1, 2, 3]
    assert by["a"].group_pos == 0


def test_pick_best_of_a_burst_prefers_open_eyes_then_sharp_faces(qtbot):
    """Issue 4/7 through the window's model: in a burst, the frame where every face is open
    is the group's best (and Select > Pick best picks it) even when a blinking frame, or a
    frame with a missing face, has the higher aesthetic score; then the sharper faces win."""
    from photocull.cull.bursts import best_of_groups_changes
    from photocull.gui.photomodel import PhotoItem, PhotoListModel
    from photocull.model.spec import FAMILIES

    def dist(bucket):
        p = np.full(10, 0.01, np.float32)
        p[bucket - 1] = 1.0
        return p / p.sum()

    def item(name, aesthetic, faces, group=1):
        it = PhotoItem(Path(f"/shoot/{name}"), probs=dist(8), severities=np.zeros(len(FAMILIES), np.float32),
                       aesthetic=dist(aesthetic), faces=FaceReport(tuple(faces), 0.03), group=group,
                       group_size=3, group_kind="burst")
        return it

    two_open = [face((0.1, 0.1, 0.3, 0.4), sharpness=0.4), face((0.6, 0.1, 0.8, 0.4), sharpness=0.4)]
    blink = [face((0.1, 0.1, 0.3, 0.4), SHUT, 0.4), face((0.6, 0.1, 0.8, 0.4), sharpness=0.4)]
    one_missing = [face((0.1, 0.1, 0.3, 0.4), sharpness=0.4)]
    model = PhotoListModel()
    items = [item("open.jpg", 5, two_open), item("blink.jpg", 7, blink), item("missing.jpg", 6, one_missing)]
    model.set_items(items)
    model.set_mode("overall", FAMILIES)
    best = [it.name for it in items if it.group_best]
    assert best == ["open.jpg"]
    assert items[0].rank == 1 and {items[1].rank, items[2].rank} == {2, 3}
    assert any("blinking" in f for f in items[1].faults) and any("not found" in f for f in items[2].faults)
    picks = [it.name for it, flag in best_of_groups_changes(items).changes if flag == 1]
    assert picks == ["open.jpg"]
    # every face open in each frame: the sharper faces are the best frame, not the higher aesthetic score
    soft = [face((0.1, 0.1, 0.3, 0.4), sharpness=0.1), face((0.6, 0.1, 0.8, 0.4), sharpness=0.4)]
    items2 = [item("sharp.jpg", 5, two_open, 2), item("soft.jpg", 7, soft, 2)]
    model.set_items(items2)
    model.set_mode("overall", FAMILIES)
    assert [it.name for it in items2 if it.group_best] == ["sharp.jpg"]


def test_the_windows_view_settings_are_remembered(qtbot, app_paths, tiny_model):
    """The grid's order, the loupe's overlays and the window's size come back as they were left."""
    from photocull.gui.mainwindow import MainWindow

    w = MainWindow(app_paths)
    qtbot.addWidget(w)
    assert w.proxy.sort_key == "score" and not w.show_faces and not w.show_focus
    w.set_sort("face_sharpness")
    w.set_overlays(faces=True, focus=True)
    w.show()
    w.resize(700, 500)  # (inside the offscreen screen: restoreGeometry keeps a window on its screen)
    qtbot.waitUntil(lambda: w.size().width() == 700)
    left = (w.size().width(), w.size().height())  # (no smaller than its layout allows)
    w.close()  # (closeEvent: shutdown, settings saved)
    again = MainWindow(app_paths)
    qtbot.addWidget(again)
    try:
        assert (again.size().width(), again.size().height()) == left != (1400, 900)
        assert again.proxy.sort_key == "face_sharpness"
        assert again.show_faces and again.show_focus and again.faces_action.isChecked()
        assert again.sort_combo.itemData(again.sort_combo.currentIndex()) == "face_sharpness"
    finally:
        again.shutdown()
