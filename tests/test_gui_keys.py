"""The culling loop at the keyboard: compare marks its focused pane only, auto-advance,
undo/redo, the filter bar's keys and label filter, pick-best that asks and leaves your marks."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QItemSelectionModel, Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from conftest import make_photo  # noqa: E402

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def shoot(tmp_path):
    d = tmp_path / "shoot"
    for i in range(6):
        make_photo(d / f"IMG_{i:04d}.jpg", seed=i)
    return d


def open_unscored(qtbot, win, folder):
    """The folder in the window without scoring it (marks need no scores): fast."""
    win.autoscore = False
    assert win.open_folder(folder)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)  # window shortcuts need an active window
    win.grid.setFocus()
    return win


def marks(it):
    return it.flag, it.rating, it.label


def select_rows(win, rows):
    sel = win.grid.selectionModel()
    win.grid.setCurrentIndex(win.proxy.index(rows[0], 0))
    for r in rows[1:]:
        sel.select(win.proxy.index(r, 0), QItemSelectionModel.SelectionFlag.Select)
    return [win.proxy.item(win.proxy.index(r, 0)) for r in rows]


def open_compare(qtbot, win, rows):
    items = select_rows(win, rows)
    qtbot.keyClick(win.grid, Qt.Key.Key_C)
    assert win.stack.currentWidget() is win.compare
    return items


# -- compare ------------------------------------------------------------------------------

def test_compare_marks_the_focused_pane_only_and_its_overlay_shows_it(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    a, b, c = open_compare(qtbot, win, [0, 1, 2])
    a.rating = 5  # the photo the user lost: a 5-star pick
    a.flag = 1
    panes = win.compare.panes
    assert [p.item for p in panes] == [a, b, c]
    assert win.compare.focused_item() is a and panes[0].focused and not panes[1].focused

    qtbot.mouseClick(panes[2], Qt.MouseButton.LeftButton)  # click a pane: it takes the focus
    assert win.compare.focused_item() is c and panes[2].focused and not panes[0].focused
    qtbot.keyClick(win.compare, Qt.Key.Key_X)
    assert marks(c) == (-1, 0, None)
    assert marks(a) == (1, 5, None) and marks(b) == (0, 0, None)  # the others untouched
    qtbot.waitUntil(lambda: panes[2].painted_marks == (-1, 0, None), timeout=5000)  # repainted, live

    qtbot.keyClick(win.compare, Qt.Key.Key_Tab)  # Tab wraps round to the first pane
    assert win.compare.focused_item() is a
    # three 4:3 photos in this 3:2 view: a and b above, c below, all three the same size
    qtbot.waitUntil(lambda: win.compare.aspects() == [4 / 3] * 3, timeout=5000)  # the photos' shapes known
    ga, gb, gc = (p.geometry() for p in panes)
    assert ga.top() == gb.top() == 0 and gb.left() > ga.right() and gc.top() > ga.bottom()
    qtbot.keyClick(win.compare, Qt.Key.Key_Right)  # the arrows go to the pane on that side
    assert win.compare.focused_item() is b
    qtbot.keyClick(win.compare, Qt.Key.Key_3)
    qtbot.keyClick(win.compare, Qt.Key.Key_7)
    assert marks(b) == (0, 3, "Yellow")
    assert marks(a) == (1, 5, None) and marks(c) == (-1, 0, None)
    qtbot.waitUntil(lambda: panes[1].painted_marks == (0, 3, "Yellow"), timeout=5000)
    qtbot.keyClick(win.compare, Qt.Key.Key_Right)  # nothing right of b
    assert win.compare.focused_item() is b
    qtbot.keyClick(win.compare, Qt.Key.Key_Down)  # the pane below b
    assert win.compare.focused_item() is c
    qtbot.keyClick(win.compare, Qt.Key.Key_Down)  # nothing below c
    assert win.compare.focused_item() is c
    qtbot.keyClick(win.compare, Qt.Key.Key_Backtab, SHIFT)
    assert win.compare.focused_item() is b
    qtbot.keyClick(win.compare, Qt.Key.Key_P)
    assert marks(b) == (1, 3, "Yellow")

    # one undo step per key, on that photo only; the pane repaints
    qtbot.keyClick(win.compare, Qt.Key.Key_Z, CTRL)
    assert marks(b) == (0, 3, "Yellow") and marks(a) == (1, 5, None)
    qtbot.waitUntil(lambda: panes[1].painted_marks == (0, 3, "Yellow"), timeout=5000)
    # the grid's cursor followed the focused pane, the selection did not change
    assert win.current_item() is b
    assert [it.key for it in win.selected_items()] == [a.key, b.key, c.key]
    qtbot.keyClick(win.compare, Qt.Key.Key_Escape)
    assert win.stack.currentIndex() == 0


def test_compare_auto_advance_moves_to_the_next_pane(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    win.settings.auto_advance = True
    a, b = open_compare(qtbot, win, [0, 1])
    qtbot.keyClick(win.compare, Qt.Key.Key_4)
    assert win.compare.focused_item() is b
    qtbot.keyClick(win.compare, Qt.Key.Key_X)
    assert win.compare.focused_item() is b  # the last pane: stays
    assert marks(a) == (0, 4, None) and marks(b) == (-1, 0, None)


def test_loupe_marks_the_photo_shown_not_the_whole_selection(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    a, b = select_rows(win, [0, 1])
    qtbot.keyClick(win.grid, Qt.Key.Key_Space)
    assert win.stack.currentWidget() is win.loupe and win.loupe.item() is a
    qtbot.keyClick(win.loupe, Qt.Key.Key_2)
    assert marks(a) == (0, 2, None) and marks(b) == (0, 0, None)
    qtbot.waitUntil(lambda: win.loupe.pane.painted_marks == (0, 2, None), timeout=5000)


# -- keys ---------------------------------------------------------------------------------

def test_stars_auto_advance_like_flags(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    first = win.current_item()
    qtbot.keyClick(win.grid, Qt.Key.Key_3)
    assert win.current_item() is first  # off by default
    win.auto_advance_action.setChecked(True)  # the menu's option is the setting
    assert win.settings.auto_advance
    qtbot.keyClick(win.grid, Qt.Key.Key_4)
    assert first.rating == 4 and win.current_item() is win.proxy.item(win.proxy.index(1, 0))
    second = win.current_item()
    qtbot.keyClick(win.grid, Qt.Key.Key_P)  # flags advance too, as before
    assert second.flag == 1 and win.current_item() is win.proxy.item(win.proxy.index(2, 0))
    third = win.current_item()
    qtbot.keyClick(win.grid, Qt.Key.Key_0)  # clearing stars stays, as U does for flags
    qtbot.keyClick(win.grid, Qt.Key.Key_U)
    qtbot.keyClick(win.grid, Qt.Key.Key_6)  # a label stays
    assert win.current_item() is third and third.label == "Red"


def test_auto_advance_lands_on_the_next_photo_when_a_filter_hides_the_marked_one(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    win.settings.auto_advance = True
    win.flag_combo.setCurrentIndex(win.flag_combo.findData("unflagged"))
    order = win.proxy.visible_items()
    win.grid.setFocus()
    win.grid.setCurrentIndex(win.proxy.index(1, 0))
    qtbot.keyClick(win.grid, Qt.Key.Key_X)  # hidden by the filter: the next one, not the one after
    assert order[1].flag == -1
    assert win.current_item() is order[2]


def test_redo_after_undo_and_a_new_mark_ends_redo(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    it = win.current_item()
    qtbot.keyClick(win.grid, Qt.Key.Key_P)
    qtbot.keyClick(win.grid, Qt.Key.Key_5)
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, CTRL)
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, CTRL)
    assert marks(it) == (0, 0, None)
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, CTRL | SHIFT)
    assert marks(it) == (1, 0, None)
    qtbot.keyClick(win.grid, Qt.Key.Key_Y, CTRL)
    assert marks(it) == (1, 5, None)
    qtbot.keyClick(win.grid, Qt.Key.Key_Y, CTRL)  # nothing left to redo
    assert marks(it) == (1, 5, None) and "Nothing to redo" in win.statusBar().currentMessage()
    win.flush_marks()
    m = win.catalog.get_marks([it.path])[it.key]  # redone marks are written like any other
    assert (m.flag, m.rating) == (1, 5)

    qtbot.keyClick(win.grid, Qt.Key.Key_Z, CTRL)
    assert marks(it) == (1, 0, None)
    qtbot.keyClick(win.grid, Qt.Key.Key_8)  # a new mark: the undone 5 stars are gone for good
    assert not win.redo_stack
    qtbot.keyClick(win.grid, Qt.Key.Key_Y, CTRL)
    assert marks(it) == (1, 0, "Green")
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, CTRL)
    assert marks(it) == (1, 0, None)


def test_enter_in_the_stars_box_applies_the_filter_and_opens_no_loupe(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    win.set_rating(3)
    rated = win.current_item()
    win.stars_spin.setFocus()
    qtbot.waitUntil(win.stars_spin.hasFocus, timeout=2000)
    win.stars_spin.lineEdit().selectAll()
    qtbot.keyClicks(win.stars_spin.lineEdit(), "2")
    qtbot.keyClick(win.stars_spin.lineEdit(), Qt.Key.Key_Return)
    assert win.stack.currentIndex() == 0  # no loupe
    assert win.stars_spin.value() == 2
    assert win.proxy.visible_items() == [rated]
    assert win.grid.hasFocus()  # the keys go back to the grid
    win.score_spin.setFocus()
    qtbot.keyClick(win.score_spin.lineEdit(), Qt.Key.Key_Enter)
    assert win.stack.currentIndex() == 0
    # Return in the grid still opens the loupe
    qtbot.keyClick(win.grid, Qt.Key.Key_Return)
    assert win.stack.currentWidget() is win.loupe


def test_colour_label_filter(qtbot, win, shoot):
    open_unscored(qtbot, win, shoot)
    vis = win.proxy.visible_items()
    for row, key in ((0, Qt.Key.Key_6), (1, Qt.Key.Key_9), (2, Qt.Key.Key_6)):
        win.grid.setCurrentIndex(win.proxy.index(row, 0))
        qtbot.keyClick(win.grid, key)
    combo = win.label_combo
    combo.setCurrentIndex(combo.findData("Red"))
    assert win.proxy.visible_items() == [vis[0], vis[2]]
    combo.setCurrentIndex(combo.findData("Blue"))
    assert win.proxy.visible_items() == [vis[1]]
    combo.setCurrentIndex(combo.findData("none"))
    assert win.proxy.visible_items() == vis[3:]
    # a photo whose label is taken off leaves the "Blue" view at once
    combo.setCurrentIndex(combo.findData("Blue"))
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    qtbot.keyClick(win.grid, Qt.Key.Key_9)
    assert win.proxy.visible_items() == []
    combo.setCurrentIndex(combo.findData("all"))
    assert len(win.proxy.visible_items()) == len(vis)
    # chosen from the keyboard: the keys go back to the grid (P flags, it picks no "Purple")
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus, timeout=2000)
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentData() == "Red" and win.grid.hasFocus()
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    qtbot.keyClick(win.grid, Qt.Key.Key_P)
    assert combo.currentData() == "Red" and vis[0].flag == 1
    combo.setCurrentIndex(combo.findData("all"))
    assert [combo.itemText(i) for i in range(combo.count())][:5] == ["Any", "Red", "Yellow", "Green", "Blue"]


# -- pick best of each burst ----------------------------------------------------------------

def _fake_bursts(win):
    """Two bursts of three frames (best first) without grouping them for real."""
    items = sorted(win.model.items, key=lambda it: it.name)
    for g, frames in enumerate((items[0:3], items[3:6])):
        for k, it in enumerate(frames):
            it.group, it.group_size, it.group_kind, it.group_best = g, 3, "burst", k == 0
    return items


def test_pick_best_asks_first_leaves_your_marks_and_undoes_in_one_step(qtbot, win, shoot, monkeypatch):
    from photocull.cull.bursts import best_of_groups_changes

    open_unscored(qtbot, win, shoot)
    items = _fake_bursts(win)
    mine_rated, b1 = items[2], items[3]
    mine_rated.rating = 5  # a frame the user rated: not its burst's best
    b1.flag = -1  # a best frame the user rejected
    yours = {mine_rated.key: (0, 5, None), b1.key: (-1, 0, None)}
    before = {it.key: marks(it) for it in items}
    plan = {it.key: flag for it, flag in best_of_groups_changes(items)}  # the core's rules
    assert plan and not set(plan) & set(yours)

    asked = []

    def answer(button):
        def question(parent, title, text, *a, **k):
            asked.append(text)
            return button
        return question

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer(QMessageBox.StandardButton.Cancel)))
    win.pick_best_of_groups()
    assert len(asked) == 1  # says what it will do, before doing it
    n_picks, n_rejects = sum(f > 0 for f in plan.values()), sum(f < 0 for f in plan.values())
    assert f"{n_picks} pick{'s' * (n_picks != 1)}, {n_rejects} reject{'s' * (n_rejects != 1)}" in asked[0]
    assert "2 photos you marked are left as they are" in asked[0]
    assert {it.key: marks(it) for it in items} == before  # cancelled: nothing changed
    assert not win.undo_stack

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer(QMessageBox.StandardButton.Yes)))
    win.pick_best_of_groups()
    assert {it.key: it.flag for it in items if it.key in plan} == plan
    assert {it.key: marks(it) for it in items if it.key in yours} == yours  # yours, as they were
    assert len(win.undo_stack) == 1
    after = {it.key: marks(it) for it in items}

    win.undo()  # the whole run in one step
    assert {it.key: marks(it) for it in items} == before
    assert "pick best" in win.statusBar().currentMessage()
    win.redo()
    assert {it.key: marks(it) for it in items} == after
    win.flush_marks()
    stored = win.catalog.get_marks([it.path for it in items])
    assert {k: stored[k].flag for k in plan} == plan

    # run again: nothing left to do, no question
    asked.clear()
    win.pick_best_of_groups()
    assert not asked and "nothing to change" in win.status_label.text()
