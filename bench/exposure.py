"""Do "too dark", "too bright" and "noisy" need the pixels' agreement?  Clean photos vs degraded copies.

    .venv/bin/python bench/exposure.py [--work /tmp/photocull_faults] [--choose]

Issue 5/7 item 4: the severity head names night skies, the moon, snow and fine texture
"too dark", "too bright" or "noisy".  photocull/analysis/exposure.py measures the pixels (the
highlights' level, the share clipped to white, the darkest level, the noise in the flattest
blocks) and ``ExposureReport.supports`` lets a family be named only when they agree.  This
bench prints, in one run, before (the head alone) and after (head and pixels):

  * clean photos: every photo of ../shared/data/pristine (halves A and B and seen / unseen as
    bench/faults.py makes them) and, never used to choose anything, ../shared/data/camera;
    the rate of any exposure / noise reason, of any reason at all, per family; every night,
    moon, star, snow... photo by name, and every clean photo whose reasons changed;
  * degraded copies (bench/faults.py's: 150 unseen photos darkened -1.4 / -2.2 EV,
    brightened +1.2 / +1.8 EV, noised at two levels, JPEG q92): how often the family's own
    reason is named, and the overall ranking's too dark / too bright faults;
  * ``--choose``: the grid the thresholds were chosen from, on half A only (clean photos of
    half A and the copies of half-A photos): per family, the threshold that silences most
    of the head's reasons on clean photos while keeping at least 90 % of its detections.

Scoring is the pipeline's (scoring.iter_scores on the same decode the app makes, the
exposure analysis included); the severities are cached in --work (exposure_severities.json),
the pixels are measured again on every run (the same scoring.decode), so changing the
analysis needs no re-scoring.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
CAMERA = REPO.parent / "shared" / "data" / "camera"

import faults  # noqa: E402  (bench/faults.py: the same clean photos, halves and degraded copies)

from photocull import scoring  # noqa: E402
from photocull.analysis import exposure as ex  # noqa: E402
from photocull.media.loaders import is_supported  # noqa: E402
from photocull.model.reasons import FAULTS, THRESHOLD, THRESHOLDS, explain  # noqa: E402
from photocull.model.reasons import faults as technical_faults  # noqa: E402
from photocull.model.spec import FAMILIES, REASONS  # noqa: E402

KINDS = {"dark": "dark", "bright": "bright", "noisy": "noise"}  # faults.LEVELS kind -> family
LVLS = ("moderate", "strong")
NAMED = ("night", "moon", "milky", "star", "snow", "iceland", "new-year", "firework", "winter", "hubble",
         "galaxy", "space", "sunset", "silhouette", "dark", "candle", "fog", "ice")
# the decode the app makes (faces and focus ask for a short side of 2000 px), without their cost
# (an analysis that finds nothing: its field, the thumbnail, stays None)
_SIDE = scoring.Analysis("thumbnail", lambda im: None, side=scoring.decode_side(scoring.ANALYSES))


def dataset(work: Path, n_degraded: int = 150):
    """bench/faults.py's clean photos (keys, seen, half) and degraded copies (dark, bright,
    noisy), generated when missing; the camera photos."""
    refs, train_refs, _ = faults.split_references(faults.PRISTINE, seed=0)
    seen_keys = {r.key for r in train_refs[:faults.N_TRAIN_USED]}
    refs = [r for r in refs if r.path.suffix.lower() in faults.PRISTINE_EXTS]
    keys = [r.key for r in refs]
    seen = np.array([k in seen_keys for k in keys])
    half = np.zeros(len(refs), int)
    rng = np.random.default_rng(2026)  # as bench/faults.py, step by step: the same halves and copies
    for grp in (np.flatnonzero(seen), np.flatnonzero(~seen)):
        perm = rng.permutation(grp)
        half[perm[1::2]] = 1
    deg_idx = []
    for h in (0, 1):
        pool = np.flatnonzero(~seen & (half == h))
        deg_idx += sorted(rng.choice(pool, min(len(pool), n_degraded // 2), replace=False).tolist())
    copies = []  # (clean index, kind, level, path)
    jobs = []
    for i in deg_idx:
        for kind in KINDS:
            for level in LVLS:
                out = work / "degraded" / f"{keys[i].replace('/', '__').rsplit('.', 1)[0]}__{kind}_{level}.jpg"
                copies.append((int(i), kind, level, out))
                jobs.append((str(refs[i].path), keys[i], kind, level, str(out)))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(faults._make_degraded, jobs))
    camera = sorted(p for p in CAMERA.rglob("*") if p.is_file() and is_supported(p) and "invalid" not in p.parts)
    return refs, seen, half, copies, camera


def severities(paths: list[Path], cache_file: Path, loaded) -> dict[str, tuple]:
    """path -> (severities, why from the pipeline or None when cached) by scoring.iter_scores."""
    tag = str(loaded.model_id)
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if cache.get("_model") != tag:
        cache = {"_model": tag}

    def key(p: Path) -> str:
        st = p.stat()
        return f"{p}|{st.st_size}|{int(st.st_mtime)}"

    out = {}
    todo = [p for p in paths if key(p) not in cache]
    t0 = time.perf_counter()
    for prog in scoring.iter_scores(todo, loaded, analyses=(scoring.EXPOSURE, _SIDE), want_features=False,
                                    batch_size=16):
        for r in prog.results:
            if r.ok and r.severities is not None:
                cache[key(r.path)] = [float(v) for v in r.severities]
                out[str(r.path)] = (np.asarray(r.severities, np.float64), r.why, r.exposure)
        print(f"  scored {prog.done}/{len(todo)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if todo:
        cache_file.write_text(json.dumps(cache))
    for p in paths:
        if str(p) not in out and key(p) in cache:
            out[str(p)] = (np.asarray(cache[key(p)], np.float64), None, None)
    return out


def measure(paths: list[Path], cfg) -> dict:
    """path -> ExposureReport, by scoring.decode (the app's decode and analysis)."""
    def one(p):
        d = scoring.decode(p, cfg, (scoring.EXPOSURE, _SIDE), need=(False,))
        return str(p), d.found.get("exposure")

    with ThreadPoolExecutor(2) as pool:
        found = dict(pool.map(one, paths))
    return {k: v for k, v in found.items() if v is not None}


def timing(paths: list[Path], cfg) -> np.ndarray:
    """The analysis's own time per photo (ms of this thread's CPU time: the machine may be shared),
    on the views the pipeline gives it."""
    views = []
    grab = scoring.Analysis("exposure", lambda im: views.append(im.copy()))
    for p in paths:
        scoring.decode(p, cfg, (grab, _SIDE), need=(False,))
    out = []
    for im in views:
        t = time.thread_time()
        ex.analyse_exposure(im)
        out.append(1000 * (time.thread_time() - t))
    return np.asarray(out)


def pct(x) -> str:
    x = np.asarray(x, bool)
    return f"{100 * x.mean():5.1f} %" if x.size else "   n/a "


def words(fams) -> set[str]:
    return {REASONS[f] for f in fams}


EXPO = words(("dark", "bright", "noise"))


def named(why: str, ws) -> bool:
    return any(w in why.split(", ") for w in ws)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/photocull_faults")
    ap.add_argument("--choose", action="store_true", help="print the half-A grid the thresholds come from")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from photocull.model import checkpoint

    loaded = checkpoint.load_default_model()
    fams = list(loaded.cfg.families)
    fi = {f: fams.index(f) for f in fams}
    refs, seen, half, copies, camera = dataset(work)
    clean_paths = [r.path for r in refs] + camera
    all_paths = clean_paths + [c[3] for c in copies]
    t0 = time.perf_counter()
    S = severities(all_paths, work / "exposure_severities.json", loaded)
    E = measure(all_paths, loaded.cfg)
    ms = timing(clean_paths[::4], loaded.cfg)
    print(f"scored / measured {len(all_paths)} files in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    ok = [p for p in all_paths if str(p) in S and str(p) in E]
    missing = [p for p in all_paths if p not in ok]

    def before(p):
        return explain(S[str(p)][0], fams)

    def after(p):
        return explain(S[str(p)][0], fams, evidence=E[str(p)])

    # the pipeline's own 'why' (files scored in this run) is the one computed here
    fresh = [p for p in ok if S[str(p)][1] is not None]
    assert all(S[str(p)][1] == after(p) for p in fresh), "the pipeline's why differs from the bench's"

    print("=" * 100)
    print("DATA")
    print(f"clean: {len(refs)} photos of ../shared/data/pristine ({int(seen.sum())} seen in training), half A "
          f"{int((half == 0).sum())} / half B {int((half == 1).sum())}; {len(camera)} camera files "
          f"(../shared/data/camera, never used to choose); degraded copies: {len(copies)} "
          f"({len(copies) // 6} unseen photos x dark/bright/noisy x moderate/strong)")
    print("\n".join(line for line in faults.describe_levels() if line.split()[0] in KINDS))
    print(f"not scored / not decoded: {len(missing)} {[p.name for p in missing][:5]}")
    print(f"reason thresholds: {THRESHOLD} ({', '.join(f'{k} {v}' for k, v in THRESHOLDS.items())}); "
          f"faults: {FAULTS}")
    print(f"pixels' rule: dark needs top < {ex.DARK_TOP}; bright needs (white >= {ex.BRIGHT_WHITE} and low > "
          f"{ex.BRIGHT_LOW}); noise needs flat-block noise > {ex.NOISE_SIGMA}")
    print(f"exposure analysis time (the 448 px view, CPU time of one thread, every 4th clean photo): "
          f"mean {ms.mean():.2f} ms, "
          f"median {np.median(ms):.2f}, p95 {np.quantile(ms, 0.95):.2f} (n={ms.size}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    if args.choose:
        choose(refs, half, copies, S, E, fi)

    # --- clean photos ----------------------------------------------------------------
    print("\n" + "=" * 100)
    print("CLEAN PHOTOS: share with a reason, before (head) -> after (head and pixels)")
    sets = {
        "pristine all": [r.path for r in refs],
        "  half A (chosen on)": [r.path for r, h in zip(refs, half) if h == 0],
        "  half B (held out)": [r.path for r, h in zip(refs, half) if h == 1],
        "  half B, unseen": [r.path for r, h, s in zip(refs, half, seen) if h == 1 and not s],
        "camera (held out)": camera,
        "pristine + camera": clean_paths,
    }
    cols = ("any expo/noise", "too dark", "too bright", "noisy", "any reason", "dark/bright fault")
    print(f"{'':>22} {'n':>4} | " + " | ".join(f"{c:>19}" for c in cols))
    for label, ps in sets.items():
        ps = [p for p in ps if p in ok or str(p) in E and str(p) in S]
        cells = []
        for test in (lambda w: named(w, EXPO), lambda w: named(w, words(["dark"])),
                     lambda w: named(w, words(["bright"])), lambda w: named(w, words(["noise"])), lambda w: w != ""):
            cells.append(f"{pct([test(before(p)) for p in ps])} -> {pct([test(after(p)) for p in ps])}")
        fb = [any(f in technical_faults(S[str(p)][0], fams) for f in words(["dark", "bright"])) for p in ps]
        fa = [any(f in technical_faults(S[str(p)][0], fams, E[str(p)]) for f in words(["dark", "bright"])) for p in ps]
        cells.append(f"{pct(fb)} -> {pct(fa)}")
        print(f"{label:>22} {len(ps):>4} | " + " | ".join(f"{c:>19}" for c in cells))

    print("\nnight / moon / stars / snow / ice / sunset... photos (by file name), every clean photo whose"
          " reasons changed and every one still given an exposure / noise reason:")
    for p in clean_paths:
        if str(p) not in E or str(p) not in S:
            continue
        b, a = before(p), after(p)
        if b != a or named(a, EXPO) or any(n in p.name.lower() for n in NAMED):
            e = E[str(p)]
            s = S[str(p)][0]
            rel = str(p).split("/data/")[-1]
            print(f"  {rel:<52} dark {s[fi['dark']]:.2f} bright {s[fi['bright']]:.2f} noise {s[fi['noise']]:.2f} | "
                  f"top {e.top:3.0f} white {e.white:.3f} low {e.low:3.0f} flat-noise {e.noise:4.2f} | "
                  f"'{b or '-'}' -> '{a or '-'}'")

    # --- degraded copies --------------------------------------------------------------
    print("\n" + "=" * 100)
    print("DEGRADED COPIES: the family's own reason named, before -> after (and the ranking's fault)")
    print(f"{'':>18} | {'half B (held out)':>22} | {'half A':>22} | {'both':>22} | {'fault, both':>22}")
    for kind, fam in KINDS.items():
        for level in LVLS:
            rows = [(i, p) for i, k, l, p in copies if k == kind and l == level and p in ok]
            cells = []
            for sel in (lambda i: half[i] == 1, lambda i: half[i] == 0, lambda i: True):
                ps = [p for i, p in rows if sel(i)]
                cells.append(f"{pct([named(before(p), words([fam])) for p in ps])} -> "
                             f"{pct([named(after(p), words([fam])) for p in ps])}")
            if fam in FAULTS:
                ps = [p for _, p in rows]
                cells.append(f"{pct([REASONS[fam] in technical_faults(S[str(p)][0], fams) for p in ps])} -> "
                             f"{pct([REASONS[fam] in technical_faults(S[str(p)][0], fams, E[str(p)]) for p in ps])}")
            else:
                cells.append("")
            print(f"{kind + ' ' + level:>18} | " + " | ".join(f"{c:>22}" for c in cells))


def choose(refs, half, copies, S, E, fi) -> None:
    """Per family, on half A: the threshold that silences most of the head's reasons on clean
    photos while keeping at least 90 % of its detections on the copies."""
    print("\n" + "=" * 100)
    print("CHOOSING ON HALF A (clean photos of half A; copies of half-A photos)")
    thr = {f: THRESHOLDS.get(f, THRESHOLD) for f in FAMILIES}
    clean = [str(r.path) for r, h in zip(refs, half) if h == 0 and str(r.path) in E and str(r.path) in S]
    grids = {
        "dark": [("top <", v, lambda e, v=v: e.top < v) for v in (160, 170, 180, 185, 190, 195, 200, 210, 256)],
        "bright": ([("white >= %.2f and low >" % w, v, lambda e, w=w, v=v: e.white >= w and e.low > v)
                    for w in (0.0, 0.01, 0.02, 0.04) for v in (-1, 10, 15, 20, 25, 30)]
                   + [("white >= %.2f or low >" % w, v, lambda e, w=w, v=v: e.white >= w or e.low > v)
                      for w in (0.01, 0.02, 0.04, 0.08) for v in (30, 40, 50)]),
        "noise": [("noise >", v, lambda e, v=v: e.noise > v) for v in (0.0, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5)],
    }
    for fam, grid in grids.items():
        kind = [k for k, f in KINDS.items() if f == fam][0]
        deg = [str(p) for i, k, _, p in copies if k == kind and half[i] == 0 and str(p) in E and str(p) in S]
        head_c = [p for p in clean if S[p][0][fi[fam]] >= thr[fam]]
        head_d = [p for p in deg if S[p][0][fi[fam]] >= thr[fam]]
        print(f"\n{fam}: the head names it on {len(head_c)} of {len(clean)} clean photos and {len(head_d)} of "
              f"{len(deg)} copies ({kind}, both levels)")
        best = None
        for name, v, rule in grid:
            kept_c = sum(rule(E[p]) for p in head_c)
            kept_d = sum(rule(E[p]) for p in head_d)
            share = kept_d / max(1, len(head_d))
            print(f"  {name} {v:<5}: clean kept {kept_c:>3} of {len(head_c)}, detections kept {kept_d:>3} of "
                  f"{len(head_d)} ({100 * share:.0f} %)")
            if share >= 0.9 and (best is None or (kept_c, -kept_d) < (best[0], -best[1])):
                best = (kept_c, kept_d, f"{name} {v}")
        print(f"  -> {best[2] if best else 'none keeps 90 %'}")


if __name__ == "__main__":
    main()
