"""Choosing keepers and exporting them: never overwrite, never lose a photo."""
from __future__ import annotations

import builtins
import csv
import errno
import os
from pathlib import Path

import pytest

from conftest import make_photo
from photocull.cull import export as cull_export
from photocull.media import fileops
from photocull.cull.export import Candidate, ExportError, choose, export
from photocull.media.listing import companions_of
from photocull.media.fileops import CopyError, safe_copy


# --- choose ---------------------------------------------------------------------------

def C(name, mean=None, flag=0, rating=0):
    return Candidate(Path(name), mean, None if mean is None else 1.0, flag, rating)


@pytest.fixture
def cands():
    return [C("a", 5.0), C("b", 7.5), C("c", 3.0, flag=-1), C("d", 6.0, flag=1, rating=4),
            C("e", None, flag=1, rating=5), C("f", 9.0, flag=-1), C("g", 4.0, rating=2), C("h", None)]


def names(cs):
    return [c.path.name for c in cs]


def test_choose_top_n_best_first_without_rejects(cands):
    assert names(choose(cands, top=3)) == ["b", "d", "a"]  # f (9.0) is rejected
    assert names(choose(cands, top=100)) == ["b", "d", "a", "g"]  # unscored never chosen by score
    assert choose(cands, top=0) == []
    with pytest.raises(ValueError, match="the number of top photos"):
        choose(cands, top=-1)


def test_choose_rejects_can_be_included(cands):
    assert names(choose(cands, top=2, exclude_rejects=False)) == ["f", "b"]


def test_choose_top_percent(cands):
    # 6 scored photos; 50% -> 3
    assert names(choose(cands, top_percent=50)) == ["b", "d", "a"]
    assert names(choose(cands, top_percent=1)) == ["b"]  # at least one
    assert names(choose(cands, top_percent=100)) == ["b", "d", "a", "g"]
    for bad in (0, -5, 100.5):
        with pytest.raises(ValueError, match="the top percentage must be in"):
            choose(cands, top_percent=bad)
    assert choose([C("x")], top_percent=50) == []


def test_choose_min_score(cands):
    assert names(choose(cands, min_score=5.0)) == ["b", "d", "a"]
    assert choose(cands, min_score=9.5) == []


def test_choose_picks_and_stars(cands):
    assert names(choose(cands, picks_only=True)) == ["d", "e"]  # unscored last, but chosen
    assert names(choose(cands, min_stars=4)) == ["d", "e"]
    assert names(choose(cands, min_stars=2)) == ["d", "g", "e"]
    assert names(choose(cands, picks_only=True, top=1)) == ["d"]


def test_choose_ties_are_stable_by_path():
    cs = [C("z", 5.0), C("m", 5.0), C("a", 5.0)]
    assert names(choose(cs, top=3)) == ["a", "m", "z"]


# --- export -------------------------------------------------------------------------

@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    for i in range(4):
        make_photo(d / f"IMG_{i}.JPG", seed=i, size=(48, 32))
    return d


def cand(p, mean=5.0):
    return Candidate(Path(p), mean, 1.0)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_copies_identical_bytes_and_writes_report(src, tmp_path):
    before = snapshot(src)
    dest = tmp_path / "out" / "keepers"  # created
    chosen = [cand(src / "IMG_2.JPG", 7.25), cand(src / "IMG_0.JPG", 6.5)]
    rep = export(chosen, dest)
    assert rep.errors == [] and len(rep.items) == 2
    assert (dest / "IMG_2.JPG").read_bytes() == before["IMG_2.JPG"]
    assert (dest / "IMG_0.JPG").read_bytes() == before["IMG_0.JPG"]
    assert snapshot(src) == before  # copy leaves sources alone
    assert rep.report_path is not None and rep.report_path.parent == dest
    rows = list(csv.DictReader(rep.report_path.open(encoding="utf-8")))
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert [Path(r["source"]).name for r in rows] == ["IMG_2.JPG", "IMG_0.JPG"]
    assert float(rows[0]["mean"]) == pytest.approx(7.25) and rows[0]["action"] == "copy"
    assert Path(rows[1]["destination"]) == dest / "IMG_0.JPG"
    assert not list(dest.glob(fileops.TMP_PREFIX + "*"))
    # mtime travels with the copy
    assert (dest / "IMG_2.JPG").stat().st_mtime == pytest.approx((src / "IMG_2.JPG").stat().st_mtime, abs=1e-3)


def test_export_never_overwrites(src, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "IMG_1.JPG").write_bytes(b"someone else's photo")
    rep = export([cand(src / "IMG_1.JPG")], dest)
    assert (dest / "IMG_1.JPG").read_bytes() == b"someone else's photo"
    assert rep.items[0].destination == dest / "IMG_1-1.JPG"
    assert (dest / "IMG_1-1.JPG").read_bytes() == (src / "IMG_1.JPG").read_bytes()
    # and again: -2
    rep = export([cand(src / "IMG_1.JPG")], dest)
    assert rep.items[0].destination == dest / "IMG_1-2.JPG"


def test_exporting_again_to_the_same_folder_copies_nothing_twice(src, tmp_path):
    """An export made again (the same picks, the same folder): photos already there with the same
    bytes are not copied again as IMG_1-1.JPG; a sidecar made since is copied; a sidecar changed
    since is said, never overwritten; a photo edited since is still exported beside the old one."""
    dest = tmp_path / "picks"
    chosen = [cand(src / "IMG_1.JPG"), cand(src / "IMG_2.JPG")]
    first = export(chosen, dest)
    assert len(first.items) == 2 and first.already == []
    (src / "IMG_1.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")  # a first sidecar since
    again = export(chosen, dest)
    assert again.items == [] and [p.name for p, _ in again.already] == ["IMG_1.JPG", "IMG_2.JPG"]
    assert sorted(p.name for p in dest.iterdir() if not p.name.endswith(".csv")) == ["IMG_1.JPG", "IMG_1.xmp", "IMG_2.JPG"]
    assert again.errors == []
    rows = list(csv.DictReader(again.report_path.open(encoding="utf-8")))
    assert [r["action"] for r in rows] == ["already there", "already there"]
    (src / "IMG_1.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'><!-- 5 stars --></x:xmpmeta>")
    third = export(chosen, dest)
    assert len(third.already) == 2 and [(p.name, "not overwritten" in why) for p, why in third.errors] == [("IMG_1.xmp", True)]
    assert "5 stars" not in (dest / "IMG_1.xmp").read_text()
    make_photo(src / "IMG_2.JPG", seed=9, size=(48, 32))  # edited since: exported again, beside the old one
    fourth = export([cand(src / "IMG_2.JPG")], dest)
    assert [it.destination.name for it in fourth.items] == ["IMG_2-1.JPG"] and fourth.already == []


def test_safe_copy_refuses_existing_final_name(src, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "x.jpg").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        safe_copy(src / "IMG_0.JPG", dest, "x.jpg")
    assert (dest / "x.jpg").read_bytes() == b"keep"
    os.symlink(dest / "nowhere", dest / "dangling.jpg")  # even a dangling link counts as taken
    with pytest.raises(FileExistsError):
        safe_copy(src / "IMG_0.JPG", dest, "dangling.jpg")
    assert sorted(p.name for p in dest.iterdir()) == ["dangling.jpg", "x.jpg"]


@pytest.fixture
def raw_pair(tmp_path):
    d = tmp_path / "pair"
    make_photo(d / "IMG_1.JPG", seed=1, size=(48, 32))
    (d / "IMG_1.CR2").write_bytes(b"raw data" * 100)
    (d / "IMG_1.xmp").write_text("<x:xmpmeta adobe/>")
    (d / "IMG_1.JPG.xmp").write_text("<x:xmpmeta darktable/>")
    (d / "IMG_10.JPG").write_bytes(b"not a companion")
    (d / "IMG_1 copy.JPG").write_bytes(b"not a companion either")
    return d


def test_companions_of(raw_pair):
    got = [p.name for p in companions_of(raw_pair / "IMG_1.JPG")]
    assert got == ["IMG_1.CR2", "IMG_1.JPG.xmp", "IMG_1.xmp"]


def test_companions_travel_with_the_photo(raw_pair, tmp_path):
    dest = tmp_path / "dest"
    rep = export([cand(raw_pair / "IMG_1.JPG")], dest, write_report=False)
    assert rep.errors == []
    assert sorted(p.name for p in dest.iterdir()) == ["IMG_1.CR2", "IMG_1.JPG", "IMG_1.JPG.xmp", "IMG_1.xmp"]
    for n in ("IMG_1.CR2", "IMG_1.xmp", "IMG_1.JPG.xmp"):
        assert (dest / n).read_bytes() == (raw_pair / n).read_bytes()
    assert len(rep.items[0].companions) == 3
    # without companions
    dest2 = tmp_path / "dest2"
    export([cand(raw_pair / "IMG_1.JPG")], dest2, with_companions=False, write_report=False)
    assert [p.name for p in dest2.iterdir()] == ["IMG_1.JPG"]


def test_companions_share_the_renamed_suffix_on_a_clash(raw_pair, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "IMG_1.xmp").write_text("an unrelated sidecar")  # only a companion clashes
    export([cand(raw_pair / "IMG_1.JPG")], dest, write_report=False)
    assert (dest / "IMG_1.xmp").read_text() == "an unrelated sidecar"
    assert sorted(p.name for p in dest.iterdir()) == [
        "IMG_1-1.CR2", "IMG_1-1.JPG", "IMG_1-1.JPG.xmp", "IMG_1-1.xmp", "IMG_1.xmp"]
    assert (dest / "IMG_1-1.JPG.xmp").read_text() == "<x:xmpmeta darktable/>"


def test_move_removes_sources_after_verified_copy(raw_pair, tmp_path):
    before = snapshot(raw_pair)
    dest = tmp_path / "dest"
    moved = []
    rep = export([cand(raw_pair / "IMG_1.JPG")], dest, move=True, on_moved=lambda s, d: moved.append((s.name, d.name)))
    assert rep.errors == [] and rep.items[0].moved
    for n in ("IMG_1.JPG", "IMG_1.CR2", "IMG_1.xmp", "IMG_1.JPG.xmp"):
        assert not (raw_pair / n).exists()
        assert (dest / n).read_bytes() == before[n]
    assert (raw_pair / "IMG_10.JPG").exists()
    assert sorted(moved) == sorted((n, n) for n in ("IMG_1.JPG", "IMG_1.CR2", "IMG_1.xmp", "IMG_1.JPG.xmp"))


def test_move_keeps_sources_when_verification_fails(raw_pair, tmp_path, monkeypatch):
    before = snapshot(raw_pair)
    monkeypatch.setattr(fileops, "sha256_of", lambda path, bufsize=0: "0" * 64)  # every copy "differs"
    dest = tmp_path / "dest"
    rep = export([cand(raw_pair / "IMG_1.JPG")], dest, move=True, write_report=False)
    assert rep.items == []
    assert len(rep.errors) == 1 and "verification failed" in rep.errors[0][1]
    assert snapshot(raw_pair) == before
    assert list(dest.iterdir()) == []


def test_move_keeps_all_sources_when_a_companion_fails(raw_pair, tmp_path, monkeypatch):
    before = snapshot(raw_pair)
    real = fileops.sha256_of
    monkeypatch.setattr(fileops, "sha256_of", lambda path, bufsize=1 << 20: "bad" if str(path).endswith(".CR2") else real(path))
    rep = export([cand(raw_pair / "IMG_1.JPG")], tmp_path / "dest", move=True, write_report=False)
    assert rep.items == [] and rep.errors
    assert snapshot(raw_pair) == before  # the JPEG was copied, but not removed: its RAW failed


def test_missing_source_is_a_per_file_error(src, tmp_path):
    rep = export([cand(src / "gone.JPG"), cand(src / "IMG_0.JPG")], tmp_path / "dest")
    assert len(rep.items) == 1 and len(rep.errors) == 1
    assert rep.errors[0][0].name == "gone.JPG"


def _outside_dest(tmp_path: Path, dest: Path, src_dir: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file()
            and dest not in p.parents and src_dir not in p.parents]


def test_crafted_names_cannot_escape_destination(tmp_path):
    srcd = tmp_path / "a" / "b" / "src"
    srcd.mkdir(parents=True)
    evil = srcd / "..\\..\\evil.jpg"  # a legal POSIX file name full of backslashes
    evil.write_bytes(b"evil")
    comp = srcd / "..\\..\\evil.xmp"
    comp.write_bytes(b"sidecar")
    dest = tmp_path / "a" / "b" / "dest"
    rep = export([Candidate(evil, 5.0, companions=[comp])], dest, write_report=False)
    assert _outside_dest(tmp_path, dest, srcd) == []
    landed = sorted(p.name for p in dest.iterdir())
    assert all("/" not in n and n not in ("..", ".") for n in landed)
    assert rep.items or rep.errors


@pytest.mark.parametrize("name", ["..", ".", "", "../evil.jpg", "../../evil.jpg", "sub/../../evil.jpg",
                                  "..\\evil.jpg", "/etc/evil.jpg"])
def test_safe_copy_never_writes_outside(src, tmp_path, name):
    dest = tmp_path / "x" / "dest"
    dest.mkdir(parents=True)
    try:
        out = safe_copy(src / "IMG_0.JPG", dest, name)
    except CopyError:
        out = None
    if out is not None:
        assert out.parent == dest
    assert _outside_dest(tmp_path, dest, src) == []


def test_companion_that_is_not_a_file_is_ignored(src, tmp_path):
    dest = tmp_path / "dest"
    rep = export([Candidate(src / "IMG_0.JPG", 5.0, companions=[Path(".."), src, src / "gone.xmp",
                                                                  src / ".." / "src" / "IMG_1.JPG"])],
                 dest, write_report=False)
    assert _outside_dest(tmp_path, dest, src) == []
    assert rep.errors == []
    assert sorted(p.name for p in dest.iterdir()) == ["IMG_0.JPG", "IMG_1.JPG"]


def test_photo_is_not_its_own_companion(src, tmp_path):
    dest = tmp_path / "dest"
    same = src / ".." / "src" / "IMG_0.JPG"
    rep = export([Candidate(src / "IMG_0.JPG", 5.0, companions=[same])], dest, move=True, write_report=False)
    assert rep.errors == [] and len(rep.items) == 1
    assert [p.name for p in dest.iterdir()] == ["IMG_0.JPG"]


@pytest.mark.parametrize("move", [False, True])
def test_raw_chosen_beside_its_jpeg_travels_once(raw_pair, tmp_path, move):
    before = snapshot(raw_pair)
    dest = tmp_path / "dest"
    rep = export([cand(raw_pair / "IMG_1.JPG", 7.0), cand(raw_pair / "IMG_1.CR2", 6.0)], dest, move=move,
                 write_report=False)
    assert rep.errors == []
    assert sorted(p.name for p in dest.iterdir()) == ["IMG_1.CR2", "IMG_1.JPG", "IMG_1.JPG.xmp", "IMG_1.xmp"]
    for p in dest.iterdir():
        assert p.read_bytes() == before[p.name]


class _DiskFull:
    """Replacement for ``open`` in the export module: writes to new files fail with ENOSPC
    after a few bytes (so a partial file exists), from the ``allow``-th copy on."""

    def __init__(self, allow=0):
        self.allow, self.opened = allow, 0

    def __call__(self, file, mode="r", *a, **kw):
        f = builtins.open(file, mode, *a, **kw)
        if "x" in mode:
            self.opened += 1
            if self.opened > self.allow:
                real_write = f.write

                def write(data):
                    real_write(data[:10])
                    raise OSError(errno.ENOSPC, "No space left on device")

                f.write = write
        return f


@pytest.mark.parametrize("allow", [0, 1])
def test_disk_full_stops_cleanly(src, tmp_path, monkeypatch, allow):
    before = snapshot(src)
    dest = tmp_path / "dest"
    monkeypatch.setattr(fileops, "open", _DiskFull(allow), raising=False)
    chosen = [cand(src / f"IMG_{i}.JPG", 9 - i) for i in range(3)]
    with pytest.raises(ExportError, match="No space left"):
        export(chosen, dest, move=True)
    left = snapshot(dest)
    after = snapshot(src)
    for n, b in before.items():  # nothing lost: each photo whole in the source or the destination
        assert after.get(n) == b or left.get(n) == b
    for i in range(allow, 3):  # the one that failed, and those after it, were not touched
        assert after[f"IMG_{i}.JPG"] == before[f"IMG_{i}.JPG"]
    assert not [n for n in left if n.startswith(fileops.TMP_PREFIX)]
    photos = {n: b for n, b in left.items() if n.endswith(".JPG")}
    # only complete copies under final names
    assert set(photos) == {f"IMG_{i}.JPG" for i in range(allow)}
    for n, b in photos.items():
        assert b == before[n]


def test_read_only_destination(src, tmp_path, monkeypatch):
    dest = tmp_path / "ro"
    dest.mkdir()
    if os.geteuid() == 0:  # root ignores permissions: pretend
        real = os.access
        monkeypatch.setattr(fileops.os, "access", lambda p, m, *a, **k: False if Path(p) == dest else real(p, m, *a, **k))
    else:
        dest.chmod(0o555)
    try:
        with pytest.raises(ExportError, match="not writable"):
            export([cand(src / "IMG_0.JPG")], dest)
        assert list(dest.iterdir()) == []
    finally:
        dest.chmod(0o755)


def test_permission_error_midway_is_fatal(src, tmp_path, monkeypatch):
    def denied(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(cull_export, "safe_copy", denied)
    with pytest.raises(ExportError, match="Permission denied"):
        export([cand(src / "IMG_0.JPG")], tmp_path / "dest")


def test_cancel_and_progress(src, tmp_path):
    seen = []
    state = {"n": 0}

    def cancelled():
        state["n"] += 1
        return state["n"] > 2

    rep = export([cand(src / f"IMG_{i}.JPG") for i in range(4)], tmp_path / "dest",
                 cancelled=cancelled, progress=lambda i, n: seen.append((i, n)))
    assert rep.cancelled and len(rep.items) == 2
    assert seen == [(1, 4), (2, 4)]


# --- names that differ only by case (issue 2/7): another photo is never a companion ---------

@pytest.fixture
def case_twins(tmp_path):
    d = tmp_path / "twins"
    make_photo(d / "img_3.jpg", seed=3, size=(48, 32))
    if (d / "IMG_3.JPG").exists():
        pytest.skip("case-insensitive file system: such twins cannot exist")
    make_photo(d / "IMG_3.JPG", seed=4, size=(48, 32))
    (d / "IMG_3.CR2").write_bytes(b"raw of IMG_3.JPG")
    (d / "img_3.jpg.xmp").write_text("<x:xmpmeta darktable lower/>")
    (d / "IMG_3.JPG.xmp").write_text("<x:xmpmeta darktable upper/>")
    make_photo(d / "IMG_7.jpg", seed=7, size=(48, 32))
    make_photo(d / "IMG_7.png", seed=8, size=(48, 32))  # same stem, another rendered photo
    (d / "IMG_7.xmp").write_text("<x:xmpmeta adobe/>")
    return d


def test_a_rendered_photo_is_never_the_companion_of_another(case_twins):
    d = case_twins
    assert [p.name for p in companions_of(d / "img_3.jpg")] == ["img_3.jpg.xmp"]
    assert [p.name for p in companions_of(d / "IMG_3.JPG")] == ["IMG_3.CR2", "IMG_3.JPG.xmp"]
    assert [p.name for p in companions_of(d / "IMG_7.jpg")] == ["IMG_7.xmp"]
    assert [p.name for p in companions_of(d / "IMG_7.png")] == ["IMG_7.xmp"]
    # a RAW still takes its rendered twins along
    assert {"IMG_3.JPG", "img_3.jpg"} <= {p.name for p in companions_of(d / "IMG_3.CR2")}


def test_case_twins_export_as_two_photos_each_with_its_own_companions(case_twins, tmp_path):
    d, dest = case_twins, tmp_path / "dest"
    rep = export([cand(d / "img_3.jpg", 7.0), cand(d / "IMG_3.JPG", 6.0)], dest, write_report=False)
    assert rep.errors == []
    assert [(it.source.name, sorted(s.name for s, _ in it.companions)) for it in rep.items] == [
        ("img_3.jpg", ["img_3.jpg.xmp"]), ("IMG_3.JPG", ["IMG_3.CR2", "IMG_3.JPG.xmp"])]
    for p in dest.iterdir():
        assert p.read_bytes() == (d / p.name).read_bytes()


@pytest.mark.parametrize("top, copied", [("10", 4), ("1", 1)])
def test_cli_export_counts_case_twins_as_photos(case_twins, tmp_path, capsys, monkeypatch, top, copied):
    from photocull.cli import main
    from reliability_helpers import fast_model

    m = fast_model()
    monkeypatch.setattr("photocull.model.registry.resolve_lazy", lambda spec, paths: m)
    (case_twins / "IMG_3.CR2").unlink()  # not a decodable RAW: keep the count to the four photos
    dest = tmp_path / "dest"
    assert main(["export", str(case_twins), str(dest), "--top", top, "-q"]) == 0
    err = capsys.readouterr().err
    assert f"copied {copied} of 4 photos" in err
    photos = sorted(p.name for p in dest.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    assert len(photos) == copied
    rows = list(csv.DictReader(next(dest.glob("photocull-export-*.csv")).open(encoding="utf-8")))
    assert len(rows) == copied and all(r["action"] == "copy" and r["note"] == "" for r in rows)
