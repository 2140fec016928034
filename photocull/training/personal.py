"""Learning a personal taste from the user's ratings.

* :func:`learn_from_ratings` - the pipeline of ``photocull learn`` and the window's "Learn
  my taste": features of the rated photos (from the catalog, else computed and stored
  there), then :func:`fine_tune`.  :func:`photocull.training.ratings.ratings_from_marks` turns marks into ratings.
* :func:`fine_tune` - a personal score head on the pooled backbone features that scoring
  already produced (``ScoreResult.features``); returns a :class:`FineTuneResult` with the
  personal model and before/after metrics on a held-out part of the ratings.  100 ratings
  train in about a second on a 2-core CPU.

Both are generators (one ``yield`` per batch of photos or per epoch, the result as the
generator's ``return`` value; :func:`photocull.training.heads.drive` runs one to its end),
so the GUI can wrap them in a worker thread and the CLI can drive them in a loop.  The
deeper fine-tune through the backbone is :func:`photocull.training.network.fine_tune_images`.

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
* **Loss**: squared EMD (r=2, no root, per sample then batch mean), see
  :func:`photocull.training.heads.squared_emd`.
* **Split, early stopping, refit**: ratings are split by rating value (stratified); the
  epoch with the lowest held-out loss is found with early stopping, the before/after
  metrics are measured on that held-out part, and then (``refit=True``) the head is
  trained again on *all* ratings for that many epochs: with 50 ratings, the 10 held out
  are too many to throw away.  The reported "after" metrics are those of the split run.
"""
from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from photocull.cull.catalog import Catalog, path_key
from photocull.model.checkpoint import save_checkpoint
from photocull.model.losses import dist_mean, rating_to_distribution
from photocull.model.nima import NIMA, ExtraHead, LoadedModel
from photocull.model.registry import EXTRA_FROM, PERSONAL_KIND, RESERVED
from photocull.model.spec import PRETRAINED_BACKBONES
from photocull.scoring import iter_scores
from photocull.training.datasets import stratified_indices
from photocull.training.heads import (
    normalisation_fitted,
    squared_emd,
    torch_threads,
    train_epochs,
    unwrap_model,
)
from photocull.training.metrics import score_metrics, without_nan
from photocull.training.ratings import TrainingError


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


def check_training_set(targets: np.ndarray, min_ratings: int = 20) -> None:
    """Raise :class:`TrainingError` if these targets cannot train a useful model."""
    n = len(targets)
    if n < min_ratings:
        raise TrainingError(f"need at least {min_ratings} rated photos to learn from, got {n}")
    distinct = np.unique(np.round(dist_mean(np.asarray(targets)), 3))
    if len(distinct) < 2:
        raise TrainingError("all ratings are the same; rate some photos higher or lower than others")


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
    # the held-out ratings and both models' predictions for them, (n_val, 10) distributions: what
    # before/after were measured on, for photocull.training.metrics.taste_verdict
    val_targets: np.ndarray | None = None
    val_before: np.ndarray | None = None
    val_after: np.ndarray | None = None
    extra_from: str | None = None  # the model id of the second network the head also reads
    compared_with_extra: bool = False  # "before" is the second network's (aesthetic) score, not the base's

    def meta(self, name: str, base_id: str | None = None) -> dict:
        """Checkpoint metadata for :func:`photocull.model.checkpoint.save_checkpoint`."""
        meta = {"name": name, "kind": PERSONAL_KIND, "trained": True, "base_model": base_id,
                "n_ratings": self.n_ratings, "metrics_before": without_nan(self.before),
                "metrics_after": without_nan(self.after),
                "best_epoch": self.best_epoch, "init": self.init, "renormalised": self.renormalised,
                "refit": self.refit}
        if self.extra_from:
            meta[EXTRA_FROM] = self.extra_from
        return meta


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


def _train_head(score: nn.Sequential, anchor: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                x_val: torch.Tensor | None, y_val: torch.Tensor | None, *, epochs: int, lr: float,
                weight_decay: float, batch_size: int, patience: int, seed: int,
                cancelled: Callable[[], bool]):
    """:func:`heads.train_epochs` for the personal head: squared EMD plus an L2-SP pull
    towards ``anchor``, Adam, dropout and batches drawn from one seeded generator, one
    thread; early stopping on the held-out loss.  Returns its :class:`heads.BestEpoch`."""
    gen = torch.Generator().manual_seed(seed)
    params = list(score.parameters())

    def batch_loss(idx):
        probs = torch.softmax(_score_forward(score, x[idx], gen), dim=1)
        loss = squared_emd(probs, y[idx])
        reg = sum(((p - a) ** 2).sum() for p, a in zip(params, anchor) if p.dim() > 1)
        return loss + weight_decay * reg, loss

    def validate():
        with torch.no_grad(), torch_threads(1):
            pv = torch.softmax(score(x_val), dim=1)
        vl = float(squared_emd(pv, y_val))
        m = score_metrics(pv.numpy(), y_val.numpy())
        return vl, {"val_loss": vl, "val_srcc": m["srcc"], "val_plcc": m["plcc"], "val_emd": m["emd"]}

    has_val = x_val is not None and len(x_val) > 0
    return train_epochs(score, len(x), batch_loss, torch.optim.Adam(params, lr=lr), epochs=epochs,
                        batch_size=batch_size, gen=gen, validate=validate if has_val else None,
                        patience=patience, min_delta=1e-6, threads=1, cancelled=cancelled)


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
    extra: np.ndarray | None = None,
    extra_from: str | None = None,
    compare_with: tuple[np.ndarray, np.ndarray] | None = None,
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
    ``extra``: (N, E) pooled features of the same photos from a second network (the
    aesthetic model, whose id is ``extra_from``): the head then reads both feature sets (see
    :class:`photocull.model.nima.ExtraHead`); they are normalised on the user's photos and
    count as one more feature block; their weights start at zero (in bench/personalization.py
    that did better with 25-50 ratings than starting from the aesthetic model's own head).
    ``compare_with``: the second network's own score layer (W (10, E), b (10,): logits
    ``W f + b`` on its raw features, :func:`score_layer`); the held-out "before" figures are
    then that model's (the aesthetic score orders the default view), not the base's.
    ``balance_blocks``: see the module docstring.  The base is never modified; the new
    model is a deep copy on the CPU with ``requires_grad`` off.
    """
    t0 = time.perf_counter()
    base_model, base_trained = unwrap_model(base)
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
    x_extra = _check_extra(extra, len(x_all), base_model)

    heads = copy.deepcopy(base_model.heads).cpu().float()
    fitted = normalisation_fitted(heads)
    head_trained = base_trained and fitted
    use = ("base" if head_trained else "fresh") if init == "auto" else init
    renormalise = not fitted
    if renormalise:
        heads.feat_mean.copy_(torch.from_numpy(x_all.mean(0)))
        heads.feat_std.copy_(torch.from_numpy(x_all.std(0)).clamp_min(1e-4))
    blocks = feature_blocks(base_model.backbone)
    if balance_blocks:
        _balance_blocks(heads, blocks)
    extra_head = None
    if x_extra is not None:
        extra_head = _fit_extra_head(x_extra, heads.feat_std.numel(), len(blocks) if balance_blocks else 0)

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
        if extra_head is not None:  # one linear layer reads both: [score head | extra head]
            xn = torch.cat([xn, extra_head.normalise(torch.from_numpy(x_extra))], dim=1)
    y = torch.from_numpy(y_all).float()

    # the base model (or the second network: compare_with) on the held-out ratings
    if compare_with is not None and x_extra is not None:
        z = x_extra[va_idx].astype(np.float64) @ np.asarray(compare_with[0], np.float64).T + compare_with[1]
        base_probs = torch.softmax(torch.from_numpy(z), dim=1).float().numpy()
    else:
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
        start = copy.deepcopy(heads.score) if extra_head is None else _widened(heads.score, extra_head.n)
        if dropout is not None:
            for m in start:
                if isinstance(m, nn.Dropout):
                    m.p = float(dropout)
        if cand == "fresh":
            _zero_init(start)
        anchor = [p.detach().clone() for p in start.parameters()]
        score = copy.deepcopy(start)
        inner = _train_head(score, anchor, xn[tr_idx], y[tr_idx], xn[va_idx], y[va_idx], **kw)
        stop = yield from _relay(inner, history, "select")
        if stop is None:
            return None
        best_epoch = stop.epoch
        if stop.state is not None:
            score.load_state_dict(stop.state)
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
        if (yield from _relay(inner, history, "refit")) is None:
            return None
    score.eval()

    model = copy.deepcopy(base_model).cpu().eval()
    if extra_head is not None:
        score = _split_extra(score, extra_head)
        heads.extra = extra_head
        model.cfg = replace(model.cfg, extra_features=extra_head.n)
    heads.score = score
    model.heads = heads.eval()  # normalisation (and severity weights) as trained with
    if renormalise or not base_trained:
        # the base's severity head is not meaningful on these features: drop it
        model.heads.severity = None
        model.cfg = replace(model.cfg, families=())
    for p in model.parameters():
        p.requires_grad_(False)
    return FineTuneResult(model, before, after, history, best_epoch, len(y_all), len(tr_idx), len(va_idx),
                          time.perf_counter() - t0, use, renormalise, did_refit,
                          val_targets=np.array(y_all[va_idx]), val_before=np.array(base_probs),
                          val_after=np.array(after_probs),
                          extra_from=extra_from if extra_head is not None else None,
                          compared_with_extra=compare_with is not None and x_extra is not None)


def _check_extra(extra, n: int, base_model: NIMA) -> np.ndarray | None:
    if extra is None:
        return None
    x = np.asarray(extra, dtype=np.float32)
    if x.ndim != 2 or len(x) != n or x.shape[1] < 1:
        raise TrainingError(f"extra features (N={n}, E) expected, got {x.shape}")
    if not np.isfinite(x).all():
        raise TrainingError("extra features contain NaN or infinite values")
    if base_model.cfg.hidden:
        raise TrainingError("a second network's features need a linear score head (hidden = 0)")
    return x


def score_layer(model: NIMA) -> tuple[np.ndarray, np.ndarray] | None:
    """A model's score head as logits ``W f + b`` on its raw pooled features ``f`` (W (10, D),
    b (10,)), or None when it is not one linear layer (a hidden layer)."""
    if model.cfg.hidden:
        return None
    heads = model.heads
    lin = next(m for m in heads.score if isinstance(m, nn.Linear))
    with torch.no_grad():
        w = (lin.weight / heads.feat_std[None, :]).double()
        b = lin.bias.double() - w @ heads.feat_mean.double()
    return w.numpy(), b.numpy()


def _fit_extra_head(x: np.ndarray, d: int, n_blocks: int) -> ExtraHead:
    """An :class:`ExtraHead` (weights zero) normalising the second network's features as
    fitted on the user's photos: their mean, and their std floored at a quarter of the
    median (a feature nearly constant on the rated photos must not blow up on the next
    photo), scaled so that they count as one more block of ``n_blocks`` (see
    :func:`_balance_blocks`; the score head reads ``d`` features)."""
    std = x.std(0)
    std = np.maximum(std, 0.25 * float(np.median(std)) + 1e-6)
    if n_blocks:
        std = std / math.sqrt(d / (n_blocks * x.shape[1]))
    head = ExtraHead(x.shape[1])
    with torch.no_grad():
        head.feat_mean.copy_(torch.from_numpy(x.mean(0)))
        head.feat_std.copy_(torch.from_numpy(std.astype(np.float32)))
        head.linear.weight.zero_()
    return head.eval()


def _widened(score: nn.Sequential, n: int) -> nn.Sequential:
    """The linear score head reading ``n`` more inputs, their weights zero (the base head's
    output unchanged)."""
    wide = copy.deepcopy(score)
    i, lin = next((i, m) for i, m in enumerate(wide) if isinstance(m, nn.Linear))
    new = nn.Linear(lin.in_features + n, lin.out_features)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :lin.in_features] = lin.weight
        new.bias.copy_(lin.bias)
    wide[i] = new
    return wide


def _split_extra(score: nn.Sequential, extra: ExtraHead) -> nn.Sequential:
    """The widened head back into the base's score head (returned) and ``extra``'s weights."""
    i, lin = next((i, m) for i, m in enumerate(score) if isinstance(m, nn.Linear))
    d = lin.in_features - extra.n
    base = copy.deepcopy(score)
    narrow = nn.Linear(d, lin.out_features)
    with torch.no_grad():
        narrow.weight.copy_(lin.weight[:, :d])
        narrow.bias.copy_(lin.bias)
        extra.linear.weight.copy_(lin.weight[:, d:])
    base[i] = narrow
    return base


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


def slug(name: str) -> str:
    """The file-name form of a model name, as :mod:`photocull.model.registry` resolves it
    ("Anna's portraits" -> "anna-s-portraits")."""
    from photocull.model.registry import slugify
    from photocull.model.spec import ModelError

    try:
        return slugify(name)
    except ModelError:
        return "model"


def save_personal_model(result: FineTuneResult, name: str, models_dir: os.PathLike | str, *,
                        base_id: str | None = None, overwrite: bool = False) -> tuple[Path, str]:
    """Save to ``models_dir/<slug>.pt``; returns (path, model id).  Refuses to overwrite
    an existing file unless ``overwrite``."""
    if slug(name) in RESERVED:
        raise TrainingError(f'"{slug(name)}" is a shipped model\'s name; choose another name')
    path = Path(models_dir) / f"{slug(name)}.pt"
    if path.exists() and not overwrite:
        raise TrainingError(f"a model named {path.stem!r} already exists ({path}); choose another name")
    # heads only when the backbone can be rebuilt from its package; else (the aesthetic
    # model's MobileNet) the file carries the whole network, or it could not be loaded
    whole = result.model.cfg.backbone not in PRETRAINED_BACKBONES
    mid = save_checkpoint(result.model, path, result.meta(name, base_id), include_backbone=whole)
    return path, mid


@dataclass
class LearnResult:
    tuned: FineTuneResult
    n_photos: int  # rated photos with features: those trained on
    unreadable: list[tuple[Path, str]]  # (photo, error) of the rated photos that could not be read


def learn_from_ratings(
    ratings: Mapping[os.PathLike | str, float],
    base: LoadedModel,
    catalog: Catalog,
    *,
    aesthetic: LoadedModel | None = None,
    scale: int = 5,
    min_ratings: int = 20,
    seed: int = 0,
    batch_size: int = 8,
    cancelled: Callable[[], bool] = lambda: False,
) -> Generator[dict, None, LearnResult | None]:
    """Learn a personal model from ``{photo: stars}`` (used in the dict's order).

    Features come from ``catalog`` (stored under any model with ``base``'s backbone; the
    photo unchanged on disk; with ``aesthetic``, that model's pooled features too, and the
    personal head reads both); the other photos are scored with ``base`` (and
    ``aesthetic``) and their results stored in ``catalog``.  Then :func:`fine_tune`
    (``seed``, ``min_ratings``) on the photos that have features.

    Yields ``{"phase": "features", "done", "total"}`` per batch of photos scored (``total``:
    the photos without stored features), then once ``{"phase": "features", "done", "total",
    "photos", "unreadable", "seconds"}`` (photos with features, the [(path, error)] of
    those that could not be read, time taken), then :func:`fine_tune`'s rows.  Returns a
    :class:`LearnResult`, or ``None`` if ``cancelled()``.  Raises :class:`TrainingError`
    (before any photo is read) for too few ratings or a single rating value.
    """
    paths = list(ratings)
    targets = ratings_to_targets([ratings[p] for p in paths], scale)
    check_training_set(targets, min_ratings)
    if aesthetic is not None and (base.model.cfg.hidden or aesthetic.model_id == base.model_id):
        aesthetic = None  # a head with a hidden layer reads its own network's features only
    t0 = time.perf_counter()
    dim = base.model.backbone.feature_dim
    # features stored by an older backbone/pooling (e.g. 2144-d "multilevel") are recomputed
    feats = catalog.any_features(paths, dim=dim)  # features stored by another backbone are not these
    second: dict[str, np.ndarray] = {}
    if aesthetic is not None:
        second = catalog.any_features(paths, dim=aesthetic.model.backbone.feature_dim, model_id=aesthetic.model_id)
    need = {Path(p): (path_key(p) not in feats, aesthetic is not None and path_key(p) not in second) for p in paths}
    missing = [p for p in need if any(need[p])]
    unreadable: list[tuple[Path, str]] = []
    runs = iter_scores(missing, base, aesthetic=aesthetic, need=need, batch_size=batch_size,
                       cancelled=cancelled) if missing else ()
    for prog in runs:
        catalog.store_results([r for r in prog.results if need[r.path][0]], base.model_id)
        if aesthetic is not None:
            catalog.store_results([r.aesthetic_result() for r in prog.results if need[r.path][1]],
                                  aesthetic.model_id)
        for r in prog.results:
            if not r.ok:
                unreadable.append((r.path, r.error))
                continue
            if r.features is not None and len(r.features) == dim:
                feats[path_key(r.path)] = r.features
            if r.aesthetic_features is not None:
                second[path_key(r.path)] = r.aesthetic_features
        yield {"phase": "features", "done": prog.done, "total": prog.total}
    if cancelled():
        return None
    keep = [i for i, p in enumerate(paths)
            if path_key(p) in feats and (aesthetic is None or path_key(p) in second)]
    yield {"phase": "features", "done": len(missing), "total": len(missing), "photos": len(keep),
           "unreadable": unreadable, "seconds": time.perf_counter() - t0}
    x = np.stack([feats[path_key(paths[i])] for i in keep]) if keep else np.zeros((0, dim))
    extra = None
    if aesthetic is not None and keep:
        extra = np.stack([second[path_key(paths[i])] for i in keep])
    tuned = yield from fine_tune(x, targets[keep], base, seed=seed, min_ratings=min_ratings, cancelled=cancelled,
                                 extra=extra, extra_from=None if aesthetic is None else aesthetic.model_id,
                                 compare_with=None if aesthetic is None else score_layer(aesthetic.model))
    return None if tuned is None else LearnResult(tuned, len(keep), unreadable)
