"""Train the default *technical quality* model from clean photos only.

No human ratings can be downloaded, so, as in DIQA, the targets are objective: every
clean reference photo is degraded synthetically (:mod:`.degrade`), and each degraded
version gets

* a pseudo-MOS from full-reference measures against its clean reference (an ensemble
  of ``piq`` metrics that need no downloaded weights), blended with a severity prior,
  turned into a 10-bucket distribution as the MATLAB NIMA example does for LIVE In the
  Wild (rescale to 1..10, then the maximum-entropy distribution for mean and std);
* a severity label per degradation family (Kang et al.'s multi-task idea), for the
  severity head that says *why* a frame scored low.

The backbone stays frozen: features of every image are extracted once (eval mode) and
cached in a ``.npz``, then the heads are trained on the cache in seconds.  Whole
references are held out: the BSDS500 ``test`` split never takes part in training.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from photocull.media.loaders import ImageError, open_image
from photocull.model.checkpoint import save_checkpoint
from photocull.model.losses import dist_mean, emd_loss, maxent_distribution
from photocull.model.nima import NIMA, preprocess
from photocull.model.spec import FAMILIES, ModelConfig, to_model_input
from photocull.training import degrade as D
from photocull.training.heads import drive, torch_threads, train_epochs
from photocull.training.metrics import score_metrics

log = logging.getLogger(__name__)


PRISTINE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
WORK_SIDE = 512          # references are degraded at most this big (long side)
MOS_LO, MOS_HI = 1.5, 9.0  # pseudo-MOS range: a clean photo is a 9, not a 10


# Full-reference metric -> quality in [0, 1]: (value at quality 0, value at quality 1).
# Chosen so that the five evaluation severities spread over the range (see MODEL_CARD.md).
FR_RANGES = {"ms_ssim": (0.55, 1.0), "gmsd": (0.25, 0.0), "haarpsi": (0.35, 1.0)}


# Weight of the full-reference ensemble against the severity prior, per family.  SSIM-like
# measures see exposure, colour and contrast changes poorly, so the prior weighs more there.
FR_WEIGHT = {"blur": 0.6, "motion": 0.6, "noise": 0.6, "compression": 0.6, "lowres": 0.6,
             "dark": 0.4, "bright": 0.4, "contrast": 0.4, "colour": 0.25}


@dataclass(frozen=True)
class Reference:
    path: Path
    group: str  # e.g. "bsds500/test", "kodak24"

    @property
    def held_out(self) -> bool:
        return self.group == "bsds500/test"

    @property
    def key(self) -> str:
        return f"{self.group}/{self.path.name}"


def find_references(pristine_dir: Path | str) -> list[Reference]:
    """All clean photos under ``pristine_dir``, sorted; grouped by their sub-folders."""
    root = Path(pristine_dir)
    refs = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in PRISTINE_EXTS and p.is_file():
            rel = p.relative_to(root).parent.as_posix()
            refs.append(Reference(p, rel or "."))
    return refs


def _seed_of(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")


@dataclass
class Variant:
    """One degraded (or clean) version of a reference."""

    ref: int                     # index into the reference list
    parts: list[tuple[str, float]] = field(default_factory=list)  # [] = clean
    seed: int = 0
    dof: bool = False            # clean, with a synthetic shallow depth of field
    level: int = -1              # 0..4 for the evaluation grid, -1 otherwise

    @property
    def kind(self) -> str:
        if not self.parts:
            return "dof" if self.dof else "clean"
        return "+".join(p[0] for p in self.parts)


def training_variants(ref_i: int, key: str, n_single: int = 18, n_mix: int = 3, seed: int = 0) -> list[Variant]:
    """Clean + shallow-DOF clean + ``n_single`` single degradations (each family in turn,
    random severity) + ``n_mix`` mixtures of two, all seeded by (seed, reference)."""
    rng = np.random.default_rng(_seed_of(seed, key))
    out = [Variant(ref_i, seed=int(rng.integers(2**31))),
           Variant(ref_i, dof=True, seed=int(rng.integers(2**31)))]
    fams = list(FAMILIES)
    for j in range(n_single):
        fam = fams[j % len(fams)] if j < len(fams) * (n_single // len(fams)) else str(rng.choice(fams))
        out.append(Variant(ref_i, [(fam, float(rng.uniform(0.05, 1.0)))], int(rng.integers(2**31))))
    for _ in range(n_mix):
        out.append(Variant(ref_i, D.random_spec(rng, mix=True), int(rng.integers(2**31))))
    return out


def evaluation_variants(ref_i: int, key: str, n_mix: int = 3, seed: int = 0) -> list[Variant]:
    """Clean, shallow-DOF clean, every family at the five :data:`degrade.LEVELS` (one seed
    per family, so a group is one defect getting worse), and a few mixtures."""
    rng = np.random.default_rng(_seed_of(seed, "eval", key))
    out = [Variant(ref_i, seed=int(rng.integers(2**31))),
           Variant(ref_i, dof=True, seed=int(rng.integers(2**31)))]
    for fam in FAMILIES:
        s = int(rng.integers(2**31))
        out += [Variant(ref_i, [(fam, lv)], s, level=k) for k, lv in enumerate(D.LEVELS)]
    for _ in range(n_mix):
        out.append(Variant(ref_i, D.random_spec(rng, mix=True), int(rng.integers(2**31))))
    return out


def load_reference(path: Path, work_side: int = WORK_SIDE) -> np.ndarray:
    im = open_image(path, max_side=work_side)
    if max(im.size) > work_side:
        im.thumbnail((work_side, work_side), Image.Resampling.LANCZOS)
    return D.to_float(im)


def render(ref: np.ndarray, v: Variant) -> np.ndarray:
    """The degraded image of a variant, float [0, 1] at the reference's size."""
    if v.dof:
        return D.shallow_dof(ref, v.seed)
    if not v.parts:
        return ref.copy()
    return D.apply_mix(ref, v.parts, v.seed)


def model_view(x: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """What the model sees: 8-bit, whole frame squashed to the input size (as in scoring)."""
    return to_model_input(Image.fromarray(D.to_uint8(x)), cfg)


def fr_scores(ref: np.ndarray, imgs: np.ndarray) -> dict[str, np.ndarray]:
    """Full-reference metrics of uint8 model views ``imgs`` (N,H,W,3) against ``ref`` (H,W,3).

    Only ``piq`` measures that need no downloaded weights, and fast enough on a CPU:
    MS-SSIM on luminance (structure over five scales), GMSD (gradient magnitude
    similarity: blur, noise, blocking) and HaarPSI (Haar wavelet phase; it also sees
    chroma).  VIF and FSIM were tried but cost 0.2-0.4 s per image on this CPU.
    """
    import piq

    y = torch.from_numpy(np.array(imgs)).permute(0, 3, 1, 2).float() / 255.0
    x = torch.from_numpy(np.array(ref))[None].permute(0, 3, 1, 2).float().div(255.0).expand_as(y).contiguous()
    lum = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    # these small convolutions run faster single-threaded
    with torch_threads(1), torch.inference_mode():
        return {
            "ms_ssim": piq.multi_scale_ssim((y * lum).sum(1, keepdim=True), (x * lum).sum(1, keepdim=True),
                                            data_range=1.0, reduction="none").numpy(),
            "gmsd": piq.gmsd(y, x, data_range=1.0, reduction="none").numpy(),
            "haarpsi": piq.haarpsi(y, x, data_range=1.0, reduction="none").numpy(),
        }


def fr_quality(scores: dict[str, np.ndarray]) -> np.ndarray:
    """Each metric mapped linearly onto [0, 1] by :data:`FR_RANGES`; shape (N, n_metrics)."""
    cols = []
    for name, (lo, hi) in FR_RANGES.items():
        cols.append(np.clip((np.asarray(scores[name], np.float64) - lo) / (hi - lo), 0.0, 1.0))
    return np.stack(cols, 1)


def prior_quality(parts: list[tuple[str, float]]) -> float:
    """Quality implied by the severities alone: 1 - combined severity."""
    q = 1.0
    for _, s in parts:
        q *= 1.0 - 0.9 * s
    return q


def pseudo_mos(v: Variant, fr_q: np.ndarray) -> tuple[float, float]:
    """(mean, std) on 1..10 for a variant, from its FR qualities (one row of :func:`fr_quality`)."""
    if not v.parts:  # clean and shallow-DOF clean: the reference is by definition good
        return MOS_HI, 1.0
    w = float(np.mean([FR_WEIGHT[f] for f, _ in v.parts]))
    q_fr = float(np.mean(fr_q))
    q = w * q_fr + (1 - w) * prior_quality(v.parts)
    mean = MOS_LO + (MOS_HI - MOS_LO) * q
    # disagreement between the measures (and mid-range scores) widen the distribution
    std = 1.0 + 0.5 * (MOS_HI - MOS_LO) * float(np.std(fr_q)) + 0.4 * (1 - abs(2 * q - 1))
    return mean, float(np.clip(std, 1.0, 2.5))


def severity_target(v: Variant) -> np.ndarray:
    t = np.zeros(len(FAMILIES), np.float32)
    for f, s in v.parts:
        t[FAMILIES.index(f)] = max(t[FAMILIES.index(f)], s)
    return t


def _reference_rows(r: Reference, vs: list[Variant], model: NIMA, batch_size: int) -> dict | None:
    cfg = model.cfg
    try:
        ref = load_reference(r.path)
    except ImageError as exc:
        log.warning("skipping %s: %s", r.path, exc)
        return None
    views = np.stack([model_view(render(ref, v), cfg) for v in vs])
    sc = fr_scores(model_view(ref, cfg), views)
    feats = []
    with torch.inference_mode():
        for b in range(0, len(views), batch_size):
            x = preprocess(list(views[b:b + batch_size]), cfg).contiguous(memory_format=torch.channels_last)
            feats.append(model.backbone(x).float().numpy())
    return {"feats": np.concatenate(feats).astype(np.float32),
            "fr_raw": np.stack([sc[k] for k in FR_RANGES], 1).astype(np.float32)}


def build_dataset(refs: list[Reference], variants_of: Callable[[int, Reference], list[Variant]],
                  model: NIMA, batch_size: int = 8, progress: Callable[[str], None] = print,
                  cache_dir: Path | None = None, signature: dict | None = None,
                  minutes: float | None = None) -> dict:
    """Render every variant, compute its targets and its backbone features.

    Returns arrays: feats (N, D) float32, mean/std (N,), dist (N, 10), sev (N, F),
    ref (N,), level (N,), kind (N,) str, fr (N, metrics).  With ``cache_dir``, each
    reference's rows are cached in their own ``.npz`` keyed by ``signature``, the
    reference and its variants, so a larger or interrupted run reuses earlier work.
    With ``minutes``, no new reference is started after that much time: the data set is
    then a prefix of ``refs`` (those done, cached or new).
    """
    model = model.eval().to(memory_format=torch.channels_last)
    parts: list[dict] = []
    t0 = time.perf_counter()
    n_done = n_new = 0
    for i, r in enumerate(refs):
        vs = variants_of(i, r)
        key = json.dumps([signature or {}, r.key, [(v.parts, v.seed, v.dof, v.level) for v in vs]], sort_keys=True)
        f = None if cache_dir is None else Path(cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        rows = None
        if f is not None and f.is_file():
            with np.load(f, allow_pickle=False) as z:
                rows = {k: z[k] for k in z.files}
        if rows is None:
            if minutes is not None and time.perf_counter() - t0 > minutes * 60:
                progress(f"  time budget of {minutes:g} min used: stopping at {i}/{len(refs)} references")
                break
            rows = _reference_rows(r, vs, model, batch_size)
            if rows is None:
                continue
            n_new += len(vs)
            if f is not None:
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_name(f.stem + ".tmp.npz")
                np.savez(tmp, **rows)
                tmp.replace(f)
        # targets are recomputed from the raw metrics, so they can be tuned without re-extraction
        fq = fr_quality(dict(zip(FR_RANGES, rows["fr_raw"].T)))
        targets = [pseudo_mos(v, q) for v, q in zip(vs, fq)]
        rows.update(
            mean=np.asarray([t[0] for t in targets], np.float32),
            std=np.asarray([t[1] for t in targets], np.float32),
            sev=np.stack([severity_target(v) for v in vs]).astype(np.float32),
            level=np.asarray([v.level for v in vs], np.int8),
            kind=np.asarray([v.kind for v in vs]),
            fr=fq.astype(np.float32),
            ref=np.full(len(vs), i, np.int32),
        )
        parts.append(rows)
        n_done += len(vs)
        if (i + 1) % 10 == 0 or i + 1 == len(refs):
            el = time.perf_counter() - t0
            progress(f"  {i + 1}/{len(refs)} references, {n_done} images ({n_new} new), "
                     f"{n_new / max(el, 1e-9):.1f} new img/s, {el / 60:.1f} min")
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["dist"] = np.stack([maxent_distribution(m, s) for m, s in zip(out["mean"], out["std"])]).astype(np.float32)
    return out


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    severity_weight: float = 0.5
    val_fraction: float = 0.1   # of the training references, for choosing the epoch


def train_heads(model: NIMA, train: dict, val: dict | None, tc: TrainConfig, seed: int = 0,
                progress: Callable[[str], None] = print) -> dict:
    """Train ``model.heads`` in place on cached features with :func:`heads.train_epochs`:
    EMD (r=2, rooted per sample) for the score head plus binary cross-entropy for the
    severity head, AdamW with a one-cycle schedule.  Keeps the epoch with the lowest
    validation EMD (r=2).  Returns the training history."""
    torch.manual_seed(seed)
    heads = model.heads
    X = torch.from_numpy(train["feats"])
    heads.feat_mean.copy_(X.mean(0))
    heads.feat_std.copy_(X.std(0).clamp_min(1e-4))
    P = torch.from_numpy(train["dist"])
    S = torch.from_numpy(train["sev"])
    opt = torch.optim.AdamW(heads.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps = tc.epochs * int(np.ceil(len(X) / tc.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=steps, pct_start=0.1)
    bce = torch.nn.BCELoss()

    def batch_loss(idx):
        probs, sev = heads(X[idx])
        loss = emd_loss(probs, P[idx], r=2) + tc.severity_weight * bce(sev, S[idx])
        return loss, loss

    def validate():
        vp, _ = predict_heads(model, val["feats"])
        m = score_metrics(vp, val["dist"], val["mean"])
        return m["emd2"], {"val_emd2": m["emd2"], "val_srcc": m["srcc"]}

    hist: list[dict] = []

    def record(rec: dict) -> None:
        hist.append(rec)
        if rec["epoch"] % 10 == 0 or rec["epoch"] == 1:
            progress("  epoch {epoch}: train {train_loss:.4f}".format(**rec)
                     + (f", val EMD2 {rec['val_emd2']:.4f} SRCC {rec['val_srcc']:.3f}" if val is not None else ""))

    best = drive(train_epochs(heads, len(X), batch_loss, opt, epochs=tc.epochs, batch_size=tc.batch_size,
                              gen=torch.Generator().manual_seed(seed), scheduler=sched,
                              validate=validate if val is not None else None), record)
    if best.state is not None:
        heads.load_state_dict(best.state)
    heads.eval()
    return {"history": hist, "best_val_emd2": best.loss if best.state is not None else None}


@torch.inference_mode()
def predict_heads(model: NIMA, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model.heads.eval()
    probs, sev = model.heads(torch.from_numpy(np.asarray(feats, np.float32)))
    return probs.numpy().astype(np.float64), sev.numpy().astype(np.float64)


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def monotonicity(quality: np.ndarray, refs: np.ndarray, kinds: np.ndarray, levels: np.ndarray) -> dict:
    """Mean Spearman correlation between severity level and *minus* ``quality`` within each
    (reference, degradation) group of the evaluation grid: 1 = always worse as the defect
    grows.  Returns {"overall": x, "per_family": {family: x}, "groups": n}."""
    quality = np.asarray(quality, np.float64)
    per: dict[str, list[float]] = {f: [] for f in FAMILIES}
    grid = levels >= 0
    for r in np.unique(refs[grid]):
        for f in FAMILIES:
            sel = grid & (refs == r) & (kinds == f)
            if sel.sum() >= 3:
                per[f].append(_spearman(levels[sel], -quality[sel]))
    allv = [x for v in per.values() for x in v]
    return {"overall": float(np.mean(allv)) if allv else float("nan"),
            "per_family": {f: float(np.mean(v)) for f, v in per.items() if v},
            "groups": len(allv)}


def severity_metrics(pred_sev: np.ndarray, data: dict) -> dict:
    """For single degradations above level 1 (s >= 0.4): how often the named top family is
    the applied one; for clean images: how often nothing passes the reasons threshold."""
    from photocull.model.reasons import THRESHOLD, THRESHOLDS

    thr = np.array([THRESHOLDS.get(f, THRESHOLD) for f in FAMILIES])
    kinds = data["kind"]
    single = np.array([k in FAMILIES for k in kinds]) & (data["sev"].max(1) >= 0.4)
    top = np.array(FAMILIES)[np.argmax(pred_sev, 1)]
    clean = np.isin(kinds, ["clean", "dof"])
    return {
        "top1_family_acc": float(np.mean(top[single] == kinds[single])) if single.any() else float("nan"),
        "clean_no_reason": float(np.mean((pred_sev[clean] < thr).all(1))) if clean.any() else float("nan"),
    }


def evaluate(model: NIMA, data: dict) -> dict:
    probs, sev = predict_heads(model, data["feats"])
    m = score_metrics(probs, data["dist"], data["mean"])
    if (data["level"] >= 0).any():
        m["monotonicity"] = monotonicity(dist_mean(probs), data["ref"], data["kind"], data["level"])
        m["target_monotonicity"] = monotonicity(data["mean"], data["ref"], data["kind"], data["level"])
    m.update(severity_metrics(sev, data))
    return m


def _subset(data: dict, mask: np.ndarray) -> dict:
    return {k: v[mask] for k, v in data.items()}


def split_references(pristine_dir, seed: int = 0, max_refs: int | None = None,
                     n_eval_refs: int = 12) -> tuple[list[Reference], list[Reference], list[Reference]]:
    """(all, training, held-out) references.  Held out: a seeded sample of the BSDS500
    ``test`` split (or every 8th photo when there is none); whole photos, never variants.
    The training references are in a seeded random order, capped at ``max_refs``."""
    refs = find_references(pristine_dir)
    if not refs:
        raise ValueError(f"no photos found under {pristine_dir}")
    train_refs = [r for r in refs if not r.held_out]
    eval_refs = [r for r in refs if r.held_out]
    if not eval_refs:
        eval_refs, train_refs = refs[::8], [r for i, r in enumerate(refs) if i % 8]
    # independent streams: the held-out choice does not depend on max_refs, and the
    # training references come in a seeded random order (so any prefix is a fair sample)
    if len(eval_refs) > n_eval_refs:
        pick = np.random.default_rng([seed, 1]).choice(len(eval_refs), n_eval_refs, replace=False)
        eval_refs = [eval_refs[i] for i in sorted(pick)]
    order = np.random.default_rng([seed, 2]).permutation(len(train_refs))
    train_refs = [train_refs[i] for i in order[:max_refs]]
    return refs, train_refs, eval_refs


def held_out_dataset(eval_refs: list[Reference], model: NIMA, seed: int = 0, cache_dir=None,
                     progress: Callable[[str], None] = print) -> dict:
    """The evaluation grid (clean, shallow-DOF, 9 families x 5 levels, one mixture) of
    every held-out reference, with targets and features."""
    return build_dataset(eval_refs, lambda i, r: evaluation_variants(i, r.key, n_mix=1, seed=seed), model,
                         progress=progress, cache_dir=cache_dir, signature=feature_signature(model.cfg))


def feature_signature(cfg: ModelConfig) -> dict:
    """What the cached features depend on (targets are recomputed on load)."""
    return {"v": 4, "work_side": WORK_SIDE, "fr": list(FR_RANGES), "backbone": cfg.backbone, "pooling": cfg.pooling}


def train_technical(pristine_dir, out_path, cache_dir, seed: int = 0, progress: Callable[[str], None] = print, *,
                    n_single: int = 9, n_mix: int = 1, max_refs: int | None = None,
                    n_eval_refs: int = 12, epochs: int = 60, hidden: int = 0,
                    threads: int = 2, feature_minutes: float | None = None) -> dict:
    """Generate the data set, extract features (cached), train the heads, evaluate on the
    held-out references (BSDS500 test), save heads-only to ``out_path``; return metrics.

    ``max_refs`` caps the training references; ``feature_minutes`` stops extracting new
    training references after that long (a prefix of the shuffled list is used, and the
    metadata says how many); ``n_eval_refs`` caps the
    held-out ones (each gets the full 9 x 5 grid).  Features are cached per reference in
    ``cache_dir``, keyed by everything that changes them.  torch runs on ``threads``
    threads meanwhile (put back after).
    """
    with torch_threads(max(1, threads)):
        t_start = time.perf_counter()
        refs, train_refs, eval_refs = split_references(pristine_dir, seed, max_refs, n_eval_refs)
        rng = np.random.default_rng(seed + 1)
        progress(f"{len(train_refs)} training references, {len(eval_refs)} held-out references")

        torch.manual_seed(seed)
        cfg = ModelConfig(hidden=hidden)
        model = NIMA(cfg).eval()
        base_sig = feature_signature(cfg)

        progress("building the held-out set (render, targets, features)")
        held = held_out_dataset(eval_refs, model, seed, cache_dir, progress)
        progress("building the training set")
        train_all = build_dataset(train_refs, lambda i, r: training_variants(i, r.key, n_single, n_mix, seed),
                                  model, progress=progress, cache_dir=cache_dir, signature=base_sig,
                                  minutes=feature_minutes)
        n_train_used = len(np.unique(train_all["ref"]))

        # validation references (for the epoch choice) come out of the training references
        ref_ids = np.unique(train_all["ref"])
        n_val = max(1, int(round(len(ref_ids) * 0.1))) if len(ref_ids) > 3 else 0
        val_ids = rng.choice(ref_ids, n_val, replace=False) if n_val else np.array([], int)
        is_val = np.isin(train_all["ref"], val_ids)
        tr, va = _subset(train_all, ~is_val), (_subset(train_all, is_val) if n_val else None)
        progress(f"training heads on {len(tr['mean'])} images ({len(va['mean']) if va else 0} for validation)")
        train_heads(model, tr, va, TrainConfig(epochs=epochs), seed=seed, progress=progress)

        metrics = {"held_out": evaluate(model, held), "train": evaluate(model, tr)}
        if va is not None:
            metrics["validation"] = evaluate(model, va)
        ho = metrics["held_out"]
        progress(f"held-out: SRCC {ho['srcc']:.3f} PLCC {ho['plcc']:.3f} EMD1 {ho['emd']:.4f} "
                 f"acc@5 {ho['acc_at_5']:.3f} monotonicity {ho.get('monotonicity', {}).get('overall', float('nan')):.3f}")
        meta = {
            "name": "default",
            "kind": "technical quality",
            "trained": True,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": {
                "pristine": sorted({r.group for r in refs}),
                "train_references": n_train_used - n_val, "train_references_groups": sorted(
                    {train_refs[i].group for i in np.unique(train_all["ref"])}), "validation_references": n_val,
                "held_out_references": len(eval_refs), "held_out_split": "bsds500/test",
                "train_images": int(len(tr["mean"])), "held_out_images": int(len(held["mean"])),
                "targets": "pseudo-MOS: piq MS-SSIM(Y)/GMSD/HaarPSI vs clean reference, blended with a severity prior; "
                           "maxent 10-bucket distribution",
            },
            "procedure": {"seed": seed, "epochs": epochs, "hidden": hidden, "n_single": n_single, "n_mix": n_mix,
                          "loss": "EMD r=2 (rooted) + 0.5 BCE(severity)", "backbone": "frozen, eval mode"},
            "metrics": rounded(metrics),
            "train_seconds": round(time.perf_counter() - t_start, 1),
        }
        mid = save_checkpoint(model, out_path, meta)
        progress(f"saved {out_path} (id {mid}) in {meta['train_seconds'] / 60:.1f} min")
        return metrics


def extend_to_cs(loaded, pristine_dir, n_photos: int = 200, seed: int = 0, batch_size: int = 16,
                 progress: Callable[[str], None] = print):
    """A "multilevel" technical model -> the same model with "multilevel_cs" pooling, no retraining.

    The heads are copied and the first Linear of the score head and the severity head get
    ZERO weights for the appended centre-surround inputs, so scores and severities are
    unchanged; ``feat_mean``/``feat_std`` of the new inputs are measured on a seeded sample
    of ``n_photos`` photos from ``pristine_dir`` (so a personal head trained on top starts
    from normalised features).  Returns ``(NIMA, meta)``; the meta is the old one plus a note.
    """
    from dataclasses import replace

    from photocull.media.listing import list_images
    from photocull.model.nima import LoadedModel

    old: NIMA = loaded.model if isinstance(loaded, LoadedModel) else loaded
    if old.cfg.pooling != "multilevel" or old.cfg.backbone != "efficientnet_lite0":
        raise ValueError(f"expected an efficientnet_lite0 'multilevel' model, got {old.cfg.backbone}/{old.cfg.pooling}")
    cfg = replace(old.cfg, pooling="multilevel_cs")
    new = NIMA(cfg).eval()
    d_old, d_new = old.backbone.feature_dim, new.backbone.feature_dim

    paths = sorted(p for d in sorted(Path(pristine_dir).iterdir()) if d.is_dir()
                   for p in list_images(d, recursive=True))
    rng = np.random.default_rng(seed)
    sample = [paths[i] for i in sorted(rng.choice(len(paths), min(n_photos, len(paths)), replace=False))]
    feats = []
    for i in range(0, len(sample), batch_size):
        arrs = []
        for p in sample[i:i + batch_size]:
            try:
                arrs.append(to_model_input(open_image(p, max_side=448), cfg))
            except ImageError as exc:
                progress(f"skipped {p}: {exc}")
        if arrs:
            with torch.inference_mode():
                feats.append(new.backbone(preprocess(arrs, cfg))[:, d_old:].float())
    extra = torch.cat(feats)
    progress(f"centre-surround statistics measured on {len(extra)} photos")

    oh, nh = old.heads.state_dict(), new.heads.state_dict()
    sd = {}
    for k, v in nh.items():
        ov = oh[k]
        if k == "feat_mean":
            sd[k] = torch.cat([ov, extra.mean(0)])
        elif k == "feat_std":
            sd[k] = torch.cat([ov, extra.std(0).clamp_min(1e-4)])
        elif ov.shape == v.shape:
            sd[k] = ov.clone()
        elif ov.ndim == 2 and ov.shape[1] == d_old and v.shape == (ov.shape[0], d_new):
            sd[k] = torch.cat([ov, torch.zeros(ov.shape[0], d_new - d_old, dtype=ov.dtype)], 1)
        else:
            raise ValueError(f"cannot extend {k}: {tuple(ov.shape)} -> {tuple(v.shape)}")
    new.heads.load_state_dict(sd, strict=True)
    meta = dict(getattr(loaded, "meta", {}) or {})
    meta["note"] = (f"cs features appended, zero weights (converted from the 'multilevel' model; "
                    f"normalisation of the {d_new - d_old} new features from {len(extra)} pristine photos)")
    meta["converted"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return new.eval(), meta


def rounded(x):
    """``x`` with every float rounded to 4 decimals (for JSON reports)."""
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    if isinstance(x, float):
        return round(x, 4)
    return x
