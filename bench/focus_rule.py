"""Blur and shake on web photos: the technical model's 224 px guess, the focus analysis, and the rule.

    .venv/bin/python bench/focus_rule.py [--work /tmp/photocull_focus_rule]   # ~3 min the first time

The overall rule (photocull.cull.overall) names blur and shake from two sources: the technical
model's severities at 224 px (``blurry / out of focus``, ``motion blur / camera shake``) and the
focus analysis at half the file's resolution or more (``missed focus / soft at 100 %``, ``camera
shake``, ``subject soft, background sharp``).  Where the focus analysis judged a photo, the
model's "blurry" yields to it (``FocusReport.supports``); its "motion blur" does not.  This bench
shows why, on photos the camera bench (bench/focus.py) does not have: web-sized ones.

Data: every photo of ../shared/data/pristine (608 clean photos, 321-768 px) and, for every 4th
one, blurred and shaken copies at bench/faults.py's two levels (photocull's own degradations,
JPEG q92).  Both folders are scored once by ``photocull score --format json`` (both networks,
every analysis) and kept in --work; the rules are then counted from the same results:

* model: the model's blur or motion fault (``FAULTS``) / reason (per-family thresholds);
* focus: the focus analysis's reason alone;
* before: either (the rule before the model's blur yielded to a judged focus);
* now: the rule as shipped (the model's blur only where focus was not judged).
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from photocull.model.reasons import FAULTS, THRESHOLD, THRESHOLDS  # noqa: E402

KINDS = ("blurred", "shaken")


def make(work: Path) -> tuple[Path, Path]:
    import faults as fb  # bench/faults.py: its levels, seeds and JPEG saving

    from photocull.training import degrade

    clean, deg = work / "clean", work / "degraded"
    clean.mkdir(parents=True, exist_ok=True)
    deg.mkdir(parents=True, exist_ok=True)
    src = sorted(p for p in fb.PRISTINE.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".bmp", ".tif"))
    for p in src:
        link = clean / p.relative_to(fb.PRISTINE).as_posix().replace("/", "__")
        if not link.exists():
            link.symlink_to(p)
    for p in src[1::4]:
        key = p.relative_to(fb.PRISTINE).with_suffix("").as_posix().replace("/", "__")
        x = None
        for kind in KINDS:
            fam, levels = fb.LEVELS[kind]
            for level, s in levels.items():
                out = deg / f"{key}__{kind}_{level}.jpg"
                if not out.exists():
                    x = fb.load_rgb(p) if x is None else x
                    fb.save_jpeg(degrade.apply(x, fam, s, fb.seed_of(key, kind, level)), out)
    return clean, deg


def scored(folder: Path, work: Path) -> list[dict]:
    out = work / f"{folder.name}.json"
    if not out.is_file():
        exe = Path(sys.executable).with_name("photocull")
        cmd = [str(exe), "--home", str(work / "home"), "score", str(folder), "-q", "--format", "json"]
        out.write_text(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return json.loads(out.read_text())["photos"]


def _sev(p: dict, fam: str, thr: float) -> bool:
    return bool(p.get("severities")) and p["severities"].get(fam, 0.0) >= thr


def counts(photos: list[dict], fault: bool) -> dict[str, int]:
    def model(p, fam):
        return _sev(p, fam, FAULTS[fam] if fault else THRESHOLDS.get(fam, THRESHOLD))

    def judged(p):
        return bool(p.get("focus")) and p["focus"]["verdict"] != "unjudged"

    def focus(p):
        return bool(p.get("focus")) and bool(p["focus"].get("reason"))

    return {
        "model": sum(model(p, "blur") or model(p, "motion") for p in photos),
        "focus": sum(focus(p) for p in photos),
        "before": sum(model(p, "blur") or model(p, "motion") or focus(p) for p in photos),
        "now": sum((model(p, "blur") and not judged(p)) or model(p, "motion") or focus(p) for p in photos),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/photocull_focus_rule"))
    args = ap.parse_args(argv)
    import faults as fb

    if not fb.PRISTINE.is_dir():
        print("../shared/data/pristine not present: nothing to measure")
        return 0
    clean, deg = make(args.work)
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    groups["clean"] = scored(clean, args.work)
    for p in scored(deg, args.work):
        groups[Path(p["path"]).stem.rsplit("__", 1)[1]].append(p)
    for fault in (True, False):
        print(f"\n{'faults (demote in the overall ranking)' if fault else 'reasons (said in the grid and why)'}: "
              "photos with a blur, shake or focus word")
        print(f"  {'':18s} {'n':>4s} {'model':>11s} {'focus':>11s} {'before':>11s} {'now':>11s}")
        for name, photos in sorted(groups.items(), key=lambda kv: (kv[0] != "clean", kv[0])):
            c = counts(photos, fault)
            n = len(photos)
            print(f"  {name:18s} {n:4d} " + " ".join(f"{c[k]:4d} ({c[k] / n:4.0%})" for k in ("model", "focus", "before", "now")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
