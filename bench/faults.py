"""Which faults can the overall ranking demote on?  False alarms on clean photos vs detection.

    .venv/bin/python bench/faults.py [--work /tmp/photocull_faults] [--n-degraded 150] [--fresh]

Issue 16 (3/7): "a frame with a fault the photographer would reject (blurred, shaken, badly
exposed) never ranks above a sound frame of the same burst group ... demote only on faults
whose false-alarm rate on clean photos you have measured to be <= 10 %".  This bench
measures candidate fault detectors built on the default (technical) model:

  D1  absolute: technical mean < T
  D2  absolute: severity of one family (blur, motion, dark, bright; noise, compression) > t
  D3  relative: technical mean <= best technical mean of the burst group - delta

Data (everything generated is deterministic and lands in --work, scores are cached there):
  * clean: every photo of ../shared/data/pristine (~608), scored from the original files;
    each is marked *seen* when the shipped model trained on it (its first 245 training
    references, rebuilt with photocull.training.technical.split_references, seed 0):
    false alarms on seen photos are optimistic, so the unseen ones are reported apart.
  * halves: the clean photos are split at random (stratified by seen/unseen) into half A
    (thresholds are chosen there) and half B (the figures reported).
  * degraded: --n-degraded unseen photos (half from A, half from B), each degraded with
    photocull's own degradations (photocull/training/degrade.py) at two levels a photographer
    would reject (see LEVELS below), saved as JPEG q92 and scored like photos.
  * bursts: each clean photo gives 3 burst-like frames (crop of 1-3 % at a random offset,
    no resampling; exposure +-0.1 EV; JPEG q92).  A D3 false alarm is a clean frame
    delta below the best of its 3-frame group; D3 detection is measured on the group
    {clean original, one degraded copy}.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PRISTINE = REPO.parent / "shared" / "data" / "pristine"

from photocull.training import degrade  # noqa: E402
from photocull.training.technical import PRISTINE_EXTS, split_references  # noqa: E402

N_TRAIN_USED = 245  # references the shipped model's feature budget reached (221 train + 24 val: model meta)
JPEG_Q = 92

# kind -> (degrade family, {level name: severity}); the parameters these give for a 512 px
# frame are printed by describe_levels().
LEVELS = {
    "blurred": ("blur", {"moderate": 0.3, "strong": 0.6}),
    "shaken": ("motion", {"moderate": 0.25, "strong": 0.5}),
    "dark": ("dark", {"moderate": 0.2, "strong": 0.45}),
    "bright": ("bright", {"moderate": 0.25, "strong": 0.5}),
    "noisy": ("noise", {"moderate": 0.4, "strong": 0.7}),
    "compressed": ("compression", {"moderate": 0.6, "strong": 0.85}),
}
REJECT_KINDS = ("blurred", "shaken", "dark", "bright")  # what issue 16 asks the ranking to demote on
ABS_FAMS = ("blur", "motion", "dark", "bright")
EXTRA_FAMS = ("noise", "compression")


def seed_of(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return degrade.to_float(ImageOps.exif_transpose(im).convert("RGB"))


def save_jpeg(x: np.ndarray, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.jpg")
    Image.fromarray(degrade.to_uint8(x)).save(tmp, "JPEG", quality=JPEG_Q)
    os.replace(tmp, out)


def describe_levels() -> list[str]:
    lines = []
    for kind, (fam, lv) in LEVELS.items():
        parts = []
        for name, s in lv.items():
            p = degrade.family_params(fam, s, 0)
            if fam == "blur":
                txt = f"gaussian sigma {0.6 + 4.4 * s:.1f} px or defocus disk r {1 + 8 * s:.1f} px (50/50 per photo)"
            elif fam == "motion":
                txt = f"straight motion {p['length']:.1f} px, random angle"
            elif fam in ("dark", "bright"):
                txt = f"{p['ev']:+.2f} EV (linear light, 8-bit clip)"
            elif fam == "noise":
                txt = f"shot-noise level {p['level']:.3f} (Poisson-Gaussian, part chroma)"
            else:
                txt = f"JPEG q{p['quality']} before the q{JPEG_Q} save"
            parts.append(f"{name} s={s}: {txt}")
        lines.append(f"  {kind:<10} ({fam}): " + "; ".join(parts))
    return lines


# --- generation (worker processes) -------------------------------------------------------

def _make_degraded(job):
    src, key, kind, level, out = job
    if Path(out).is_file():
        return
    fam, lv = LEVELS[kind]
    x = load_rgb(Path(src))
    save_jpeg(degrade.apply(x, fam, lv[level], seed_of(key, "deg")), Path(out))


def _make_bursts(job):
    src, key, outs = job
    if all(Path(o).is_file() for o in outs):
        return
    x = load_rgb(Path(src))
    h, w = x.shape[:2]
    rng = np.random.default_rng(seed_of(key, "burst"))
    for o in outs:
        c = rng.uniform(0.01, 0.03)  # share of each dimension cropped away
        ch, cw = int(round(h * c)), int(round(w * c))
        oy, ox = int(rng.integers(0, ch + 1)), int(rng.integers(0, cw + 1))
        frame = x[oy:oy + h - ch, ox:ox + w - cw]
        save_jpeg(degrade.exposure(frame, float(rng.uniform(-0.1, 0.1))), Path(o))


# --- scoring with a cache --------------------------------------------------------------------

def score_cached(paths: list[Path], cache_file: Path, model_tag: str) -> dict[str, tuple[float, np.ndarray]]:
    cache = {}
    if cache_file.is_file():
        cache = json.loads(cache_file.read_text())
        if cache.get("_model") != model_tag:
            cache = {}
    cache["_model"] = model_tag

    def key(p: Path) -> str:
        st = p.stat()
        return f"{p}|{st.st_size}|{int(st.st_mtime)}"

    todo = [p for p in paths if key(p) not in cache]
    if todo:
        from photocull.model import checkpoint
        from photocull.scoring import score_all
        lm = checkpoint.load_default_model()
        t0 = time.perf_counter()
        for i in range(0, len(todo), 256):
            chunk = todo[i:i + 256]
            for p, r in zip(chunk, score_all(chunk, lm)):
                if not r.ok:
                    raise SystemExit(f"cannot score {p}: {r.error}")
                cache[key(p)] = [float(r.mean), [float(v) for v in r.severities], r.why]
            cache_file.write_text(json.dumps(cache))
            print(f"  scored {min(i + 256, len(todo))}/{len(todo)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return {str(p): (cache[key(p)][0], np.asarray(cache[key(p)][1]), cache[key(p)][2]) for p in paths}


# --- helpers for the report ---------------------------------------------------------------

def pct(x) -> str:
    x = np.asarray(x, bool)
    return f"{100 * x.mean():5.1f}" if x.size else "  n/a"


def ci95(k: int, n: int) -> str:
    """Wilson 95 % interval, in %."""
    if n == 0:
        return "n/a"
    z, p = 1.96, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return f"{100 * max(0, c - h):.1f}-{100 * min(1, c + h):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/photocull_faults")
    ap.add_argument("--n-degraded", type=int, default=150)
    ap.add_argument("--fresh", action="store_true", help="forget the cached scores")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.fresh and (work / "scores.json").exists():
        (work / "scores.json").unlink()

    # --- the clean photos, seen/unseen, halves -------------------------------------------
    refs, train_refs, _ = split_references(PRISTINE, seed=0)
    seen_keys = {r.key for r in train_refs[:N_TRAIN_USED]}
    refs = [r for r in refs if r.path.suffix.lower() in PRISTINE_EXTS]
    keys = [r.key for r in refs]
    seen = np.array([k in seen_keys for k in keys])
    half = np.zeros(len(refs), int)  # 0: A (choose), 1: B (report)
    rng = np.random.default_rng(2026)
    for grp in (np.flatnonzero(seen), np.flatnonzero(~seen)):
        perm = rng.permutation(grp)
        half[perm[1::2]] = 1
    # degraded subset: unseen photos only, half from A, half from B
    deg_idx = []
    for h in (0, 1):
        pool = np.flatnonzero(~seen & (half == h))
        deg_idx += sorted(rng.choice(pool, min(len(pool), args.n_degraded // 2), replace=False).tolist())
    deg_idx = np.array(deg_idx)

    # --- generate -----------------------------------------------------------------------
    def safe(k: str) -> str:
        return k.replace("/", "__").rsplit(".", 1)[0]

    deg_jobs, deg_paths = [], {}
    for i in deg_idx:
        for kind, (_, lv) in LEVELS.items():
            for level in lv:
                out = work / "degraded" / f"{safe(keys[i])}__{kind}_{level}.jpg"
                deg_jobs.append((str(refs[i].path), keys[i], kind, level, str(out)))
                deg_paths[(int(i), kind, level)] = out
    burst_jobs, burst_paths = [], {}
    for i, r in enumerate(refs):
        outs = [work / "bursts" / f"{safe(keys[i])}__f{j}.jpg" for j in range(3)]
        burst_paths[i] = outs
        burst_jobs.append((str(r.path), keys[i], [str(o) for o in outs]))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        list(ex.map(_make_degraded, deg_jobs, chunksize=8))
        list(ex.map(_make_bursts, burst_jobs, chunksize=8))
    print(f"generated/checked {len(deg_jobs)} degraded + {3 * len(burst_jobs)} burst frames in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)

    # --- score --------------------------------------------------------------------------
    from photocull.model import spec as modelspec
    mp = modelspec.default_model_path()
    tag = f"{mp}|{mp.stat().st_size}|{int(mp.stat().st_mtime)}"
    all_paths = [r.path for r in refs] + list(deg_paths.values()) + [p for ps in burst_paths.values() for p in ps]
    S = score_cached(all_paths, work / "scores.json", tag)
    fams = list(modelspec.FAMILIES)
    fi = {f: fams.index(f) for f in fams}

    c_mean = np.array([S[str(r.path)][0] for r in refs])
    c_sev = np.stack([S[str(r.path)][1] for r in refs])
    c_why = [S[str(r.path)][2] for r in refs]
    b_mean = np.array([[S[str(p)][0] for p in burst_paths[i]] for i in range(len(refs))])  # (n, 3)
    b_sev = np.stack([np.stack([S[str(p)][1] for p in burst_paths[i]]) for i in range(len(refs))])  # (n, 3, F)
    kinds = list(LEVELS)
    lvls = ["moderate", "strong"]
    d_mean = {(k, l): np.array([S[str(deg_paths[(int(i), k, l)])][0] for i in deg_idx]) for k in kinds for l in lvls}
    d_sev = {(k, l): np.stack([S[str(deg_paths[(int(i), k, l)])][1] for i in deg_idx]) for k in kinds for l in lvls}
    d_half = half[deg_idx]
    d_ref_mean = c_mean[deg_idx]

    def hdr(title):
        print("\n" + "=" * 100 + f"\n{title}\n" + "=" * 100)

    hdr("DATA")
    print(f"clean photos: {len(refs)} ({seen.sum()} seen in training, {(~seen).sum()} unseen); "
          f"half A {np.sum(half == 0)}, half B {np.sum(half == 1)}")
    print(f"degraded: {len(deg_idx)} unseen photos ({np.sum(d_half == 0)} A / {np.sum(d_half == 1)} B) x "
          f"{len(kinds)} kinds x 2 levels = {len(deg_paths)} JPEG q{JPEG_Q} files; sizes for a 512 px frame:")
    print("\n".join(describe_levels()))
    print(f"bursts: 3 frames per clean photo = {3 * len(refs)} files (crop 1-3 %, +-0.1 EV, q{JPEG_Q})")
    print(f"model: {tag}")
    print("\ntechnical mean, clean originals: median %.2f, 5th pct %.2f, 1st pct %.2f; burst frames median %.2f"
          % (np.median(c_mean), np.quantile(c_mean, 0.05), np.quantile(c_mean, 0.01), np.median(b_mean)))
    print("median technical mean of the degraded copies (clean originals of the same photos: %.2f):"
          % np.median(d_ref_mean))
    for k in kinds:
        print(f"  {k:<10} " + "  ".join(f"{l} {np.median(d_mean[(k, l)]):.2f}" for l in lvls))
    print("\nclean photos with a reason from today's reasons.py (any family): %s %% (unseen %s %%, seen %s %%)"
          % (pct([w != "" for w in c_why]), pct([c_why[i] != "" for i in np.flatnonzero(~seen)]),
             pct([c_why[i] != "" for i in np.flatnonzero(seen)])))

    # ---------------------------------------------------------------------------------
    def det_line(flag_fn, sub=None):
        """flag_fn(mean, sev) -> bool array; detection per kind/level on the degraded set."""
        cells = []
        for k in kinds:
            for l in lvls:
                f = flag_fn(d_mean[(k, l)], d_sev[(k, l)])
                cells.append(pct(f if sub is None else f[sub]))
        return " ".join(cells)

    kind_hdr = " ".join(f"{k[:5]}-{l[0]}" for k in kinds for l in lvls)

    hdr("D1  technical mean < T  (FA: % of clean originals flagged; detection: % of degraded copies flagged)")
    print(f"{'T':>5} | {'FA all':>6} {'unseen':>6} {'seen':>6} {'burst':>6} | detection {kind_hdr}")
    for T in (4.0, 4.5, 5.0, 5.5, 6.0, 6.5):
        fa = c_mean < T
        print(f"{T:5.1f} | {pct(fa):>6} {pct(fa[~seen]):>6} {pct(fa[seen]):>6} {pct((b_mean < T).ravel()):>6} | "
              f"          {det_line(lambda m, s: m < T)}")

    hdr("D2  severity of one family > t  (FA on clean originals; detection = that family's flag on each kind)")
    for f in ABS_FAMS + EXTRA_FAMS:
        j = fi[f]
        q = np.quantile(c_sev[~seen, j], [0.5, 0.9, 0.95, 0.99])
        print(f"\n{f}: clean unseen severity median {q[0]:.2f}, p90 {q[1]:.2f}, p95 {q[2]:.2f}, p99 {q[3]:.2f}")
        print(f"{'t':>5} | {'FA all':>6} {'unseen':>6} {'seen':>6} {'burst':>6} | detection {kind_hdr}")
        for t in (0.5, 0.6, 0.7, 0.72, 0.8, 0.85, 0.9, 0.95):
            fa = c_sev[:, j] > t
            print(f"{t:5.2f} | {pct(fa):>6} {pct(fa[~seen]):>6} {pct(fa[seen]):>6} "
                  f"{pct((b_sev[:, :, j] > t).ravel()):>6} | "
                  f"          {det_line(lambda m, s: s[:, j] > t)}")

    hdr("D3  relative: mean <= best of the burst group - delta")
    b_best = b_mean.max(axis=1, keepdims=True)
    b_gap = b_best - b_mean  # (n, 3), 0 for the best frame
    print("clean 3-frame bursts: spread (best - worst) median %.2f, p90 %.2f, p95 %.2f, p99 %.2f, max %.2f"
          % tuple(np.quantile(b_gap.max(1), [0.5, 0.9, 0.95, 0.99, 1.0])))
    print("detection: group = {clean original, degraded copy}; flagged when copy <= original - delta")
    print(f"{'delta':>5} | {'FA frm':>6} {'groups':>6} {'unseen':>6} | detection {kind_hdr}")
    for dl in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
        fa = b_gap >= dl
        print(f"{dl:5.2f} | {pct(fa.ravel()):>6} {pct(fa.any(1)):>6} {pct(fa[~seen].ravel()):>6} | "
              f"          {det_line(lambda m, s: m <= d_ref_mean - dl)}")

    # --- the combined rule: chosen on half A, reported on half B ---------------------------
    hdr("COMBINED RULE: fault = any D2 family flag (blur/motion/dark/bright) or D1 or D3; chosen on half A")
    grid_t = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 9.0)  # 9: family off
    grid_T = (0.0, 4.0, 4.5, 5.0, 5.5)  # 0: D1 off
    grid_d = (99.0, 0.75, 1.0, 1.25, 1.5, 2.0)  # 99: D3 off
    # choose on the *unseen* photos of half A: a user's photos are never the model's training
    # photos, and the seen ones have almost no false alarms (they would dilute the budget)
    A_clean = (half == 0) & ~seen
    A_deg = d_half == 0
    budget_a = 0.04  # on half A, to keep a margin under the 5 % aim on half B

    # precompute the false-alarm inputs: clean frames in bursts (absolute flags on the frame,
    # relative flags inside its 3-frame group) and clean originals (absolute only)
    def abs_flags(mean, sev, th):
        """th = (blur, motion, dark, bright, T[, noise, compression]); 9 / 0 turn a part off."""
        tb, tm, td, tbr, T = th[:5]
        tn, tc = th[5:7] if len(th) >= 7 else (9.0, 9.0)
        return ((sev[..., fi["blur"]] > tb) | (sev[..., fi["motion"]] > tm) | (sev[..., fi["dark"]] > td)
                | (sev[..., fi["bright"]] > tbr) | (mean < T) | (sev[..., fi["noise"]] > tn)
                | (sev[..., fi["compression"]] > tc))

    best = None
    for th in product(grid_t, grid_t, grid_t, grid_t, grid_T):
        fa_orig = abs_flags(c_mean[A_clean], c_sev[A_clean], th)
        if fa_orig.mean() > budget_a:
            continue
        babs = abs_flags(b_mean[A_clean], b_sev[A_clean], th)
        for dl in grid_d:
            fa_frames = babs | (b_gap[A_clean] >= dl)
            if fa_frames.mean() > budget_a:
                continue
            dets = []
            for k in REJECT_KINDS:
                for l in lvls:
                    m, s = d_mean[(k, l)][A_deg], d_sev[(k, l)][A_deg]
                    dets.append((abs_flags(m, s, th) | (m <= d_ref_mean[A_deg] - dl)).mean())
            obj = (np.mean(dets), min(dets), -fa_frames.mean())
            if best is None or obj > best[0]:
                best = (obj, th, dl)
    (obj, th, dl) = best
    tb, tm, td, tbr, T = th
    off = lambda v, o: "off" if v == o else f"{v}"  # noqa: E731
    print(f"search: every combination of blur/motion/dark/bright thresholds in {grid_t[:-1]} or off, "
          f"T in {grid_T[1:]} or off, delta in {grid_d[1:]} or off;")
    print(f"maximise mean detection over {REJECT_KINDS} x (moderate, strong) on half A with FA <= "
          f"{100 * budget_a:.0f} % on the unseen photos of half A (clean originals and clean burst frames);"
          f" delta >= 0.75 because the synthetic bursts are steadier than real ones")
    print(f"CHOSEN: blur > {off(tb, 9.0)}, motion > {off(tm, 9.0)}, dark > {off(td, 9.0)}, bright > {off(tbr, 9.0)}, "
          f"mean < {off(T, 0.0)}, delta {off(dl, 99.0)}   (half A: mean detection {100 * obj[0]:.1f} %, "
          f"min {100 * obj[1]:.1f} %, FA {-100 * obj[2]:.1f} %)")
    common = (half, seen, c_mean, c_sev, b_mean, b_sev, b_gap, d_mean, d_sev, d_half, d_ref_mean, abs_flags,
              kinds, lvls, fi, refs, c_why)
    report_rule(th, dl, "grid choice", *common, work / "flagged_clean_grid_choice.jpg")

    # the recommendation: the grid's choice without D1.  D1 costs ~2 points of false alarms
    # on half A, names no fault, fires on night / low-key / hazy scenes (listed above), and
    # adds next to nothing inside a group (D3 already sees those copies).
    rec = (tb, tm, td, tbr, 0.0)
    hdr(f"RECOMMENDED: fault if blur > {tb} or motion > {tm} or dark > {td} or bright > {tbr} (absolute, named "
        f"by the family), or, in a burst group of >= 2 frames, technical mean <= group best - {dl} (D3, named by "
        f"the family whose severity rose most over the best frame); no D1")
    report_rule(rec, dl, "recommended", *common, work / "flagged_clean.jpg")

    # today's reasons.py thresholds as absolute faults, for comparison
    print("\nfor comparison, today's reasons.py thresholds (0.72; the same four families), no D1/D3:")
    report_rule((0.72, 0.72, 0.72, 0.72, 0.0), 99.0, "reasons.py", *common, None)
    print("\nvariant: the recommended rule + noise > 0.75 + compression > 0.75 (each < 1 % FA alone, see D2):")
    report_rule((tb, tm, td, tbr, 0.0, 0.75, 0.75), dl, "recommended + noise/compression", *common, None)

    # naming the fault of a D3 detection: the family whose severity rose most over the group's best
    hdr("D3 naming: family with the largest severity rise (copy - clean original), D3 detections, both halves")
    own = {k: LEVELS[k][0] for k in kinds}
    for k in kinds:
        cells = []
        for l in lvls:
            hit = d_mean[(k, l)] <= d_ref_mean - dl
            rise = d_sev[(k, l)] - c_sev[deg_idx]
            named = np.array(fams)[rise.argmax(1)]
            ok = named[hit] == own[k]
            cells.append(f"{l} {pct(ok)} % right of {hit.sum()}")
        print(f"  {k:<10} " + "; ".join(cells))
    if dl < 99:
        print("\nD3 alone at the chosen delta:")
        report_rule((9.0, 9.0, 9.0, 9.0, 0.0), dl, "D3 only", *common, None)


def report_rule(th, dl, name, half, seen, c_mean, c_sev, b_mean, b_sev, b_gap, d_mean, d_sev, d_half, d_ref_mean,
                abs_flags, kinds, lvls, fi, refs, c_why, sheet):
    print(f"\n[{name}] on half B (the report half) -- and half A for reference")
    print(f"{'':>26} | {'half B':>14} {'95% CI':>11} | {'half A':>7}")
    rows = []
    B, A = half == 1, half == 0
    fo = abs_flags(c_mean, c_sev, th)
    ff = abs_flags(b_mean, b_sev, th) | (b_gap >= dl)
    for label, arr, sel_b, sel_a in (
            ("FA originals (abs part)", fo, B, A),
            ("  of which unseen", fo, B & ~seen, A & ~seen),
            ("FA clean burst frames", ff, B, A),
            ("  of which unseen", ff, B & ~seen, A & ~seen),
            ("FA bursts, any frame", ff.any(1), B, A),
            ("FA originals, unseen A+B", fo, ~seen, ~seen),
            ("FA burst frames, unseen A+B", ff, ~seen, ~seen)):
        xb, xa = arr[sel_b].ravel(), arr[sel_a].ravel()
        rows.append(f"{label:>26} | {pct(xb):>6} % n={xb.size:<4} {ci95(int(xb.sum()), xb.size):>11} | {pct(xa):>5} %")
    for lab, rel in (("detect", True), ("abs only", False)):
        for k in kinds:
            for l in lvls:
                m, s = d_mean[(k, l)], d_sev[(k, l)]
                f = abs_flags(m, s, th) | ((m <= d_ref_mean - dl) if rel else False)
                xb, xa = f[d_half == 1], f[d_half == 0]
                rows.append(f"{lab + ' ' + k + ' ' + l:>26} | {pct(xb):>6} % n={xb.size:<4} "
                            f"{ci95(int(xb.sum()), xb.size):>11} | {pct(xa):>5} %")
        if dl >= 99 or tuple(th[:5]) == (9.0, 9.0, 9.0, 9.0, 0.0):
            break
    print("\n".join(rows))
    groups = sorted({r.group.split("/")[0] for r in refs})
    print("FA of the absolute part on clean originals by source (both halves, unseen only): " + ", ".join(
        f"{g} {pct(fo[np.array([r.group.split('/')[0] == g for r in refs]) & ~seen])} %"
        f" (n={int((np.array([r.group.split('/')[0] == g for r in refs]) & ~seen).sum())})" for g in groups))
    if sheet is None:
        return
    # which part of the rule fires, per kind (half B)
    print("\nwhich detector fires (half B, % of copies; a copy may fire several):")
    print(f"{'':>22} " + " ".join(f"{x:>7}" for x in ("blur", "motion", "dark", "bright", "D1", "D3")))
    tb, tm, td, tbr, T = th[:5]
    for k in kinds:
        for l in lvls:
            m, s = d_mean[(k, l)][d_half == 1], d_sev[(k, l)][d_half == 1]
            parts = [s[:, fi["blur"]] > tb, s[:, fi["motion"]] > tm, s[:, fi["dark"]] > td,
                     s[:, fi["bright"]] > tbr, m < T, m <= d_ref_mean[d_half == 1] - dl]
            print(f"{k + ' ' + l:>22} " + " ".join(f"{pct(p):>7}" for p in parts))
    # the clean photos the absolute part flags (all halves)
    idx = np.flatnonzero(fo)
    print(f"\nclean originals flagged by the absolute part ({len(idx)} of {len(refs)}, "
          f"{int((fo & seen).sum())} seen in training):")
    for i in idx:
        s = c_sev[i]
        fired = [f for f, t in (("blur", tb), ("motion", tm), ("dark", td), ("bright", tbr)) if s[fi[f]] > t]
        if c_mean[i] < T:
            fired.append("D1")
        print(f"  {refs[i].key:<32} {'seen' if seen[i] else 'unseen':<6} half {'AB'[half[i]]}  mean {c_mean[i]:.2f}  "
              f"blur {s[fi['blur']]:.2f} motion {s[fi['motion']]:.2f} dark {s[fi['dark']]:.2f} "
              f"bright {s[fi['bright']]:.2f}  fires: {', '.join(fired)}  (reasons.py: {c_why[i] or '-'})")
    # the clean bursts D3 flags
    g = np.flatnonzero((b_gap >= dl).any(1))
    print(f"\nclean bursts with a frame >= delta below its best ({len(g)} of {len(refs)}):")
    for i in g[:25]:
        print(f"  {refs[i].key:<32} frames {' '.join(f'{v:.2f}' for v in b_mean[i])}  original {c_mean[i]:.2f}")
    # contact sheet of the flagged clean photos
    if len(idx):
        tiles = []
        for i in idx[:48]:
            with Image.open(refs[i].path) as im:
                t = ImageOps.exif_transpose(im).convert("RGB")
                t.thumbnail((200, 200))
                tile = Image.new("RGB", (200, 200), "white")
                tile.paste(t, ((200 - t.width) // 2, (200 - t.height) // 2))
                tiles.append(tile)
        cols = 8
        canvas = Image.new("RGB", (cols * 200, ((len(tiles) + cols - 1) // cols) * 200), "white")
        for n, t in enumerate(tiles):
            canvas.paste(t, ((n % cols) * 200, (n // cols) * 200))
        canvas.save(sheet, quality=85)
        print(f"\ncontact sheet of the flagged clean photos (row-major, in the order listed): {sheet}")


if __name__ == "__main__":
    main()
