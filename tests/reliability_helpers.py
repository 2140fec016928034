"""Shared by the reliability tests and bench/reliability.py: hostile inputs and a fast model.

Not a test module (no ``test_`` prefix); import it as ``from reliability_helpers import ...``.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import SHARED_DATA, make_photo

EXIF_SAMPLES = SHARED_DATA / "camera" / "exif_samples"
ORIENTATION = EXIF_SAMPLES / "jpg" / "orientation"

OK, ERROR = "ok", "error"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, colour: int, raw_rows: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw_rows))
            + _png_chunk(b"IEND", b""))


def build_hostile_folder(d: Path) -> dict[str, str]:
    """Write every generated hostile case into ``d``; returns {file name: OK or ERROR}.

    File names are str; the one name that is not valid UTF-8 comes back with its
    surrogate escape (as ``os.listdir`` gives it)."""
    d.mkdir(parents=True, exist_ok=True)
    exp: dict[str, str] = {}

    def put(name: str, data: bytes, outcome: str) -> None:
        (d / name).write_bytes(data)
        exp[name] = outcome

    good = make_photo(d / "good.jpg", seed=1, size=(320, 240))
    exp["good.jpg"] = OK
    jpeg = good.read_bytes()
    rgb = Image.open(good).convert("RGB")

    put("zero-bytes.jpg", b"", ERROR)
    put("truncated.jpg", jpeg[: len(jpeg) // 2], ERROR)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    put("truncated.png", buf.getvalue()[: len(buf.getvalue()) // 2], ERROR)
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    rgb.save(buf, format="HEIF", quality=60)
    put("whole.heic", buf.getvalue(), OK)
    put("truncated.heic", buf.getvalue()[: len(buf.getvalue()) // 2], ERROR)
    put("random-bytes.jpg", np.random.default_rng(7).bytes(6000), ERROR)
    put("error-page.jpg", b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not Found</body></html>\n", ERROR)
    # decompression bombs: headers that claim 50000 x 50000 pixels
    put("bomb.png", _png(50000, 50000, 8, 2, b"\0" * 1000), ERROR)
    j = bytearray(jpeg)
    sof = j.find(b"\xff\xc0")
    j[sof + 5: sof + 9] = struct.pack(">HH", 50000, 50000)
    put("bomb.jpg", bytes(j), ERROR)
    # colour models and bit depths
    rgb.convert("CMYK").save(d / "cmyk.jpg", quality=90)
    exp["cmyk.jpg"] = OK
    a16 = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(a16).save(d / "grey16.png")
    Image.fromarray(a16).save(d / "grey16.tif")
    rows16 = b"".join(b"\0" + np.stack([a16[y]] * 3, -1).astype(">u2").tobytes() for y in range(48))
    put("rgb16.png", _png(64, 48, 16, 2, rows16), OK)
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(d / "palette-transparent.png", transparency=0)
    pal.save(d / "palette-transparent.gif", transparency=0)
    rgb.convert("L").save(d / "grey.jpg")
    rgb.convert("LA").save(d / "grey-alpha.png")
    rgb.convert("RGBA").save(d / "rgba.webp")
    frames = [Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(d / "animated.webp", save_all=True, append_images=frames[1:], duration=100, loop=0)
    for n in ("grey16.png", "grey16.tif", "palette-transparent.png", "palette-transparent.gif", "grey.jpg",
              "grey-alpha.png", "rgba.webp", "animated.gif", "animated.webp"):
        exp[n] = OK
    # broken EXIF: an APP1 "Exif" block whose IFD is garbage
    app1 = b"Exif\0\0MM\0\x2a\0\0\0\x08\xff\xff" + np.random.default_rng(3).bytes(60)
    put("broken-exif.jpg", jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:], OK)
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        rgb.save(d / f"orientation-{o}.jpg", exif=ex.tobytes(), quality=90)
        exp[f"orientation-{o}.jpg"] = OK
    # names
    for name in ("ünïcödé 😀 写真.jpg", "L" * 251 + ".jpg", "é" * 125 + ".jpg"):
        assert len(name.encode()) <= 255
        make_photo(d / name, seed=len(name), size=(64, 48))
        exp[name] = OK
    raw_name = os.fsdecode(b"caf\xe9-latin1.jpg")  # not UTF-8: what an old camera card may hold
    (d / raw_name).write_bytes(jpeg)
    exp[raw_name] = OK
    # links
    os.symlink("loop-b.jpg", d / "loop-a.jpg")
    os.symlink("loop-a.jpg", d / "loop-b.jpg")
    os.symlink("nowhere.jpg", d / "dangling.jpg")
    exp.update({"loop-a.jpg": ERROR, "loop-b.jpg": ERROR, "dangling.jpg": ERROR})
    # unreadable: root reads it anyway (the PermissionError path is tested with monkeypatch)
    make_photo(d / "unreadable.jpg", seed=5, size=(64, 48))
    os.chmod(d / "unreadable.jpg", 0)
    exp["unreadable.jpg"] = OK if os.geteuid() == 0 else ERROR
    (d / "folder.jpg").mkdir()  # a directory with a photo's name: not listed
    return exp


def corpus_files() -> list[Path]:
    """Every file of the shared EXIF sample corpus (READMEs included: they must be refused cleanly)."""
    if not EXIF_SAMPLES.is_dir():
        return []
    return sorted(p for p in EXIF_SAMPLES.rglob("*") if p.is_file())


def similarity(a: Image.Image, b: Image.Image, side: int = 32) -> float:
    """Pearson correlation of two images' grey, downscaled pixels (1.0: same picture),
    -1.0 when their orientations (landscape / portrait) differ."""
    if (a.width > a.height) != (b.width > b.height):
        return -1.0
    size = (side, side * 3 // 4) if a.width >= a.height else (side * 3 // 4, side)
    x = np.asarray(a.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=float).ravel()
    y = np.asarray(b.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=float).ravel()
    return float(np.corrcoef(x, y)[0, 1])


def fast_model(input_size: int = 64):
    """A LoadedModel with the NIMA interface (``forward_all -> probs, severities, features``)
    and a tiny conv net: for tests about files, not about scores."""
    import torch
    from torch import nn

    from photocull.model.nima import LoadedModel
    from photocull.model.spec import ModelConfig

    class FastNet(nn.Module):
        def __init__(self, cfg: ModelConfig):
            super().__init__()
            self.cfg = cfg
            self.conv = nn.Conv2d(3, 16, 5, stride=4, padding=2)
            self.score = nn.Linear(16, 10)
            self.severity = nn.Linear(16, len(cfg.families))

        def forward_all(self, x):
            f = torch.relu(self.conv(x)).mean(dim=(2, 3))
            return torch.softmax(self.score(f), dim=1), torch.sigmoid(self.severity(f)), f

        def forward(self, x):
            return self.forward_all(x)[0]

    torch.manual_seed(0)
    net = FastNet(ModelConfig(input_size=input_size)).eval()
    return LoadedModel(net, f"fast-test-{input_size}", "fast test", trained=False, meta={"kind": "test"})


# --------------------------------------------------------------------------- hostile model files

def _crc32_of_zeros(n_chunks: int, chunk: int) -> int:
    """zlib.crc32 of ``n_chunks * chunk`` zero bytes without feeding them all: the CRC of a
    fixed run of zeros is an affine map of the starting CRC (32 columns + a constant)."""
    zeros = bytes(chunk)
    b = zlib.crc32(zeros, 0)
    cols = [zlib.crc32(zeros, 1 << i) ^ b for i in range(32)]
    crc = 0
    for _ in range(n_chunks):
        out = b
        for i in range(32):
            if crc >> i & 1:
                out ^= cols[i]
        crc = out
    return crc


def deflated_zeros(mib: int) -> tuple[bytes, int]:
    """(raw deflate stream, CRC-32) of ``mib`` MiB of zeros, ~1000:1, built in milliseconds:
    one fully flushed 1 MiB segment repeated, then an empty final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    seg = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    return seg * mib + tail, _crc32_of_zeros(mib, 1 << 20)


def write_zip(path: Path, entries: list[tuple[str, int, int, int, bytes]]) -> None:
    """A zip from (name, method, crc, inflated size, stored bytes) entries, exactly as given
    (zipfile would recompute what a hostile archive lies about)."""
    body, central = bytearray(), bytearray()
    for name, method, crc, size, data in entries:
        n = name.encode()
        offset = len(body)
        body += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0)
        body += n + data
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(n), 0, 0, 0, 0, 0, offset) + n
    eocd = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    path.write_bytes(bytes(body + central + eocd))


class _CallsOs:
    """Pickles to a call of os.system (a marker file): it must never run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def build_hostile_models(d: Path, marker: Path) -> dict[str, str]:
    """Write the issue's hostile model files into ``d`` (each from the shipped checkpoint);
    returns {file name: a word the refusal must contain}.  ``marker`` is created if the
    pickle payload ever runs."""
    import pickle
    import zipfile

    import torch

    from photocull.model.spec import default_model_path

    d.mkdir(parents=True, exist_ok=True)
    base = torch.load(default_model_path(), map_location="cpu", weights_only=True)
    out: dict[str, str] = {}
    config_cases = {
        "hidden-300000.pt": ({"hidden": 300000}, "hidden"),
        "input-size-20000.pt": ({"input_size": 20000}, "input_size"),
        "input-size-0.pt": ({"input_size": 0}, "input_size"),
        "input-size-text.pt": ({"input_size": "224"}, "input_size"),
        # 1.8 MB of pickle: refused from the archive's directory, before torch unpickles it
        "families-x100000.pt": ({"families": list(base["config"]["families"]) * 100000}, "data.pkl"),
        "dropout-5.pt": ({"dropout": 5}, "dropout"),
        "std-zero.pt": ({"std": [0, 0, 0]}, "std"),
    }
    for name, (change, word) in config_cases.items():
        ckpt = dict(base, config={**base["config"], **change})
        torch.save(ckpt, d / name)
        out[name] = word
    # a zip bomb: the shipped archive with data/0 deflated from 2 GiB of zeros (2 MB on disk)
    with zipfile.ZipFile(default_model_path()) as zf:
        entries = [(i.filename, zipfile.ZIP_STORED, i.CRC, i.file_size, zf.read(i)) for i in zf.infolist()]
    bomb, crc = deflated_zeros(2048)
    entries = [(n, zipfile.ZIP_DEFLATED, crc, 2 << 30, bomb) if n.endswith("/data/0") else (n, m, c, s, b)
               for n, m, c, s, b in entries]
    write_zip(d / "zip-bomb.pt", entries)
    out["zip-bomb.pt"] = "compressed"
    # a plain pickle (not a torch archive) whose payload calls os.system
    (d / "reduce-pickle.pt").write_bytes(pickle.dumps({"format": base["format"], "x": _CallsOs(marker)}))
    out["reduce-pickle.pt"] = "contains code"
    return out


_REFUSAL_PROBE = r"""
import json, resource, sys, tracemalloc
from photocull.model import checkpoint
from photocull.model.spec import ModelError
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
for path in sys.argv[1:]:
    tracemalloc.reset_peak()
    try:
        checkpoint.load_model(path)
        outcome = "accepted"
    except ModelError as exc:
        outcome = "ModelError: " + str(exc)
    except BaseException as exc:
        outcome = "escaped: " + type(exc).__name__ + ": " + str(exc)[:200]
    peak = tracemalloc.get_traced_memory()[1]
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"path": path, "outcome": outcome, "rss_growth_mb": grown / 1024,
                      "python_peak_mb": peak / 2**20}), flush=True)
"""


def model_refusal_cost(paths: list[Path], timeout: float = 300) -> list[dict]:
    """Load each of ``paths`` in turn with :func:`checkpoint.load_model` in one fresh process:
    its outcome, the growth of the process's peak RSS since torch and photocull were
    imported (cumulative: a peak stays a peak; one file per call for separate figures), and
    the peak of Python allocations during that load (tracemalloc), in MB."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "-c", _REFUSAL_PROBE, *map(str, paths)], capture_output=True,
                         text=True, timeout=timeout, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    out = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode:
        out.append({"path": None, "outcome": f"crashed (exit {run.returncode}): {run.stderr.strip()[-300:]}",
                    "rss_growth_mb": float("nan"), "python_peak_mb": float("nan")})
    return out


# --------------------------------------------------------------------------- links

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY-----\nphotocull-test-secret-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"


def build_link_shoot(root: Path) -> dict:
    """A shoot under ``root/shoot`` whose links point everywhere, and ``root/outside`` they
    point into.  Returns a dict:

    ``source``, ``outside``: the two folders; ``secret``: the bytes of ``outside/id_rsa``
    (which must never reach a destination); ``outside_hashes``: {path: sha256} of every file
    outside; ``exported``: the photos (relative to ``source``) whose bytes an export of
    every photo (recursive) brings, as regular files (``album/best.jpg`` links to
    ``day1/IMG_5.jpg``: those bytes travel once); ``refused``: the files (relative to
    ``source``) it refuses with a reason, photos and companions alike."""
    import hashlib

    src, out = root / "shoot", root / "outside"
    src.mkdir(parents=True)
    out.mkdir(parents=True)
    (out / "id_rsa").write_bytes(SECRET)
    make_photo(out / "elsewhere.jpg", seed=40, size=(48, 32))
    make_photo(out / "IMG_9.jpg", seed=41, size=(48, 32))
    for i in (1, 3, 4, 6):
        make_photo(src / f"IMG_{i}.jpg", seed=i, size=(48, 32))
    os.symlink(out / "id_rsa", src / "IMG_1.CR2")            # a companion out of the folder (absolute)
    os.symlink("../outside/id_rsa", src / "IMG_6.xmp")       # a sidecar out of the folder (relative)
    os.symlink(out / "elsewhere.jpg", src / "IMG_2.jpg")     # a photo out of the folder
    os.symlink("nowhere.CR2", src / "IMG_3.CR2")             # a broken companion, inside
    os.symlink("/nonexistent-photocull/IMG_3.xmp", src / "IMG_3.xmp")  # a broken one, outside
    os.symlink("IMG_4.DNG", src / "IMG_4.CR2")               # companions that loop
    os.symlink("IMG_4.CR2", src / "IMG_4.DNG")
    os.symlink("loop-b.jpg", src / "loop-a.jpg")             # photos that loop
    os.symlink("loop-a.jpg", src / "loop-b.jpg")
    os.symlink(out, src / "linked-folder")                   # a folder out of the shoot: not listed
    (src / "day1").mkdir()
    make_photo(src / "day1" / "IMG_5.jpg", seed=5, size=(48, 32))
    (src / "album").mkdir()
    os.symlink("../day1/IMG_5.jpg", src / "album" / "best.jpg")  # inside the shoot: exported as a file
    os.symlink("../linked-folder/IMG_9.jpg", src / "album" / "IMG_9.jpg")  # inside by name, outside for real
    return {
        "source": src, "outside": out, "secret": SECRET,
        "outside_hashes": {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()},
        "exported": ["IMG_1.jpg", "IMG_3.jpg", "IMG_4.jpg", "IMG_6.jpg", "album/best.jpg", "day1/IMG_5.jpg"],
        "refused": ["IMG_1.CR2", "IMG_6.xmp", "IMG_2.jpg", "IMG_3.CR2", "IMG_3.xmp", "IMG_4.CR2", "IMG_4.DNG",
                    "loop-a.jpg", "loop-b.jpg", "album/IMG_9.jpg"],
    }


def leaked_from_outside(dest: Path, outside_hashes: dict[Path, str], secret: bytes = SECRET) -> list[Path]:
    """Files under ``dest`` holding the secret, or the very bytes of a file outside the source."""
    import hashlib

    known = set(outside_hashes.values())
    return [p for p in dest.rglob("*") if p.is_file() and not p.is_symlink()
            and (secret in p.read_bytes() or hashlib.sha256(p.read_bytes()).hexdigest() in known)]


# --------------------------------------------------------------------------- sidecars, FIFOs, catalogs

XMP_PACKET = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="2">{inner}'
              '</rdf:Description></rdf:RDF></x:xmpmeta>')
_LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 7))
           + ']>\n' + XMP_PACKET.replace('xmp:Rating="2"', 'xmp:Rating="&lol6;"').format(inner=""))
_XXE = ('<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + XMP_PACKET.replace('xmp:Rating="2"', 'xmp:Label="&xxe;"').format(inner=""))


def build_hostile_sidecars(d: Path) -> dict[str, str]:
    """Photos in ``d``, most of them with a hostile XMP sidecar (the issue's cases: an unknown
    encoding, 1000 nested elements, too many elements, over the size limit, entity bombs,
    not XML, a FIFO, a folder); returns {photo name: what its sidecar is} ("good" for the
    photos without one, which must rate normally)."""
    d.mkdir(parents=True, exist_ok=True)
    nested = '<n xmlns="http://example.com/a/">' + "<n>" * 999 + "</n>" * 1000
    cases: dict[str, bytes | str] = {
        "unknown-encoding": '<?xml version="1.0" encoding="x-klingon"?>\n' + XMP_PACKET.format(inner=""),
        "nested-1000": XMP_PACKET.format(inner=nested),
        "elements-150000": XMP_PACKET.format(inner='<e xmlns="http://example.com/e/">' + "<i/>" * 150_000 + "</e>"),
        "oversize-17MB": XMP_PACKET.format(inner="<!--" + "x" * (17 << 20) + "-->"),
        "billion-laughs": _LAUGHS,
        "external-entity": _XXE,
        "random-bytes": np.random.default_rng(11).bytes(4000),
        "not-utf8": XMP_PACKET.format(inner="").encode().replace(b'Rating="2"', b'Label="\xff\xfe\xe9"'),
        "fifo": "",
        "folder": "",
    }
    out = {}
    for i, (kind, body) in enumerate(cases.items()):
        photo = make_photo(d / f"IMG_{i:02d}.jpg", seed=i, size=(48, 32))
        sc = photo.with_suffix(".xmp")
        if kind == "fifo":
            os.mkfifo(sc)
        elif kind == "folder":
            sc.mkdir()
        else:
            sc.write_bytes(body.encode() if isinstance(body, str) else body)
        out[photo.name] = kind
    for i in range(len(cases), len(cases) + 3):
        out[make_photo(d / f"IMG_{i:02d}.jpg", seed=i, size=(48, 32)).name] = "good"
    return out


def build_fifo_folder(d: Path) -> dict[str, str]:
    """FIFOs where photocull reads or copies: a FIFO named like a photo, a FIFO as a RAW
    companion and one as a sidecar, beside good photos.  Returns {name: role}."""
    d.mkdir(parents=True, exist_ok=True)
    for n in ("good.jpg", "IMG_1.jpg", "IMG_2.jpg"):
        make_photo(d / n, seed=len(n), size=(48, 32))
    roles = {"fifo.jpg": "photo", "fifo.heic": "photo", "IMG_1.CR2": "companion", "IMG_2.xmp": "sidecar"}
    for n in roles:
        os.mkfifo(d / n)
    return roles


def unblock_fifos(paths) -> None:
    """Open each FIFO for writing without blocking, which releases a reader stuck in open()."""
    for p in paths:
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


CATALOG_DAMAGE = ("garbage", "truncated", "zeroed-pages")


def damage_catalog(cat_path: Path, damage: str) -> None:
    """Damage a catalog the way a crash or a bad disk does (``CATALOG_DAMAGE``)."""
    import sqlite3

    con = sqlite3.connect(cat_path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("CREATE TABLE IF NOT EXISTS padding(x)")  # a few pages to damage
    con.executemany("INSERT INTO padding VALUES (?)", [(os.urandom(500),) for _ in range(200)])
    con.commit()
    con.close()
    data = bytearray(cat_path.read_bytes())
    if damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "truncated":
        data = data[: len(data) // 3]
    else:
        data[4096: 4096 * 6] = bytes(4096 * 5)
    cat_path.write_bytes(bytes(data))
