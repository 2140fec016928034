"""Learning from ratings: a personal score head on cached features, and dataset training.

Three entry points, all generators (one ``yield`` per epoch or per chunk of batches, the
result comes back as the generator's ``return`` value, ``StopIteration.value``), so the
GUI can wrap them in a worker thread and the CLI can drive them in a loop:

* :func:`fine_tune` - the fast path.  Takes the pooled backbone features that scoring
  already produced (``ScoreResult.features``) and the user's ratings, trains a new score
  head, and returns a :class:`FineTuneResult` with the personal model and before/after
  metrics on a held-out part of the ratings.  100 ratings train in about a second on a 2-core CPU.
* :func:`train_on_dataset` - a public dataset (AVA, KonIQ, LIVE-C, CSV; see
  :mod:`photocull.core.datasets`) through the whole network, with the paper's
  augmentation (squash to 256, random 224 crop, horizontal flip).  Slow on a CPU.
* :func:`fine_tune_images` - the deeper personal fine-tune: the user's photos through the
  backbone with its last stage unfrozen (head lr 10x the backbone's).

Design choices for the personal head (:func:`fine_tune`), for ~20-200 ratings:

* **Feature normalisation**: the base's ``feat_mean``/``feat_std`` are kept when the
  base has fitted them.  They were estimated on far more photos than a user rates, and
  the severity head (kept as is) depends on them.  Only for a base whose buffers were
  never fitted (an untrained head: mean 0, std 1) are they computed from the user's
  features; that base's severity head is random, so the personal model drops it.
* **Block balancing**: the pooled features are 1280 last-layer channels plus ten small
  blocks of stage statistics.  Each block is scaled to the same total variance (and the
  weights reading it inversely, so the base heads compute exactly what they did); with
  plain per-feature scaling the L2 prior lets the last layer drown the low-level blocks
  (colour, contrast, sharpness), and 50 ratings cannot find a low-level taste.  In
  bench/personalization.py this lifts the held-out SRCC at 50 ratings from ~0.47 to ~0.6.
* **Initialisation and regularisation**: from a trained base, the head starts at the
  base head and is pulled back towards it (an L2-SP penalty, ``weight_decay``): with few
  ratings the model stays close to "generic quality" and moves only as far as the
  ratings ask.  From an untrained base it starts at zero (uniform distribution) with
  plain weight decay.  No dropout by default (the head's 0.75 is for large datasets;
  with L2-SP it did no better on the benchmark and made the result depend on the seed).
* **Loss**: squared EMD (r=2, no root, per sample then batch mean), see :func:`squared_emd`.
* **Split, early stopping, refit**: ratings are split by rating value (stratified); the
  epoch with the lowest held-out loss is found with early stopping, the before/after
  metrics are measured on that held-out part, and then (``refit=True``) the head is
  trained again on *all* ratings for that many epochs: with 50 ratings, the 10 held out
  are too many to throw away.  The reported "after" metrics are those of the split run.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .datasets import Item, stratified_indices
from .losses import dist_mean, dist_std, emd_loss, rating_to_distribution
from .nima import NIMA, LoadedModel, ModelConfig, save_checkpoint

log = logging.getLogger(__name__)

PERSONAL_KIND = "personal taste"


class TrainingError(Exception):
    """Training cannot start or go on; ``str(exc)`` is the reason shown to the user."""


# --- ratings and metrics ------------------------------------------------------------------

def ratings_to_targets(ratings: Sequence[float], scale: int = 5) -> np.ndarray:
    """Star ratings (1..5, or 1..10 with ``scale=10``) -> (N, 10) target distributions.

    Picks and rejects are mapped to stars by the caller (Settings.pick_rating/reject_rating).
    """
    if scale not in (5, 10):
        raise TrainingError("rating scale must be 5 or 10")
    r = np.asarray(ratings, dtype=np.float64).ravel()
    if r.size and ((r < 1) | (r > scale) | ~np.isfinite(r)).any():
        raise TrainingError(f"ratings must be between 1 and {scale}")
    cache: dict[float, np.ndarray] = {}
    out = np.zeros((len(r), 10))
    for i, v in enumerate(r):
        if v not in cache:
            cache[v] = rating_to_distribution(v, scale)
        out[i] = cache[v]
    return out


def _corr(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    from scipy import stats

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # undefined for a constant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = stats.spearmanr(a, b)[0] if kind == "s" else stats.pearsonr(a, b)[0]
    return float(r)


def score_metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    """NIMA's evaluation: EMD (r=1), binary accuracy at mean 5, LCC/SRCC of means and stds.

    Correlations are NaN when undefined (fewer than two samples, or a constant).
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if len(pred) == 0:
        nan = float("nan")
        return {"n": 0, "emd": nan, "accuracy": nan, "srcc": nan, "plcc": nan, "srcc_std": nan, "plcc_std": nan}
    pm, tm = dist_mean(pred), dist_mean(target)
    ps, ts = dist_std(pred), dist_std(target)
    emd = float(emd_loss(torch.from_numpy(pred), torch.from_numpy(target), r=1))
    return {
        "n": len(pred),
        "emd": emd,
        "accuracy": float(np.mean((pm > 5.0) == (tm > 5.0))),
        "srcc": _corr(pm, tm, "s"),
        "plcc": _corr(pm, tm, "p"),
        "srcc_std": _corr(ps, ts, "s"),
        "plcc_std": _corr(ps, ts, "p"),
    }


def check_training_set(targets: np.ndarray, min_ratings: int = 20) -> None:
    """Raise :class:`TrainingError` if these targets cannot train a useful model."""
    n = len(targets)
    if n < min_ratings:
        raise TrainingError(f"need at least {min_ratings} rated photos to learn from, got {n}")
    distinct = np.unique(np.round(dist_mean(np.asarray(targets)), 3))
    if len(distinct) < 2:
        raise TrainingError("all ratings are the same; rate some photos higher or lower than others")


# --- the personal head on cached features -------------------------------------------------

@dataclass
class FineTuneResult:
    model: NIMA  # a new model; the base is untouched
    before: dict  # the base model on the held-out ratings (score_metrics)
    after: dict  # the personal model (split run) on the same ratings
    history: list[dict]
    best_epoch: int
    n_ratings: int
    n_train: int
    n_val: int
    seconds: float
    init: str  # "base" or "fresh"
    renormalised: bool  # feature normalisation recomputed from the user's photos
    refit: bool  # final head trained on all ratings

    def summary(self) -> str:
        b, a = self.before, self.after
        return (f"held-out SRCC {_fmt(b['srcc'])} -> {_fmt(a['srcc'])}, PLCC {_fmt(b['plcc'])} -> {_fmt(a['plcc'])}, "
                f"EMD {_fmt(b['emd'])} -> {_fmt(a['emd'])} ({self.n_val} of {self.n_ratings} ratings held out)")

    def meta(self, name: str, base_id: str | None = None) -> dict:
        """Checkpoint metadata for :func:`nima.save_checkpoint`."""
        clean = lambda d: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
        return {"name": name, "kind": PERSONAL_KIND, "trained": True, "base_model": base_id,
                "n_ratings": self.n_ratings, "metrics_before": clean(self.before), "metrics_after": clean(self.after),
                "best_epoch": self.best_epoch, "init": self.init, "renormalised": self.renormalised,
                "refit": self.refit}


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _unwrap(base: LoadedModel | NIMA) -> tuple[NIMA, bool]:
    if isinstance(base, LoadedModel):
        return base.model, bool(base.trained)
    if isinstance(base, NIMA):
        return base, True
    raise TypeError(f"base must be a LoadedModel or NIMA, not {type(base).__name__}")


def _normalisation_fitted(heads: nn.Module) -> bool:
    return not (bool(torch.all(heads.feat_mean == 0)) and bool(torch.all(heads.feat_std == 1)))


def _score_params(score: nn.Sequential) -> list[torch.Tensor]:
    return [p for p in score.parameters()]


def _zero_init(score: nn.Sequential) -> None:
    last = [m for m in score if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


def feature_blocks(backbone: nn.Module) -> list[int]:
    """Sizes of the pooled-feature blocks, in the order :class:`nima.Backbone` concatenates
    them (last layer first): one block per pooled stage statistic.  A backbone that
    declares its own ``feature_blocks`` (list of sizes) is taken at its word."""
    declared = getattr(backbone, "feature_blocks", None)
    if declared and sum(declared) == backbone.feature_dim:
        return list(declared)
    if getattr(backbone, "pooling", "last") != "multilevel" or backbone.name != "efficientnet_lite0":
        return [backbone.feature_dim]
    sizes = []
    for s, stage in enumerate(backbone.net.blocks):
        last = stage[-1]
        ch = last.conv_pwl.out_channels if hasattr(last, "conv_pwl") else last.conv_pw.out_channels
        sizes.append(ch)
        if s < backbone.std_stages:
            sizes.append(ch)
    sizes.append(backbone.feature_dim - sum(sizes))
    return sizes[::-1]


def _balance_blocks(heads: nn.Module, blocks: list[int]) -> None:
    """Give every feature block the same total variance after normalisation, without
    changing what the heads compute.

    The pooled features are 1280 last-layer channels and ten small blocks of stage
    statistics (16..320 each).  With unit variance per feature, an L2 penalty is a prior
    under which the last layer holds 60% of the variance and the low-level statistics
    (colour, contrast, sharpness) a few percent: 50 ratings cannot find a low-level taste.
    Scaling block b by sqrt(D / (B * size_b)) makes every block count the same (the total
    stays D).  The weights reading the features are divided by the same factors, so the
    base score and severity heads give exactly the same output as before.
    """
    if len(blocks) < 2 or sum(blocks) != heads.feat_std.numel():
        return
    d, nb = sum(blocks), len(blocks)
    w = torch.cat([torch.full((n,), math.sqrt(d / (nb * n))) for n in blocks])
    with torch.no_grad():
        heads.feat_std.div_(w)
        first = next(m for m in heads.score if isinstance(m, nn.Linear))
        first.weight.div_(w)
        if heads.severity is not None:
            heads.severity.weight.div_(w)


@contextlib.contextmanager
def _one_thread():
    """Run the tiny head updates on one thread.  Matrices of 32 x 2144 gain nothing from
    intra-op threads, and on a busy 2-core machine the thread hand-offs made training
    ten times slower (20 s instead of 2 s for 100 ratings).  Process-wide while it lasts,
    so it is held only between yields, never across one."""
    old = torch.get_num_threads()
    if old > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if old > 1:
            torch.set_num_threads(old)


def _score_forward(score: nn.Sequential, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The score head in training mode, its dropout drawn from ``gen`` (deterministic for a
    seed, and the global torch RNG is left alone)."""
    for m in score:
        if isinstance(m, nn.Dropout):
            if m.p > 0:
                keep = torch.rand(x.shape, generator=gen) >= m.p
                x = x * keep / (1.0 - m.p)
        else:
            x = m(x)
    return x


def squared_emd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The training loss: EMD with r=2, squared (no root), per sample, then the batch mean.

    Same minimiser per sample as ``losses.emd_loss(r=2)``; without the root the gradient
    does not blow up as a prediction nears its target, which trains the small personal
    head more smoothly (held-out SRCC equal or slightly better in bench/personalization).
    """
    return ((torch.cumsum(p, -1) - torch.cumsum(q, -1)) ** 2).mean(-1).mean()


def _train_head(score: nn.Sequential, anchor: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                x_val: torch.Tensor | None, y_val: torch.Tensor | None, *, epochs: int, lr: float,
                weight_decay: float, batch_size: int, patience: int, seed: int,
                cancelled: Callable[[], bool]):
    """Inner loop, a generator of per-epoch dicts; returns (best_state, best_epoch) or None if cancelled."""
    gen = torch.Generator().manual_seed(seed)
    params = _score_params(score)
    opt = torch.optim.Adam(params, lr=lr)
    n = len(x)
    best_loss, best_epoch, best_state, bad = float("inf"), 0, None, 0
    for epoch in range(1, epochs + 1):
        score.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        with _one_thread():
            for s in range(0, n, batch_size):
                if cancelled():
                    return None
                idx = perm[s:s + batch_size]
                probs = torch.softmax(_score_forward(score, x[idx], gen), dim=1)
                loss = squared_emd(probs, y[idx])
                reg = sum(((p - a) ** 2).sum() for p, a in zip(params, anchor) if p.dim() > 1)
                opt.zero_grad(set_to_none=True)
                (loss + weight_decay * reg).backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
        row = {"epoch": epoch, "epochs": epochs, "train_loss": total / n}
        if x_val is not None and len(x_val):
            score.eval()
            with torch.no_grad(), _one_thread():
                pv = torch.softmax(score(x_val), dim=1)
            vl = float(squared_emd(pv, y_val))
            m = score_metrics(pv.numpy(), y_val.numpy())
            row.update(val_loss=vl, val_srcc=m["srcc"], val_plcc=m["plcc"], val_emd=m["emd"])
            if vl < best_loss - 1e-6:
                best_loss, best_epoch, bad = vl, epoch, 0
                best_state = copy.deepcopy(score.state_dict())
            else:
                bad += 1
        else:
            best_epoch, best_state = epoch, None
        yield row
        if x_val is not None and len(x_val) and bad >= patience:
            break
    return best_state, best_epoch


def fine_tune(
    features: np.ndarray,
    targets: np.ndarray,
    base: LoadedModel | NIMA,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    epochs: int = 60,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    batch_size: int = 64,
    patience: int = 15,
    init: str = "auto",
    dropout: float | None = 0.0,
    balance_blocks: bool = True,
    refit: bool = True,
    cancelled: Callable[[], bool] = lambda: False,
    min_ratings: int = 20,
) -> Generator[dict, None, FineTuneResult | None]:
    """Train a personal score head on cached backbone features.

    ``features``: (N, D) pooled backbone features of the rated photos (float16 is fine),
    from the same backbone as ``base``.  ``targets``: (N, 10) distributions, e.g. from
    :func:`ratings_to_targets`.

    Yields one dict per epoch: ``{"epoch", "epochs", "train_loss", "val_loss",
    "val_srcc", "val_plcc", "val_emd", "phase"}`` (``val_emd`` is r=1, the losses are
    :func:`squared_emd`;
    ``phase`` is ``"select"`` while choosing the epoch on the held-out split, then
    ``"refit"`` while training on all ratings, where the ``val_*`` keys are absent).
    Returns a :class:`FineTuneResult`, or ``None`` if ``cancelled()`` became true (it
    is checked before every mini-batch).  Raises :class:`TrainingError` (on the first
    ``next``) for too few ratings or a single rating value.

    ``init``: "base" (start from the base head, L2-SP towards it), "fresh" (zero head,
    plain weight decay) or "auto" (base if its head is trained, else fresh).
    ``dropout``: the rate on the features while training (None: the base head's own).
    ``balance_blocks``: see the module docstring.  The base is never modified; the new
    model is a deep copy on the CPU with ``requires_grad`` off.
    """
    t0 = time.perf_counter()
    base_model, base_trained = _unwrap(base)
    x_all = np.asarray(features, dtype=np.float32)
    y_all = np.asarray(targets, dtype=np.float64)
    if x_all.ndim != 2 or y_all.shape != (len(x_all), 10):
        raise TrainingError(f"features (N, D) and targets (N, 10) expected, got {x_all.shape} and {y_all.shape}")
    if x_all.shape[1] != base_model.backbone.feature_dim:
        raise TrainingError(f"features have {x_all.shape[1]} dimensions, the base model's backbone gives "
                            f"{base_model.backbone.feature_dim}: extract them with the same model")
    if not np.isfinite(x_all).all():
        raise TrainingError("features contain NaN or infinite values")
    check_training_set(y_all, min_ratings)
    if init not in ("auto", "base", "fresh"):
        raise ValueError("init must be 'auto', 'base' or 'fresh'")

    heads = copy.deepcopy(base_model.heads).cpu().float()
    fitted = _normalisation_fitted(heads)
    head_trained = base_trained and fitted
    use = ("base" if head_trained else "fresh") if init == "auto" else init
    renormalise = not fitted
    if renormalise:
        heads.feat_mean.copy_(torch.from_numpy(x_all.mean(0)))
        heads.feat_std.copy_(torch.from_numpy(x_all.std(0)).clamp_min(1e-4))
    if balance_blocks:
        _balance_blocks(heads, feature_blocks(base_model.backbone))

    # ratings held out for early stopping and the before/after comparison
    keys = np.round(dist_mean(y_all), 3).tolist()
    n_val = round(len(y_all) * val_fraction)
    n_val = min(max(n_val, 2 if val_fraction > 0 else 0), len(y_all) - 2)
    if n_val > 0:
        tr_idx, va_idx = stratified_indices(keys, (len(y_all) - n_val, n_val), seed)
    else:
        tr_idx, va_idx = np.arange(len(y_all)), np.arange(0)

    with torch.no_grad():
        xn = heads.normalise(torch.from_numpy(x_all)).float()
    y = torch.from_numpy(y_all).float()

    # the base model on the held-out ratings
    with torch.no_grad():
        base_heads = copy.deepcopy(base_model.heads).cpu().float().eval()
        base_probs = base_heads(torch.from_numpy(x_all[va_idx]))[0].numpy()
    before = score_metrics(base_probs, y_all[va_idx])

    kw = {"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size,
          "patience": patience, "seed": seed, "cancelled": cancelled}
    # "auto" on a trained base tries both starts and keeps the one that does better on the
    # held-out ratings: a taste close to technical quality gains from the base head, a
    # taste orthogonal to it (colour, subject) from a fresh one.
    candidates = [use] if init != "auto" or use == "fresh" or n_val == 0 else ["base", "fresh"]
    history: list[dict] = []
    best = None
    for cand in candidates:
        start = copy.deepcopy(heads.score)
        if dropout is not None:
            for m in start:
                if isinstance(m, nn.Dropout):
                    m.p = float(dropout)
        if cand == "fresh":
            _zero_init(start)
        anchor = [p.detach().clone() for p in _score_params(start)]
        score = copy.deepcopy(start)
        inner = _train_head(score, anchor, xn[tr_idx], y[tr_idx], xn[va_idx], y[va_idx], **kw)
        out = yield from _relay(inner, history, "select")
        if out is None:
            return None
        best_state, best_epoch = out
        if best_state is not None:
            score.load_state_dict(best_state)
        score.eval()
        with torch.no_grad():
            val_probs = torch.softmax(score(xn[va_idx]), dim=1)
            val_loss = float(squared_emd(val_probs, y[va_idx])) if n_val else 0.0
        if best is None or val_loss < best[0]:
            best = (val_loss, cand, start, anchor, score, best_epoch, val_probs.numpy())
    _, use, start, anchor, score, best_epoch, after_probs = best
    after = score_metrics(after_probs, y_all[va_idx])

    did_refit = bool(refit and n_val > 0)
    if did_refit:
        # from the same start, for the number of epochs that did best on the held-out part
        score = copy.deepcopy(start)
        inner = _train_head(score, anchor, xn, y, None, None, **{**kw, "epochs": max(1, best_epoch)})
        out = yield from _relay(inner, history, "refit")
        if out is None:
            return None
    score.eval()

    model = copy.deepcopy(base_model).cpu().eval()
    heads.score = score
    model.heads = heads.eval()  # normalisation (and severity weights) as trained with
    if renormalise or not base_trained:
        # the base's severity head is not meaningful on these features: drop it
        model.heads.severity = None
        model.cfg = replace(model.cfg, families=())
    for p in model.parameters():
        p.requires_grad_(False)
    return FineTuneResult(model, before, after, history, best_epoch, len(y_all), len(tr_idx), len(va_idx),
                          time.perf_counter() - t0, use, renormalise, did_refit)


def _relay(inner, history: list, phase: str):
    """``yield from`` the inner loop, tagging and recording each row."""
    while True:
        try:
            row = next(inner)
        except StopIteration as stop:
            return stop.value
        row["phase"] = phase
        history.append(row)
        yield row


def run(gen: Generator):
    """Drive a training generator to the end; return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


# --- saving personal models ------------------------------------------------------------------

def slug(name: str) -> str:
    """The file-name form of a model name, as :mod:`photocull.core.models` resolves it
    ("Anna's portraits" -> "anna-s-portraits")."""
    from .models import slugify
    from .nima import ModelError

    try:
        return slugify(name)
    except ModelError:
        return "model"


def save_personal_model(result: FineTuneResult, name: str, models_dir: os.PathLike | str, *,
                        base_id: str | None = None, overwrite: bool = False) -> tuple[Path, str]:
    """Save to ``models_dir/<slug>.pt``; returns (path, model id).  Refuses to overwrite
    an existing file unless ``overwrite``."""
    if slug(name) == "default":
        raise TrainingError('"default" is the shipped model\'s name; choose another name')
    path = Path(models_dir) / f"{slug(name)}.pt"
    if path.exists() and not overwrite:
        raise TrainingError(f"a model named {path.stem!r} already exists ({path}); choose another name")
    mid = save_checkpoint(result.model, path, result.meta(name, base_id), include_backbone=False)
    return path, mid


# --- whole images: datasets and the deeper fine-tune ------------------------------------------

class _ImageSet(torch.utils.data.Dataset):
    """(path, target) items -> (uint8 CHW tensor, target) with the NIMA paper's augmentation
    when training: squash to 256x256 (scaled with the input size), random crop, random flip.
    Evaluation squashes the whole frame to the input size, as scoring does."""

    def __init__(self, items: Sequence[Item], cfg: ModelConfig, train: bool, seed: int = 0):
        self.items, self.cfg, self.train = list(items), cfg, train
        self.resize = round(cfg.input_size * 256 / 224)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        from .images import ImageError, open_image

        path, target = self.items[i]
        try:
            im = open_image(path, max_side=2 * self.resize)
        except ImageError as exc:
            log.warning("skipping %s: %s", path, exc)
            return None
        s = self.cfg.input_size
        if self.train:
            im = im.resize((self.resize, self.resize), Image.Resampling.BILINEAR)
            x0, y0 = self.rng.integers(0, self.resize - s + 1, size=2)
            im = im.crop((int(x0), int(y0), int(x0) + s, int(y0) + s))
            if self.rng.random() < 0.5:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            im = im.resize((s, s), Image.Resampling.BILINEAR)
        arr = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)
        return arr, torch.as_tensor(np.asarray(target), dtype=torch.float32)


def _collate(batch):
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


def _normalise_input(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def _backbone_groups(model: NIMA, unfreeze: str) -> list[nn.Module]:
    """Backbone modules to train for ``unfreeze`` in ("none", "last", "all")."""
    bb = model.backbone
    if unfreeze == "none":
        return []
    if unfreeze == "all":
        return [bb]
    if bb.name == "efficientnet_lite0":
        return [bb.net.blocks[-1], bb.net.conv_head, bb.net.bn2]
    return [bb.net[-1], bb.net[-2]]  # mobilenet_v2: the last inverted residual and the 1x1 conv


@dataclass
class TrainResult:
    model: NIMA
    history: list[dict]
    best_epoch: int
    val: dict  # score_metrics of the best epoch on the validation items
    backbone_trained: bool
    seconds: float
    meta: dict = field(default_factory=dict)


@torch.no_grad()
def _fit_normalisation(model: NIMA, loader, max_batches: int, cancelled) -> bool:
    feats = []
    model.eval()
    for i, b in enumerate(loader):
        if b is None:
            continue
        if cancelled() or i >= max_batches:
            break
        feats.append(model.backbone(_normalise_input(b[0], model.cfg)))
    if not feats:
        return False
    f = torch.cat(feats)
    model.heads.feat_mean.copy_(f.mean(0))
    model.heads.feat_std.copy_(f.std(0).clamp_min(1e-4) if len(f) > 1 else torch.ones_like(f[0]))
    return True


def train_on_dataset(
    items: Sequence[Item],
    base_cfg: ModelConfig | None = None,
    *,
    base: LoadedModel | NIMA | None = None,
    val_items: Sequence[Item] | None = None,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-3,
    backbone_lr: float | None = None,
    weight_decay: float = 1e-4,
    unfreeze: str = "none",
    augment: bool = True,
    patience: int = 3,
    seed: int = 0,
    num_workers: int = 0,
    yield_every: int = 20,
    cancelled: Callable[[], bool] = lambda: False,
    pretrained: bool = True,
) -> Generator[dict, None, TrainResult | None]:
    """Train NIMA's score head (and, with ``unfreeze``, part or all of the backbone) on
    (path, distribution) items, squared-EMD loss, Adam.

    Starts from ``base`` (a copy; the base is never modified) or a fresh model of
    ``base_cfg`` (ImageNet backbone; feature normalisation fitted on up to 32 batches of
    the training images first).  ``backbone_lr`` defaults to ``lr / 10``.  BatchNorm
    statistics stay frozen (small CPU batches).  The severity head is kept only if the
    base had a trained one and the backbone stays frozen.

    Yields ``{"phase": "train", "epoch", "epochs", "batch", "batches", "train_loss"}``
    every ``yield_every`` batches and ``{"phase": "val", "epoch", "epochs", "train_loss",
    "val_loss", "val_srcc", "val_plcc", "val_emd"}`` after each epoch (when ``val_items``
    are given: early stopping with ``patience`` epochs, best weights restored).
    Returns a :class:`TrainResult`, or ``None`` when cancelled (checked every batch).
    """
    t0 = time.perf_counter()
    if unfreeze not in ("none", "last", "all"):
        raise ValueError("unfreeze must be 'none', 'last' or 'all'")
    items = list(items)
    if not items:
        raise TrainingError("no training images")
    torch.manual_seed(seed)
    if base is not None:
        base_model, base_trained = _unwrap(base)
        model = copy.deepcopy(base_model).cpu()
    else:
        model = NIMA(base_cfg or ModelConfig(), pretrained=pretrained)
        base_trained = False
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    train_ds = _ImageSet(items, cfg, train=augment, seed=seed)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=g,
                                         num_workers=num_workers, collate_fn=_collate, drop_last=False)
    val_loader = None
    if val_items:
        val_loader = torch.utils.data.DataLoader(_ImageSet(list(val_items), cfg, train=False), batch_size=batch_size,
                                                 shuffle=False, num_workers=num_workers, collate_fn=_collate)
    if not _normalisation_fitted(model.heads):
        fit_loader = torch.utils.data.DataLoader(_ImageSet(items, cfg, train=False), batch_size=batch_size,
                                                 shuffle=True, generator=torch.Generator().manual_seed(seed),
                                                 num_workers=num_workers, collate_fn=_collate)
        yield {"phase": "normalise", "epoch": 0, "epochs": epochs}
        _fit_normalisation(model, fit_loader, 32, cancelled)
        if cancelled():
            return None

    for p in model.parameters():
        p.requires_grad_(False)
    groups = _backbone_groups(model, unfreeze)
    bb_params = [p for m in groups for p in m.parameters()]
    for p in bb_params:
        p.requires_grad_(True)
    head_params = list(model.heads.score.parameters())
    for p in head_params:
        p.requires_grad_(True)
    param_groups = [{"params": head_params, "lr": lr}]
    if bb_params:
        param_groups.append({"params": bb_params, "lr": backbone_lr if backbone_lr is not None else lr / 10})
    opt = torch.optim.AdamW(param_groups, weight_decay=weight_decay)
    keep_severity = base_trained and not bb_params and model.heads.severity is not None

    history: list[dict] = []
    best = (float("inf"), 0, None, {})
    bad = 0
    batches = len(loader)
    for epoch in range(1, epochs + 1):
        model.eval()  # BatchNorm frozen; dropout of the head switched on below
        model.heads.score.train()
        total, seen = 0.0, 0
        for bi, b in enumerate(loader, 1):
            if cancelled():
                return None
            if b is None:
                continue
            x, y = b
            feats = model.backbone(_normalise_input(x, cfg)) if bb_params else _frozen(model, x, cfg)
            probs = torch.softmax(model.heads.score(model.heads.normalise(feats)), dim=1)
            loss = emd_loss(probs, y, r=2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            seen += len(y)
            if bi % yield_every == 0 and bi < batches:
                row = {"phase": "train", "epoch": epoch, "epochs": epochs, "batch": bi, "batches": batches,
                       "train_loss": total / max(seen, 1)}
                yield row
        row = {"phase": "val", "epoch": epoch, "epochs": epochs, "train_loss": total / max(seen, 1)}
        if val_loader is not None:
            preds, targs = _predict_loader(model, val_loader, cancelled)
            if preds is None:
                return None
            m = score_metrics(preds, targs)
            vl = float(emd_loss(torch.from_numpy(preds), torch.from_numpy(targs), r=2)) if len(preds) else float("inf")
            row.update(val_loss=vl, val_srcc=m["srcc"], val_plcc=m["plcc"], val_emd=m["emd"])
            if vl < best[0] - 1e-6:
                best, bad = (vl, epoch, copy.deepcopy(model.state_dict()), m), 0
            else:
                bad += 1
        history.append(row)
        yield row
        if val_loader is not None and bad >= patience:
            break
    best_epoch, val = epochs, {}
    if best[2] is not None:
        model.load_state_dict(best[2])
        best_epoch, val = best[1], best[3]
    if not keep_severity:
        model.heads.severity = None
        model.cfg = replace(model.cfg, families=())
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return TrainResult(model, history, best_epoch, val, bool(bb_params), time.perf_counter() - t0)


def _frozen(model: NIMA, x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    with torch.no_grad():
        return model.backbone(_normalise_input(x, cfg))


@torch.no_grad()
def _predict_loader(model: NIMA, loader, cancelled) -> tuple[np.ndarray | None, np.ndarray]:
    model.eval()
    ps, ts = [], []
    for b in loader:
        if cancelled():
            return None, np.zeros((0, 10))
        if b is None:
            continue
        ps.append(model(_normalise_input(b[0], model.cfg)).numpy())
        ts.append(b[1].numpy())
    if not ps:
        return np.zeros((0, 10)), np.zeros((0, 10))
    return np.concatenate(ps).astype(np.float64), np.concatenate(ts).astype(np.float64)


def fine_tune_images(
    paths: Sequence[os.PathLike | str],
    ratings: Sequence[float],
    base: LoadedModel | NIMA,
    *,
    scale: int = 5,
    val_fraction: float = 0.2,
    seed: int = 0,
    epochs: int = 15,
    lr: float = 1e-3,
    batch_size: int = 16,
    min_ratings: int = 20,
    cancelled: Callable[[], bool] = lambda: False,
) -> Generator[dict, None, TrainResult | None]:
    """The deeper personal fine-tune: the rated photos through the network with the last
    backbone stage unfrozen (backbone lr = head lr / 10, as the MATLAB NIMA example),
    augmentation on.  Minutes on a CPU, against about a second for :func:`fine_tune`;
    same guard rails.  Yields/returns as :func:`train_on_dataset`."""
    targets = ratings_to_targets(ratings, scale)
    check_training_set(targets, min_ratings)
    items = [(Path(p), t) for p, t in zip(paths, targets)]
    keys = np.round(dist_mean(targets), 3).tolist()
    n_val = max(2, round(len(items) * val_fraction))
    tr, va = stratified_indices(keys, (len(items) - n_val, n_val), seed)
    result = yield from train_on_dataset([items[i] for i in tr], base=base, val_items=[items[i] for i in va],
                                         epochs=epochs, lr=lr, backbone_lr=lr / 10, unfreeze="last",
                                         batch_size=batch_size, seed=seed, cancelled=cancelled)
    return result


def evaluate(model: LoadedModel | NIMA, items: Sequence[Item], *, batch_size: int = 16,
             cancelled: Callable[[], bool] = lambda: False, device=None) -> dict:
    """Score ``items`` as the app does (whole frame squashed to the input size) and compare
    with their targets: :func:`score_metrics` plus ``failed`` (images that could not be
    read).  Returns what was measured so far if cancelled."""
    from .scoring import iter_scores

    loaded = model if isinstance(model, LoadedModel) else LoadedModel(model, "in-memory", "model", trained=True)
    items = list(items)
    targets = {}
    for p, t in items:
        targets[str(Path(p))] = t
    preds, targs, failed = [], [], 0
    for prog in iter_scores([p for p, _ in items], loaded, batch_size=batch_size, cancelled=cancelled,
                            device=device, want_features=False):
        for r in prog.results:
            if r.ok:
                preds.append(r.probs)
                targs.append(targets[str(r.path)])
            else:
                failed += 1
    out = score_metrics(np.array(preds).reshape(-1, 10), np.array(targs).reshape(-1, 10))
    out["failed"] = failed
    return out
