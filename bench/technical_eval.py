"""Measure the shipped technical-quality model for its model card.

    .venv/bin/python bench/technical_eval.py [--model resources/models/technical.pt]
        [--pristine ../shared/data/pristine] [--camera ../shared/data/camera]
        [--cache-dir DIR] [--eval-refs 16] [--peer-refs 8] [--json out.json]

1. Held-out references (a seeded sample of BSDS500 ``test``, never seen in training), each
   with the full grid (9 families x 5 severities, plus clean, shallow-DOF clean and a
   mixture): SRCC / PLCC / EMD (r=1) / accuracy at 5 against the pseudo-MOS, and
   *monotonicity* (mean Spearman between severity and minus the predicted mean within
   each (reference, family) group).
2. Peers on the same groups (first ``--peer-refs`` held-out references, at the working
   resolution): BRISQUE (PyPI ``brisque``, lower is better, negated) and the variance of
   the Laplacian (higher is sharper, used as is).
3. Real photos: each iPhone XS Max frame vs its own blurred, noisy and darkened versions;
   what the model says on the HDR on/off pairs.

Needs the ``bench`` extra (brisque, opencv-python-headless).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from photocull.config import AppPaths  # noqa: E402
from photocull.training import technical  # noqa: E402
from photocull.training.metrics import score_metrics  # noqa: E402
from photocull.training import degrade as D  # noqa: E402
from photocull.media.loaders import open_image  # noqa: E402
from photocull.model.losses import dist_mean  # noqa: E402
from photocull.model.spec import FAMILIES
from photocull.model.checkpoint import load_model
from photocull.scoring import score_all  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def brisque_scorer():
    """BRISQUE from PyPI ``brisque`` (its bundled SVM; no download).  brisque 0.2.0 trips
    over NumPy 2 when some features come out as 1-element arrays: flatten them first."""
    from brisque import BRISQUE

    class _Brisque(BRISQUE):
        def scale_features(self, features):
            flat = np.array([float(np.asarray(f, dtype=np.float64).ravel()[0]) for f in features])
            return super().scale_features(flat)

    b = _Brisque(url=False)
    return lambda u8: float(b.score(u8))


def laplacian_variance(u8: np.ndarray) -> float:
    from scipy import ndimage

    g = u8.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return float(ndimage.laplace(g).var())


def peer_monotonicity(eval_refs, n_refs: int, seed: int, progress=print) -> dict:
    """BRISQUE and Laplacian variance over the severity grid of the first ``n_refs`` refs."""
    score = brisque_scorer()
    rows = {"ref": [], "kind": [], "level": [], "brisque": [], "lapvar": []}
    t0 = time.perf_counter()
    for i, r in enumerate(eval_refs[:n_refs]):
        ref = technical.load_reference(r.path)
        for v in technical.evaluation_variants(i, r.key, n_mix=1, seed=seed):
            if v.level < 0:
                continue
            u8 = D.to_uint8(technical.render(ref, v))
            rows["ref"].append(i)
            rows["kind"].append(v.kind)
            rows["level"].append(v.level)
            rows["brisque"].append(score(u8))
            rows["lapvar"].append(laplacian_variance(u8))
        progress(f"  peers: {i + 1}/{n_refs} references, {time.perf_counter() - t0:.0f} s")
    a = {k: np.asarray(v) for k, v in rows.items()}
    return {
        "brisque": technical.monotonicity(-a["brisque"], a["ref"], a["kind"], a["level"]),
        "laplacian_variance": technical.monotonicity(a["lapvar"], a["ref"], a["kind"], a["level"]),
    }


def camera_sanity(loaded, camera_dir: Path, progress=print) -> dict:
    """Each iPhone frame vs its blurred / noisy / darkened versions (severity 0.6, made at
    1024 px and saved as JPEG q95; the clean one through the same path for a fair pair)."""
    out = {"iphone": [], "hdr": []}
    phone = sorted((camera_dir / "iphone_xs_max").glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        for p in phone:
            x = D.to_float(open_image(p, max_side=1024))
            paths = {"file": p}
            for name, fam in (("same-path clean", None), ("blurred", "blur"), ("noisy", "noise"), ("darkened", "dark")):
                y = x if fam is None else D.apply(x, fam, 0.6, seed=1)
                q = Path(tmp) / f"{p.stem}_{name.replace(' ', '_')}.jpg"
                Image.fromarray(D.to_uint8(y)).save(q, quality=95)
                paths[name] = q
            res = dict(zip(paths, score_all(list(paths.values()), loaded)))
            rec = {k: {"mean": round(r.mean, 3), "why": r.why} for k, r in res.items()}
            clean = min(res["file"].mean, res["same-path clean"].mean)
            rec["clean_beats_all"] = bool(all(clean > res[k].mean for k in ("blurred", "noisy", "darkened")))
            rec["name"] = p.name
            out["iphone"].append(rec)
            progress(f"  {p.name}: " + ", ".join(f"{k} {v['mean']:.2f}" for k, v in rec.items() if isinstance(v, dict)))
    hdr = sorted((camera_dir / "exif_samples" / "jpg" / "hdr").glob("*.jpg"))
    for r in score_all(hdr, loaded):
        out["hdr"].append({"name": r.path.name, "mean": None if r.mean is None else round(r.mean, 3),
                           "std": None if r.std is None else round(r.std, 3), "why": r.why, "error": r.error})
        progress(f"  {r.path.name}: {r.mean:.2f} ± {r.std:.2f}  {r.why or '(no reason)'}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "technical.pt")
    ap.add_argument("--pristine", type=Path, default=DATA / "pristine")
    ap.add_argument("--camera", type=Path, default=DATA / "camera")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--eval-refs", type=int, default=12)
    ap.add_argument("--peer-refs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    loaded = load_model(args.model, name="default")
    model = loaded.model
    _, _, eval_refs = technical.split_references(args.pristine, args.seed, None, args.eval_refs)
    print(f"model {args.model.name} ({loaded.model_id}); {len(eval_refs)} held-out references")
    cache_dir = args.cache_dir or AppPaths.default().cache_dir / "technical-features"  # as `photocull train-technical`
    held = technical.held_out_dataset(eval_refs, model, args.seed, cache_dir)
    probs, sev = technical.predict_heads(model, held["feats"])
    pm = dist_mean(probs)
    res = {"held_out": score_metrics(probs, held["dist"], held["mean"])}
    res["held_out"]["monotonicity"] = technical.monotonicity(pm, held["ref"], held["kind"], held["level"])
    res["held_out"]["target_monotonicity"] = technical.monotonicity(held["mean"], held["ref"], held["kind"], held["level"])
    res["held_out"].update(technical.severity_metrics(sev, held))
    clean = np.isin(held["kind"], ["clean"])
    dof = np.isin(held["kind"], ["dof"])
    res["held_out"]["mean_clean"] = float(pm[clean].mean())
    res["held_out"]["mean_dof"] = float(pm[dof].mean())
    res["held_out"]["per_level_mean"] = {
        f: [float(pm[(held["kind"] == f) & (held["level"] == k)].mean()) for k in range(5)] for f in FAMILIES}

    print("peers (BRISQUE, variance of Laplacian) on the first", args.peer_refs, "held-out references")
    peer_sel = held["ref"] < args.peer_refs
    res["peers"] = peer_monotonicity(eval_refs, args.peer_refs, args.seed)
    res["peers"]["model_same_refs"] = technical.monotonicity(pm[peer_sel], held["ref"][peer_sel], held["kind"][peer_sel],
                                                     held["level"][peer_sel])
    if args.camera.is_dir():
        print("real photos")
        res["camera"] = camera_sanity(loaded, args.camera)

    h = res["held_out"]
    print(f"\nheld-out ({h['n']} images): SRCC {h['srcc']:.3f}  PLCC {h['plcc']:.3f}  EMD(r=1) {h['emd']:.4f}  "
          f"acc@5 {h['acc_at_5']:.3f}  top-1 family {h['top1_family_acc']:.3f}  clean w/o reason {h['clean_no_reason']:.3f}")
    print(f"mean score: clean {h['mean_clean']:.2f}, shallow-DOF clean {h['mean_dof']:.2f}")
    print("\n| family | model (all held-out) | model (peer refs) | BRISQUE | var. of Laplacian |")
    print("|---|---|---|---|---|")
    p = res["peers"]
    for f in FAMILIES + ("overall",):
        def g(m):
            return m["overall"] if f == "overall" else m["per_family"].get(f, float("nan"))
        print(f"| {f} | {g(h['monotonicity']):.3f} | {g(p['model_same_refs']):.3f} | {g(p['brisque']):.3f} | "
              f"{g(p['laplacian_variance']):.3f} |")
    if "camera" in res:
        ok = sum(r["clean_beats_all"] for r in res["camera"]["iphone"])
        print(f"\niPhone: {ok}/{len(res['camera']['iphone'])} frames score above their blurred, noisy and darkened versions")
    if args.json:
        args.json.write_text(json.dumps(technical.rounded(res), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
