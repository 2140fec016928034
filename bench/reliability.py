"""Figures for README's Reliability section: hostile inputs tried, faults survived, files lost.

    .venv/bin/python bench/reliability.py [--kills 10]

Builds the generated hostile cases (tests/reliability_helpers.py), adds the shared EXIF
corpus when present, scores them all (a tiny stand-in model: this measures the file
pipeline), then kills ``--kills`` slowed exports/moves with SIGKILL at random moments
and checks every photo is intact at its source or verified at the destination.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("PHOTOCULL_DEVICE", "cpu")

from reliability_helpers import ERROR, build_hostile_folder, corpus_files, fast_model  # noqa: E402
from test_dataloss import DRIVER, TMP_PREFIX  # noqa: E402

from photocull.media.loaders import is_supported  # noqa: E402
from photocull.media.listing import list_images
from photocull.scoring import score_all  # noqa: E402


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="photocull-reliability-"))
    expected = build_hostile_folder(tmp / "hostile")
    files = list_images(tmp / "hostile") + [p for p in corpus_files() if is_supported(p)]
    t0 = time.perf_counter()
    results = score_all(files, fast_model(), batch_size=16)
    crashes = len(files) - len(results)
    refused = [r for r in results if r.error]
    print(f"inputs tried: {len(files)} ({len(expected)} generated hostile cases, {len(files) - len(expected)} corpus files)")
    print(f"  scored: {len(results) - len(refused)}, refused with a reason: {len(refused)}, crashes: {crashes}, "
          f"{time.perf_counter() - t0:.1f} s")
    assert len(refused) == sum(1 for v in expected.values() if v == ERROR)

    import numpy as np

    rng = np.random.default_rng(0)
    master = tmp / "master"
    master.mkdir()
    hashes = {}
    for i in range(30):
        data = rng.bytes(int(rng.integers(400_000, 1_200_000)))
        (master / f"IMG_{i:04d}.jpg").write_bytes(data)
        hashes[f"IMG_{i:04d}.jpg"] = hashlib.sha256(data).hexdigest()
    lost = damaged = half_final = 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for k in range(args.kills):
        src, dest = tmp / f"kill{k}" / "src", tmp / f"kill{k}" / "dest"
        src.mkdir(parents=True)
        for p in master.iterdir():
            (src / p.name).write_bytes(p.read_bytes())
        mode = "move" if k % 3 else "copy"
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(dest), mode], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        proc.stdout.readline()
        time.sleep(random.Random(k).uniform(0.2, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        final = {p.name: sha(p) for p in dest.iterdir() if not p.name.startswith(TMP_PREFIX)} if dest.exists() else {}
        half_final += sum(1 for n, h in final.items() if hashes.get(n) != h)
        for n, h in hashes.items():
            if (src / n).exists():
                damaged += sha(src / n) != h
            elif final.get(n) != h:
                lost += 1
    print(f"exports killed with SIGKILL: {args.kills} (30 files each, copy and move)")
    print(f"files lost: {lost}, sources damaged: {damaged}, half-written files under a final name: {half_final}")
    return 1 if lost or damaged or half_final or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
