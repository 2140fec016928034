"""Faces: two versions of photocull/analysis/faces.py timed side by side, interleaved.

    git show HEAD:photocull/analysis/faces.py > /tmp/faces_before.py
    .venv/bin/python bench/faces_ab.py /tmp/faces_before.py            # before vs the working tree
    .venv/bin/python bench/faces_ab.py /tmp/faces_before.py --repeat 9 --size 3000

On a shared machine the load changes from one minute to the next: each view is timed with
one version, then the other, ``--repeat`` times, and the median of each is kept (CPU time of
the one thread, as bench/faces.py).  Views and photos are bench/faces.py's (camera photos
without a face and the iPhone photos with people).  The faces found by both versions are
compared too (a box moved by less than half its size counts as the same face).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import faces as bench  # noqa: E402  (bench/faces.py: views and photo lists)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    mod.load_models()
    return mod


def _same(a, b) -> bool:
    def iou(p, q):
        ix = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        iy = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        inter = ix * iy
        return inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)

    return len(a.faces) == len(b.faces) and all(
        any(iou(f.box, g.box) > 0.5 and f.eyes_closed == g.eyes_closed for g in b.faces) for f in a.faces)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, help="the other faces.py")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--size", type=int, default=1500, help="view width (3:2): 1500 or 3000")
    args = ap.parse_args(argv)
    if not bench.CAMERA.is_dir():
        print("../shared/data/camera not present: nothing to time")
        return 0
    mods = {"before": _load(args.before, "faces_before"),
            "after": _load(HERE.parent / "photocull" / "analysis" / "faces.py", "faces_after")}
    size = (args.size, args.size * 2 // 3)
    print(f"{size[0]} x {size[1]} views, {args.repeat} interleaved timings each; load average {bench.load()}")
    for label, paths in (("no face", bench.NO_FACE), ("with people", bench.PEOPLE)):
        med = {n: [] for n in mods}
        differ = []
        for p in paths:
            im = bench.view(bench.CAMERA / p, size)
            reps = {n: m.find_faces(im) for n, m in mods.items()}  # warm, and the answers
            if not _same(reps["before"], reps["after"]):
                differ.append(p.split("/")[-1])
            times = {n: [] for n in mods}
            for _ in range(args.repeat):
                for n, m in mods.items():
                    t = time.thread_time()
                    m.find_faces(im)
                    times[n].append((time.thread_time() - t) * 1e3)
            line = "  ".join(f"{n} {statistics.median(times[n]):6.1f}" for n in mods)
            print(f"    {p.split('/')[-1]:<30} {line}  ms  faces {reps['after'].count}")
            for n in mods:
                med[n].append(statistics.median(times[n]))
        for n, ms in med.items():
            print(f"  {label}, {n}: median {statistics.median(ms):.1f} ms, mean {statistics.mean(ms):.1f}, "
                  f"min {min(ms):.1f}, max {max(ms):.1f} per photo per core ({len(ms)} photos)")
        print(f"  {label}: faces differ on {', '.join(differ) if differ else 'no photo'}")
    print(f"load average after: {bench.load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
