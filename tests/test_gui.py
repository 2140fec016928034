"""GUI behaviour, offscreen: scoring in the background, sorting, histogram, culling keys, export."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import Qt  # noqa: E402

from conftest import make_photo  # noqa: E402


def open_and_score(qtbot, win, folder, timeout=120_000):
    with qtbot.waitSignal(win.scoringDone, timeout=timeout):
        assert win.open_folder(folder)
    return win


def test_scores_folder_in_background_and_sorts_best_first(qtbot, win, photo_folder):
    open_and_score(qtbot, win, photo_folder)
    items = win.model.items
    assert len(items) == 8
    ok = [it for it in items if it.scored]
    bad = [it for it in items if not it.scored]
    assert len(ok) == 6
    assert {it.name for it in bad} == {"broken.jpg", "empty.jpg"}
    assert all(it.error for it in bad)
    means = [it.mean for it in win.proxy.visible_items() if it.scored]
    assert means == sorted(means, reverse=True)
    # unscored (broken) photos sort last
    assert not win.proxy.visible_items()[-1].scored
    # rank/percentile: best has rank 1
    best = win.proxy.visible_items()[0]
    assert best.rank == 1 and best.percentile == pytest.approx(100 / 6)
    assert "untrained" in win.model_label.text()


def test_sort_by_name_and_back(qtbot, win, photo_folder):
    open_and_score(qtbot, win, photo_folder)
    win.set_sort("name")
    names = [it.name.lower() for it in win.proxy.visible_items()]
    assert names == sorted(names)
    win.set_sort("score")
    assert win.proxy.visible_items()[0].rank == 1


def test_histogram_shows_selected_distribution(qtbot, win, photo_folder):
    open_and_score(qtbot, win, photo_folder)
    for row in (0, 2):
        ix = win.proxy.index(row, 0)
        win.grid.setCurrentIndex(ix)
        it = win.proxy.item(ix)
        # both networks' distributions: aesthetic above, technical below; the overall score in the text
        np.testing.assert_allclose(win.detail.histogram.probs, it.aesthetic)
        np.testing.assert_allclose(win.detail.histogram2.probs, it.probs)
        assert win.detail.histogram2.isVisibleTo(win.detail)
        assert win.detail.histogram.mean == pytest.approx(it.taste_mean, abs=1e-4)
        heights = win.detail.histogram.bar_heights()
        assert len(heights) == 10 and max(heights) == pytest.approx(1.0)
        assert int(np.argmax(heights)) == int(np.argmax(it.aesthetic))
        assert f"{it.mean:.2f}" in win.detail.info.text() and "technical" in win.detail.info.text()
        # the large preview arrives from the loader thread and stays while scores update
        qtbot.waitUntil(lambda: win.detail._pixmap is not None, timeout=10_000)
        win.detail.show_item(it, 6)
        assert win.detail._pixmap is not None


def test_progress_signals_and_gui_thread_never_decodes(qtbot, win, tmp_path, monkeypatch):
    from photocull.media import loaders

    folder = tmp_path / "many"
    for i in range(20):
        make_photo(folder / f"p{i:02d}.jpg", seed=i, size=(160, 120))
    main = threading.get_ident()
    decoded_on_main = []
    real = loaders.open_image

    def spy(path, max_side=None):
        if threading.get_ident() == main:
            decoded_on_main.append(path)
        return real(path, max_side)

    monkeypatch.setattr(loaders, "open_image", spy)
    monkeypatch.setattr("photocull.scoring.open_image", spy)
    win.settings.batch_size = 4
    values = []
    with qtbot.waitSignal(win.scoringDone, timeout=120_000):
        win.open_folder(folder)
        win.worker.yielded.connect(lambda v: values.append(v[1].done if v[0] == "batch" else -1))
    dones = [v for v in values if v >= 0]
    assert len(dones) >= 4 and dones == sorted(dones) and dones[-1] == 20
    assert decoded_on_main == []


def test_cancel_stops_within_one_batch(qtbot, win, tmp_path):
    folder = tmp_path / "cancel"
    for i in range(40):
        make_photo(folder / f"c{i:02d}.jpg", seed=i, size=(160, 120))
    win.settings.batch_size = 4
    win.open_folder(folder)
    w = win.worker
    with qtbot.waitSignal(w.yielded, timeout=60_000, check_params_cb=lambda v: v[0] == "batch"):
        pass
    qtbot.waitUntil(lambda: any(it.scored for it in win.model.items), timeout=10_000)
    with qtbot.waitSignal(w.finished, timeout=60_000) as blocker:  # finished comes whatever happened
        blocker.connect(w.errored)
        win.cancel_scoring()
        shown = sum(1 for it in win.model.items if it.scored)
    assert w.wait(10_000) and not w.is_running()
    qtbot.wait(50)
    assert win.worker is None
    assert "Cancelled" in win.status_label.text()
    # nothing that arrived after Cancel was applied to the grid
    assert sum(1 for it in win.model.items if it.scored) == shown
    # the worker stopped within a batch or so of the click (each batch is stored as it ends)
    stored = len(win.catalog.lookup([it.path for it in win.model.items], w_model_id(win)))
    assert shown <= stored <= shown + 8 < 40


def test_scoring_starts_once_the_first_screen_is_drawn(qtbot, win, tmp_path, monkeypatch):
    """The thumbnails on screen come before the scorer: it decodes no photo until the grid
    has been painted and the image loader has nothing left to decode (reading the catalog,
    which decodes nothing, may come first: a folder scored before is sorted sooner)."""
    from photocull.gui import jobs

    folder = tmp_path / "screen"
    for i in range(30):
        make_photo(folder / f"s{i:02d}.jpg", seed=i, size=(640, 427))
    at_start, decoded = [], []
    win.loader.ready.connect(lambda path, size, image: decoded.append(path),
                             Qt.ConnectionType.DirectConnection)  # in the loader's thread, as it emits
    real_iter_scores = jobs.iter_scores

    def iter_scores(todo, *a, **kw):
        # (the loader may already have been asked for more by then: only what is certain)
        at_start.append((len(todo), win.model.thumbnails_asked, len(decoded) > 0))
        return (yield from real_iter_scores(todo, *a, **kw))

    monkeypatch.setattr(jobs, "iter_scores", iter_scores)
    open_and_score(qtbot, win, folder)
    assert at_start == [(30, True, True)]
    # (the detail panel's preview of the best photo, which the cursor stays on, may still be decoding)
    qtbot.waitUntil(win.screen_settled, timeout=10_000)


def test_image_loader_says_when_it_is_idle(qtbot, tmp_path, monkeypatch):
    from PIL import Image


    from photocull.gui.workers import ImageLoader

    gate = threading.Event()

    def slow_thumbnail(path):
        gate.wait(10)
        return None

    from photocull.media import exif as media_exif
    from photocull.media import loaders

    monkeypatch.setattr(media_exif, "exif_thumbnail", slow_thumbnail)
    monkeypatch.setattr(loaders, "open_image", lambda path, max_side=None: Image.new("RGB", (64, 48)))
    loader = ImageLoader()
    try:
        assert loader.idle()
        with qtbot.waitSignal(loader.ready, timeout=10_000):
            loader.request(str(tmp_path / "a.jpg"), 256)
            assert not loader.idle()  # queued
            qtbot.waitUntil(lambda: not loader._queue, timeout=5_000)
            assert not loader.idle()  # taken off the queue, still being decoded
            gate.set()
        qtbot.waitUntil(loader.idle, timeout=5_000)
    finally:
        gate.set()
        loader.stop()


def test_score_job_waits_for_the_screen_and_passes_it_on(tmp_path, monkeypatch):
    """score_job: answers from the catalog at once, then waits (bounded) for screen_settled
    before it decodes a photo (not at all when the catalog answered for every one), and
    hands the same callable to the scorer to decide on a second model lane."""
    from photocull.gui import jobs
    from photocull.scoring import BatchProgress

    events, seen_kw = [], {}

    class Holder:
        def scorers(self, spec):
            from photocull.model.registry import Scorers

            events.append("model")
            return Scorers(object())

    def fake_cached(todo):
        def scores(paths, loaded, cat, score, **kw):
            seen_kw.update(kw)
            events.append("catalog")
            yield BatchProgress([], 1, 2, 0.0)
            yield from score(todo, loaded, **kw)
        return scores

    def fake_decode(paths, loaded, **kw):
        events.append(f"decode {len(paths)}")
        yield BatchProgress([], 2, 2, 0.0)
        return 1

    monkeypatch.setattr(jobs, "iter_scores", fake_decode)
    monkeypatch.setattr(jobs, "iter_scores_cached", fake_cached([tmp_path / "b.jpg"]))
    answers = iter([False, False, False, True])

    def settled():
        events.append("asked")
        return next(answers, True)

    two = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    got = list(jobs.score_job(two, Holder(), "default", tmp_path / "c.db", screen_settled=settled))
    assert events == ["model", "catalog"] + ["asked"] * 4 + ["decode 1"]
    assert [g[0] for g in got] == ["model", "batch", "batch"]
    assert seen_kw["widen"] is settled and seen_kw["nice"] > 0
    # every photo answered by the catalog: the screen is not waited for
    monkeypatch.setattr(jobs, "iter_scores_cached", fake_cached([]))
    events.clear()
    list(jobs.score_job(two, Holder(), "default", tmp_path / "c.db", screen_settled=settled))
    assert events == ["model", "catalog"]
    # a screen that never settles costs at most SCREEN_WAIT_S
    monkeypatch.setattr(jobs, "iter_scores_cached", fake_cached([tmp_path / "b.jpg"]))
    monkeypatch.setattr(jobs, "SCREEN_WAIT_S", 0.2)
    events.clear()
    list(jobs.score_job(two, Holder(), "default", tmp_path / "c.db", screen_settled=lambda: False))
    assert events == ["model", "catalog", "decode 1"]


def w_model_id(win):
    return win.loaded_model.model_id


def test_reopen_uses_catalog_without_model(qtbot, win, photo_folder, monkeypatch):
    open_and_score(qtbot, win, photo_folder)
    before = {it.name: it.mean for it in win.model.items if it.scored}

    def boom(*a, **k):
        raise AssertionError("model called for a cached photo")

    monkeypatch.setattr("photocull.model.runtime.make_runner", boom)
    open_and_score(qtbot, win, photo_folder)
    after = {it.name: it.mean for it in win.model.items if it.scored}
    assert after == pytest.approx(before)


def test_bad_folder_gives_message_not_crash(qtbot, win, tmp_path):
    assert not win.open_folder(tmp_path / "does-not-exist")
    assert "Cannot open" in win.status_label.text()
    f = tmp_path / "file.jpg"
    f.write_bytes(b"x")
    assert not win.open_folder(f)


def test_keyboard_flags_stars_labels_and_undo(qtbot, win, photo_folder):
    open_and_score(qtbot, win, photo_folder)
    win.grid.setFocus()
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    it = win.current_item()
    qtbot.keyClick(win.grid, Qt.Key.Key_P)
    assert it.flag == 1
    qtbot.keyClick(win.grid, Qt.Key.Key_4)
    assert it.rating == 4
    qtbot.keyClick(win.grid, Qt.Key.Key_6)
    assert it.label == "Red"
    qtbot.keyClick(win.grid, Qt.Key.Key_X)
    assert it.flag == -1
    # stored in the catalog (by the marks writer thread, in order)
    win.flush_marks()
    m = win.catalog.get_marks([it.path])[it.key]
    assert (m.flag, m.rating, m.label) == (-1, 4, "Red")
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert it.flag == 1
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(win.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (it.flag, it.rating, it.label) == (0, 0, None)
    qtbot.keyClick(win.grid, Qt.Key.Key_U)
    assert it.flag == 0


def test_filters(qtbot, win, photo_folder):
    open_and_score(qtbot, win, photo_folder)
    vis = win.proxy.visible_items()
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    win.set_flag(1)
    win.grid.setCurrentIndex(win.proxy.index(1, 0))
    win.set_flag(-1)
    win.set_rating(3)
    assert win.shown_label.text() == ""  # no filter on
    win.flag_combo.setCurrentIndex(win.flag_combo.findData("picks"))
    assert [it.name for it in win.proxy.visible_items()] == [vis[0].name]
    assert win.shown_label.text() == f"1 of {len(vis)} shown (filtered)"
    win.flag_combo.setCurrentIndex(win.flag_combo.findData("rejects"))
    assert [it.name for it in win.proxy.visible_items()] == [vis[1].name]
    win.flag_combo.setCurrentIndex(win.flag_combo.findData("unflagged"))
    assert len(win.proxy.visible_items()) == len(vis) - 2
    win.flag_combo.setCurrentIndex(win.flag_combo.findData("all"))
    win.stars_spin.setValue(3)
    assert [it.name for it in win.proxy.visible_items()] == [vis[1].name]
    win.stars_spin.setValue(5)  # nothing left: the grid is blank, the status bar says why
    assert not win.proxy.visible_items() and win.shown_label.text() == f"No photo of {len(vis)} matches the filters"
    win.stars_spin.setValue(0)
    assert win.shown_label.text() == ""
    cut = vis[2].mean
    win.score_spin.setValue(cut)
    assert all(it.mean >= cut for it in win.proxy.visible_items())
    assert len(win.proxy.visible_items()) >= 3


def test_loupe_and_compare(qtbot, win, photo_folder):
    open_and_score(qtbot, win, photo_folder)
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    qtbot.keyClick(win.grid, Qt.Key.Key_Space)
    assert win.stack.currentWidget() is win.loupe
    qtbot.waitUntil(lambda: win.loupe.pane.pixmap is not None, timeout=10_000)
    qtbot.keyClick(win.loupe, Qt.Key.Key_Z)
    assert win.loupe.pane.zoom_100
    qtbot.keyClick(win.loupe, Qt.Key.Key_Escape)
    assert win.stack.currentIndex() == 0
    sel = win.grid.selectionModel()
    from PySide6.QtCore import QItemSelectionModel

    for r in range(3):
        sel.select(win.proxy.index(r, 0), QItemSelectionModel.SelectionFlag.Select)
    qtbot.keyClick(win.grid, Qt.Key.Key_C)
    assert win.stack.currentWidget() is win.compare
    assert len(win.compare.panes) == 3
    win.compare.toggle_zoom()
    from PySide6.QtCore import QPointF

    win.compare.panes[0].panned.emit(QPointF(0.2, 0.7))
    assert all(p.zoom_100 for p in win.compare.panes)
    assert all(abs(p.centre.x() - 0.2) < 1e-6 for p in win.compare.panes[1:])


def test_export_dialog_top_n(qtbot, win, photo_folder, tmp_path):
    from photocull.gui.dialogs import ExportDialog

    open_and_score(qtbot, win, photo_folder)
    dest = tmp_path / "keepers"
    dlg = ExportDialog(win)
    qtbot.addWidget(dlg)
    dlg.set_mode("top")
    dlg.top_n.setValue(2)
    dlg.dest.setText(str(dest))
    best2 = {it.name for it in win.proxy.visible_items()[:2]}
    with qtbot.waitSignal(dlg.finished, timeout=30_000):
        dlg.start_export()
    exported = {p.name for p in dest.iterdir() if p.suffix != ".csv"}
    assert exported == best2
    assert any(p.suffix == ".csv" for p in dest.iterdir())
    # sources untouched
    assert all((photo_folder / n).exists() for n in best2)


def _burst_folder(tmp_path):
    """Three frames of one scene 0.3 s apart (small shifts) and two other scenes."""
    from datetime import datetime, timedelta

    from PIL import Image
    from skimage import data

    d = tmp_path / "bursts"
    d.mkdir()
    t0 = datetime(2024, 5, 1, 12, 0, 0)

    def save(im, name, when):
        exif = Image.Exif()
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
        sub[0x9291] = f"{when.microsecond // 10000:02d}"
        im.save(d / name, quality=90, exif=exif.tobytes())

    astro = Image.fromarray(data.astronaut())
    for k in range(3):
        frame = astro.transform(astro.size, Image.Transform.AFFINE, (1, 0, 3 * k, 0, 1, 2 * k))
        save(frame, f"burst{k}.jpg", t0 + timedelta(milliseconds=300 * k))
    save(Image.fromarray(data.coffee()), "coffee.jpg", t0 + timedelta(minutes=3))
    save(Image.fromarray(data.chelsea()), "cat.jpg", t0 + timedelta(minutes=6))
    return d


def test_bursts_collapse_expand_and_pick_best(qtbot, win, tmp_path, monkeypatch):
    d = _burst_folder(tmp_path)
    with qtbot.waitSignal(win.groupsDone, timeout=180_000):
        open_and_score(qtbot, win, d)
    burst = [it for it in win.model.items if it.name.startswith("burst")]
    assert len({it.group for it in burst}) == 1 and burst[0].group is not None
    assert all(it.group is None for it in win.model.items if not it.name.startswith("burst"))
    visible = win.proxy.visible_items()
    assert len(visible) == 3  # the burst shows as its best frame
    best = next(it for it in burst if it.group_best)
    assert best in visible and best.mean == max(it.mean for it in burst)
    # G expands the group under the cursor
    win.grid.setCurrentIndex(win.proxy.index(visible.index(best), 0))
    win.toggle_group()
    assert len(win.proxy.visible_items()) == 5
    at = sorted(win.proxy.visible_items().index(it) for it in burst)  # side by side, the best first
    assert at == list(range(at[0], at[0] + len(burst))) and win.proxy.visible_items()[at[0]] is best
    # pick the best, reject the rest: says what it will do and asks; a frame you rated
    # stays as it is; one undo step
    from PySide6.QtWidgets import QMessageBox

    from photocull.cull.bursts import best_of_groups_changes

    yours = next(it for it in burst if it is not best)
    win.grid.setCurrentIndex(win.proxy.index(win.proxy.visible_items().index(yours), 0))
    win.set_rating(5)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, text, *a, **k: asked.append(text) or QMessageBox.StandardButton.Yes))
    plan = {it.key: flag for it, flag in best_of_groups_changes(win.model.items)}  # the core's rules
    assert plan and yours.key not in plan
    win.pick_best_of_groups()
    assert len(asked) == 1 and "1 photo you marked is left as it is" in asked[0]
    assert {it.key: it.flag for it in burst if it.key in plan} == plan
    assert (yours.flag, yours.rating) == (0, 5)
    assert all(it.flag == 0 for it in win.model.items if not it.name.startswith("burst"))
    win.undo()
    assert all(it.flag == 0 for it in burst) and yours.rating == 5
    win.redo()
    assert {it.key: it.flag for it in burst if it.key in plan} == plan and yours.flag == 0


# -- GeneratorWorker: superqt's signal contract -----------------------------------------------

def _count(n, cancelled=lambda: False, fail=None, closed=None):
    """Yields 0..n-1 and returns "done"; raises ``fail`` after yielding 1; notes its close."""
    try:
        for i in range(n):
            if fail is not None and i == 2:
                raise fail
            yield i
        return "done"
    finally:
        if closed is not None:
            closed.append(True)


def _forever(cancelled=lambda: False):
    """Yields until asked to stop (the worker stops it at a yield; it never looks itself)."""
    import time

    i = 0
    while True:
        yield i
        i += 1
        time.sleep(0.005)


def _recorder(w):
    """Records a worker's signals in slots of an object living in the GUI thread (queued
    when the worker runs in its own thread), with the thread each slot ran in."""
    from PySide6.QtCore import QObject, Slot

    class Recorder(QObject):
        def __init__(self):
            super().__init__()
            self.events, self.threads = [], set()

        def _note(self, *ev):
            self.events.append(ev)
            self.threads.add(threading.get_ident())

        @Slot()
        def started(self):
            self._note("started")

        @Slot(object)
        def yielded(self, v):
            self._note("yielded", v)

        @Slot(object)
        def returned(self, v):
            self._note("returned", v)

        @Slot(object)
        def errored(self, exc):
            self._note("errored", exc)

        @Slot()
        def aborted(self):
            self._note("aborted")

        @Slot()
        def finished(self):
            self._note("finished")

    rec = Recorder()
    for name in ("started", "yielded", "returned", "errored", "aborted", "finished"):
        getattr(w, name).connect(getattr(rec, name))
    return rec


def _kinds(rec):
    return [e[0] for e in rec.events]


def test_worker_without_a_thread_success(qtbot):
    from photocull.gui.workers import GeneratorWorker

    closed = []
    w = GeneratorWorker(_count, 3, closed=closed)
    rec = _recorder(w)
    w.run()  # drives the generator here, in this thread: the signals arrive at once
    assert rec.events == [("started",), ("yielded", 0), ("yielded", 1), ("yielded", 2),
                          ("returned", "done"), ("finished",)]
    assert closed == [True]
    assert GeneratorWorker(_count, 2).work() == "done"  # or just its result


def test_worker_without_a_thread_error(qtbot):
    from photocull.gui.workers import GeneratorWorker, error_text

    boom = ValueError("boom")
    w = GeneratorWorker(_count, 5, fail=boom)
    rec = _recorder(w)
    w.run()
    assert rec.events == [("started",), ("yielded", 0), ("yielded", 1), ("errored", boom), ("finished",)]
    assert rec.events[3][1] is boom and str(rec.events[3][1]) == "boom"  # the exception object itself
    assert error_text(boom) == "ValueError: boom"
    with pytest.raises(ValueError, match="boom"):
        GeneratorWorker(_count, 5, fail=ValueError("boom")).work()


def test_worker_without_a_thread_cancel(qtbot):
    from photocull.gui.workers import GeneratorWorker

    closed = []
    w = GeneratorWorker(_count, 10, closed=closed)
    rec = _recorder(w)
    w.yielded.connect(lambda v: w.cancel() if v == 1 else None)  # no thread: runs right here
    w.run()
    assert rec.events == [("started",), ("yielded", 0), ("yielded", 1), ("aborted",), ("finished",)]
    assert closed == [True]  # stopped at its yield: its finally ran
    assert w.cancelled()


def test_worker_runs_a_plain_function(qtbot):
    from photocull.gui.workers import GeneratorWorker

    def job(x, cancelled=lambda: False):
        if x < 0:
            raise OSError("negative")
        return x * 2

    w = GeneratorWorker(job, 21)
    rec = _recorder(w)
    w.run()
    assert rec.events == [("started",), ("returned", 42), ("finished",)]
    w = GeneratorWorker(job, -1)
    rec = _recorder(w)
    w.run()
    assert _kinds(rec) == ["started", "errored", "finished"] and str(rec.events[1][1]) == "negative"


def test_worker_in_its_thread_success(qtbot):
    from photocull.gui.workers import GeneratorWorker

    w = GeneratorWorker(_count, 3)
    rec = _recorder(w)
    with qtbot.waitSignal(w.finished, timeout=10_000) as blocker:
        blocker.connect(w.errored)
        w.start()
    qtbot.waitUntil(lambda: _kinds(rec)[-1:] == ["finished"], timeout=10_000)  # queued to this thread
    assert w.wait(10_000) and not w.is_running()
    qtbot.wait(20)
    assert rec.events == [("started",), ("yielded", 0), ("yielded", 1), ("yielded", 2),
                          ("returned", "done"), ("finished",)]
    assert rec.threads == {threading.get_ident()}  # every slot ran in the GUI thread


def test_worker_in_its_thread_error(qtbot):
    from photocull.gui.workers import GeneratorWorker

    boom = RuntimeError("no disk")
    w = GeneratorWorker(_count, 5, fail=boom)
    rec = _recorder(w)
    with qtbot.waitSignal(w.finished, timeout=10_000) as blocker:
        blocker.connect(w.errored)
        w.start()
    qtbot.waitUntil(lambda: _kinds(rec)[-1:] == ["finished"], timeout=10_000)
    assert w.wait(10_000)
    qtbot.wait(20)
    assert _kinds(rec) == ["started", "yielded", "yielded", "errored", "finished"]
    assert rec.events[3][1] is boom
    assert rec.threads == {threading.get_ident()}


def test_worker_in_its_thread_cancel(qtbot):
    from photocull.gui.workers import GeneratorWorker

    w = GeneratorWorker(_forever)
    rec = _recorder(w)
    w.start()
    qtbot.waitUntil(lambda: "yielded" in _kinds(rec), timeout=10_000)
    w.cancel()
    qtbot.waitUntil(lambda: _kinds(rec)[-1:] == ["finished"], timeout=10_000)
    assert w.wait(10_000) and not w.is_running()
    qtbot.wait(20)
    kinds = _kinds(rec)
    assert kinds[0] == "started" and kinds[-2:] == ["aborted", "finished"]
    assert set(kinds[1:-2]) == {"yielded"} and kinds.count("finished") == 1
    assert rec.threads == {threading.get_ident()}


# -- how the window and the dialogs take a failed or cancelled job ----------------------------

def test_scoring_failure_is_told_once_and_resets_the_ui(qtbot, win, photo_folder, monkeypatch):
    def broken(paths, holder, spec, catalog_path, cancelled=lambda: False, **kw):
        yield ("model", holder.scorers(spec))
        raise RuntimeError("the model fell over")

    monkeypatch.setattr("photocull.gui.mainwindow.score_job", broken)
    done = []
    win.scoringDone.connect(lambda: done.append(1))
    with qtbot.waitSignal(win.scoringDone, timeout=60_000):
        assert win.open_folder(photo_folder)
    qtbot.wait(50)
    assert done == [1]
    assert win.worker is None
    assert win.status_label.text() == "Scoring failed: RuntimeError: the model fell over"
    assert not win.progress.isVisible() and not win.cancel_button.isVisible()
    assert win.last_warning is not None and win.last_warning.text() == "Scoring failed:\nRuntimeError: the model fell over"
    win.last_warning.close()


def test_export_failure_and_cancel(qtbot, win, photo_folder, tmp_path, monkeypatch):
    import time

    from PySide6.QtWidgets import QDialog

    from photocull.gui.dialogs import ExportDialog

    open_and_score(qtbot, win, photo_folder)

    def full(chosen, dest, move, catalog_path, source=None, cancelled=lambda: False):
        raise OSError("disk full")

    monkeypatch.setattr("photocull.gui.dialogs._export_job", full)
    dlg = ExportDialog(win)
    qtbot.addWidget(dlg)
    dlg.set_mode("top")
    dlg.dest.setText(str(tmp_path / "keepers"))
    dlg.start_export()
    assert not dlg.buttons.isEnabled()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    assert dlg.summary.text() == "Export failed: OSError: disk full"
    assert dlg.buttons.isEnabled() and dlg.report is None and dlg.result() == 0

    def slow(chosen, dest, move, catalog_path, source=None, cancelled=lambda: False):
        while not cancelled():
            time.sleep(0.005)
        return "half an export"

    monkeypatch.setattr("photocull.gui.dialogs._export_job", slow)
    with qtbot.waitSignal(dlg.rejected, timeout=10_000):
        dlg.start_export()
        dlg._cancel()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10_000)
    assert dlg.result() == QDialog.DialogCode.Rejected and dlg.report is None


def test_marks_are_written_off_the_gui_thread_in_order(qtbot, win, photo_folder, monkeypatch):
    """Sidecar and catalog writes run in the marks writer thread (a big sidecar or a slow
    disk never stalls the keys), one after another in the order the keys were pressed;
    a sidecar problem comes back to the status bar."""
    import threading

    from photocull.gui import mainwindow

    open_and_score(qtbot, win, photo_folder)
    win.grid.setFocus()
    win.grid.setCurrentIndex(win.proxy.index(0, 0))
    it = win.current_item()
    main, seen, gate = threading.get_ident(), [], threading.Event()
    real = mainwindow.save_marks

    def slow_save(cat, items, **kw):
        gate.wait(10)  # the first write is held: the keys must not wait for it
        seen.append((threading.get_ident(), [m.rating for _, m, _, _ in items]))
        return real(cat, items, **kw)

    monkeypatch.setattr(mainwindow, "save_marks", slow_save)
    for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3):
        qtbot.keyClick(win.grid, key)
    assert it.rating == 3 and seen == []  # the window moved on; nothing written yet
    gate.set()
    win.flush_marks()
    assert [r for _, (r,) in seen] == [1, 2, 3] and all(t != main for t, _ in seen)
    assert win.catalog.get_marks([it.path])[it.key].rating == 3

    def failing_save(cat, items, **kw):
        return [(items[0][0], "disk full")]

    monkeypatch.setattr(mainwindow, "save_marks", failing_save)
    with qtbot.waitSignal(win.marksProblem, timeout=10_000):
        qtbot.keyClick(win.grid, Qt.Key.Key_5)
    qtbot.waitUntil(lambda: "disk full" in win.status_label.text(), timeout=5_000)


def test_unusable_catalog_is_a_message_not_a_traceback(qtbot, tmp_path, monkeypatch):
    from photocull.config import AppPaths
    from photocull.gui import app

    paths = AppPaths.default(tmp_path / "home").ensure()
    paths.catalog_path.mkdir(parents=True)  # a folder where the catalog file should be
    shown = []
    monkeypatch.setattr("PySide6.QtWidgets.QMessageBox.critical", lambda parent, title, text: shown.append(text))
    assert app.run_gui(None, paths, quit_after_ms=0) == 2
    assert shown and "is a folder, not a catalog file" in shown[0]


def test_export_dialog_one_per_burst(qtbot, win, tmp_path):
    """The export dialog's "one per burst", as `photocull export --one-per-burst`: of the
    three burst frames only the group's best goes; photos alone all go."""
    from photocull.gui.dialogs import ExportDialog

    d = _burst_folder(tmp_path)
    with qtbot.waitSignal(win.groupsDone, timeout=180_000):
        open_and_score(qtbot, win, d)
    dlg = ExportDialog(win)
    qtbot.addWidget(dlg)
    dlg.set_mode("percent")
    dlg.top_pct.setValue(100)
    assert {c.path.name for c in dlg.chosen()} == {"burst0.jpg", "burst1.jpg", "burst2.jpg", "coffee.jpg", "cat.jpg"}
    dlg.one_per_burst.setChecked(True)
    best = next(it.name for it in win.model.items if it.group is not None and it.group_best)
    assert {c.path.name for c in dlg.chosen()} == {best, "coffee.jpg", "cat.jpg"}
    assert "3 photos" in dlg.summary.text()
