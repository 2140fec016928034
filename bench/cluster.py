"""The local engine against a local Ray on the same generated 24 MP shoot: 1 CPU (one
actor), 2 CPUs as two one-core actors, and 2 CPUs as the default plan sizes them
(:func:`photocull.cluster.plan_actors`: one actor with both cores, decode threads + a model
thread, as on one machine).

    python bench/cluster.py [--photos 32] [--dir /tmp/photocull-bench-24mp] [--backend torch]

On one small machine this measures Ray's overhead (start-up, actors loading the models once
each) and how the cores are best shared, not scaling.  Prints the plan, wall times and
photos/s; no catalog is used.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import make_photo  # noqa: E402

from photocull.cli.common import run_scoring  # noqa: E402
from photocull.config import AppPaths  # noqa: E402
from photocull.model.registry import resolve_scorers  # noqa: E402


def shoot(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"IMG_{i:04d}.jpg"
        if not p.exists():
            small = make_photo(folder / "small.png", seed=i, size=(1500, 1000))
            Image.open(small).resize((6000, 4000), Image.BICUBIC).save(p, quality=92)
            small.unlink()
        out.append(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=32)
    ap.add_argument("--dir", default="/tmp/photocull-bench-24mp")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--model", default=None)
    a = ap.parse_args()
    files = shoot(Path(a.dir), a.photos)
    paths = AppPaths.default(tempfile.mkdtemp()).ensure()
    scorers = resolve_scorers(a.model, paths)
    mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
    print(f"{len(files)} photos, 6000x4000 JPEG, {mb:.1f} MB each, model {a.model or 'overall'}, {a.backend}")

    t = time.perf_counter()
    run_scoring(files, scorers.loaded, paths, use_cache=False, progress=False, backend=a.backend,
                aesthetic=scorers.aesthetic)
    dt = time.perf_counter() - t
    print(f"local engine:           {dt:6.1f} s  {len(files) / dt:5.2f} photos/s")

    import ray

    from photocull.cluster import RayJob, run_on_ray

    for cpus, actors in ((1, None), (2, 2), (2, None)):
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False)
        t1 = time.perf_counter()
        planned = []
        job = RayJob(a.model, paths, backend=a.backend, concurrency=actors, status=planned.append)
        run_on_ray(files, scorers, job, progress=False)
        t2 = time.perf_counter()
        ray.shutdown()
        print(f"local Ray, {cpus} CPU{'s' if cpus > 1 else ' '}: {t2 - t0:6.1f} s  {len(files) / (t2 - t0):5.2f} photos/s"
              f"  (ray.init {t1 - t0:.1f} s; job {t2 - t1:.1f} s, {len(files) / (t2 - t1):.2f} photos/s; "
              f"{planned[0].split(' with ', 1)[1] if planned else '?'})")


if __name__ == "__main__":
    main()
