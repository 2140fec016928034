"""A 10,000-photo folder: it scans, shows thumbnails and scores with no error (CLI and GUI).

A tiny conv net stands in for the model (the test is about the file pipeline, the
catalog and the GUI at this size, not about the network's speed)."""
from __future__ import annotations

import csv
import io
import time

import pytest

from conftest import make_photo
from reliability_helpers import fast_model
from photocull.cli import main
from photocull.media.listing import list_images

N = 10_000


@pytest.fixture(scope="session")
def ten_thousand(tmp_path_factory):
    """10,000 small JPEGs (64x48), made once per session from 50 distinct pictures."""
    d = tmp_path_factory.mktemp("load") / "big-shoot"
    blobs = [make_photo(d / f"seed_{i}.jpg", seed=i, size=(64, 48)).read_bytes() for i in range(50)]
    for p in d.glob("seed_*.jpg"):
        p.unlink()
    for i in range(N):
        with open(d / f"IMG_{i:05d}.jpg", "wb") as f:
            f.write(blobs[i % 50])
    return d


@pytest.mark.slow
def test_cli_scores_ten_thousand(ten_thousand, capsys, monkeypatch):
    m = fast_model()
    monkeypatch.setattr("photocull.model.registry.resolve_lazy", lambda spec, paths: m)
    t0 = time.perf_counter()
    assert len(list_images(ten_thousand)) == N
    rc = main(["score", str(ten_thousand), "--format", "csv", "-q", "--batch-size", "64"])
    out, err = capsys.readouterr()
    elapsed = time.perf_counter() - t0
    assert rc == 0, err
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) == N and not any(r[header.index("error")] for r in rows)
    print(f"\nCLI: {N} photos scored in {elapsed:.1f} s")
    # a second run answers from the catalog
    t0 = time.perf_counter()
    assert main(["score", str(ten_thousand), "--format", "csv", "-q"]) == 0
    capsys.readouterr()
    print(f"CLI, from the catalog: {time.perf_counter() - t0:.1f} s")


@pytest.mark.slow
def test_gui_opens_scores_and_shows_ten_thousand(qtbot, app_paths, ten_thousand):
    pytest.importorskip("PySide6")
    from photocull.gui.mainwindow import MainWindow

    w = MainWindow(app_paths)
    w.holder.put("default", fast_model())
    w.holder.put("aesthetic", fast_model(32))  # (stand-ins for both networks: this is about files)
    w.settings.batch_size = 64
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    try:
        t0 = time.perf_counter()
        with qtbot.waitSignal(w.scoringDone, timeout=240_000):
            assert w.open_folder(ten_thousand)
        elapsed = time.perf_counter() - t0
        items = w.model.items
        assert len(items) == N
        assert all(it.scored and it.error is None for it in items)
        assert "could not be read" not in w.status_label.text()
        # the grid shows thumbnails for what is on screen
        w.grid.viewport().repaint()
        qtbot.waitUntil(lambda: len(w.model._thumbs) >= 20, timeout=30_000)
        w.grid.scrollToBottom()
        w.grid.viewport().repaint()
        last = w.proxy.visible_items()[-1]
        qtbot.waitUntil(lambda: w.model.thumbnail(last) is not None, timeout=30_000)
        print(f"\nGUI: {N} photos listed, scored and shown in {elapsed:.1f} s")
    finally:
        w.shutdown()
