"""Bad input on every path: core, ``photocull score`` (in-process) and the GUI (offscreen).

Every hostile file either decodes upright as RGB or comes back with a reason a person
can read; the good files beside it are always scored; nothing crashes.
"""
from __future__ import annotations

import builtins
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_photo, needs_shared_data
from reliability_helpers import (ERROR, EXIF_SAMPLES, OK, ORIENTATION, build_hostile_folder, corpus_files,
                                 fast_model, similarity)
from photocull.cli import main
from photocull.media import loaders
from photocull.media import listing
from photocull.media.loaders import ImageError, open_image
from photocull.media.exif import read_exif
from photocull.media.exif import exif_thumbnail
from photocull.media.listing import list_images

needs_corpus = pytest.mark.skipif(not EXIF_SAMPLES.is_dir(), reason="shared EXIF sample corpus not present")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile") / "shoot"
    return d, build_hostile_folder(d)


@pytest.fixture
def fast(monkeypatch):
    """The CLI's default model is a tiny conv net: these tests are about files, not scores."""
    m = fast_model()
    monkeypatch.setattr("photocull.model.registry.resolve_lazy", lambda spec, paths: m)
    return m


def decode_outcome(p: Path) -> str:
    try:
        im = open_image(p, max_side=448)
    except ImageError as exc:
        assert str(exc).strip(), f"{p.name}: empty reason"
        return ERROR
    assert im.mode == "RGB" and im.width > 0 and im.height > 0
    return OK


def score_json(capsys, *argv) -> tuple[int, dict, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, json.loads(out), err


# ----------------------------------------------------------------------------- core


def test_every_hostile_file_decodes_or_says_why(hostile):
    d, expected = hostile
    listed = list_images(d)
    assert {p.name for p in listed} == set(expected), "the listing lost or invented a file"
    for p in listed:
        assert decode_outcome(p) == expected[p.name], p.name
        read_exif(p)  # never raises
        exif_thumbnail(p)


def test_reasons_are_specific(hostile):
    d, _ = hostile
    why = {}
    for name in ("zero-bytes.jpg", "truncated.jpg", "truncated.png", "truncated.heic", "random-bytes.jpg",
                 "error-page.jpg", "bomb.png", "bomb.jpg", "loop-a.jpg", "dangling.jpg"):
        with pytest.raises(ImageError) as ei:
            open_image(d / name)
        why[name] = str(ei.value).lower()
    assert "empty" in why["zero-bytes.jpg"]
    assert all("truncated" in why[n] or "corrupt" in why[n] for n in ("truncated.jpg", "truncated.png", "truncated.heic"))
    assert all("not an image" in why[n] for n in ("random-bytes.jpg", "error-page.jpg"))
    assert all("decompression bomb" in why[n] for n in ("bomb.png", "bomb.jpg"))
    assert "symbolic links" in why["loop-a.jpg"]
    assert "not found" in why["dangling.jpg"]


@needs_shared_data
@needs_corpus
def test_every_corpus_file_decodes_or_says_why():
    files = corpus_files()
    assert len(files) > 80
    outcomes = {}
    for p in files:
        outcomes[p] = decode_outcome(p)
        read_exif(p)
        exif_thumbnail(p)
    # the camera files (including invalid/, tests/ and corrupted.jpg) all carry a usable picture;
    # READMEs and PROVENANCE.md are refused as unsupported
    assert all(o == OK for p, o in outcomes.items() if loaders.is_supported(p))
    assert all(o == ERROR for p, o in outcomes.items() if not loaders.is_supported(p))


@pytest.mark.parametrize("stage", ["stat", "open"])
def test_permission_denied_is_a_reason(tmp_path, monkeypatch, stage):
    p = make_photo(tmp_path / "locked.jpg", size=(64, 48))
    deny_permission(monkeypatch, {p.name}, stage)
    with pytest.raises(ImageError, match="permission denied"):
        open_image(p)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads chmod-000 files; the path is covered with monkeypatch")
def test_chmod_000_file_is_a_reason(tmp_path):
    p = make_photo(tmp_path / "locked.jpg", size=(64, 48))
    p.chmod(0)
    with pytest.raises(ImageError, match="permission denied"):
        open_image(p)


def deny_permission(monkeypatch, names: set[str], stage: str = "open") -> None:
    """Make reading these files fail as chmod 000 would for a normal user."""
    if stage == "open":
        real_open = builtins.open

        def guarded_open(file, *a, **k):
            if isinstance(file, (str, os.PathLike)) and os.path.basename(os.fspath(file)) in names:
                raise PermissionError(13, "Permission denied", os.fspath(file))
            return real_open(file, *a, **k)

        monkeypatch.setattr(builtins, "open", guarded_open)
    else:
        real_stat = Path.stat

        def guarded_stat(self, *a, **k):
            if self.name in names:
                raise PermissionError(13, "Permission denied", str(self))
            return real_stat(self, *a, **k)

        monkeypatch.setattr(Path, "stat", guarded_stat)


# ----------------------------------------------------------------------------- orientation

_TRANSPOSE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def test_generated_orientations_are_turned_upright(hostile):
    """orientation-N.jpg stores the same pixels with Orientation=N: upright is that transform of them."""
    d, _ = hostile
    stored = open_image(d / "orientation-1.jpg")
    for o, op in _TRANSPOSE.items():
        want = stored if op is None else stored.transpose(op)
        got = open_image(d / f"orientation-{o}.jpg", max_side=448)
        assert got.size == want.size, o
        assert similarity(got, want) > 0.98, o


@needs_shared_data
@pytest.mark.skipif(not ORIENTATION.is_dir(), reason="orientation samples not present")
@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_corpus_orientations_decode_like_the_upright_one(kind):
    ref = open_image(ORIENTATION / f"{kind}_1.jpg", max_side=448)
    for o in range(2, 9):
        p = ORIENTATION / f"{kind}_{o}.jpg"
        got = open_image(p, max_side=448)
        assert similarity(got, ref) > 0.9, f"{p.name} is not upright"
        with Image.open(p) as raw:  # the test means something: ignoring the tag gives another picture
            assert similarity(raw.convert("RGB"), ref) < 0.8


# ----------------------------------------------------------------------------- CLI


def test_cli_scores_good_files_and_gives_a_reason_for_each_bad_one(hostile, capsys, fast):
    d, expected = hostile
    for attempt in ("fresh", "from the catalog"):
        rc, doc, err = score_json(capsys, "score", d, "--format", "json", "-q")
        assert rc == 0, err
        rows = {os.path.basename(r["path"]): r for r in doc["photos"]}
        assert set(rows) == set(expected), attempt
        for name, outcome in expected.items():
            if outcome == OK:
                assert rows[name]["error"] is None and 1 <= rows[name]["mean"] <= 10, (attempt, name)
            else:
                assert rows[name]["error"], (attempt, name)
        assert "Traceback" not in err


def test_cli_prints_names_that_are_not_utf8(hostile, capsysbinary, fast):
    d, _ = hostile
    rc = main(["score", str(d), "-q"])
    out, err = capsysbinary.readouterr()
    assert rc == 0, err
    assert b"caf\xe9-latin1.jpg" in out  # the name's own bytes, as ls shows them
    assert "ünïcödé 😀 写真.jpg".encode() in out


@needs_shared_data
@needs_corpus
def test_cli_scores_the_whole_corpus(capsys, fast):
    files = corpus_files()
    rc, doc, err = score_json(capsys, "score", EXIF_SAMPLES, EXIF_SAMPLES / "PROVENANCE.md", "-r",
                              "--format", "json", "-q")
    assert rc == 0, err
    rows = {r["path"]: r for r in doc["photos"]}
    supported = [p for p in files if loaders.is_supported(p) and "_upstream" not in p.parts]
    for p in supported:
        assert rows[str(p)]["error"] is None, p
    assert "unsupported" in rows[str(EXIF_SAMPLES / "PROVENANCE.md")]["error"]


def test_cli_permission_denied_file_is_reported_others_scored(hostile, capsys, fast, monkeypatch):
    d, expected = hostile
    deny_permission(monkeypatch, {"unreadable.jpg", "good.jpg"})
    rc, doc, err = score_json(capsys, "score", d, "--format", "json", "-q", "--no-cache")
    assert rc == 0, err
    rows = {os.path.basename(r["path"]): r for r in doc["photos"]}
    assert "permission denied" in rows["unreadable.jpg"]["error"]
    assert "permission denied" in rows["good.jpg"]["error"]
    assert rows["cmyk.jpg"]["error"] is None and rows["whole.heic"]["error"] is None


def test_cli_unreadable_folder_is_a_reason(tmp_path, capsys, fast, monkeypatch):
    make_photo(tmp_path / "shoot" / "a.jpg", size=(64, 48))
    monkeypatch.setattr("photocull.media.loaders.os.access", lambda *a, **k: False)
    rc, doc, err = score_json(capsys, "score", tmp_path / "shoot", "--format", "json", "-q")
    assert rc == 0
    assert "cannot read folder" in doc["photos"][0]["error"]


def _vanishing_lister(real):
    """list_images, after which the folder changes under our feet (another program, a card pulled)."""
    def lister(folder, recursive=False):
        out = real(folder, recursive)
        d = Path(folder)
        (d / "gone.jpg").unlink()
        (d / "now-html.jpg").write_bytes(b"<html>oops</html>")
        make_photo(d / "swapped.jpg", seed=99, size=(80, 60))  # replaced by another good photo
        (d / "now-dangling.jpg").unlink()
        os.symlink("nowhere.jpg", d / "now-dangling.jpg")
        return out
    return lister


def _changing_folder(base: Path) -> Path:
    d = base / "changing"
    for i, n in enumerate(["keep-1.jpg", "keep-2.png", "gone.jpg", "now-html.jpg", "swapped.jpg", "now-dangling.jpg"]):
        make_photo(d / n, seed=i, size=(64, 48))
    return d


def _check_changed(rows: dict[str, tuple[float | None, str | None]]) -> None:
    assert set(rows) == {"keep-1.jpg", "keep-2.png", "gone.jpg", "now-html.jpg", "swapped.jpg", "now-dangling.jpg"}
    for n in ("keep-1.jpg", "keep-2.png", "swapped.jpg"):
        assert rows[n][1] is None and rows[n][0] is not None, n
    assert "not found" in rows["gone.jpg"][1]
    assert "not an image" in rows["now-html.jpg"][1]
    assert "not found" in rows["now-dangling.jpg"][1]


def test_cli_files_changing_between_listing_and_scoring(tmp_path, capsys, fast, monkeypatch):
    d = _changing_folder(tmp_path)
    monkeypatch.setattr("photocull.media.listing.list_images", _vanishing_lister(listing.list_images))
    rc, doc, err = score_json(capsys, "score", d, "--format", "json", "-q")
    assert rc == 0, err
    _check_changed({os.path.basename(r["path"]): (r.get("mean"), r["error"]) for r in doc["photos"]})


# ----------------------------------------------------------------------------- untrusted files


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_cli_refuses_a_model_file_carrying_code(tmp_path, capsys, photo_folder):
    import torch

    from photocull.model.spec import CHECKPOINT_FORMAT

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "config": {}, "meta": {}, "state_dict": {},
                "x": _Payload(marker)}, evil)
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is live: it runs when unpickled
    assert marker.exists()
    marker.unlink()
    with pytest.raises(SystemExit) as ei:
        main(["score", str(photo_folder), "--model", str(evil), "-q"])
    msg = str(ei.value)
    assert "evil.pt" in msg and "refused" in msg and "untrusted" in msg
    assert not marker.exists(), "the pickle payload ran"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="&lol6;"/></rdf:RDF></x:xmpmeta>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Label="&xxe;"/></rdf:RDF></x:xmpmeta>
"""


@pytest.fixture
def hostile_sidecars(tmp_path):
    d = tmp_path / "xmp"
    for i in range(3):
        make_photo(d / f"IMG_{i}.jpg", seed=i, size=(64, 48))
    (d / "IMG_0.xmp").write_text(BILLION_LAUGHS, "utf-8")
    (d / "IMG_1.jpg.xmp").write_text(EXTERNAL_ENTITY, "utf-8")
    return d


def test_cli_folder_with_hostile_sidecars_is_scored_and_sidecars_untouched(hostile_sidecars, capsys, fast):
    d = hostile_sidecars
    before = {p.name: p.read_bytes() for p in d.glob("*xmp")}
    rc, doc, err = score_json(capsys, "score", d, "--format", "json", "-q")
    assert rc == 0 and all(r["error"] is None for r in doc["photos"]) and len(doc["photos"]) == 3
    rc = main(["rate", "--stars", "4", *[str(p) for p in sorted(d.glob("*.jpg"))]])
    out, err = capsys.readouterr()
    assert rc == 1  # two sidecars could not be written ...
    assert "refused" in err and "IMG_0" in err and "IMG_1" in err
    assert "IMG_2.jpg: unflagged, 4 stars" in out  # ... the third was
    assert {p.name: p.read_bytes() for p in d.glob("*xmp") if p.name in before} == before


# ----------------------------------------------------------------------------- GUI

@pytest.fixture
def tiny_model():
    """The GUI tests here run conftest's ``win`` with the faster 64 px stand-in model."""
    return fast_model()


def open_and_score(qtbot, win, folder, timeout=120_000):
    with qtbot.waitSignal(win.scoringDone, timeout=timeout):
        assert win.open_folder(folder)
    return {it.path.name: it for it in win.model.items}


def _every_role_renders(win) -> None:
    from PySide6.QtCore import Qt

    m = win.model
    for row in range(m.rowCount()):
        ix = m.index(row)
        for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.DecorationRole,
                     Qt.ItemDataRole.UserRole):
            m.data(ix, role)
    win.grid.viewport().repaint()


def test_gui_scores_good_files_and_gives_a_reason_for_each_bad_one(qtbot, win, hostile):
    d, expected = hostile
    items = open_and_score(qtbot, win, d)
    assert set(items) == set(expected)
    for name, outcome in expected.items():
        it = items[name]
        if outcome == OK:
            assert it.scored and it.error is None, name
        else:
            assert not it.scored and it.error, name
    _every_role_renders(win)
    assert "could not be read" in win.status_label.text()


@needs_shared_data
@needs_corpus
def test_gui_scores_the_whole_corpus(qtbot, win):
    win.settings.recursive = True
    items = open_and_score(qtbot, win, EXIF_SAMPLES)
    supported = [p for p in corpus_files() if loaders.is_supported(p)]
    assert len(items) == len(supported)
    assert all(it.scored for it in win.model.items)
    _every_role_renders(win)


def test_gui_files_changing_between_listing_and_scoring(qtbot, win, tmp_path, monkeypatch):
    d = _changing_folder(tmp_path)
    monkeypatch.setattr("photocull.gui.mainwindow.list_images", _vanishing_lister(listing.list_images))
    items = open_and_score(qtbot, win, d)
    _check_changed({n: (it.mean, it.error) for n, it in items.items()})


def test_gui_permission_denied_file_is_reported_others_scored(qtbot, win, tmp_path, monkeypatch):
    d = tmp_path / "locked"
    for i in range(3):
        make_photo(d / f"IMG_{i}.jpg", seed=i, size=(64, 48))
    deny_permission(monkeypatch, {"IMG_1.jpg"})
    items = open_and_score(qtbot, win, d)
    assert "permission denied" in items["IMG_1.jpg"].error
    assert items["IMG_0.jpg"].scored and items["IMG_2.jpg"].scored


def test_gui_folder_with_hostile_sidecars_opens_and_scores(qtbot, win, hostile_sidecars):
    d = hostile_sidecars
    before = {p.name: p.read_bytes() for p in d.glob("*xmp")}
    items = open_and_score(qtbot, win, d)
    assert all(it.scored for it in items.values()) and len(items) == 3
    assert {p.name: p.read_bytes() for p in d.glob("*xmp") if p.name in before} == before


def _qimage_to_pil(qi) -> Image.Image:
    from PySide6.QtGui import QImage

    qi = qi.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = qi.width(), qi.height(), qi.bytesPerLine()
    a = np.frombuffer(qi.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)[:, : w * 3]
    return Image.fromarray(a.reshape(h, w, 3).copy(), "RGB")


@needs_shared_data
@pytest.mark.skipif(not ORIENTATION.is_dir(), reason="orientation samples not present")
def test_gui_shows_every_orientation_upright(qtbot, win):
    """Both ways a thumbnail reaches the grid: from the scoring worker, and from the image loader."""
    from photocull.gui.workers import ImageLoader

    open_and_score(qtbot, win, ORIENTATION)
    assert len(win.model._packed) == 16  # the scorer's thumbnails, kept packed until painted
    thumbs = {it.name: _qimage_to_pil(win.model.thumbnail(it).toImage()) for it in win.model.items}
    assert len(thumbs) == 16
    loader = ImageLoader()
    got = {}
    loader.ready.connect(lambda path, size, qi: got.__setitem__(Path(path).name, _qimage_to_pil(qi)))
    try:
        for p in sorted(ORIENTATION.glob("*.jpg")):
            loader.request(str(p), 160)
        qtbot.waitUntil(lambda: len(got) == 16, timeout=60_000)
    finally:
        loader.stop()
    for source in (thumbs, got):
        for kind in ("landscape", "portrait"):
            ref = source[f"{kind}_1.jpg"]
            for o in range(2, 9):
                assert similarity(source[f"{kind}_{o}.jpg"], ref) > 0.9, f"{kind}_{o}.jpg shown sideways"


def test_gui_closes_promptly_right_after_scoring(qtbot, app_paths, tmp_path):
    """Closing the window as a job ends used to block for the whole shutdown timeout (a
    queued QThread.quit waited for the GUI thread, itself blocked in wait())."""
    import time

    from photocull.gui.mainwindow import MainWindow

    d = tmp_path / "few"
    for i in range(4):
        make_photo(d / f"IMG_{i}.jpg", seed=i, size=(64, 48))
    w = MainWindow(app_paths)
    w.holder.put("default", fast_model())
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.scoringDone, timeout=60_000):
        w.open_folder(d)
    t0 = time.perf_counter()
    w.shutdown(timeout_ms=30_000)
    assert time.perf_counter() - t0 < 10
    assert not any(x.is_running() for x in w._old_workers)
