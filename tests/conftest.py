"""Shared fixtures.  Qt runs offscreen; every test gets its own photocull home."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PHOTOCULL_DEVICE", "cpu")
# exporting a model for ONNX Runtime takes ~10 s per model: tests run PyTorch unless they
# ask for the ONNX path by name (tests/test_accel.py)
os.environ.setdefault("PHOTOCULL_BACKEND", "torch")

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")


@pytest.fixture(autouse=True)
def _photocull_home(tmp_path, monkeypatch):
    home = tmp_path / "photocull-home"
    monkeypatch.setenv("PHOTOCULL_HOME", str(home))
    return home


@pytest.fixture
def app_paths(_photocull_home):
    from photocull.config import AppPaths

    return AppPaths.default(_photocull_home).ensure()


def make_photo(path: Path, seed: int = 0, size=(320, 240), quality: int = 90) -> Path:
    """A smooth random 'photo' (gradients + blobs), so that JPEGs are realistic."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b, ph = rng.uniform(2, 9, 3)
        img[..., c] = 0.5 + 0.25 * np.sin(a * x * 6.28 + ph) * np.cos(b * y * 6.28)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        mask = ((x - cx) ** 2 + (y - cy) ** 2) < r * r
        img[mask] = rng.uniform(0, 1, 3)
    arr = (img.clip(0, 1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, quality=quality)
    else:
        im.save(path)
    return path


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Six generated photos in several formats plus two broken files."""
    d = tmp_path / "shoot"
    for i, ext in enumerate([".jpg", ".jpg", ".jpg", ".png", ".tif", ".webp"]):
        make_photo(d / f"IMG_{i:04d}{ext}", seed=i)
    (d / "broken.jpg").write_bytes(b"this is not a jpeg")
    (d / "empty.jpg").write_bytes(b"")
    return d


@pytest.fixture(scope="session")
def tiny_model():
    """The real architecture with an untrained head (fast enough for tests)."""
    from photocull.model.nima import untrained_model

    return untrained_model()


# --- the GUI ---------------------------------------------------------------------------

@pytest.fixture
def win(qtbot, app_paths, tiny_model):
    """A shown main window with the stand-in model; no worker thread may outlive it."""
    from photocull.gui.mainwindow import MainWindow

    w = MainWindow(app_paths)
    w.holder.put("default", tiny_model)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    yield w
    w.shutdown()
    assert not any(x.is_running() for x in w._old_workers), "a QThread was left running"
    assert w.worker is None or not w.worker.is_running()


@pytest.fixture
def grid(qtbot):
    """The grid model and proxy over 50 photos that need not exist on disk."""
    from photocull.gui.photomodel import PhotoItem, PhotoListModel, PhotoProxy

    m = PhotoListModel()
    p = PhotoProxy()
    p.setSourceModel(m)
    m.set_items([PhotoItem(Path(f"/shoot/IMG_{i:04d}.JPG")) for i in range(50)])
    return m, p
