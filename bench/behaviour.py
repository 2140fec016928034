"""Same scores, same reasons: score a fixed generated folder and the demo shoot with
``photocull score --format csv`` under each backend, and keep or compare the CSVs.

    .venv/bin/python bench/behaviour.py --save bench/baseline          # before a refactor
    .venv/bin/python bench/behaviour.py --compare bench/baseline       # after: identical?

Only the command line is used (``python -c "from photocull.cli import main"``), so the
same script runs before and after code moves.  Paths are reduced to file names; every
other column (mean, std, p1..p10 at 4 decimals, why, error) must be identical.
Exit status 1 when anything differs (each difference is printed).

The technical model is scored alone (``--model technical``): since issue 3/7 the default
mode's ``mean`` is the overall score (both networks).  Only the columns the baseline has are
compared (the CSV now appends aesthetic, aesthetic_std, technical, technical_std), so a
baseline saved before that change still compares.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

BACKENDS = ("torch", "onnx")
MODEL = "technical"  # the model the baselines were made with (the default before issue 3/7)
COLUMNS = ["path", "mean", "std", *[f"p{i}" for i in range(1, 11)], "why", "error"]  # compared


def make_fixed_folder(folder: Path, seed: int = 7) -> list[Path]:
    """Generated photos of several kinds (smooth gradients, textures, edges, noise, dark,
    blurred, JPEG-crushed, PNG, portrait with an EXIF rotation, a bad file)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    for i in range(6):
        fx, fy = rng.uniform(0.005, 0.08, 2)
        base = np.stack([127 + 120 * np.sin(fx * xx + c) * np.cos(fy * yy - c) for c in (0.0, 1.3, 2.6)], -1)
        base += rng.normal(0, 4, base.shape)
        for _ in range(8):  # a few hard-edged shapes
            x0, y0 = rng.integers(0, 560), rng.integers(0, 400)
            base[y0:y0 + rng.integers(20, 80), x0:x0 + rng.integers(20, 80)] = rng.uniform(0, 255, 3)
        im = Image.fromarray(base.clip(0, 255).astype(np.uint8))
        p = folder / f"gen_{i}.jpg"
        im.save(p, quality=90)
        out.append(p)
        if i < 3:
            variants = {
                "blur": im.filter(ImageFilter.GaussianBlur(3)),
                "noisy": Image.fromarray((np.asarray(im, np.float32) + rng.normal(0, 30, base.shape))
                                         .clip(0, 255).astype(np.uint8)),
                "dark": Image.fromarray((np.asarray(im, np.float32) * 0.15).astype(np.uint8)),
            }
            for k, v in variants.items():
                p = folder / f"gen_{i}_{k}.jpg"
                v.save(p, quality=90)
                out.append(p)
            p = folder / f"gen_{i}_crushed.jpg"
            im.save(p, quality=5)
            out.append(p)
    p = folder / "gen_png.png"
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1)).save(p)
    out.append(p)
    p = folder / "gen_rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(out[0]).save(p, quality=90, exif=exif.tobytes())
    out.append(p)
    p = folder / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out.append(p)
    return out


def _cli(args: list[str], home: Path, cwd: Path) -> str:
    code = "import sys; from photocull.cli import main; sys.exit(main())"
    env = dict(os.environ, PHOTOCULL_DEVICE="cpu")
    proc = subprocess.run([sys.executable, "-c", code, "--home", str(home), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"photocull {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def normalise(text: str, columns: list[str] = COLUMNS) -> list[list[str]]:
    """The CSV's ``columns`` only (in that order), paths reduced to file names, sorted."""
    rows = list(csv.reader(io.StringIO(text)))
    head, body = rows[0], rows[1:]
    missing = [c for c in columns if c not in head]
    if missing:
        raise SystemExit(f"photocull score's CSV lacks the columns {missing} (it has {head})")
    idx = [head.index(c) for c in columns]
    pick = [[r[i] if i < len(r) else "" for i in idx] for r in body]
    return [list(columns)] + sorted([[Path(r[0]).name, *r[1:]] for r in pick])


def run_all(work: Path, columns: list[str] = COLUMNS) -> dict[str, str]:
    fixed, demo, home = work / "fixed", work / "demo", work / "home"
    make_fixed_folder(fixed)
    _cli(["demo", str(demo), "--model", MODEL], home, work)  # builds the demo shoot (and ranks it: ignored)
    out = {}
    for backend in BACKENDS:
        for name, folder in (("fixed", fixed), ("demo", demo)):
            text = _cli(["score", folder.name, "--format", "csv", "--no-cache", "-q", "--backend", backend,
                         "--model", MODEL], home, work)
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(normalise(text, columns))
            out[f"{backend}_{name}.csv"] = buf.getvalue()
            print(f"{backend} {name}: {len(buf.getvalue().splitlines()) - 1} rows", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path, metavar="DIR")
    g.add_argument("--compare", type=Path, metavar="DIR")
    a = ap.parse_args()
    columns = COLUMNS
    if a.compare:  # the baseline's own columns (all its files share them)
        first = sorted(a.compare.glob("*.csv"))
        if not first:
            raise SystemExit(f"no baseline CSVs in {a.compare}")
        columns = next(csv.reader(io.StringIO(first[0].read_text(encoding="utf-8"))))
    with tempfile.TemporaryDirectory(prefix="photocull-behaviour-") as tmp:
        now = run_all(Path(tmp), columns)
    if a.save:
        a.save.mkdir(parents=True, exist_ok=True)
        for name, text in now.items():
            (a.save / name).write_text(text, encoding="utf-8")
        print(f"saved {len(now)} CSVs to {a.save}")
        return 0
    bad = 0
    for name, text in now.items():
        before = (a.compare / name).read_text(encoding="utf-8").splitlines()
        after = text.splitlines()
        if before == after:
            print(f"{name}: identical ({len(after) - 1} photos)")
            continue
        bad += 1
        print(f"{name}: DIFFERENT")
        for b, c in zip(before, after):
            if b != c:
                print(f"  before: {b}\n  after:  {c}")
        if len(before) != len(after):
            print(f"  {len(before)} rows before, {len(after)} after")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
