"""What the driver of ``photocull score --engine ray`` does alone, at archive scale: list the
files, look them up in the catalog, store the results as they stream back, and answer a
resumed job from the catalog.  The actors' work is not here (bench/cluster.py measures it).

    python bench/cluster_driver.py --home HOME_OF_A_SCORED_FOLDER [--photos 100000] [--dir /tmp/pc-driver]

``--home``: a photocull home whose catalog holds real scored photos (both networks and every
analysis; e.g. ``photocull --home H score bench/out/small10k``): their rows, repeated under
new names, are what is stored, so row sizes are real.  The files are empty placeholders in
folders of 1,000 (the driver only lists and stats them).  Prints seconds and photos/s per
step, and each step's time scaled linearly to 1,000,000 photos.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from photocull.cli.common import collect_photos, judge
from photocull.config import AppPaths
from photocull.cull.catalog import Catalog
from photocull.model.spec import FAMILIES
from photocull.scoring import ANALYSES, BatchProgress, iter_scores_cached, stored_to_result

PER_FOLDER = 1000
BATCH = 8  # photos per stored batch, as the actors' batches arrive


def placeholders(root: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        d = root / f"d{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            d.mkdir(parents=True, exist_ok=True)
        p = d / f"IMG_{i:07d}.JPG"
        if not p.exists():
            p.touch()
        out.append(p)
    return out


def real_rows(home: Path):
    """(technical model id, aesthetic model id, [(technical, aesthetic, tiny grey) results])."""
    cat = Catalog(AppPaths.default(str(home)).catalog_path)
    # the technical network's rows carry the analyses; the aesthetic network's do not
    ids = [m for (m, _) in cat.con.execute("SELECT model_id, count(analyses) FROM scores GROUP BY model_id "
                                           "ORDER BY count(analyses) DESC, count(*) DESC")]
    if len(ids) < 2:
        sys.exit(f"{home}'s catalog holds one network: score a folder with both first")
    tech_id, aest_id = ids[:2]
    paths = [Path(p) for (p,) in cat.con.execute("SELECT path FROM scores WHERE model_id=? AND error IS NULL "
                                                   "AND analyses IS NOT NULL LIMIT 2000", (tech_id,))]
    tech, aest = cat.lookup(paths, tech_id), cat.lookup(paths, aest_id)
    greys = {k: cat.tiny_gray(k, 64) for k in tech}
    rows = []
    for k, s in tech.items():
        if k in aest:
            rows.append((stored_to_result(s), stored_to_result(aest[k]), greys.get(k)))
    cat.close()
    return tech_id, aest_id, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True)
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/pc-driver")
    ap.add_argument("--judge-photos", type=int, default=5000, help="photos grouped and judged (default 5000)")
    a = ap.parse_args()
    tech_id, aest_id, rows = real_rows(Path(a.home))
    if not rows:
        sys.exit(f"no scored photos with both networks in {a.home}'s catalog")
    n = a.photos

    def say(step: str, dt: float, m: int = n) -> None:
        print(f"  {step:<66} {dt:7.1f} s  {m / dt:7.0f} photos/s   (1M: {dt * 1e6 / m / 60:5.1f} min)")

    root = Path(a.dir)
    t = time.perf_counter()
    placeholders(root, n)
    print(f"{n} placeholder files in {n // PER_FOLDER} folders ({time.perf_counter() - t:.0f} s to make); "
          f"rows copied from {len(rows)} real photos of {a.home}")
    tmp = Path(tempfile.mkdtemp())
    try:
        cat = Catalog(tmp / "catalog.sqlite")
        t = time.perf_counter()
        items, _ = collect_photos([str(root)], True)
        say("list the folders (collect_photos -r)", time.perf_counter() - t)
        listed = [it.primary for it in items]
        t = time.perf_counter()
        cat.lookup(listed, tech_id), cat.lookup(listed, aest_id)
        say("catalog look-up, nothing stored yet (both networks)", time.perf_counter() - t)

        t = time.perf_counter()
        for i in range(0, n, BATCH):
            chunk = [(f, rows[(i + j) % len(rows)]) for j, f in enumerate(listed[i:i + BATCH])]
            cat.store_results([dataclasses.replace(r[0], path=f) for f, r in chunk], tech_id)
            cat.store_results([dataclasses.replace(r[1], path=f) for f, r in chunk], aest_id)
            greys = [(f, r[2]) for f, r in chunk if r[2] is not None]
            if greys:
                cat.store_tiny_grays(greys)
        say(f"store results as they arrive ({BATCH} a batch, both networks, greys)", time.perf_counter() - t)

        loaded = SimpleNamespace(model_id=tech_id, trained=False)
        aesthetic = SimpleNamespace(model_id=aest_id)

        def nothing(todo, *_a, **_k):
            assert not todo, f"{len(todo)} photos would be sent again"
            yield from ()
            return 0

        t = time.perf_counter()
        got = 0
        for prog in iter_scores_cached(listed, loaded, cat, aesthetic=aesthetic, score=nothing, analyses=ANALYSES):
            assert isinstance(prog, BatchProgress)
            got += len(prog.results)
        say("a resumed job: everything answered by the catalog", time.perf_counter() - t)
        assert got == n, (got, n)

        results = [r for prog in iter_scores_cached(listed, loaded, cat, aesthetic=aesthetic, score=nothing,
                                                    analyses=ANALYSES) for r in prog.results]
        scorers = SimpleNamespace(mode="overall", loaded=SimpleNamespace(cfg=SimpleNamespace(families=FAMILIES)))
        some = results[:a.judge_photos]  # (grouping compares neighbours in time: linear in the photos)
        t = time.perf_counter()
        judge(some, scorers, cat)
        say(f"burst groups + the overall rule (judge), first {len(some)} photos", time.perf_counter() - t, len(some))
        cat.close()
        print(f"catalog size: {(tmp / 'catalog.sqlite').stat().st_size / n / 1024:.1f} KB a photo")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
