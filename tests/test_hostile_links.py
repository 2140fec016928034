"""Issue 2/7, item 1: links never pull a file from outside the source into an export, and
never take a move or the trash out of the folder.  Every link is made by the test."""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import pytest

from conftest import make_photo
from photocull.cli import main
from photocull.cull.export import Candidate, export
from photocull.media import fileops
from photocull.media.fileops import CopyError, outside_reason, safe_copy
from photocull.media.listing import list_images
from reliability_helpers import SECRET, build_link_shoot, leaked_from_outside


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def fast(monkeypatch):
    from reliability_helpers import fast_model

    m = fast_model()
    monkeypatch.setattr("photocull.model.registry.resolve_lazy", lambda spec, paths: m)
    return m


@pytest.fixture
def links(tmp_path):
    return build_link_shoot(tmp_path)


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def outside_untouched(links) -> bool:
    return all(p.is_file() and not p.is_symlink() and sha(p) == h for p, h in links["outside_hashes"].items())


def problem_rows(report_path: Path) -> dict[str, str]:
    rows = list(csv.DictReader(report_path.open(encoding="utf-8")))
    return {Path(r["source"]).name: r["note"] for r in rows if r["action"] == "problem"}


# ----------------------------------------------------------------------------- the case

def test_companion_linked_to_a_key_outside_is_never_copied(links, tmp_path):
    src, dest = links["source"], tmp_path / "dest"
    rep = export([Candidate(src / "IMG_1.jpg", 6.0)], dest, source=src)
    assert [it.source.name for it in rep.items] == ["IMG_1.jpg"] and rep.items[0].companions == []
    assert leaked_from_outside(dest, links["outside_hashes"]) == []
    assert not (dest / "IMG_1.CR2").exists()
    [(p, why)] = rep.errors
    assert p == src / "IMG_1.CR2" and "outside the source folder" in why and "id_rsa" in why
    assert problem_rows(rep.report_path) == {"IMG_1.CR2": why}  # the CSV says so too
    assert SECRET.decode() not in rep.report_path.read_text(encoding="utf-8")


def test_move_leaves_the_outside_file_and_its_link_alone(links, tmp_path):
    src, dest = links["source"], tmp_path / "dest"
    rep = export([Candidate(src / "IMG_1.jpg", 6.0), Candidate(src / "IMG_6.jpg", 5.0)], dest, move=True, source=src)
    assert all(it.moved for it in rep.items) and len(rep.items) == 2
    assert not (src / "IMG_1.jpg").exists() and (dest / "IMG_1.jpg").is_file()
    assert os.path.islink(src / "IMG_1.CR2") and os.path.islink(src / "IMG_6.xmp")  # refused: left where they are
    assert outside_untouched(links)
    assert leaked_from_outside(dest, links["outside_hashes"]) == []
    assert sorted(p.name for p, _ in rep.errors) == ["IMG_1.CR2", "IMG_6.xmp"]


def test_cli_export_of_the_shoot_refuses_every_link_out_and_says_why(links, tmp_path, capsys, fast):
    src, dest = links["source"], tmp_path / "dest"
    rc, out, err = run(capsys, "export", src, dest, "--top-percent", "100", "--recursive", "-q")
    assert rc == 1  # problems were reported
    assert leaked_from_outside(dest, links["outside_hashes"]) == [] and outside_untouched(links)
    for rel in ("IMG_1.CR2", "IMG_6.xmp"):
        assert f"{src / rel}: a link to {os.path.realpath(src / rel)}, outside the source folder" in err
    got = {sha(p) for p in dest.rglob("*.jpg")}
    assert {sha(src / rel) for rel in links["exported"]} <= got
    assert not [p for p in dest.rglob("*") if p.is_symlink()]  # the destination holds files, never links
    report = next(dest.glob("photocull-export-*.csv"))
    assert {"IMG_1.CR2", "IMG_6.xmp"} <= set(problem_rows(report))


def test_cli_move_of_the_shoot_never_moves_or_removes_anything_outside(links, tmp_path, capsys, fast):
    src, dest = links["source"], tmp_path / "dest"
    before_refused = {rel: os.readlink(src / rel) for rel in links["refused"]}
    rc, _, err = run(capsys, "export", src, dest, "--top-percent", "100", "--recursive", "--move", "-q")
    assert outside_untouched(links) and leaked_from_outside(dest, links["outside_hashes"]) == []
    for rel, target in before_refused.items():  # every refused link is still there, unchanged
        assert os.readlink(src / rel) == target, rel
    assert "outside the source folder" in err and "Traceback" not in err
    assert not os.path.lexists(src / "album" / "best.jpg")  # a link inside: moved (the link itself)


# ----------------------------------------------------------------------------- photos that are links

def test_photo_linked_outside_is_refused_whatever_the_source(links, tmp_path):
    src = links["source"]
    for kw in ({"source": src}, {}):  # without a source: the photo's own folder
        dest = tmp_path / f"dest{len(kw)}"
        rep = export([Candidate(src / "IMG_2.jpg", 9.0)], dest, move=True, **kw)
        assert rep.items == [] and len(rep.errors) == 1
        assert "elsewhere.jpg" in rep.errors[0][1] and "outside the source folder" in rep.errors[0][1]
        assert leaked_from_outside(dest, links["outside_hashes"]) == []
        assert os.path.islink(src / "IMG_2.jpg") and outside_untouched(links)
        assert problem_rows(rep.report_path) == {"IMG_2.jpg": rep.errors[0][1]}


def test_a_path_through_a_linked_folder_is_outside(links, tmp_path):
    src = links["source"]
    through = src / "linked-folder" / "IMG_9.jpg"  # what a caller may hand over as a companion
    rep = export([Candidate(src / "IMG_4.jpg", 5.0, companions=[through]),
                  Candidate(src / "album" / "IMG_9.jpg", 4.0)], tmp_path / "dest", source=src)
    assert [it.source.name for it in rep.items] == ["IMG_4.jpg"]
    assert {p for p, _ in rep.errors} >= {through, src / "album" / "IMG_9.jpg"}
    assert leaked_from_outside(tmp_path / "dest", links["outside_hashes"]) == []


def test_a_link_inside_the_shoot_is_copied_as_a_regular_file_once(links, tmp_path):
    src, dest = links["source"], tmp_path / "dest"
    best, target = src / "album" / "best.jpg", src / "day1" / "IMG_5.jpg"
    rep = export([Candidate(best, 8.0), Candidate(target, 7.0)], dest, source=src)
    assert rep.errors == [] and [it.source for it in rep.items] == [best]  # the target's bytes travel once
    assert (dest / "best.jpg").is_file() and not (dest / "best.jpg").is_symlink()
    assert (dest / "best.jpg").read_bytes() == target.read_bytes()
    # its own folder as the source (the default) does not hold the target: refused
    rep = export([Candidate(best, 8.0)], tmp_path / "dest2")
    assert rep.items == [] and "outside the source folder" in rep.errors[0][1]


def test_moving_a_link_inside_the_shoot_removes_the_link_never_its_target(links, tmp_path):
    src, dest = links["source"], tmp_path / "dest"
    best, target = src / "album" / "best.jpg", src / "day1" / "IMG_5.jpg"
    h = sha(target)
    rep = export([Candidate(best, 8.0)], dest, move=True, source=src)
    assert rep.errors == [] and rep.items[0].moved
    assert not os.path.lexists(best) and sha(target) == h and not target.is_symlink()
    assert sha(dest / "best.jpg") == h


def test_broken_links_and_loops_are_reported_and_the_photo_travels(links, tmp_path):
    src, dest = links["source"], tmp_path / "dest"
    rep = export([Candidate(src / "IMG_3.jpg", 6.0), Candidate(src / "IMG_4.jpg", 5.0),
                  Candidate(src / "loop-a.jpg", 4.0)], dest, source=src)
    assert [it.source.name for it in rep.items] == ["IMG_3.jpg", "IMG_4.jpg"]
    why = {p.name: w for p, w in rep.errors}
    assert set(why) == {"IMG_3.CR2", "IMG_3.xmp", "IMG_4.CR2", "IMG_4.DNG", "loop-a.jpg"}
    assert "broken link" in why["IMG_3.CR2"] and "outside" in why["IMG_3.xmp"]
    assert all("loop" in why[n] for n in ("IMG_4.CR2", "IMG_4.DNG", "loop-a.jpg"))
    assert sorted(p.name for p in dest.iterdir() if p.suffix != ".csv") == ["IMG_3.jpg", "IMG_4.jpg"]


def test_every_generated_link_is_refused_or_exported_never_a_traceback(links, tmp_path):
    src = links["source"]
    listed = [*list_images(src, recursive=True), *(src / n for n in links["refused"] if "/" not in n)]
    chosen = [Candidate(p, 5.0) for p in dict.fromkeys(listed)]
    rep = export(chosen, tmp_path / "dest", source=src)
    refused = {p.relative_to(src).as_posix() for p, _ in rep.errors}
    assert refused == set(links["refused"])
    assert leaked_from_outside(tmp_path / "dest", links["outside_hashes"]) == []


# ----------------------------------------------------------------------------- the shared mechanism

def test_safe_copy_refuses_a_source_outside_its_tree(links, tmp_path):
    src, dest = links["source"], tmp_path / "d"
    dest.mkdir()
    with pytest.raises(CopyError, match="outside the source folder"):
        safe_copy(src / "IMG_1.CR2", dest, "IMG_1.CR2", within=src)
    with pytest.raises(CopyError, match="loop"):
        safe_copy(src / "IMG_4.CR2", dest, "IMG_4.CR2", within=src)
    assert list(dest.iterdir()) == []
    out = safe_copy(src / "album" / "best.jpg", dest, "best.jpg", within=src)
    assert not out.is_symlink() and out.read_bytes() == (src / "day1" / "IMG_5.jpg").read_bytes()


def test_outside_reason(links):
    src = links["source"]
    assert outside_reason(src / "IMG_1.jpg", src) is None
    assert outside_reason(src / "album" / "best.jpg", src) is None
    assert outside_reason(src / "gone.jpg", src) is None  # not a link: the caller's own "not found"
    assert "outside" in outside_reason(src / "IMG_2.jpg", src)
    assert "outside" in outside_reason(src / "album" / "IMG_9.jpg", src)
    assert "loop" in outside_reason(src / "loop-a.jpg", src)
    assert "broken link" in outside_reason(src / "IMG_3.CR2", src)
    # a tree given through a link is its real folder
    os.symlink(src, src.parent / "shoot-link")
    assert outside_reason(src / "album" / "best.jpg", src.parent / "shoot-link") is None


def test_gui_export_job_passes_the_open_folder(links, tmp_path, app_paths):
    from photocull.gui.dialogs import _export_job

    src, dest = links["source"], tmp_path / "dest"
    rep = _export_job([Candidate(src / "IMG_1.jpg", 6.0), Candidate(src / "album" / "best.jpg", 5.0)],
                      str(dest), False, app_paths.catalog_path, src)
    assert [it.source.name for it in rep.items] == ["IMG_1.jpg", "best.jpg"]
    assert [p.name for p, _ in rep.errors] == ["IMG_1.CR2"]
    assert leaked_from_outside(dest, links["outside_hashes"]) == []


# ----------------------------------------------------------------------------- trash-rejects

@pytest.fixture
def fake_trash(tmp_path, monkeypatch):
    """send2trash moves what it is given (a link stays a link) into a folder here, and
    records the paths it was handed."""
    import send2trash

    bin_ = tmp_path / "Trash"
    bin_.mkdir()
    handed = []

    def to_bin(path):
        handed.append(path)
        p = Path(path)
        if not os.path.lexists(p):
            raise OSError(2, "No such file", str(p))
        os.rename(p, bin_ / p.name)

    monkeypatch.setattr(send2trash, "send2trash", to_bin)
    return bin_, handed


def test_trash_rejects_sends_links_never_their_targets(links, fake_trash, capsys):
    src = links["source"]
    bin_, handed = fake_trash
    assert main(["rate", "--reject", str(src / "IMG_1.jpg"), str(src / "IMG_2.jpg")]) == 0
    assert main(["rate", "--reject", str(src / "IMG_3.jpg")]) == 1  # its sidecar is a broken link: not written
    capsys.readouterr()
    rc, out, err = run(capsys, "trash-rejects", src, "--yes")
    assert rc == 0, err
    assert "IMG_1.CR2 is a link to" in out and "only the link goes to the trash" in out
    assert outside_untouched(links)
    for n in ("IMG_1.CR2", "IMG_2.jpg"):  # the links themselves went, as links
        assert os.path.islink(bin_ / n) and not os.path.lexists(src / n)
        assert all(Path(h).name != "id_rsa" and Path(h).parent == src for h in handed)
    assert (bin_ / "IMG_1.jpg").is_file() and not (bin_ / "IMG_1.jpg").is_symlink()
    assert os.path.islink(src / "IMG_3.CR2")  # a broken link beside a reject is left alone
    assert not leaked_from_outside(bin_, links["outside_hashes"])


def test_fileops_trash_hands_over_the_link_unresolved(tmp_path, fake_trash):
    bin_, handed = fake_trash
    target = make_photo(tmp_path / "elsewhere" / "x.jpg")
    (tmp_path / "s").mkdir()
    os.symlink(target, tmp_path / "s" / "x.jpg")
    assert fileops.trash([tmp_path / "s" / "x.jpg"]) == []
    assert handed == [str(tmp_path / "s" / "x.jpg")] and target.is_file()
