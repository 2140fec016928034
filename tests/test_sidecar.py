"""XMP sidecars: round trips, other programs' tags survive, both names, atomic saves, hostile XML."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from photocull.media import sidecar
from photocull.media.sidecar import SidecarData, SidecarError, find_sidecar, read_sidecar, sidecar_candidates, write_sidecar

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")

LIGHTROOM = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000 1.000000, 0000/00/00-00:00:00        ">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:acme="http://example.com/acme/ns/2.1/"
   xmp:ModifyDate="2023-06-01T10:12:13+02:00"
   xmp:CreatorTool="Adobe Photoshop Lightroom Classic 12.3 (Macintosh)"
   xmp:Rating="2"
   xmp:Label="Yellow"
   tiff:Make="Canon"
   aux:Lens="EF24-70mm f/2.8L II USM"
   photoshop:DateCreated="2023-06-01T10:12:13.42"
   xmpMM:InstanceID="xmp.iid:5d1c2f0e-1b2a-4c8e-9f1d-0a2b3c4d5e6f"
   crs:Version="15.4"
   crs:ProcessVersion="11.0"
   crs:WhiteBalance="As Shot"
   crs:Exposure2012="+0.35"
   crs:Contrast2012="+12"
   crs:HasCrop="False"
   crs:ToneCurveName2012="Linear"
   acme:Reviewed="yes &amp; &quot;done&quot;">
   <crs:ToneCurvePV2012>
    <rdf:Seq>
     <rdf:li>0, 0</rdf:li>
     <rdf:li>255, 255</rdf:li>
    </rdf:Seq>
   </crs:ToneCurvePV2012>
   <xmpMM:History>
    <rdf:Seq>
     <rdf:li
      stEvt:action="derived"
      stEvt:parameters="converted from image/x-canon-cr2 to image/dng"/>
     <rdf:li rdf:parseType="Resource">
      <stEvt:action>saved</stEvt:action>
      <stEvt:instanceID>xmp.iid:5d1c2f0e-1b2a-4c8e-9f1d-0a2b3c4d5e6f</stEvt:instanceID>
      <stEvt:when>2023-06-02T09:00:00+02:00</stEvt:when>
      <stEvt:softwareAgent>Adobe Photoshop Lightroom Classic 12.3 (Macintosh)</stEvt:softwareAgent>
      <stEvt:changed>/metadata</stEvt:changed>
     </rdf:li>
    </rdf:Seq>
   </xmpMM:History>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>wedding</rdf:li>
     <rdf:li>Caf\u00e9 \u00dcbersee</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>people|Anna</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <!-- kept by hand -->
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
""" + " " * 2000 + """
<?xpacket end="w"?>"""

DARKTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
   exif:DateTimeOriginal="2023:06:01 10:12:13.000"
   xmp:Rating="1"
   xmpMM:DerivedFrom="IMG_1.JPG"
   darktable:import_timestamp="63822528000000000"
   darktable:change_timestamp="-1"
   darktable:xmp_version="5"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="2"
   darktable:iop_order_version="4">
   <darktable:colorlabels>
    <rdf:Seq>
     <rdf:li>0</rdf:li>
    </rdf:Seq>
   </darktable:colorlabels>
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="0000000000000000000000000000803f0000484200000000"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAZY0QVwggZ7CB6pfOygYtaVAyv"/>
     <rdf:li
      darktable:num="1"
      darktable:operation="colorin"
      darktable:enabled="1"
      darktable:modversion="7"
      darktable:params="gz48eJzjZhgFo2AU0AsAAAQwAAE="
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAZY0QVwggZ7CB6pfOygYtaVAyv"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Label="&lol9;"/></rdf:RDF></x:xmpmeta>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE x [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Label="&secret;"/></rdf:RDF></x:xmpmeta>
"""

MANAGED = {sidecar._RATING, sidecar._LABEL, sidecar._PICK}


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "IMG_1.JPG"
    p.write_bytes(b"\xff\xd8\xff\xd9")
    return p


def _elements(path, managed=MANAGED):
    """Every element in document order: (tag, attributes but ours, stripped text)."""
    root = ET.parse(path, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))).getroot()
    out = []
    for el in root.iter():
        if el.tag in managed:
            continue
        attrs = {k: v for k, v in el.attrib.items() if k not in managed and "photocull" not in k}
        out.append((str(el.tag), attrs, (el.text or "").strip()))
    return out


def _prefixed_attributes(text):
    return set(re.findall(r'\b([A-Za-z]+:[A-Za-z0-9_]+)="([^"]*)"', text))


# ----------------------------------------------------------------- round trips


def test_write_then_read_round_trip(photo):
    path = write_sidecar(photo, rating=4, label="Red", photocull={"mean": "6.12", "std": "1.40", "model": "nima-v2", "why": "blur, noise"})
    assert path == photo.with_name("IMG_1.xmp")
    got = read_sidecar(photo)
    assert (got.rating, got.label, got.pick) == (4, "Red", None)
    assert got.photocull == {"mean": "6.12", "std": "1.40", "model": "nima-v2", "why": "blur, noise"}
    assert got.path == path


def test_reject_is_rating_minus_one(photo):
    write_sidecar(photo, rating=-1)
    got = read_sidecar(photo)
    assert got.rating == -1 and got.pick == -1
    assert 'xmp:Rating="-1"' in photo.with_name("IMG_1.xmp").read_text("utf-8")


def test_update_rating_only_keeps_label_and_figures(photo):
    write_sidecar(photo, rating=2, label="Green", photocull={"mean": "5.0"})
    write_sidecar(photo, rating=5)
    got = read_sidecar(photo)
    assert (got.rating, got.label, got.photocull) == (5, "Green", {"mean": "5.0"})
    write_sidecar(photo, label=None)
    got = read_sidecar(photo)
    assert (got.rating, got.label) == (5, None)
    assert "Label" not in photo.with_name("IMG_1.xmp").read_text("utf-8")


def test_figures_merge_and_none_removes(photo):
    write_sidecar(photo, photocull={"mean": "5.0", "std": "1.0"})
    write_sidecar(photo, photocull={"mean": "6.5", "std": None, "model": "m1"})
    assert read_sidecar(photo).photocull == {"mean": "6.5", "model": "m1"}


def test_pick_lives_in_our_namespace_and_keeps_stars(photo):
    write_sidecar(photo, rating=3)
    write_sidecar(photo, pick=1)
    got = read_sidecar(photo)
    assert (got.pick, got.rating) == (1, 3)
    assert "Pick" not in got.photocull
    assert 'photocull:Pick="1"' in photo.with_name("IMG_1.xmp").read_text("utf-8")
    write_sidecar(photo, pick=None)
    got = read_sidecar(photo)
    assert (got.pick, got.rating) == (None, 3)


def test_reject_then_pick_unrejects_and_reject_drops_pick(photo):
    write_sidecar(photo, pick=1)
    write_sidecar(photo, pick=-1)
    got = read_sidecar(photo)
    assert (got.pick, got.rating) == (-1, -1)
    assert "Pick" not in photo.with_name("IMG_1.xmp").read_text("utf-8")
    write_sidecar(photo, pick=1)
    got = read_sidecar(photo)
    assert (got.pick, got.rating) == (1, 0)
    with pytest.raises(ValueError):
        write_sidecar(photo, rating=3, pick=-1)


def test_bad_arguments_refused_before_touching_the_file(photo):
    write_sidecar(photo, rating=1)
    before = photo.with_name("IMG_1.xmp").read_bytes()
    for kwargs in ({"rating": 6}, {"rating": -2}, {"rating": True}, {"label": "bad\x00"},
                   {"photocull": {"1bad key": "x"}}, {"photocull": {"Pick": "1"}}, {"style": "capture-one"}):
        with pytest.raises((ValueError, TypeError)):
            write_sidecar(photo, **kwargs)
    assert photo.with_name("IMG_1.xmp").read_bytes() == before


# ----------------------------------------------------------------- foreign files


def test_lightroom_sidecar_keeps_everything(photo):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(LIGHTROOM, "utf-8")
    before = read_sidecar(photo)
    assert (before.rating, before.label, before.pick) == (2, "Yellow", None)

    write_sidecar(photo, rating=4, photocull={"mean": "6.3"})

    new_text = sc.read_text("utf-8")
    assert _elements(sc) == _elements_of_text(LIGHTROOM)
    old_attrs = _prefixed_attributes(LIGHTROOM) - {("xmp:Rating", "2")}
    assert old_attrs <= _prefixed_attributes(new_text)  # same prefixes, same values
    for tag in ("<crs:ToneCurvePV2012>", "<xmpMM:History>", "<dc:subject>", "<rdf:Bag>",
                "<lr:hierarchicalSubject>", "<stEvt:softwareAgent>", "<!-- kept by hand -->"):
        assert tag in new_text
    assert 'xmlns:acme="http://example.com/acme/ns/2.1/"' in new_text  # unknown namespace, own prefix
    assert "ns0:" not in new_text and "ns1:" not in new_text
    assert new_text.startswith("<?xpacket begin=") and new_text.rstrip().endswith('<?xpacket end="w"?>')
    got = read_sidecar(photo)
    assert (got.rating, got.label, got.photocull) == (4, "Yellow", {"mean": "6.3"})


def _elements_of_text(text):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".xmp", delete=False, encoding="utf-8") as f:
        f.write(text)
    try:
        return _elements(f.name)
    finally:
        os.unlink(f.name)


def test_darktable_sidecar_keeps_history(photo):
    sc = photo.with_name("IMG_1.JPG.xmp")
    sc.write_text(DARKTABLE, "utf-8")
    write_sidecar(photo, rating=-1, label="Purple")
    new_text = sc.read_text("utf-8")
    assert _elements(sc) == _elements_of_text(DARKTABLE)
    assert _prefixed_attributes(DARKTABLE) - {("xmp:Rating", "1")} <= _prefixed_attributes(new_text)
    assert new_text.count('darktable:operation="') == 2
    assert "<darktable:history>" in new_text and "<darktable:colorlabels>" in new_text
    assert new_text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    got = read_sidecar(photo)
    assert (got.rating, got.pick, got.label) == (-1, -1, "Purple")


def test_element_form_properties_are_read_and_updated_in_place(photo):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        "<rdf:Description rdf:about='' xmlns:xmp='http://ns.adobe.com/xap/1.0/'>"
        "<xmp:Label>Blue</xmp:Label><xmp:Rating>3</xmp:Rating></rdf:Description></rdf:RDF></x:xmpmeta>",
        "utf-8",
    )
    assert (read_sidecar(photo).rating, read_sidecar(photo).label) == (3, "Blue")
    write_sidecar(photo, rating=1)
    text = sc.read_text("utf-8")
    assert "<xmp:Rating>1</xmp:Rating>" in text and "xmp:Rating=" not in text
    assert "<xmp:Label>Blue</xmp:Label>" in text


@pytest.mark.parametrize("value", ["garbage", "7", "-3", "", "nan", "0.5e9"])
def test_bad_foreign_rating_reads_as_none(photo, value):
    photo.with_name("IMG_1.xmp").write_text(
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        f"<rdf:Description xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmp:Rating='{value}' xmp:Label='Red'/>"
        "</rdf:RDF></x:xmpmeta>",
        "utf-8",
    )
    got = read_sidecar(photo)
    assert (got.rating, got.pick, got.label) == (None, None, "Red")


# ----------------------------------------------------------------- naming


def test_candidates_and_no_sidecar(photo):
    assert sidecar_candidates(photo) == [photo.with_name("IMG_1.xmp"), photo.with_name("IMG_1.JPG.xmp")]
    assert find_sidecar(photo) is None
    assert read_sidecar(photo) == SidecarData()


def test_existing_darktable_name_is_written_into(photo):
    photo.with_name("IMG_1.JPG.xmp").write_text(DARKTABLE, "utf-8")
    assert write_sidecar(photo, rating=5) == photo.with_name("IMG_1.JPG.xmp")
    assert not photo.with_name("IMG_1.xmp").exists()
    assert read_sidecar(photo).rating == 5


def test_existing_adobe_name_is_written_into_even_with_darktable_style(photo):
    photo.with_name("IMG_1.xmp").write_text(LIGHTROOM, "utf-8")
    assert write_sidecar(photo, rating=5, style="darktable") == photo.with_name("IMG_1.xmp")
    assert not photo.with_name("IMG_1.JPG.xmp").exists()


def test_style_picks_the_name_of_a_new_sidecar(tmp_path):
    a, b = tmp_path / "A.NEF", tmp_path / "B.NEF"
    assert write_sidecar(a, rating=1) == tmp_path / "A.xmp"
    assert write_sidecar(b, rating=1, style="darktable") == tmp_path / "B.NEF.xmp"
    assert read_sidecar(a).rating == 1 and read_sidecar(b).rating == 1


def test_upper_case_extension_is_found_and_kept(photo):
    upper = photo.with_name("IMG_1.XMP")
    upper.write_text(LIGHTROOM, "utf-8")
    assert sidecar_candidates(photo)[0] == upper
    assert find_sidecar(photo) == upper
    assert write_sidecar(photo, rating=3) == upper
    assert sorted(p.name for p in photo.parent.iterdir()) == ["IMG_1.JPG", "IMG_1.XMP"]
    assert read_sidecar(photo).rating == 3


def test_when_both_exist_the_darktable_name_wins(photo):
    photo.with_name("IMG_1.xmp").write_text(LIGHTROOM, "utf-8")  # rating 2
    photo.with_name("IMG_1.JPG.xmp").write_text(DARKTABLE, "utf-8")  # rating 1
    assert find_sidecar(photo) == photo.with_name("IMG_1.JPG.xmp")
    assert read_sidecar(photo).rating == 1
    write_sidecar(photo, rating=4)
    assert photo.with_name("IMG_1.xmp").read_text("utf-8") == LIGHTROOM  # the other is not touched


# ----------------------------------------------------------------- atomic writes


def test_crash_during_replace_leaves_original_and_no_temp(photo, monkeypatch):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(LIGHTROOM, "utf-8")
    before = sc.read_bytes()

    def boom(src, dst):
        raise OSError("simulated power cut")

    monkeypatch.setattr(sidecar.os, "replace", boom)
    with pytest.raises(SidecarError, match="simulated power cut"):
        write_sidecar(photo, rating=5)
    assert sc.read_bytes() == before
    assert sorted(p.name for p in photo.parent.iterdir()) == ["IMG_1.JPG", "IMG_1.xmp"]


def test_crash_while_creating_leaves_nothing(photo, monkeypatch):
    monkeypatch.setattr(sidecar.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(SidecarError, match="disk full"):
        write_sidecar(photo, rating=5)
    assert [p.name for p in photo.parent.iterdir()] == ["IMG_1.JPG"]


def test_save_that_does_not_read_back_is_an_error(photo, monkeypatch):
    real = sidecar._serialize
    monkeypatch.setattr(sidecar, "_serialize", lambda *a: real(*a).replace(b'"4"', b'"3"'))
    with pytest.raises(SidecarError, match="did not land"):
        write_sidecar(photo, rating=4)


def test_save_that_loses_foreign_tags_is_an_error(photo, monkeypatch):
    photo.with_name("IMG_1.xmp").write_text(LIGHTROOM, "utf-8")
    real = sidecar._serialize
    monkeypatch.setattr(sidecar, "_serialize", lambda *a: real(*a).replace(b"<rdf:li>wedding</rdf:li>", b""))
    with pytest.raises(SidecarError, match="did not survive"):
        write_sidecar(photo, rating=4)


def test_file_keeps_its_permissions(photo):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(DARKTABLE, "utf-8")
    os.chmod(sc, 0o640)
    write_sidecar(photo, rating=2)
    assert sc.stat().st_mode & 0o777 == 0o640


# ----------------------------------------------------------------- hostile input


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_hostile_xml_is_refused_fast_and_never_overwritten(photo, text):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(text, "utf-8")
    t0 = time.perf_counter()
    with pytest.raises(SidecarError, match="refused"):
        read_sidecar(photo)
    with pytest.raises(SidecarError, match="refused"):
        write_sidecar(photo, rating=5)
    assert time.perf_counter() - t0 < 2.0
    assert sc.read_text("utf-8") == text


@pytest.mark.parametrize("text", ["<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>", "<html><body/></html>", "\x00\x01binary"])
def test_unparseable_or_not_xmp_is_refused(photo, text):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(text, "utf-8")
    with pytest.raises(SidecarError):
        read_sidecar(photo)
    with pytest.raises(SidecarError):
        write_sidecar(photo, rating=1)
    assert sc.read_text("utf-8") == text


def test_empty_sidecar_reads_empty_and_is_filled(photo):
    photo.with_name("IMG_1.xmp").write_bytes(b"")
    assert read_sidecar(photo).rating is None
    write_sidecar(photo, rating=2)
    assert read_sidecar(photo).rating == 2


# ----------------------------------------------------------------- exiftool interop


def _exiftool_json(path, *tags):
    out = subprocess.run(["exiftool", "-j", *tags, str(path)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)[0]


@needs_exiftool
def test_exiftool_reads_what_we_write(photo):
    path = write_sidecar(photo, rating=4, label="Red", photocull={"mean": "6.1"})
    got = _exiftool_json(path, "-XMP:Rating", "-XMP:Label")
    assert (got["Rating"], got["Label"]) == (4, "Red")


@needs_exiftool
def test_exiftool_still_reads_lightroom_tags_after_our_rewrite(photo):
    sc = photo.with_name("IMG_1.xmp")
    sc.write_text(LIGHTROOM, "utf-8")
    write_sidecar(photo, rating=5)
    got = _exiftool_json(sc, "-XMP:Rating", "-XMP:Label", "-XMP-crs:Exposure2012", "-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject")
    assert got["Rating"] == 5 and got["Label"] == "Yellow"
    assert got["Exposure2012"] in ("+0.35", 0.35)
    assert got["Subject"] == ["wedding", "Caf\u00e9 \u00dcbersee"]
    assert got["HierarchicalSubject"] == "people|Anna"


@needs_exiftool
def test_we_read_what_exiftool_writes(photo):
    sc = photo.with_name("IMG_1.xmp")
    subprocess.run(["exiftool", "-q", "-o", str(sc), "-XMP:Rating=3", "-XMP:Label=Blue"], check=True, timeout=60)
    got = read_sidecar(photo)
    assert (got.rating, got.label, got.pick) == (3, "Blue", None)
    # and exiftool's edit of our file keeps our figures
    write_sidecar(photo, photocull={"mean": "5.5"})
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=kept", str(sc)], check=True, timeout=60)
    got = read_sidecar(photo)
    assert (got.rating, got.label, got.photocull) == (3, "Blue", {"mean": "5.5"})


@needs_exiftool
def test_exiftool_reject_reads_as_rejected(photo):
    sc = photo.with_name("IMG_1.JPG.xmp")
    subprocess.run(["exiftool", "-q", "-XMP:Rating=-1", str(sc)], check=True, timeout=60)
    got = read_sidecar(photo)
    assert (got.rating, got.pick) == (-1, -1)
