"""XMP written into JPEG, TIFF and DNG files (what Lightroom reads for them): lossless,
merged with what other programs wrote, verified, and never a damaged original."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, make_photo
from photocull.cli import main
from photocull.config import Settings
from photocull.cull import leftovers
from photocull.media import embedded
from photocull.media.embedded import EmbedError, embed_marks, read_embedded, write_embedded
from photocull.media.listing import list_images
from photocull.media.sidecar import find_sidecar, read_sidecar

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed")

# A packet as Lightroom leaves it inside a JPEG: the xpacket wrapper, develop settings,
# keywords, a namespace we don't know, and the padding whitespace.
LIGHTROOM_PACKET = (
    "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
    '    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
    '    xmlns:acme="http://example.com/acme/1.0/"\n'
    '    xmp:Rating="2" crs:Exposure2012="+0.35" acme:Secret="kept">\n'
    '   <dc:subject><rdf:Bag><rdf:li>wedding</rdf:li><rdf:li>Anna</rdf:li></rdf:Bag></dc:subject>\n'
    "  </rdf:Description>\n"
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n" + " " * 2048 + "\n<?xpacket end='w'?>"
).encode("utf-8")


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def pixels(p: Path) -> np.ndarray:
    with Image.open(p) as im:
        return np.asarray(im.convert("RGB") if im.mode == "P" else im).copy()


def xmp_desc(p: Path) -> dict:
    """What Pillow's own XMP reader finds (needs defusedxml)."""
    with Image.open(p) as im:
        return im.getxmp()["xmpmeta"]["RDF"]["Description"]


def jpeg_segments(data: bytes) -> tuple[list[bytes], bytes]:
    """(the segments before the first SOS, everything from the SOS on)."""
    assert data[:2] == b"\xff\xd8"
    pos, segs = 2, []
    while data[pos + 1] != 0xDA:
        n = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segs.append(data[pos:pos + 2 + n])
        pos += 2 + n
    return segs, data[pos:]


def exiftool_tags(p: Path, *tags: str) -> dict:
    out = subprocess.run([EXIFTOOL, "-j", "-n", *tags, str(p)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def exiftool_warnings(p: Path) -> list[str]:
    """exiftool's checks of the file's structure and metadata (-validate)."""
    out = subprocess.run([EXIFTOOL, "-j", "-a", "-validate", "-warning", str(p)],
                         capture_output=True, text=True, check=True).stdout
    w = json.loads(out)[0].get("Warning", [])
    return sorted(w if isinstance(w, list) else [w])


def jpeg_with_exif_and_xmp(path: Path, xmp: bytes | None = LIGHTROOM_PACKET, seed: int = 0) -> Path:
    make_photo(path, seed=seed)
    with Image.open(path) as im:
        exif = Image.Exif()
        exif[0x010F] = "Photocull"  # Make
        exif[0x0110] = "Test Camera"  # Model
        kw = {"exif": exif.tobytes(), "quality": 90}
        if xmp is not None:
            kw["xmp"] = xmp
        buf = io.BytesIO()
        im.save(buf, "JPEG", **kw)
    path.write_bytes(buf.getvalue())
    return path


# ----------------------------------------------------------------------------- JPEG


def test_jpeg_without_xmp_gets_a_segment_and_nothing_else_changes(tmp_path):
    p = make_photo(tmp_path / "IMG_1.JPG", size=(640, 480))
    before, px = p.read_bytes(), pixels(p)
    assert embed_marks(p, 1, 3, "Red") is True
    after = p.read_bytes()
    old_segs, old_scan = jpeg_segments(before)
    new_segs, new_scan = jpeg_segments(after)
    assert new_scan == old_scan  # the entropy-coded data, byte for byte
    xmp = [s for s in new_segs if s[4:].startswith(embedded.JPEG_XMP_ID)]
    assert len(xmp) == 1 and [s for s in new_segs if s not in xmp] == old_segs
    assert new_segs.index(xmp[0]) == 1  # after the JFIF APP0
    np.testing.assert_array_equal(pixels(p), px)
    d = xmp_desc(p)
    assert (d["Rating"], d["Label"], d["Pick"]) == ("3", "Red", "1")
    sd = read_embedded(p)
    assert (sd.rating, sd.label, sd.pick) == (3, "Red", 1)
    assert find_sidecar(p) is None  # the embedded writer never makes a sidecar


def test_jpeg_merges_into_the_packet_another_program_wrote(tmp_path):
    p = jpeg_with_exif_and_xmp(tmp_path / "LR.jpg")
    before, px = p.read_bytes(), pixels(p)
    assert embed_marks(p, -1, 2, "Blue")
    old_segs, old_scan = jpeg_segments(before)
    new_segs, new_scan = jpeg_segments(p.read_bytes())
    assert new_scan == old_scan
    is_xmp = lambda s: s[4:].startswith(embedded.JPEG_XMP_ID)  # noqa: E731
    assert [s for s in new_segs if not is_xmp(s)] == [s for s in old_segs if not is_xmp(s)]  # Exif kept
    assert [i for i, s in enumerate(new_segs) if is_xmp(s)] == [i for i, s in enumerate(old_segs) if is_xmp(s)]
    np.testing.assert_array_equal(pixels(p), px)
    d = xmp_desc(p)
    assert d["Rating"] == "-1" and d["Label"] == "Blue" and d["RatingBeforeReject"] == "2"
    assert d["Exposure2012"] == "+0.35" and d["Secret"] == "kept"
    assert d["subject"]["Bag"]["li"] == ["wedding", "Anna"]
    packet = embedded.read_embedded_packet(p)
    assert packet.startswith(b"<?xpacket begin=") and packet.rstrip().endswith(b"<?xpacket end='w'?>")
    assert b'xmlns:acme="http://example.com/acme/1.0/"' in packet  # its own prefix
    with Image.open(p) as im:
        assert im.getexif()[0x0110] == "Test Camera"


@needs_exiftool
def test_exiftool_reads_the_embedded_marks(tmp_path):
    p = jpeg_with_exif_and_xmp(tmp_path / "E.jpg")
    warnings = exiftool_warnings(p)  # Pillow's Exif lacks a few tags exiftool wants
    embed_marks(p, 1, 4, "Yellow")
    assert exiftool_warnings(p) == warnings
    tags = exiftool_tags(p, "-XMP:Rating", "-XMP:Label", "-XMP-crs:Exposure2012", "-EXIF:Model")
    assert (tags["Rating"], tags["Label"], tags["Exposure2012"], tags["Model"]) == (4, "Yellow", "+0.35", "Test Camera")
    embed_marks(p, -1, 4, "Yellow")
    assert exiftool_tags(p, "-XMP:Rating")["Rating"] == -1


def _mpo(path: Path, xmp: bytes | None) -> Path:
    """A two-picture JPEG (as cameras and Ultra HDR write) as Pillow saves it: JFIF, the MPF
    index (APP2), then the XMP, if any."""
    rng = np.random.default_rng(5)
    first = Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    second = Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
    first.save(path, "MPO", save_all=True, append_images=[second], **({"xmp": xmp} if xmp else {}))
    return path


def frames(p: Path) -> list[np.ndarray]:
    with Image.open(p) as im:
        out = []
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("RGB")).copy())
        return out


@pytest.mark.parametrize("xmp", [None, LIGHTROOM_PACKET], ids=["new-xmp", "xmp-after-mpf"])
def test_a_multi_picture_jpeg_keeps_its_other_pictures(tmp_path, xmp):
    p = _mpo(tmp_path / "IMG_MP.jpg", xmp)
    before = frames(p)
    assert len(before) == 2
    assert embed_marks(p, 1, 5, "Red")
    after = frames(p)
    assert len(after) == 2 and all((a == b).all() for a, b in zip(before, after))
    assert read_embedded(p).rating == 5


def test_xmp_after_the_mpf_index_may_not_grow(tmp_path):
    p = _mpo(tmp_path / "IMG_MP.jpg", b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    before = p.read_bytes()
    with pytest.raises(EmbedError, match="multi-picture"):
        embed_marks(p, 1, 5, "Red")
    assert p.read_bytes() == before


def test_a_packet_too_big_for_one_jpeg_segment_is_refused(tmp_path):
    big = LIGHTROOM_PACKET.replace(b"Anna</rdf:li>", b"Anna</rdf:li><rdf:li>" + b"k" * 63_000 + b"</rdf:li>")
    big = big.replace(b" " * 2048, b"")
    p = jpeg_with_exif_and_xmp(tmp_path / "big.jpg", xmp=big)
    before = p.read_bytes()
    assert len(embedded.read_embedded_packet(p)) < embedded.MAX_JPEG_PACKET
    with pytest.raises(EmbedError, match="more than one JPEG segment holds"):
        write_embedded(p, rating=5, photocull={"Note": "x" * 2000})
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.jpg"]


def test_nothing_to_change_leaves_the_file_alone(tmp_path):
    p = make_photo(tmp_path / "a.jpg")
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    assert embed_marks(p, 0, 0, None) is False  # no XMP, nothing to say
    assert embed_marks(p, 0, 2, None) is True
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    assert embed_marks(p, 0, 2, None) is False  # already says so
    assert p.stat().st_mtime_ns == 1_000_000_000


def test_mode_is_kept_mtime_is_now_and_a_link_stays_a_link(tmp_path):
    real = make_photo(tmp_path / "real" / "a.jpg")
    os.chmod(real, 0o640)
    os.utime(real, (1_000_000, 1_000_000))
    link = tmp_path / "a.jpg"
    link.symlink_to(real)
    embed_marks(link, 0, 5, None)
    assert link.is_symlink() and read_embedded(real).rating == 5
    assert real.stat().st_mode & 0o777 == 0o640
    assert real.stat().st_mtime > time.time() - 60  # the file changed: Lightroom and backups must see it


def test_a_copy_that_fails_its_check_never_replaces_the_photo(tmp_path, monkeypatch):
    p = make_photo(tmp_path / "a.jpg")
    before = p.read_bytes()
    real_pieces = embedded._jpeg_pieces

    def damaging(lay, packet):  # a segment other than the XMP comes out changed
        head, *rest = real_pieces(lay, packet)
        return [head.replace(b"JFIF", b"JFXX"), *rest]

    monkeypatch.setattr(embedded, "_jpeg_pieces", damaging)
    with pytest.raises(EmbedError, match="failed its check"):
        embed_marks(p, 0, 4, None)
    monkeypatch.setattr(embedded, "_jpeg_pieces", real_pieces)

    def flipping(out, data):  # the disk hands back other bytes than were written
        out.write(data[:-1] + bytes([data[-1] ^ 1]) if len(data) > 1000 else data)

    monkeypatch.setattr(embedded, "_write_chunk", flipping)
    with pytest.raises(EmbedError, match="does not read back"):
        embed_marks(p, 0, 4, None)
    assert p.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir()] == ["a.jpg"]


def test_a_photo_changed_meanwhile_is_left_alone(tmp_path, monkeypatch):
    p = make_photo(tmp_path / "a.jpg")
    real = embedded._write_chunk

    def touching(out, data):
        os.utime(p, ns=(5, 5))
        real(out, data)

    monkeypatch.setattr(embedded, "_write_chunk", touching)
    with pytest.raises(EmbedError, match="changed on disk"):
        embed_marks(p, 0, 4, None)
    assert read_embedded(p).rating is None
    assert [x.name for x in tmp_path.iterdir()] == ["a.jpg"]


def test_not_a_jpeg_is_refused(tmp_path):
    p = tmp_path / "fake.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 5)  # truncated
    with pytest.raises(EmbedError):
        embed_marks(p, 0, 3, None)
    assert p.read_bytes()[:4] == b"\xff\xd8\xff\xe0"


# ----------------------------------------------------------------------------- TIFF and DNG


def _tiff(path: Path, byteorder: str, xmp: bytes | None = None, xmp_type: str = "B") -> Path:
    import tifffile

    rgb = np.asarray(Image.open(make_photo(path.with_suffix(".png"), size=(96, 64))))
    path.with_suffix(".png").unlink()
    extratags = [(700, xmp_type, len(xmp), xmp, True)] if xmp is not None else []
    tifffile.imwrite(path, rgb, byteorder=byteorder, extratags=extratags, photometric="rgb",
                     description="a photo")
    return path


@pytest.mark.parametrize("byteorder", ["<", ">"], ids=["II", "MM"])
def test_tiff_without_xmp_gets_a_new_ifd0_and_keeps_every_byte(tmp_path, byteorder):
    p = _tiff(tmp_path / "scan.tif", byteorder)
    before, px = p.read_bytes(), pixels(p)
    assert embed_marks(p, 1, 2, None, pick_as="stars:4")
    after = p.read_bytes()
    assert after[:4] == before[:4] and after[8:len(before)] == before[8:]  # only the IFD0 offset changed
    np.testing.assert_array_equal(pixels(p), px)
    d = xmp_desc(p)
    assert (d["Rating"], d["Pick"]) == ("4", "1")  # stars:4 shows the pick as (at least) 4 stars
    with Image.open(p) as im:
        assert im.tag_v2[270] == "a photo" and 700 in im.tag_v2
    # again: the packet that ends the file is rewritten there; the file does not grow each time
    embed_marks(p, 0, 2, None)
    size = p.stat().st_size
    embed_marks(p, 1, 2, None)
    embed_marks(p, 0, 2, None)
    assert p.stat().st_size == size and read_embedded(p).rating == 2
    np.testing.assert_array_equal(pixels(p), px)


@pytest.mark.parametrize("byteorder,xmp_type", [("<", "B"), (">", "B"), ("<", "s")],
                         ids=["II-byte", "MM-byte", "II-undefined"])
def test_tiff_with_xmp_is_merged_in_place_or_appended(tmp_path, byteorder, xmp_type):
    import tifffile

    t = {"B": 1, "s": 7}[xmp_type]
    p = _tiff(tmp_path / "lr.tif", byteorder, LIGHTROOM_PACKET, "B" if xmp_type == "B" else "s")
    if xmp_type == "s":  # tifffile writes "s" as ASCII: make it UNDEFINED (7), as some programs do
        with tifffile.TiffFile(p) as tf:
            entry = tf.pages[0].tags[700].offset
        data = bytearray(p.read_bytes())
        data[entry + 2:entry + 4] = struct.pack(byteorder + "H", 7)
        p.write_bytes(bytes(data))
    before, px = p.read_bytes(), pixels(p)

    def xmp_tag():
        with tifffile.TiffFile(p) as tf:
            tag = tf.pages[0].tags[700]
            return tag.dtype, tag.valueoffset, tag.count

    typ, at, n = xmp_tag()
    assert typ == t
    assert embed_marks(p, -1, 3, "Green")  # smaller than Lightroom's padded packet: in place, padded
    after = p.read_bytes()
    assert xmp_tag() == (t, at, n)  # the same tag, the same place, the same size
    assert after[:at] == before[:at] and after[at + n:] == before[at + n:]  # nothing else changed
    np.testing.assert_array_equal(pixels(p), px)
    d = xmp_desc(p)
    assert (d["Rating"], d["Label"], d["RatingBeforeReject"], d["Exposure2012"]) == ("-1", "Green", "3", "+0.35")
    # one that no longer fits goes to the end of the file; everything before it stays
    write_embedded(p, photocull={"Note": "n" * 5000})
    again = p.read_bytes()
    assert xmp_tag()[1] >= len(after) and again[at + n:len(after)] == after[at + n:]
    assert read_embedded(p).photocull["Note"] == "n" * 5000 and read_embedded(p).rating == -1
    np.testing.assert_array_equal(pixels(p), px)


def test_bigtiff_is_refused_clearly(tmp_path):
    import tifffile

    p = tmp_path / "big.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint8), bigtiff=True)
    before = p.read_bytes()
    with pytest.raises(EmbedError, match="BigTIFF"):
        embed_marks(p, 0, 3, None)
    assert p.read_bytes() == before


def test_dng_keeps_its_raw_data(tmp_path):
    rawpy = pytest.importorskip("rawpy")
    pytest.importorskip("pidng")
    from test_formats import astronaut, write_dng

    p = write_dng(tmp_path / "IMG_7.DNG", astronaut()[:128, :192])
    before = p.read_bytes()
    warnings = exiftool_warnings(p) if EXIFTOOL else None  # pidng's DNG has a duplicate tag
    with rawpy.imread(str(p)) as r:
        raw0 = r.raw_image.copy()
    assert embed_marks(p, 1, 3, "Purple")
    after = p.read_bytes()
    assert after[:4] == before[:4] and after[8:len(before)] == before[8:]
    with rawpy.imread(str(p)) as r:
        np.testing.assert_array_equal(r.raw_image, raw0)
    sd = read_embedded(p)
    assert (sd.rating, sd.label, sd.pick) == (3, "Purple", 1)
    if EXIFTOOL:
        tags = exiftool_tags(p, "-XMP:Rating", "-XMP:Label", "-EXIF:Model", "-DNGVersion")
        assert (tags["Rating"], tags["Label"], tags["Model"]) == (3, "Purple", "Photocull Test Camera")
        assert tags["DNGVersion"] == "1 4 0 0" and exiftool_warnings(p) == warnings


# ----------------------------------------------------------------------------- marks


def test_pick_as_and_reject_keep_the_stars():
    m = embedded.xmp_marks
    assert m(1, 2, None) == dict(rating=2, pick=1, label=None, photocull={"RatingBeforeReject": None})
    assert m(1, 2, None, "label:green")["label"] == "Green"
    assert m(1, 2, "Red", "label:Green")["label"] == "Red"  # the user's own label is never overwritten
    assert m(0, 2, None, "label:Green")["label"] is None
    assert m(1, 2, None, "stars:4")["rating"] == 4 and m(1, 5, None, "stars:4")["rating"] == 5
    assert m(0, 2, None, "stars:4")["rating"] == 2
    rej = m(-1, 3, "Red", "stars:4")
    assert (rej["rating"], rej["label"], rej["photocull"]) == (-1, "Red", {"RatingBeforeReject": "3"})
    for bad in ("label:", "stars:0", "stars:9", "green", "label:<x>"):
        with pytest.raises(ValueError):
            embedded.parse_pick_as(bad)
    assert str(embedded.parse_pick_as(" Stars:3 ")) == "stars:3"


def test_settings_have_the_option_off_by_default(tmp_path):
    s = Settings.load(tmp_path / "missing.json")
    assert s.embed_xmp is False and s.pick_as == "none"
    s.embed_xmp, s.pick_as = True, "label:Green"
    s.save(tmp_path / "s.json")
    s2 = Settings.load(tmp_path / "s.json")
    assert (s2.embed_xmp, s2.pick_as) == (True, "label:Green")


def test_rate_embed_writes_the_file_and_the_sidecar_and_unreject_restores_stars(tmp_path, capsys):
    p = jpeg_with_exif_and_xmp(tmp_path / "IMG_1.jpg")
    px = pixels(p)
    assert main(["rate", str(p), "--stars", "3", "--label", "red"]) == 0
    assert read_embedded(p).rating == 2  # without --embed the file is not touched
    assert main(["rate", str(p), "--reject", "--embed"]) == 0
    sd = read_embedded(p)
    assert (sd.rating, sd.pick, sd.label, sd.photocull["RatingBeforeReject"]) == (-1, -1, "Red", "3")
    assert read_sidecar(p).rating == -1  # the sidecar too
    assert main(["rate", str(p), "--unflag", "--embed"]) == 0
    sd = read_embedded(p)
    assert (sd.rating, sd.pick, sd.label, sd.photocull) == (3, None, "Red", {})  # the stars are back
    assert read_sidecar(p).rating == 3
    assert main(["rate", str(p), "--pick", "--embed", "--pick-as", "stars:5", "--label", "none"]) == 0
    assert (read_embedded(p).rating, read_sidecar(p).rating) == (5, 3)  # the catalog keeps 3 stars
    assert "3 stars" in capsys.readouterr().out
    np.testing.assert_array_equal(pixels(p), px)
    assert xmp_desc(p)["Exposure2012"] == "+0.35"


def test_rate_embed_falls_back_to_the_sidecar_for_other_files(tmp_path, capsys):
    jpg = make_photo(tmp_path / "a.jpg")
    png = make_photo(tmp_path / "b.png")
    jpg_before, png_before = sha(jpg), sha(png)
    assert main(["rate", str(jpg), str(png), "--stars", "4", "--embed", "--no-sidecar"]) == 0
    err = capsys.readouterr().err
    assert read_embedded(jpg).rating == 4 and find_sidecar(jpg) is None  # in the file instead
    assert sha(png) == png_before and read_sidecar(png).rating == 4  # the sidecar instead
    assert f"{png}: not written into the file (PNG" in err and "its marks are in the sidecar" in err
    assert "wrote XMP into 1 file" in err and sha(jpg) != jpg_before
    with pytest.raises(SystemExit, match="--pick-as"):
        main(["rate", str(jpg), "--pick", "--pick-as", "stars:3"])
    with pytest.raises(SystemExit, match="pick_as must be"):
        main(["rate", str(jpg), "--pick", "--embed", "--pick-as", "stars:7"])


def test_rate_embed_writes_a_dng_twin_too(tmp_path):
    pytest.importorskip("pidng")
    pytest.importorskip("rawpy")
    from test_formats import astronaut, write_dng

    jpg = make_photo(tmp_path / "IMG_9.JPG")
    dng = write_dng(tmp_path / "IMG_9.DNG", astronaut()[:64, :64])
    assert main(["rate", str(jpg), "--stars", "2", "--embed"]) == 0
    assert read_embedded(jpg).rating == 2 and read_embedded(dng).rating == 2


def test_rate_help_says_the_original_changes(capsys):
    with pytest.raises(SystemExit):
        main(["rate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--embed" in out and "CHANGES THE ORIGINAL FILE" in out and "never its pixels" in out


# ----------------------------------------------------------------------------- kill -9


DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from photocull.media import embedded

    real = embedded._write_chunk

    def slow(out, data):  # 16 KiB at a time, slowly: a kill lands mid-file
        for i in range(0, len(data), 1 << 14):
            real(out, data[i:i + (1 << 14)])
            out.flush()
            time.sleep(0.004)

    embedded._write_chunk = slow
    print("started", flush=True)
    for p in sorted(Path(sys.argv[1]).glob("*.jpg")):
        embedded.embed_marks(p, 1, 4, "Green")
        print("done", p.name, flush=True)
""")


@pytest.fixture(scope="module")
def noisy_jpegs(tmp_path_factory):
    """Eight ~1 MB JPEGs (noise compresses badly), their hashes and pixels."""
    d = tmp_path_factory.mktemp("noisy")
    rng = np.random.default_rng(3)
    out = {}
    for i in range(8):
        p = d / f"IMG_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (700, 900, 3), dtype=np.uint8)).save(p, quality=92)
        out[p.name] = (sha(p), pixels(p))
    return d, out


@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_kill_during_embedding_never_damages_a_photo(noisy_jpegs, tmp_path, delay):
    master, originals = noisy_jpegs
    d = tmp_path / "shoot"
    shutil.copytree(master, d)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(d)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "embedding finished before the kill: slow it down"
    changed = 0
    for name, (h, px) in originals.items():
        p = d / name
        assert p.is_file(), f"{name} went missing"
        if sha(p) != h:  # the new file, complete: same pixels, the marks inside
            changed += 1
            np.testing.assert_array_equal(pixels(p), px)
            assert read_embedded(p).rating == 4
        else:
            np.testing.assert_array_equal(pixels(p), px)
    assert changed < len(originals)  # really killed midway
    assert changed > 0 or delay < 0.5, "killed before the first photo was done: a longer delay is needed here"
    # a half-written temporary file is never taken for a photo, and is swept later
    assert sorted(p.name for p in list_images(d)) == sorted(originals)
    strays = [p for p in d.iterdir() if p.name not in originals]
    assert all(embedded.TEMP_NAME.fullmatch(p.name) for p in strays), strays
    for p in strays:
        os.utime(p, (time.time() - 3600,) * 2)
    assert main(["rate", *(str(d / n) for n in sorted(originals)), "--pick", "--stars", "4",
                 "--label", "green", "--embed", "--no-sidecar"]) == 0
    assert sorted(p.name for p in d.iterdir()) == sorted(originals)
    for name, (_, px) in originals.items():
        np.testing.assert_array_equal(pixels(d / name), px)
        assert read_embedded(d / name).rating == 4
    assert leftovers.remove_stale(d, embedded.TEMP_NAME, older_than=0) == []


def test_embedding_keeps_the_catalogs_scores_of_the_rewritten_file(tmp_path):
    """The file's size and mtime change, its pixels don't: what the catalog stored for it
    (scores, analyses, tiny grey) is carried over, so reopening does not score it again."""
    from photocull.cull import marks as cull_marks
    from photocull.cull.catalog import Catalog, Marks
    from photocull.scoring import ScoreResult

    photo = jpeg_with_exif_and_xmp(tmp_path / "IMG_1.jpg", xmp=None)
    other = jpeg_with_exif_and_xmp(tmp_path / "IMG_2.jpg", xmp=None, seed=1)
    probs = np.full(10, 0.1, np.float32)
    with Catalog(tmp_path / "catalog.sqlite") as cat:
        cat.store_results([ScoreResult(photo, probs), ScoreResult(other, probs)], "model-a")
        cat.store_tiny_grays([(photo, np.zeros((8, 8), np.uint8))])
        before = os.stat(photo)
        rep = cull_marks.embed_marks(cat, [(photo, Marks(rating=4), [])])
        assert rep.written == [photo]
        after = os.stat(photo)
        assert (after.st_size, after.st_mtime) != (before.st_size, before.st_mtime)
        assert set(cat.lookup([photo, other], "model-a")) == {str(photo), str(other)}
        assert cat.tiny_gray(photo, 8) is not None
        assert read_embedded(photo).rating == 4
        # a file changed by someone else is not covered: only what embed_marks rewrote is carried
        with open(other, "ab") as f:
            f.write(b"\0")
        cull_marks.embed_marks(cat, [(photo, Marks(rating=4), [])])  # already holds it: untouched
        assert set(cat.lookup([photo, other], "model-a")) == {str(photo)}


# ----------------------------------------------------------------------------- reading marks back

def _packet(attrs: str) -> bytes:
    return LIGHTROOM_PACKET.replace(b'xmp:Rating="2"', attrs.encode())


def test_marks_lightroom_wrote_inside_the_file_are_read_when_nothing_else_says(tmp_path, caplog):
    """Lightroom (and Photo Mechanic, digiKam, some cameras) keep a JPEG's rating and label
    inside the file: photocull reads them for photos it holds no marks for, after the
    catalog and the sidecar; a camera's "Rating 0" and a broken packet are no marks."""
    from photocull.cull.catalog import Catalog, Marks
    from photocull.cull.marks import load_marks
    from photocull.media.sidecar import write_sidecar

    lr = jpeg_with_exif_and_xmp(tmp_path / "lr.jpg")  # xmp:Rating="2"
    label = jpeg_with_exif_and_xmp(tmp_path / "label.jpg", _packet('xmp:Rating="5" xmp:Label="Red"'), seed=1)
    reject = jpeg_with_exif_and_xmp(tmp_path / "reject.jpg", _packet('xmp:Rating="-1"'), seed=2)
    camera0 = jpeg_with_exif_and_xmp(tmp_path / "camera0.jpg", _packet('xmp:Rating="0"'), seed=3)
    plain = jpeg_with_exif_and_xmp(tmp_path / "plain.jpg", xmp=None, seed=4)
    broken = jpeg_with_exif_and_xmp(tmp_path / "broken.jpg", b"<x:xmpmeta><rdf:RDF", seed=5)
    with_sidecar = jpeg_with_exif_and_xmp(tmp_path / "side.jpg", seed=6)
    write_sidecar(with_sidecar, rating=4)
    unrated_here = jpeg_with_exif_and_xmp(tmp_path / "unrated.jpg", seed=7)
    rated_here = jpeg_with_exif_and_xmp(tmp_path / "rated.jpg", seed=8)
    files = [lr, label, reject, camera0, plain, broken, with_sidecar, unrated_here, rated_here]
    with Catalog(tmp_path / "catalog.sqlite") as cat:
        cat.set_many_marks([(unrated_here, Marks()), (rated_here, Marks(flag=1, rating=3))])
        got = load_marks(files, cat)
        assert got[str(lr)] == Marks(rating=2)
        assert got[str(label)] == Marks(rating=5, label="Red")
        assert got[str(reject)].flag == -1
        assert str(camera0) not in got and str(plain) not in got and str(broken) not in got
        assert got[str(with_sidecar)] == Marks(rating=4)  # the sidecar's say comes first
        assert got[str(unrated_here)] == Marks()  # un-rated in photocull: a mark too
        assert got[str(rated_here)] == Marks(flag=1, rating=3)
        assert "broken.jpg" in caplog.text
        # the window reads them in a thread instead
        quick = load_marks(files, cat, embedded=False)
        assert str(lr) not in quick and quick[str(with_sidecar)] == Marks(rating=4)


def test_the_quick_look_for_xmp_never_misses_a_packet(tmp_path):
    """Opening a shoot looks at each JPEG's headers only: it must say "maybe" for every file
    that holds XMP (after a large EXIF block too) and "no" only for headers without it."""
    from photocull.media.embedded import may_hold_xmp

    plain = jpeg_with_exif_and_xmp(tmp_path / "plain.jpg", xmp=None)
    assert not may_hold_xmp(plain)
    assert may_hold_xmp(jpeg_with_exif_and_xmp(tmp_path / "lr.jpg"))
    # XMP after a 60 KB EXIF block (beyond the first read)
    make_photo(tmp_path / "big.jpg", seed=3)
    with Image.open(tmp_path / "big.jpg") as im:
        exif = Image.Exif()
        exif[0x010E] = "x" * 60000  # ImageDescription
        buf = io.BytesIO()
        im.save(buf, "JPEG", exif=exif.tobytes(), xmp=LIGHTROOM_PACKET)
    (tmp_path / "big.jpg").write_bytes(buf.getvalue())
    assert may_hold_xmp(tmp_path / "big.jpg") and read_embedded(tmp_path / "big.jpg").rating == 2
    # not a JPEG inside, cut short, or not there: the proper reader decides
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "cut.jpg").write_bytes(plain.read_bytes()[:300])
    assert may_hold_xmp(tmp_path / "fake.jpg") and may_hold_xmp(tmp_path / "cut.jpg")
    assert may_hold_xmp(tmp_path / "gone.jpg")
