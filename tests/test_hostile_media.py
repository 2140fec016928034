"""Issue 2/7, items 3, 4, 5 and the many-page TIFF: hostile photos and sidecars are refused
at once with a reason, never hang a reader and are never overwritten.  Every hostile file
is generated here."""
from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, TiffImagePlugin

from conftest import make_photo
from photocull.media import exif, fileops, listing, loaders, sidecar
from photocull.media.exif import ExifInfo
from photocull.media.loaders import ImageError
from photocull.media.sidecar import SidecarError, read_sidecar, write_sidecar

# ----------------------------------------------------------------- a FIFO named like a photo


def _unblock(fifo: Path) -> None:
    """Release a reader stuck in open() on ``fifo`` (a writer opening it lets open() return)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # nobody is reading: nothing to release
        return
    os.close(fd)


def promptly(fn, *args, fifo: Path, timeout: float = 5.0):
    """``fn(*args)`` in a thread: its result, or its exception raised here; a call still
    running after ``timeout`` fails the test (and is released) instead of hanging it."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        while t.is_alive():
            _unblock(fifo)
            t.join(0.1)
        pytest.fail(f"{getattr(fn, '__name__', fn)} blocked on a FIFO")
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture(params=["x.jpg", "x.CR2", "x.heic", "x.tif"])
def fifo(request, tmp_path):
    p = tmp_path / request.param
    os.mkfifo(p)
    return p


def test_fifo_named_like_a_photo_never_blocks_a_reader(fifo):
    with pytest.raises(ImageError, match="not a regular file"):
        promptly(loaders.check_readable, fifo, fifo=fifo)
    for side in (None, 256):
        with pytest.raises(ImageError, match="not a regular file"):
            promptly(loaders.open_image, fifo, side, fifo=fifo)
    assert promptly(exif.exif_thumbnail, fifo, fifo=fifo) is None
    for reader in (exif.read_exif, exif.read_raw_exif, exif.read_any_exif):
        assert promptly(reader, fifo, fifo=fifo) == ExifInfo()
    assert promptly(listing.companions_of, fifo, fifo=fifo) == []
    assert promptly(read_sidecar, fifo, fifo=fifo).rating is None
    dest = fifo.parent / "out"
    dest.mkdir()
    with pytest.raises(fileops.CopyError, match="not a regular file"):
        promptly(fileops.safe_copy, fifo, dest, fifo.name, fifo=fifo)
    assert os.listdir(dest) == []


def test_check_readable_reasons(tmp_path):
    photo = make_photo(tmp_path / "ok.jpg", size=(32, 24))
    assert loaders.check_readable(photo).st_size == photo.stat().st_size
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    os.symlink("nowhere.jpg", tmp_path / "dangling.jpg")
    for name, reason in (("empty.jpg", "empty"), ("folder.jpg", "not a regular file"),
                         ("dangling.jpg", "not found"), ("missing.jpg", "not found")):
        with pytest.raises(ImageError, match=reason):
            loaders.check_readable(tmp_path / name)
        assert exif.exif_thumbnail(tmp_path / name) is None
        assert exif.read_any_exif(tmp_path / name) == ExifInfo()


def test_image_loader_thread_survives_a_fifo(qtbot, tmp_path):
    """The GUI's thumbnail/preview thread: the FIFO fails at once, the next photo loads."""
    from photocull.gui.workers import ImageLoader

    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    good = make_photo(tmp_path / "good.jpg", size=(320, 240))
    loader = ImageLoader()
    try:
        with qtbot.waitSignal(loader.failed, timeout=5000) as failed:
            loader.request(str(fifo), 128)
        assert failed.args[0] == str(fifo) and "not a regular file" in failed.args[2]
        with qtbot.waitSignal(loader.ready, timeout=5000) as ready:
            loader.request(str(good), 128)
        assert ready.args[0] == str(good)
    finally:
        for _ in range(20):  # a regression leaves the thread in open(): release it
            _unblock(fifo)
        loader.stop()


# ----------------------------------------------------------------- hostile sidecars

PACKET = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="3">{inner}</rdf:Description>
 </rdf:RDF>
</x:xmpmeta>"""


def _nested(levels: int) -> str:
    """A packet whose deepest element sits ``levels`` deep (xmpmeta is level 1)."""
    inner = levels - 3  # xmpmeta > RDF > Description
    return PACKET.format(inner='<n xmlns="http://example.com/a/">' + "<n>" * (inner - 1) + "</n>" * inner)


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "IMG_1.JPG"
    p.write_bytes(b"\xff\xd8\xff\xd9")
    return p


def _assert_refused_and_untouched(photo: Path, sc: Path, match: str) -> None:
    before = (sc.read_bytes(), sc.stat().st_mtime_ns)
    with pytest.raises(SidecarError, match=match) as ei:
        read_sidecar(photo)
    assert str(sc) in str(ei.value)
    with pytest.raises(SidecarError, match=match):
        write_sidecar(photo, rating=5, photocull={"mean": "6.0"})
    assert (sc.read_bytes(), sc.stat().st_mtime_ns) == before
    assert [p.name for p in sc.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("encoding", ["x-klingon", "utf-32", "utf-16"])
def test_sidecar_in_an_unusable_encoding_is_a_sidecar_error(photo, encoding):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_bytes(f'<?xml version="1.0" encoding="{encoding}"?>\n{PACKET.format(inner="")}'.encode())
    _assert_refused_and_untouched(photo, sc, "encoding|unreadable")


def test_deeply_nested_sidecar_is_refused_before_serialising(photo):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(_nested(1000), "utf-8")
    assert sc.stat().st_size < 8_000  # the issue's: 1000 levels in 8 KB
    _assert_refused_and_untouched(photo, sc, "nested")


def test_depth_limit_is_exact_and_real_depths_pass(photo):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(_nested(sidecar.MAX_SIDECAR_DEPTH), "utf-8")
    assert read_sidecar(photo).rating == 3
    write_sidecar(photo, rating=4)  # serialises and reads back at the limit
    assert read_sidecar(photo).rating == 4
    sc.write_text(_nested(sidecar.MAX_SIDECAR_DEPTH + 1), "utf-8")
    _assert_refused_and_untouched(photo, sc, "nested")


def test_oversized_sidecar_is_refused_without_being_read(photo, monkeypatch):
    sc = photo.with_name("IMG_1.xmp")
    with open(sc, "wb") as f:  # sparse: costs nothing on disk
        f.write(PACKET.format(inner="").encode())
        f.truncate(sidecar.MAX_SIDECAR_BYTES + 1)

    def no_parse(*a, **kw):
        raise AssertionError("an oversized sidecar must not be parsed")

    monkeypatch.setattr(sidecar, "_parse", no_parse)
    _assert_refused_and_untouched(photo, sc, "larger")


def test_sidecar_of_too_many_elements_is_refused_early(photo):
    """The issue's 48.7 MB sidecar took 50 s and 1.8 GB to rate; millions of tiny elements
    are the expensive shape (size alone is not)."""
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(PACKET.format(inner="<n/>" * (sidecar.MAX_SIDECAR_ELEMENTS + 10)), "utf-8")
    t0 = time.perf_counter()
    _assert_refused_and_untouched(photo, sc, "elements")
    assert time.perf_counter() - t0 < 10


def test_update_that_would_outgrow_the_limit_is_not_written(photo, monkeypatch):
    sc = photo.with_name("IMG_1.xmp")
    quoted = PACKET.format(inner="").replace('xmp:Rating="3"', "xmp:Rating='3' xmp:Note='" + '"' * 400 + "'")
    sc.write_text(quoted, "utf-8")
    monkeypatch.setattr(sidecar, "MAX_SIDECAR_BYTES", sc.stat().st_size + 100)  # "&quot;" is 6 bytes
    assert read_sidecar(photo).rating == 3
    before = sc.read_bytes()
    with pytest.raises(SidecarError, match="would be"):
        write_sidecar(photo, rating=5)
    assert sc.read_bytes() == before


def test_size_limit_is_far_above_a_heavy_darktable_history(photo):
    """darktable writes one rdf:li per history step (params hex or gz-base64 in attributes);
    400 steps of 2 KB parameters is ~1 MB, a heavy edit.  It reads and rates quickly."""
    items = "".join(f'<rdf:li darktable:num="{i}" darktable:operation="exposure" darktable:enabled="1" '
                    f'darktable:params="{"0f" * 1000}" darktable:multi_name=""/>' for i in range(400))
    dt = PACKET.format(inner=f'<darktable:history xmlns:darktable="http://darktable.sf.net/"><rdf:Seq>{items}'
                             f'</rdf:Seq></darktable:history>')
    sc = photo.with_name("IMG_1.JPG.xmp")
    sc.write_text(dt, "utf-8")
    assert sc.stat().st_size * 10 < sidecar.MAX_SIDECAR_BYTES
    t0 = time.perf_counter()
    write_sidecar(photo, rating=1)
    assert read_sidecar(photo).rating == 1
    assert time.perf_counter() - t0 < 5
    assert sc.read_text("utf-8").count('darktable:operation="exposure"') == 400


def test_fifo_where_a_sidecar_would_go_is_not_replaced(photo):
    sc = photo.with_name("IMG_1.xmp")
    os.mkfifo(sc)
    assert promptly(read_sidecar, photo, fifo=sc).rating is None
    with pytest.raises(SidecarError, match="not a regular file"):
        promptly(functools.partial(write_sidecar, photo, rating=2), fifo=sc)
    assert Path(sc).is_fifo()
    with pytest.raises(SidecarError, match="not a regular file"):
        promptly(sidecar.read_sidecar_file, sc, fifo=sc)


def test_longest_photo_name_has_no_darktable_sidecar_and_no_traceback(tmp_path):
    photo = tmp_path / ("L" * 251 + ".jpg")  # 255 bytes: IMG.jpg.xmp cannot exist
    photo.write_bytes(b"\xff\xd8\xff\xd9")
    assert read_sidecar(photo).rating is None
    write_sidecar(photo, rating=2)  # the Adobe name (251 + 4 bytes) fits
    assert read_sidecar(photo).rating == 2
    photo.with_suffix(".xmp").unlink()
    with pytest.raises(SidecarError):
        write_sidecar(photo, rating=2, style="darktable")


# ----------------------------------------------------------------- a TIFF of many pages


def test_many_page_tiff_reads_its_first_page_only(tmp_path, monkeypatch):
    pages = [Image.new("RGB", (16, 12), (i, 255 - i, 0)) for i in range(300)]
    p = tmp_path / "pages.tif"
    pages[0].save(p, save_all=True, append_images=pages[1:])
    with Image.open(p) as im:
        assert im.n_frames == 300
    seen: list[int] = []
    real = TiffImagePlugin.TiffImageFile._seek

    def spy(self, frame):
        seen.append(frame)
        return real(self, frame)

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_seek", spy)
    im = loaders.open_image(p)
    assert im.getpixel((0, 0)) == (0, 255, 0) and im.size == (16, 12)
    exif.read_any_exif(p)
    exif.exif_thumbnail(p)
    assert seen and set(seen) == {0}, f"later pages were read: {sorted(set(seen))[:5]}..."


@pytest.mark.parametrize("name", ["é" * 125 + ".xmp", "L" * 251 + ".xmp", os.fsdecode(b"\xe9" * 250 + b".xmp")])
def test_atomic_write_fits_its_temporary_name_beside_a_longest_name(tmp_path, name):
    target = tmp_path / name
    fileops.atomic_write(target, b"one")
    fileops.atomic_write(target, b"two")  # replacing goes through the temporary name too
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == [name]
