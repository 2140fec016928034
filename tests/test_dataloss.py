"""Nothing lost: exports killed midway, rejects to the trash, two processes on one catalog,
a corrupt catalog rebuilt with the ratings recovered from the sidecars."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, make_photo
from photocull.cli import main

from photocull.cull.catalog import Catalog, Marks
from photocull.media.fileops import TMP_PREFIX
from photocull.cull.export import Candidate, export
from photocull.cull.marks import load_marks

TESTS = Path(__file__).resolve().parent


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- SIGKILL midway

DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from photocull.cull import export
    from photocull.media import fileops

    real_open = open

    class Slow:
        '''A destination file that writes 64 KiB at a time, slowly: a kill lands mid-file.'''
        def __init__(self, f):
            self.f = f
        def write(self, b):
            for i in range(0, len(b), 1 << 16):
                self.f.write(b[i:i + (1 << 16)])
                self.f.flush()
                time.sleep(0.004)
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *a):
            return self.f.__exit__(*a)

    def slow_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        return Slow(f) if "x" in mode else f

    fileops.open = slow_open
    src, dest, move = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "move"
    files = sorted(p for p in src.iterdir() if p.suffix == ".jpg")
    print("started", flush=True)
    rep = export.export([export.Candidate(p) for p in files], dest, move=move, write_report=False)
    print("done", len(rep.items), flush=True)
""")


@pytest.fixture(scope="module")
def big_sources(tmp_path_factory):
    """30 'photos' of 0.4-1.2 MB (random bytes: export never decodes) and their hashes."""
    base = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(1)
    hashes = {}
    for i in range(30):
        data = rng.bytes(int(rng.integers(400_000, 1_200_000)))
        hashes[f"IMG_{i:04d}.jpg"] = hashlib.sha256(data).hexdigest()
        (base / "master" / f"IMG_{i:04d}.jpg").parent.mkdir(exist_ok=True)
        (base / "master" / f"IMG_{i:04d}.jpg").write_bytes(data)
    return base / "master", hashes


def _fresh_copy(master: Path, where: Path) -> Path:
    where.mkdir(parents=True)
    for p in master.iterdir():
        (where / p.name).write_bytes(p.read_bytes())
    return where


def _check_nothing_lost(src: Path, dest: Path, hashes: dict[str, str], moved: bool) -> dict[str, int]:
    """Every photo is intact at its source or fully verified at the destination (or both);
    nothing half-written sits under a final name."""
    final = {p.name: sha(p) for p in dest.iterdir() if not p.name.startswith(TMP_PREFIX)} if dest.exists() else {}
    partial = [p for p in dest.iterdir() if p.name.startswith(TMP_PREFIX)] if dest.exists() else []
    for name, h in final.items():
        base = re.sub(r"-\d+(\.jpg)$", r"\1", name)  # a second copy gets a suffix, never overwrites
        assert h in (hashes.get(name), hashes.get(base)), f"{name} at the destination is not a complete copy"
    for name, h in hashes.items():
        s = src / name
        if s.exists():
            assert sha(s) == h, f"source {name} was damaged"
        else:
            assert moved, f"source {name} vanished in a copy"
            assert final.get(name) == h, f"{name} is gone from the source and not safe at the destination"
    return {"final": len(final), "partial": len(partial), "sources": sum(1 for n in hashes if (src / n).exists())}


@pytest.mark.parametrize("mode,delay", [("move", 0.6), ("move", 1.6), ("copy", 1.0)])
def test_export_killed_midway_loses_nothing(big_sources, tmp_path, mode, delay):
    master, hashes = big_sources
    src = _fresh_copy(master, tmp_path / "src")
    dest = tmp_path / "dest"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(dest), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the export finished before the kill: slow it down"
    state = _check_nothing_lost(src, dest, hashes, moved=mode == "move")
    assert 0 < state["final"] < len(hashes), state  # really killed midway

    # run it again to the end: everything arrives, still nothing lost
    left = sorted(p for p in src.iterdir())
    rep = export([Candidate(p) for p in left], dest, move=mode == "move", write_report=False)
    assert not rep.errors
    state = _check_nothing_lost(src, dest, hashes, moved=mode == "move")
    arrived = {sha(p) for p in dest.iterdir() if not p.name.startswith(TMP_PREFIX)}
    assert arrived == set(hashes.values())
    if mode == "move":
        assert state["sources"] == 0


@pytest.mark.parametrize("stem", ["L" * 251, "é" * 125 + "L"])  # 255 bytes, one byte or two a character
def test_export_of_a_255_byte_name_that_clashes_is_shortened_then_suffixed(tmp_path, stem):
    src = make_photo(tmp_path / "src" / f"{stem}.jpg", size=(64, 48))
    (tmp_path / "src" / f"{stem}.CR2").write_bytes(b"raw twin")
    assert len(os.fsencode(src.name)) == 255
    dest = tmp_path / "dest"
    export([Candidate(src)], dest)
    rep = export([Candidate(src), Candidate(make_photo(tmp_path / "src" / "ok.jpg", size=(64, 48)))], dest, move=True)
    assert not rep.errors and not src.exists() and (dest / "ok.jpg").exists()
    got = rep.items[0]
    names = [got.destination.name, *(d.name for _, d in got.companions)]
    assert all(len(os.fsencode(n)) <= 255 for n in names)
    # the stem is cut (whole characters) before the suffix; the RAW shares the same new stem
    assert names[0].endswith("-1.jpg") and names[1] == names[0][:-len(".jpg")] + ".CR2"
    assert stem.startswith(names[0][:-len("-1.jpg")])
    assert got.destination.read_bytes() == (dest / src.name).read_bytes()
    assert not [p for p in dest.iterdir() if p.name.startswith(TMP_PREFIX)]


# ----------------------------------------------------------------------------- trash-rejects


@pytest.fixture
def fake_trash(tmp_path, monkeypatch):
    """send2trash moves files into a folder here: these tests never delete anything."""
    import send2trash

    bin_ = tmp_path / "Trash"
    bin_.mkdir()

    def to_bin(path):
        p = Path(path)
        if not os.path.lexists(p):
            raise OSError(2, "No such file", str(p))
        os.rename(p, bin_ / p.name)

    monkeypatch.setattr(send2trash, "send2trash", to_bin)
    return bin_


@pytest.fixture
def culled(tmp_path, capsys):
    d = tmp_path / "shoot"
    for i in range(4):
        make_photo(d / f"IMG_{i}.jpg", seed=i, size=(64, 48))
    (d / "IMG_0.CR2").write_bytes(b"raw twin of IMG_0")
    make_photo(d / "IMG_0.png", seed=9, size=(64, 48))  # same stem, another photo: not a companion
    assert main(["rate", "--reject", str(d / "IMG_0.jpg"), str(d / "IMG_2.jpg")]) == 0
    assert main(["rate", "--pick", str(d / "IMG_1.jpg")]) == 0
    # a reject made by another program: only its sidecar says so
    (d / "IMG_3.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
                                 '22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
                                 'xmp:Rating="-1"/></rdf:RDF></x:xmpmeta>', "utf-8")
    capsys.readouterr()
    return d


def test_trash_rejects_without_yes_only_lists(culled, fake_trash, capsys):
    before = sorted(p.name for p in culled.iterdir())
    assert main(["trash-rejects", str(culled)]) == 0
    out, err = capsys.readouterr()
    assert "would move to the trash" in out and "--yes" in err
    for n in ("IMG_0.jpg", "IMG_2.jpg", "IMG_3.jpg", "IMG_0.CR2", "IMG_0.xmp"):
        assert n in out
    assert "IMG_1.jpg" not in out and "IMG_0.png" not in out
    assert sorted(p.name for p in culled.iterdir()) == before
    assert not any(fake_trash.iterdir())


def test_trash_rejects_yes_moves_rejects_and_companions_to_the_trash(culled, fake_trash, capsys):
    hashes = {p.name: sha(p) for p in culled.iterdir()}
    assert main(["trash-rejects", str(culled), "--yes"]) == 0
    capsys.readouterr()
    trashed = {p.name for p in fake_trash.iterdir()}
    assert {"IMG_0.jpg", "IMG_0.CR2", "IMG_0.xmp", "IMG_2.jpg", "IMG_2.xmp", "IMG_3.jpg", "IMG_3.xmp"} <= trashed
    kept = {p.name for p in culled.iterdir()}
    assert {"IMG_1.jpg", "IMG_1.xmp", "IMG_0.png"} <= kept
    # recoverable: every byte is in the trash or still in the folder
    for name, h in hashes.items():
        p = culled / name if name in kept else fake_trash / name
        assert sha(p) == h


def test_trash_rejects_reports_files_the_trash_refused(culled, monkeypatch, capsys):
    import send2trash

    def no_trash(path):
        raise OSError("no trash can on this volume")

    monkeypatch.setattr(send2trash, "send2trash", no_trash)
    before = sorted(p.name for p in culled.iterdir())
    assert main(["trash-rejects", str(culled), "--yes"]) == 1
    _, err = capsys.readouterr()
    assert "not moved to the trash" in err and "no trash can" in err
    assert sorted(p.name for p in culled.iterdir()) == before  # never falls back to deleting


# ----------------------------------------------------------------------------- catalog

CONCURRENT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from reliability_helpers import fast_model
    from photocull.model import registry as models
    m = fast_model()
    models.load_default_model = lambda: m
    from photocull.cli import main
    folder, who, stars = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    from pathlib import Path
    files = sorted(str(p) for p in Path(folder).glob("*.jpg"))
    mine = files[who::2]
    for round in range(6):
        assert main(["score", folder, "-q", "--format", "csv"] + (["--no-cache"] if round % 2 else [])) == 0
        assert main(["rate", "--stars", stars, *mine]) == 0
    print("ok")
""")


def test_two_processes_scoring_and_rating_the_same_folder(tmp_path):
    d = tmp_path / "shared"
    for i in range(12):
        make_photo(d / f"IMG_{i:02d}.jpg", seed=i, size=(96, 64))
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PHOTOCULL_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(TESTS), str(d), str(who), str(who + 2)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in (0, 1)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert out.strip().endswith("ok")
    con = sqlite3.connect(home / "data" / "catalog.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    files = sorted(d.glob("*.jpg"))
    n_scores = con.execute("SELECT COUNT(DISTINCT path) FROM scores WHERE error IS NULL").fetchone()[0]
    assert n_scores == len(files)  # (each scored by both networks: two rows)
    con.close()
    with Catalog(home / "data" / "catalog.sqlite") as cat:
        marks = load_marks(files, cat)
    for i, f in enumerate(files):
        assert marks[os.path.abspath(f)].rating == (2 if i % 2 == 0 else 3)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zeroed-pages"])
def test_corrupt_catalog_is_rebuilt_with_ratings_from_sidecars(tmp_path, app_paths, capsys, damage):
    d = tmp_path / "rated"
    files = [make_photo(d / f"IMG_{i}.jpg", seed=i, size=(64, 48)) for i in range(4)]
    assert main(["rate", "--stars", "4", str(files[0])]) == 0
    assert main(["rate", "--reject", str(files[1])]) == 0
    assert main(["rate", "--pick", "--label", "Red", str(files[2])]) == 0
    cat_path = app_paths.catalog_path
    from reliability_helpers import damage_catalog

    damage_catalog(cat_path, damage)

    with Catalog(cat_path) as cat:
        assert cat.recovered_from is not None and cat.recovered_from.exists()  # kept aside, not deleted
        marks = load_marks(files, cat)
    assert marks[os.path.abspath(files[0])].rating == 4
    assert marks[os.path.abspath(files[1])].flag == -1
    assert marks[os.path.abspath(files[2])] == Marks(1, 0, "Red")
    assert os.path.abspath(files[3]) not in marks


def test_gui_reopens_a_folder_after_catalog_corruption_with_ratings_back(qtbot, tmp_path, app_paths, capsys):
    pytest.importorskip("PySide6")
    from photocull.gui.mainwindow import MainWindow
    from reliability_helpers import fast_model

    d = tmp_path / "rated"
    files = [make_photo(d / f"IMG_{i}.jpg", seed=i, size=(64, 48)) for i in range(3)]
    assert main(["rate", "--stars", "5", str(files[0])]) == 0
    assert main(["rate", "--reject", str(files[1])]) == 0
    for p in app_paths.data_dir.glob("catalog.sqlite*"):
        p.unlink()
    app_paths.catalog_path.write_bytes(b"this is not an SQLite database" * 100)
    w = MainWindow(app_paths)
    w.holder.put("default", fast_model())
    w.holder.put("aesthetic", fast_model(32))
    qtbot.addWidget(w)
    try:
        with qtbot.waitSignal(w.scoringDone, timeout=60_000):
            assert w.open_folder(d)
        items = {it.path.name: it for it in w.model.items}
        assert items["IMG_0.jpg"].rating == 5
        assert items["IMG_1.jpg"].flag == -1
        assert all(it.scored for it in items.values())  # the rebuilt catalog takes new scores
    finally:
        w.shutdown()
