"""The command line, in-process (``main([...])``) and once as a real console script."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_photo
from photocull.cli import main

CSV_HEADER = ["path", "mean", "std", *[f"p{i}" for i in range(1, 11)], "why", "error",
              "aesthetic", "aesthetic_std", "technical", "technical_std", "faces", "eyes_closed"]
ERROR = CSV_HEADER.index("error")


@pytest.fixture(scope="module")
def shoot(tmp_path_factory):
    """The issue's 'done means' folder: 20 generated photos and 2 broken files.

    Scoring goes through a catalog in a module-wide home, so the 20 photos go through
    the model once for all the tests here (each test still works on its own)."""
    base = tmp_path_factory.mktemp("cli")
    d = base / "shoot"
    for i in range(20):
        make_photo(d / f"IMG_{i:04d}.jpg", seed=100 + i, size=(160, 120))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    (d / "empty.png").write_bytes(b"")
    return d, base / "home"


def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return rc, out, err


def test_score_csv_done_means(shoot, capsys):
    folder, home = shoot
    rc, out, err = run(capsys, "--home", home, "score", folder, "--format", "csv", "-q")
    assert rc == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == CSV_HEADER
    body = rows[1:]
    assert len(body) == 22
    assert all(len(r) == len(CSV_HEADER) for r in body)
    errors = [r for r in body if r[ERROR]]
    assert sorted(Path(r[0]).name for r in errors) == ["broken.jpg", "empty.png"]
    scored = [r for r in body if not r[ERROR]]
    assert len(scored) == 20
    means = [float(r[1]) for r in scored]
    assert means == sorted(means, reverse=True)  # best first
    for r in scored:
        probs = [float(x) for x in r[3:13]]
        assert sum(probs) == pytest.approx(1.0, abs=2e-3)
        assert 1.0 <= float(r[1]) <= 10.0 and float(r[2]) >= 0
    assert "models aesthetic + technical" in err  # says which models scored


def test_score_json(shoot, capsys):
    folder, home = shoot
    rc, out, _ = run(capsys, "--home", home, "score", folder, "--format", "json", "-q")
    assert rc == 0
    doc = json.loads(out)
    assert doc["trained"] is True and doc["model"] == "default" and doc["model_id"]
    photos = doc["photos"]
    ok = [p for p in photos if p["error"] is None]
    bad = [p for p in photos if p["error"]]
    assert len(ok) == 20 and len(bad) == 2
    assert [p["rank"] for p in ok] == list(range(1, 21))
    assert [p["mean"] for p in ok] == sorted((p["mean"] for p in ok), reverse=True)
    assert ok[0]["top"] == "top 5%" and ok[0]["top_percent"] == 5.0  # the best of 20, as the window says it
    assert ok[-1]["top"] == "top 100%" and ok[-1]["top_percent"] == 100.0
    assert "percentile" not in ok[0]
    assert all(len(p["distribution"]) == 10 for p in ok)


def test_score_table_ranks_best_first(shoot, capsys):
    folder, home = shoot
    rc, out, _ = run(capsys, "--home", home, "score", folder, "-q")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["rank", "top", "mean", "A", "T"]  # the overall score, aesthetic, technical
    ranked = [ln for ln in lines[1:] if ln.split()[0].isdigit()]
    assert len(ranked) == 20
    assert [int(ln.split()[0]) for ln in ranked] == list(range(1, 21))
    means = [float(ln.split()[3]) for ln in ranked]
    assert all(a >= b for a, b in zip(means, means[1:]))
    errs = [ln for ln in lines[1:] if "ERROR:" in ln]
    assert len(errs) == 2


def test_score_json_and_table_say_top_x_percent_in_the_windows_words(shoot, capsys):
    """The JSON's and the table's percentile are :func:`photocull.cull.ranking.top_label`,
    what the window's badge shows, for the same photo."""
    from photocull.cull.ranking import top_label

    folder, home = shoot
    _, out, _ = run(capsys, "--home", home, "score", folder, "--format", "json", "-q")
    ok = [p for p in json.loads(out)["photos"] if p["error"] is None]
    n = len(ok)
    by_path = {p["path"]: p for p in ok}
    for rank, p in enumerate(sorted(ok, key=lambda p: (-p["mean"], p["path"])), 1):
        assert (p["rank"], p["top"]) == (rank, top_label(rank, n))
        assert p["top_percent"] == pytest.approx(100.0 * rank / n)
    _, out, _ = run(capsys, "--home", home, "score", folder, "-q")
    rows = [ln for ln in out.splitlines()[1:] if "ERROR:" not in ln]
    assert len(rows) == n
    for ln in rows:
        rank, top, pct, *_ = ln.split()
        path = ln[ln.index(str(folder)):].split("  ")[0].rstrip()  # the path, then the reasons
        assert int(rank) == by_path[path]["rank"] and f"{top} {pct}" == by_path[path]["top"]
    assert [f"{ln.split()[1]} {ln.split()[2]}" for ln in rows[:3]] == ["top 5%", "top 10%", "top 15%"]


def test_score_table_shows_every_reason_whole_after_the_path(shoot, capsys):
    """The table's reasons are the JSON's, whole (no cut at a column width), in a last
    column that starts at the same place on every line; CSV keeps its columns."""
    folder, home = shoot
    _, out, _ = run(capsys, "--home", home, "score", folder, "--format", "json", "-q")
    photos = json.loads(out)["photos"]
    why = {p["path"]: p["why"] for p in photos if p["error"] is None}
    errors = {p["path"]: p["error"] for p in photos if p["error"]}
    assert max(map(len, why.values())) > 28  # the old table cut these
    _, out, _ = run(capsys, "--home", home, "score", folder, "-q")
    header, *lines = out.splitlines()
    col = header.index("why")
    assert header.index("path") < col and header.rstrip().endswith("why")
    assert len(lines) == len(why) + len(errors)
    for ln in lines:
        path = ln[ln.index(str(folder)):col].rstrip()
        assert ln[col - 2:col] == "  " and ln == ln.rstrip()
        if path in why:
            assert ln[col:] == why[path]
        else:
            assert ln[col:] == f"ERROR: {errors[path]}"


def test_score_missing_path_is_an_error_row(shoot, tmp_path, capsys):
    folder, home = shoot
    rc, out, _ = run(capsys, "--home", home, "score", folder / "IMG_0000.jpg", tmp_path / "nope.jpg",
                     tmp_path / "notes.txt", "--format", "csv", "-q")
    assert rc == 0
    rows = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"IMG_0000.jpg", "nope.jpg", "notes.txt"}
    assert rows["IMG_0000.jpg"]["error"] == "" and rows["IMG_0000.jpg"]["mean"]
    assert "not found" in rows["nope.jpg"]["error"]


def test_score_unknown_model_is_a_clear_message(shoot, capsys):
    folder, home = shoot
    with pytest.raises(SystemExit) as ei:
        main(["--home", str(home), "score", str(folder), "--model", "nonexistent"])
    msg = str(ei.value.code)
    assert "nonexistent" in msg and "Traceback" not in msg
    with pytest.raises(SystemExit) as ei:
        main(["--home", str(home), "score", str(folder), "--model", str(folder / "missing.pt")])
    assert "not found" in str(ei.value.code)


def test_score_refuses_batch_size_zero(shoot, capsys):
    folder, home = shoot
    with pytest.raises(SystemExit) as ei:
        main(["--home", str(home), "score", str(folder), "--batch-size", "0"])
    assert ei.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_export_top_3(shoot, tmp_path, capsys):
    folder, home = shoot
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rc, out, _ = run(capsys, "--home", home, "score", folder, "--format", "json", "-q")
    best = [Path(p["path"]).name for p in json.loads(out)["photos"] if p["error"] is None][:3]
    dest = tmp_path / "keepers"
    rc, out, err = run(capsys, "--home", home, "export", folder, dest, "--top", "3", "-q")
    assert rc == 0, err
    copied = sorted(p.name for p in dest.iterdir() if p.suffix == ".jpg")
    assert copied == sorted(best)
    for n in copied:
        assert (dest / n).read_bytes() == before[n]
    assert len(list(dest.glob("photocull-export-*.csv"))) == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # copy, not move
    assert "copied 3 of" in err


def test_export_bad_selection_is_a_clear_error(shoot, tmp_path, capsys, monkeypatch):
    folder, home = shoot
    from photocull.cli import cull

    def no_scoring(*a, **kw):
        raise AssertionError("scored before checking the options")

    monkeypatch.setattr(cull, "run_scoring", no_scoring)
    for opt in (["--top-percent", "0"], ["--top-percent", "150"], ["--top", "-2"]):
        with pytest.raises(SystemExit) as ei:
            main(["--home", str(home), "export", str(folder), str(tmp_path / "d"), *opt])
        assert "photocull:" in str(ei.value.code) and ("top" in str(ei.value.code)), opt
    assert not (tmp_path / "d").exists()


def test_export_needs_a_selection(shoot, tmp_path, capsys):
    folder, home = shoot
    with pytest.raises(SystemExit) as ei:
        main(["--home", str(home), "export", str(folder), str(tmp_path / "d")])
    assert ei.value.code == 2


def test_export_missing_source(tmp_path, capsys):
    rc, _, err = run(capsys, "export", tmp_path / "nope", tmp_path / "d", "--top", "1")
    assert rc == 2 and "not found" in err


def test_console_script_score_csv(tmp_path):
    d = tmp_path / "few"
    for i in range(2):
        make_photo(d / f"P{i}.jpg", seed=i, size=(96, 64))
    (d / "bad.jpg").write_bytes(b"<html></html>")
    exe = Path(sys.executable).parent / "photocull"
    if not exe.exists():
        exe = REPO / ".venv" / "bin" / "photocull"
    env = {**os.environ, "PHOTOCULL_HOME": str(tmp_path / "home")}
    proc = subprocess.run([str(exe), "score", str(d), "--format", "csv", "-q"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0] == CSV_HEADER and len(rows) == 4
    assert [Path(r[0]).name for r in rows[1:] if r[ERROR]] == ["bad.jpg"]
    assert (tmp_path / "home" / "data" / "catalog.sqlite").exists()


@pytest.mark.slow
def test_demo_builds_a_shoot_and_ranks_it(tmp_path, capsys):
    folder = tmp_path / "demo"
    rc, out, err = run(capsys, "demo", folder)
    assert rc == 0
    files = sorted(folder.glob("*.jpg"))
    assert len(files) >= 20
    ranked = [ln for ln in out.splitlines()[1:] if ln.split() and ln.split()[0].isdigit()]
    assert len(ranked) == len(files)
    means = [float(ln.split()[3]) for ln in ranked]
    assert all(a >= b for a, b in zip(means, means[1:]))
    assert "photocull gui" in err
    # running it again into the same demo folder is fine; into a foreign folder it is refused
    other = tmp_path / "mine"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(SystemExit, match="not a photocull demo folder"):
        main(["demo", str(other)])


def test_untrained_model_is_announced(tmp_path, capsys, monkeypatch):
    """Without a trained head the CLI says plainly that scores mean nothing."""


    make_photo(tmp_path / "one.jpg")
    from photocull.model import spec as modelspec

    monkeypatch.setattr(modelspec, "default_model_path", lambda: tmp_path / "missing.pt")
    assert main(["--home", str(tmp_path / "h"), "score", str(tmp_path / "one.jpg"), "-q", "--format", "json"]) == 0
    cap = capsys.readouterr()
    assert "untrained head, scores are not meaningful" in cap.err
    assert json.loads(cap.out)["trained"] is False


def test_warm_catalog_never_builds_the_network(tmp_path, capsys, monkeypatch):
    """Reopening a scored folder answers from the catalog without building the model."""


    for i in range(3):
        make_photo(tmp_path / "f" / f"w{i}.jpg", seed=i)
    home = str(tmp_path / "h")
    assert main(["--home", home, "score", str(tmp_path / "f"), "-q", "--format", "csv"]) == 0
    first = capsys.readouterr().out

    def boom(*a, **k):
        raise AssertionError("network built for a cached folder")

    from photocull.model import checkpoint

    monkeypatch.setattr(checkpoint, "load_model", boom)
    assert main(["--home", home, "score", str(tmp_path / "f"), "-q", "--format", "csv"]) == 0
    assert capsys.readouterr().out == first
    # a new photo does need it
    make_photo(tmp_path / "f" / "new.jpg", seed=9)
    with pytest.raises(AssertionError, match="network built"):
        main(["--home", home, "score", str(tmp_path / "f"), "-q"])


# --- a RAW+JPEG pair is one photo, as in the window --------------------------------------

@pytest.fixture
def raw_shoot(tmp_path):
    """Three JPEGs, the RAW of the second (a pair), and a lone RAW that cannot be decoded."""
    d = tmp_path / "raw_shoot"
    for i in range(3):
        make_photo(d / f"IMG_{i}.JPG", seed=40 + i, size=(160, 120))
    (d / "IMG_1.CR2").write_bytes(b"raw data of IMG_1" * 50)
    (d / "IMG_9.NEF").write_bytes(b"a lone raw" * 50)
    return d, tmp_path / "home"


def test_score_counts_a_raw_jpeg_pair_as_one_photo(raw_shoot, capsys):
    folder, home = raw_shoot
    _, out, _ = run(capsys, "--home", home, "score", folder, "--format", "json", "-q")
    photos = {Path(p["path"]).name: p for p in json.loads(out)["photos"]}
    assert set(photos) == {"IMG_0.JPG", "IMG_1.JPG", "IMG_2.JPG", "IMG_9.NEF"}  # the pair's RAW is no row
    assert [Path(c).name for c in photos["IMG_1.JPG"]["companions"]] == ["IMG_1.CR2"]
    assert photos["IMG_0.JPG"]["companions"] == [] and photos["IMG_9.NEF"]["error"]  # a lone RAW: its own photo
    ranked = [p for p in photos.values() if p["error"] is None]
    assert sorted(p["rank"] for p in ranked) == [1, 2, 3]
    assert {p["top"] for p in ranked} == {"top 33%", "top 67%", "top 100%"}  # of 3 photos, not 4

    _, out, _ = run(capsys, "--home", home, "score", folder, "-q")
    pair = [ln for ln in out.splitlines() if "IMG_1.JPG" in ln]
    assert len(pair) == 1 and "(+IMG_1.CR2)" in pair[0]
    assert not any("IMG_1.CR2" in ln and "IMG_1.JPG" not in ln for ln in out.splitlines())

    # CSV: the same columns; the RAW travels silently (the same bytes as without it)
    _, with_raw, _ = run(capsys, "--home", home, "score", folder, "--format", "csv", "-q")
    (folder / "IMG_1.CR2").unlink()
    _, without, _ = run(capsys, "--home", home, "score", folder, "--format", "csv", "-q")
    assert with_raw == without
    assert list(csv.reader(io.StringIO(with_raw)))[0] == CSV_HEADER


def test_export_counts_a_raw_jpeg_pair_as_one_photo_and_takes_the_raw_along(raw_shoot, tmp_path, capsys):
    folder, home = raw_shoot
    dest = tmp_path / "keepers"
    rc, out, err = run(capsys, "--home", home, "export", folder, dest, "--top-percent", "100", "-q")
    assert rc == 0, err
    assert "copied 3 of 4 photos" in err  # 3 JPEGs (one with its RAW) and the lone RAW, unscored
    assert sorted(p.name for p in dest.iterdir() if p.suffix != ".csv") == [
        "IMG_0.JPG", "IMG_1.CR2", "IMG_1.JPG", "IMG_2.JPG"]
    assert (dest / "IMG_1.CR2").read_bytes() == (folder / "IMG_1.CR2").read_bytes()
    pair = [ln for ln in out.splitlines() if "IMG_1" in ln]
    assert len(pair) == 1 and "IMG_1.JPG ->" in pair[0] and "(+1 companion)" in pair[0]


# --- the ONNX exporter's chatter stays out of photocull's log ----------------------------

def test_quiet_exporter_logs_drops_the_exporters_info_and_puts_levels_back(caplog):
    import logging

    from photocull.model.onnx_cache import EXPORTER_LOGGERS, quiet_exporter_logs

    noisy = logging.getLogger("onnxscript.optimizer._constant_folding")
    mine = logging.getLogger("photocull.model.onnx_cache")
    before = {n: logging.getLogger(n).level for n in EXPORTER_LOGGERS}
    with caplog.at_level(logging.DEBUG):
        with quiet_exporter_logs():
            noisy.info("folded a constant")
            noisy.debug("looked at a node")
            noisy.warning("something the user may need")
            mine.info("exported ONNX model in 1.0 s")
        noisy.info("after the export")
    got = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert ("onnxscript.optimizer._constant_folding", "WARNING", "something the user may need") in got
    assert ("photocull.model.onnx_cache", "INFO", "exported ONNX model in 1.0 s") in got
    assert not any(m in ("folded a constant", "looked at a node") for _, _, m in got)
    assert {n: logging.getLogger(n).level for n in EXPORTER_LOGGERS} == before
    assert ("onnxscript.optimizer._constant_folding", "INFO", "after the export") in got


def test_an_export_leaves_no_exporter_info_in_photocull_log(tmp_path, capsys, monkeypatch):
    """``photocull prepare`` (a real export of the stand-in model): photocull's own INFO line
    is in photocull.log, none of torch.onnx's / onnxscript's / onnx_ir's INFO or DEBUG."""
    from photocull.model import onnx_cache
    from photocull.model import spec as modelspec

    if not onnx_cache.onnx_available():
        pytest.skip("onnxruntime/onnxscript not installed")
    monkeypatch.setattr(modelspec, "default_model_path", lambda: tmp_path / "missing.pt")  # the stand-in
    home = tmp_path / "home"
    rc, _, err = run(capsys, "--home", home, "prepare", "--batch-size", "2", "-q")
    assert rc == 0, err
    log = (home / "logs" / "photocull.log").read_text(encoding="utf-8").splitlines()
    assert any("INFO photocull.model.onnx_cache: exported ONNX model" in ln for ln in log)
    chatter = [ln for ln in log if ln.split(" ")[2:3] in (["INFO"], ["DEBUG"])
               and ln.split(" ")[3].startswith(onnx_cache.EXPORTER_LOGGERS)]
    assert chatter == []


def test_score_sort_by_face_sharpness(tmp_path, capsys):
    """--sort face-sharpness: the photo whose face is sharpest first, then the softer face, then
    the photos without faces; ranks stay the score's."""
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image, ImageFilter

    d = tmp_path / "faces"
    d.mkdir()
    face = Image.fromarray(skdata.astronaut())
    face.save(d / "a_sharp.jpg", quality=95)
    face.filter(ImageFilter.GaussianBlur(2.5)).save(d / "b_soft.jpg", quality=95)
    make_photo(d / "c_none.jpg", seed=3, size=(512, 512))
    rc, out, err = run(capsys, "--home", tmp_path / "home", "score", d, "--format", "json", "-q",
                       "--sort", "face-sharpness")
    assert rc == 0 and "listed by face sharpness" in err  # the order is not the score's: said so
    photos = json.loads(out)["photos"]
    assert [Path(p["path"]).name for p in photos] == ["a_sharp.jpg", "b_soft.jpg", "c_none.jpg"]
    assert [p["faces"] for p in photos] == [1, 1, 0]
    assert sorted(p["rank"] for p in photos) == [1, 2, 3]
    rc, out, _ = run(capsys, "--home", tmp_path / "home", "score", d, "--format", "json", "-q")
    by_score = [Path(p["path"]).name for p in json.loads(out)["photos"]]
    assert [p["rank"] for p in json.loads(out)["photos"]] == [1, 2, 3] and set(by_score) == {
        "a_sharp.jpg", "b_soft.jpg", "c_none.jpg"}
