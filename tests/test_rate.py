"""Marks from the command line and from other programs' sidecars."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import make_photo
from photocull.cli import main
from photocull.media.sidecar import read_sidecar

LIGHTROOM_XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmp:Rating="{rating}" xmp:Label="{label}" crs:Exposure2012="+0.35"/>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_rate_writes_catalog_and_sidecar(tmp_path, capsys):
    p = make_photo(tmp_path / "IMG_1.jpg")
    assert main(["rate", str(p), "--stars", "4", "--label", "red"]) == 0
    sd = read_sidecar(p)
    assert sd.rating == 4 and sd.label == "Red"
    assert main(["rate", str(p), "--reject"]) == 0
    assert read_sidecar(p).rating == -1
    assert read_sidecar(p).label == "Red"
    assert main(["rate", str(p), "--unflag", "--stars", "2"]) == 0
    assert read_sidecar(p).rating == 2
    assert main(["rate", str(p), "--pick"]) == 0
    sd = read_sidecar(p)
    assert sd.pick == 1 and sd.rating == 2
    out = capsys.readouterr().out
    assert "pick, 2 stars, Red" in out


def test_rate_moves_raw_twin_along(tmp_path):
    p = make_photo(tmp_path / "IMG_2.JPG")
    raw = tmp_path / "IMG_2.CR2"
    raw.write_bytes(b"not really a raw file")
    assert main(["rate", str(p), "--stars", "5", "--label", "green"]) == 0
    # the Adobe sidecar IMG_2.xmp is shared by the pair; both read 5 stars
    assert read_sidecar(p).rating == 5 and read_sidecar(raw).rating == 5


def test_rate_bad_input(tmp_path, capsys):
    p = make_photo(tmp_path / "a.jpg")
    with pytest.raises(SystemExit, match="label"):
        main(["rate", str(p), "--label", "chartreuse"])
    with pytest.raises(SystemExit, match="stars"):
        main(["rate", str(p), "--stars", "7"])
    with pytest.raises(SystemExit, match="say what"):
        main(["rate", str(p)])
    assert main(["rate", str(tmp_path / "missing.jpg"), "--stars", "1"]) == 1
    assert "not found" in capsys.readouterr().err


def test_gui_shows_ratings_from_lightroom_sidecars(qtbot, app_paths, tiny_model, tmp_path):
    pytest.importorskip("PySide6")
    from photocull.gui.mainwindow import MainWindow

    d = tmp_path / "lr"
    make_photo(d / "A.jpg", seed=1)
    make_photo(d / "B.jpg", seed=2)
    make_photo(d / "C.jpg", seed=3)
    (d / "A.xmp").write_text(LIGHTROOM_XMP.format(rating=4, label="Blue"))
    (d / "B.jpg.xmp").write_text(LIGHTROOM_XMP.format(rating=-1, label=""))
    w = MainWindow(app_paths, autoscore=False)
    qtbot.addWidget(w)
    w.open_folder(d)
    by = {it.name: it for it in w.model.items}
    assert (by["A.jpg"].rating, by["A.jpg"].label, by["A.jpg"].flag) == (4, "Blue", 0)
    assert by["B.jpg"].flag == -1
    assert (by["C.jpg"].rating, by["C.jpg"].flag) == (0, 0)
    # a change from the keyboard lands in the existing darktable-style sidecar, keeping crs:*
    w.grid.setCurrentIndex(w.proxy.index([it.name for it in w.proxy.visible_items()].index("B.jpg"), 0))
    w.set_flag(0)
    w.set_rating(3)
    getattr(w, "flush_marks", lambda: None)()  # the window may write marks off its thread
    text = (d / "B.jpg.xmp").read_text()
    assert "Exposure2012" in text and not (d / "B.xmp").exists()
    assert read_sidecar(d / "B.jpg").rating == 3
    w.shutdown()


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exiftool_reads_what_rate_wrote(tmp_path):
    p = make_photo(tmp_path / "E.jpg")
    assert main(["rate", str(p), "--stars", "3", "--label", "yellow"]) == 0
    out = subprocess.run(["exiftool", "-j", "-XMP:Rating", "-XMP:Label", str(tmp_path / "E.xmp")],
                         capture_output=True, text=True, check=True).stdout
    tags = json.loads(out)[0]
    assert tags["Rating"] == 3 and tags["Label"] == "Yellow"
    main(["rate", str(p), "--reject"])
    out = subprocess.run(["exiftool", "-j", "-XMP:Rating", str(tmp_path / "E.xmp")],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)[0]["Rating"] == -1


def test_rate_writes_the_same_photocull_figures_as_the_window(tmp_path, app_paths, capsys):
    """``photocull rate`` adds photocull's figures (mean, std, model, why) of the active
    model's stored score, through the one function the window calls
    (:func:`photocull.cull.marks.sidecar_figures`)."""
    from photocull.config import Settings
    from photocull.cull.catalog import Catalog, Marks
    from photocull.cull.marks import save_marks, sidecar_figures
    from photocull.scoring import iter_scores_cached

    d = tmp_path / "shoot"
    scored, later = make_photo(d / "S.jpg", seed=4), make_photo(d / "L.jpg", seed=5)
    later.rename(tmp_path / "L.jpg")  # not in the folder while it is scored
    later = tmp_path / "L.jpg"
    assert main(["score", str(d), "--format", "csv", "-q", "--model", "default"]) == 0  # the stored model's mean
    csv_mean = capsys.readouterr().out.splitlines()[1].split(",")[1]
    assert main(["rate", str(scored), str(later), "--stars", "3"]) == 0
    from_cli = read_sidecar(scored).photocull
    assert set(from_cli) >= {"Mean", "Std", "Model"} and from_cli["Mean"] == csv_mean
    assert read_sidecar(later).photocull == {}  # never scored: no figures
    # the window's way: the scores it shows (from the catalog), the model it loaded
    from photocull.model.registry import resolve_scorers

    loaded = resolve_scorers(Settings.load(app_paths.settings_path).active_model, app_paths).loaded
    assert from_cli["Model"] == loaded.model_id
    for sc in scored.parent.glob("S*.xmp"):
        sc.unlink()
    with Catalog(app_paths.catalog_path) as cat:
        (r,) = [r for prog in iter_scores_cached([scored], loaded, cat) for r in prog.results]
        assert save_marks(cat, [(scored, Marks(0, 3), [], sidecar_figures(r.mean, r.std, r.why, loaded.model_id))]) == []
    assert read_sidecar(scored).photocull == from_cli
