"""How fast does photocull learn a taste?  Simulated raters on the pristine photos.

Each simulated rater likes one property of a photo, computed here from pixel statistics:

* warm      - warm colour: mean (Cr - Cb) in YCbCr
* people    - skin tones (a proxy for people/faces): fraction of pixels in the usual
              YCbCr skin box (77 <= Cb <= 127, 133 <= Cr <= 173, Y > 40)
* contrast  - strong contrast: std of luminance
* soft_bg   - soft backgrounds: log(sharpness in the centre / sharpness of the border),
              sharpness = mean |Laplacian| of the luminance
* ava       - agrees with the AVA voters: the shipped aesthetic model's mean score
* ava_warm  - the AVA voters' taste plus a liking for warm colour (normal scores summed)

Each personal model is trained twice on the same ratings: on the technical network's
features alone, and (what photocull ships) reading the aesthetic network's pooled features too.

The rater's latent score is the normal score of the property's rank plus Gaussian noise
(``--noise``, in units of the latent's std); stars 1..5 are cut at the 10/30/70/90th
percentiles of that noisy score over all photos (10/20/40/20/10 % of each star).

For each rater and each number of ratings n, n photos are drawn at random, a personal
model is trained with :func:`photocull.training.personal.fine_tune` on their cached features,
and the Spearman correlation (SRCC) with the rater's stars is measured on *all the other
photos*; the generic model (the shipped default) is measured on the same photos.
Averaged over ``--draws`` random draws.  Features are cached in ``bench/out/``.

    .venv/bin/python bench/personalization.py [--draws 10] [--noise 0.5]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from photocull.training import personal
from photocull.training.heads import drive
from photocull.model import nima
from photocull.model import checkpoint, spec
from photocull.media.listing import list_images
from photocull.media.loaders import open_image
from photocull.model.losses import dist_mean
from photocull.scoring import score_all

OUT = ROOT / "bench" / "out"
DATA = Path("/work/shared/data/pristine")
PIXEL_TASTES = ("warm", "people", "contrast", "soft_bg")
# raters who agree with the AVA voters (the aesthetic model's mean), alone or with a liking for warm colour
TASTES = (*PIXEL_TASTES, "ava", "ava_warm")
SIZES = (10, 25, 50, 100, 200)


def photos() -> list[Path]:
    return sorted(p for d in sorted(DATA.iterdir()) if d.is_dir() for p in list_images(d, recursive=True))


def features(paths: list[Path], loaded: nima.LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """(features, generic model probs) for ``paths``, cached per model id."""
    cache = OUT / f"features-{loaded.model_id}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["paths"]) == [str(p) for p in paths]:
            return z["features"].astype(np.float32), z["probs"]
    t0 = time.perf_counter()
    res = score_all(paths, loaded, batch_size=16, workers=2)
    bad = [r for r in res if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} photos failed to decode, e.g. {bad[0].path}: {bad[0].error}")
    feats = np.stack([r.features for r in res])
    probs = np.stack([r.probs for r in res])
    print(f"extracted features of {len(paths)} photos in {time.perf_counter() - t0:.0f} s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=np.array([str(p) for p in paths]), features=feats, probs=probs)
    return feats.astype(np.float32), probs


def _laplacian_energy(y: np.ndarray) -> np.ndarray:
    lap = np.zeros_like(y)
    lap[1:-1, 1:-1] = (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1])
    return np.abs(lap)


def image_stats(path: Path) -> dict[str, float]:
    im = open_image(path, max_side=384)
    a = np.asarray(im, dtype=np.float64)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    skin = (cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173) & (y > 40)
    lap = _laplacian_energy(y / 255.0)
    h, w = y.shape
    centre = np.zeros_like(skin)
    centre[h // 4: h - h // 4, w // 4: w - w // 4] = True
    border = np.ones_like(skin)
    border[h // 8: h - h // 8, w // 8: w - w // 8] = False
    return {
        "warm": float(np.mean(cr - cb)),
        "people": float(np.sqrt(skin.mean())),
        "contrast": float(np.std(y / 255.0)),
        "soft_bg": float(np.log(lap[centre].mean() + 1e-4) - np.log(lap[border].mean() + 1e-4)),
    }


def tastes(paths: list[Path]) -> dict[str, np.ndarray]:
    cache = OUT / "tastes.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if list(z["paths"]) == [str(p) for p in paths]:
            return {k: z[k] for k in PIXEL_TASTES}
    rows = [image_stats(p) for p in paths]
    out = {k: np.array([r[k] for r in rows]) for k in PIXEL_TASTES}
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=np.array([str(p) for p in paths]), **out)
    return out


def normal_scores(values: np.ndarray) -> np.ndarray:
    from scipy.stats import norm, rankdata

    return norm.ppf((rankdata(values) - 0.5) / len(values))


def stars_for(values: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(latent taste score, noisy stars 1..5)."""
    from scipy.stats import norm, rankdata

    latent = norm.ppf((rankdata(values) - 0.5) / len(values))
    noisy = latent + noise * rng.standard_normal(len(values))
    cuts = np.quantile(noisy, [0.1, 0.3, 0.7, 0.9])
    return latent, 1 + np.searchsorted(cuts, noisy, side="right")


def srcc(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--tastes", nargs="+", default=list(TASTES), choices=TASTES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--init", default="auto")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(min(2, args.threads))

    paths = photos()
    loaded = checkpoint.load_default_model()
    print(f"{len(paths)} photos from {DATA}; generic model: {loaded.notice} (id {loaded.model_id})", flush=True)
    feats, probs = features(paths, loaded)
    aesthetic = checkpoint.load_model(spec.aesthetic_model_path(), "aesthetic")
    a_feats, a_probs = features(paths, aesthetic)
    generic = dist_mean(probs)
    stats = tastes(paths)
    stats["ava"] = dist_mean(a_probs)
    stats["ava_warm"] = normal_scores(stats["ava"]) + normal_scores(stats["warm"])
    kw = {}
    if args.lr:
        kw["lr"] = args.lr
    if args.weight_decay is not None:
        kw["weight_decay"] = args.weight_decay

    rng = np.random.default_rng(args.seed)
    n = len(paths)
    table: dict[tuple[str, int], dict[str, list[float]]] = {}
    times100: list[float] = []
    ceiling: dict[str, float] = {}
    for taste in args.tastes:
        latent, stars = stars_for(stats[taste], args.noise, rng)
        ceiling[taste] = srcc(latent, stars)
        for size in args.sizes:
            rec = table.setdefault((taste, size), {"generic": [], "personal": [], "personal_latent": [],
                                                   "both": [], "both_latent": []})
            for d in range(args.draws):
                idx = rng.permutation(n)
                tr, te = idx[:size], idx[size:]
                if len(np.unique(stars[tr])) < 2:
                    continue
                t0 = time.perf_counter()
                targets = personal.ratings_to_targets(stars[tr])
                res = drive(personal.fine_tune(feats[tr], targets, loaded, seed=d, min_ratings=5,
                                                      init=args.init, **kw))
                dt = time.perf_counter() - t0
                if size == 100:
                    times100.append(dt)
                with torch.no_grad():
                    pred = dist_mean(res.model.heads(torch.from_numpy(feats[te]))[0].numpy())
                rec["personal"].append(srcc(pred, stars[te]))
                rec["personal_latent"].append(srcc(pred, latent[te]))
                rec["generic"].append(srcc(generic[te], stars[te]))
                # the same ratings, the head reading the aesthetic network's features as well
                both = drive(personal.fine_tune(feats[tr], targets, loaded, seed=d, min_ratings=5, init=args.init,
                                                extra=a_feats[tr], extra_from=aesthetic.model_id, **kw))
                with torch.no_grad():
                    heads = both.model.heads
                    pb = nima.with_extra(heads.extra, heads(torch.from_numpy(feats[te]))[0].numpy(), a_feats[te])
                rec["both"].append(srcc(dist_mean(pb), stars[te]))
                rec["both_latent"].append(srcc(dist_mean(pb), latent[te]))
            print(f"{taste:9s} n={size:4d}  generic {np.nanmean(rec['generic']):+.3f}  "
                  f"personal {np.mean(rec['personal']):+.3f} ± {np.std(rec['personal']):.3f}  "
                  f"with aesthetic features {np.mean(rec['both']):+.3f} ± {np.std(rec['both']):.3f}  "
                  f"(vs noise-free taste {np.mean(rec['personal_latent']):+.3f} / {np.mean(rec['both_latent']):+.3f})",
                  flush=True)

    print()
    print(f"held-out SRCC with the rater's stars, mean over {args.draws} draws "
          f"(rating noise {args.noise}; test = all photos not rated, {n} photos in all)")
    print("cells: generic / personal (technical features) / personal (technical + aesthetic features)")
    head = "taste      ceiling  " + "  ".join(f"n={s:<3d} gen/tech/both  " for s in args.sizes)
    print(head)
    for taste in args.tastes:
        cells = []
        for s in args.sizes:
            r = table[(taste, s)]
            cells.append(f"{np.nanmean(r['generic']):+.2f}/{np.mean(r['personal']):+.2f}/{np.mean(r['both']):+.2f}")
        print(f"{taste:9s}  {ceiling[taste]:.2f}     " + "  ".join(cells))
    print("mean over tastes:  " + "  ".join(
        f"n={s}: {np.mean([np.mean(table[(t, s)]['personal']) for t in args.tastes]):+.3f} -> "
        f"{np.mean([np.mean(table[(t, s)]['both']) for t in args.tastes]):+.3f}" for s in args.sizes))
    if times100:
        print(f"\nlearning from 100 ratings: median {np.median(times100):.2f} s, max {np.max(times100):.2f} s "
              f"({torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
