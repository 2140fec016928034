"""Agreement between predicted and target score distributions (SRCC, PLCC, EMD...), and how
a metric is written out (:func:`format_metric`, :func:`without_nan`), and whether a personal
model agrees with the user's held-out ratings better than the default (:func:`srcc_difference`,
:func:`taste_verdict`).  Importing it does not import torch (the CLI's formatting and the
"Learn my taste" dialog use it).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from photocull.model.losses import dist_mean, dist_std, emd_loss

PASS_MARK = 5.0  # the technical model's pass mark ("acc_at_5")


def _corr(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    from scipy import stats

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # undefined for a constant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = stats.spearmanr(a, b)[0] if kind == "s" else stats.pearsonr(a, b)[0]
    return float(r)


def score_metrics(pred: np.ndarray, target: np.ndarray, target_mean: np.ndarray | None = None) -> dict:
    """NIMA's evaluation of predicted (N, 10) distributions against target ones.

    Keys: ``n``; ``emd`` (r=1) and ``emd2`` (r=2, rooted per sample); ``accuracy`` (binary,
    good = mean > 5, NIMA's); ``acc_at_5`` (pass = mean >= :data:`PASS_MARK`, the
    technical model's); ``srcc``/``plcc`` of the means and ``srcc_std``/``plcc_std`` of the
    stds.  ``target_mean``: the targets' own means when they are finer than the mean of
    their 10-bucket distribution (the technical trainer's pseudo-MOS); the mean
    correlations and accuracies are then taken against it.

    Every value is NaN when undefined: a correlation with fewer than two samples or of a
    constant, everything on an empty set.
    """
    import torch

    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if len(pred) == 0:
        nan = float("nan")
        return {"n": 0, "emd": nan, "emd2": nan, "accuracy": nan, "acc_at_5": nan, "srcc": nan, "plcc": nan,
                "srcc_std": nan, "plcc_std": nan}
    pm = dist_mean(pred)
    tm = dist_mean(target) if target_mean is None else np.asarray(target_mean, dtype=np.float64)
    ps, ts = dist_std(pred), dist_std(target)
    p, q = torch.from_numpy(pred), torch.from_numpy(target)
    return {
        "n": len(pred),
        "emd": float(emd_loss(p, q, r=1)),
        "emd2": float(emd_loss(p, q, r=2)),
        "accuracy": float(np.mean((pm > 5.0) == (tm > 5.0))),
        "acc_at_5": float(np.mean((pm >= PASS_MARK) == (tm >= PASS_MARK))),
        "srcc": _corr(pm, tm, "s"),
        "plcc": _corr(pm, tm, "p"),
        "srcc_std": _corr(ps, ts, "s"),
        "plcc_std": _corr(ps, ts, "p"),
    }


def format_metric(x: float | None, nd: int = 3, missing: str = "n/a") -> str:
    """``x`` with ``nd`` decimals, or ``missing`` for None and NaN."""
    return missing if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def without_nan(metrics: dict) -> dict:
    """``metrics`` with NaN values as None (JSON and checkpoint metadata)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


# --- is the personal model better than the default? ---------------------------------------

MIN_HELD_OUT = 20  # fewer held-out ratings than this: too few to tell

METRIC_HELP = (
    "How well each model agrees with the ratings held out from training:\n"
    "• SRCC, rank agreement (Spearman): does the model put the photos in the order you rated them? "
    "1 = the same order, 0 = no relation, below 0 = the opposite. This is what matters for culling, "
    "and what the verdict compares.\n"
    "• PLCC, linear agreement (Pearson): the same on the scores themselves instead of their order; 1 is best.\n"
    "• EMD, earth mover's distance: how far the model's spread of scores (1-10) is from your rating, "
    "on average; lower is better, 0 is a perfect match.\n"
    "Held-out ratings: about one in five of your ratings, kept out of training so the figures show how "
    "the model does on photos it has not learnt from (they decide when training stops, so the personal "
    "model's figures are a little optimistic). The saved model then learns from all your ratings.\n"
    "The verdict resamples the held-out ratings (a bootstrap) to see whether the difference in "
    "rank agreement could be chance."
)


def _means(a) -> np.ndarray:
    """Mean scores: of (N, 10) distributions, or (N,) scores as they are."""
    a = np.asarray(a, dtype=np.float64)
    return dist_mean(a) if a.ndim == 2 else a.reshape(-1)


def _resampled_ranks(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The rank of each value of ``v`` in each resample, a row of ``w`` giving how many
    times each value was drawn: ties (repeated draws included) get their average rank,
    as :func:`scipy.stats.rankdata` of the resample gives them.  O(n) a resample after
    one sort, instead of sorting every resample."""
    o = np.argsort(v, kind="stable")
    vs = v[o]
    new = np.r_[True, vs[1:] != vs[:-1]]
    group = np.cumsum(new) - 1  # the tie group of each sorted value
    wg = np.add.reduceat(w[:, o], np.flatnonzero(new), axis=1)
    rank = np.cumsum(wg, axis=1) - wg + (wg + 1) / 2
    out = np.empty(w.shape, dtype=np.float64)
    out[:, o] = rank[:, group]
    return out


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` and ``y``, values weighted by ``w``; NaN
    for a constant row."""
    tot = w.sum(axis=1, keepdims=True)
    x = x - (w * x).sum(axis=1, keepdims=True) / tot
    y = y - (w * y).sum(axis=1, keepdims=True) / tot
    den = np.sqrt((w * x * x).sum(axis=1) * (w * y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * x * y).sum(axis=1) / den
    r[~(den > 1e-9)] = np.nan
    return r


@dataclass(frozen=True)
class SrccDifference:
    """SRCC of the personal model minus SRCC of the default on the same held-out ratings,
    with a paired bootstrap percentile interval (``low``..``high`` at ``level``).  NaN
    where undefined (a constant, fewer than 3 ratings)."""
    n: int
    default: float
    personal: float
    low: float
    high: float
    level: float

    @property
    def diff(self) -> float:
        return self.personal - self.default

    @property
    def includes_zero(self) -> bool:
        """The interval includes 0, or there is none: the difference may be chance."""
        return not (self.low > 0 or self.high < 0)


def srcc_difference(target, default, personal, *, n_boot: int = 2000, level: float = 0.95,
                    seed: int = 0) -> SrccDifference:
    """Compare two models' rank agreement (SRCC) with the same held-out ratings.

    ``target``, ``default``, ``personal``: the ratings and each model's predictions for
    them, as (N, 10) distributions (their means are compared) or (N,) scores.  The
    interval comes from ``n_boot`` paired bootstrap resamples of the N ratings (both
    models on the same resample); resamples where a correlation is undefined are left
    out.  The same ``seed`` gives the same interval.
    """
    t, a, b = _means(target), _means(default), _means(personal)
    if not (len(t) == len(a) == len(b)):
        raise ValueError(f"need as many predictions as ratings, got {len(t)}, {len(a)} and {len(b)}")
    n = len(t)
    nan = float("nan")
    srcc_a, srcc_b = _corr(a, t, "s"), _corr(b, t, "s")
    if n < 3 or not (np.isfinite(srcc_a) and np.isfinite(srcc_b)):
        return SrccDifference(n, srcc_a, srcc_b, nan, nan, level)
    rng = np.random.default_rng(seed)
    diffs = []
    chunk = max(1, 2_000_000 // n)  # resamples at a time: bounded memory for any n
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(k, n))  # the resamples, as counts of each rating drawn
        w = np.bincount((idx + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n).astype(np.float64)
        rt = _resampled_ranks(t, w)
        diffs.append(_weighted_corr(rt, _resampled_ranks(b, w), w) - _weighted_corr(rt, _resampled_ranks(a, w), w))
    d = np.concatenate(diffs) if diffs else np.empty(0)
    d = d[np.isfinite(d)]
    if len(d) < n_boot / 2:  # mostly undefined: no interval
        return SrccDifference(n, srcc_a, srcc_b, nan, nan, level)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(d, [alpha, 1.0 - alpha])
    return SrccDifference(n, srcc_a, srcc_b, float(low), float(high), level)


@dataclass(frozen=True)
class TasteVerdict:
    """Whether the personal model is worth saving, in plain words.

    ``outcome``: ``"better"`` (its held-out rank agreement is higher than the default's and
    the bootstrap interval of the difference is above 0, on at least
    :data:`MIN_HELD_OUT` ratings), ``"worse"`` (the interval is below 0, same count), or
    ``"unsure"`` (too few held-out ratings, an interval that includes 0, or no measure).
    Only ``"better"`` makes saving the suggested action (:attr:`suggest_saving`)."""
    outcome: str
    n: int
    text: str
    comparison: SrccDifference

    @property
    def suggest_saving(self) -> bool:
        return self.outcome == "better"


def taste_verdict(target, default, personal, *, n_ratings: int | None = None, min_n: int = MIN_HELD_OUT,
                  n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> TasteVerdict:
    """The verdict on a personal model from its held-out ratings (see :class:`TasteVerdict`
    and :func:`srcc_difference`; arguments as there).  ``n_ratings``: all the ratings
    trained on, to say how many it takes to hold out ``min_n``."""
    c = srcc_difference(target, default, personal, n_boot=n_boot, level=level, seed=seed)
    n = c.n
    held = f"{n} held-out rating{'s' * (n != 1)}"
    if n == 0:
        return TasteVerdict("unsure", 0, "No ratings were held out from training, so photocull can't tell whether "
                            "your model agrees with your ratings better than the default. Saving it is not "
                            "suggested.", c)
    if not (np.isfinite(c.default) and np.isfinite(c.personal)):
        return TasteVerdict("unsure", n, f"photocull can't tell whether your model agrees with your {held} better "
                            "than the default: their rank agreement can't be measured (too few ratings, all "
                            "alike, or a model giving every photo the same score). Saving it is not suggested.", c)
    figures = f"rank agreement {c.personal:.2f} against {c.default:.2f}"
    if c.diff > 0:
        how = "better than"
    elif c.diff < 0:
        how = "worse than"
    else:
        how = "as well as"
    said = f"Your model agrees with your {held} {how} the default ({figures})"
    if n < min_n:
        more = ""
        if n_ratings and n:
            more = f"; about {math.ceil(min_n * n_ratings / n)} rated photos in all would hold out enough"
        return TasteVerdict("unsure", n, f"{said}, but {n} held-out ratings are too few to tell: it takes at "
                            f"least {min_n}{more}. Saving it is not suggested; rate more photos and train again.", c)
    if c.includes_zero:
        return TasteVerdict("unsure", n, f"{said}, but the difference could be chance: resampling the ratings "
                            f"puts it between {c.low:+.2f} and {c.high:+.2f}. photocull can't tell which is better, "
                            "so saving it is not suggested; rate more photos and train again.", c)
    if c.diff > 0:
        return TasteVerdict("better", n, f"{said}.", c)
    return TasteVerdict("worse", n, f"{said}. Keep using the default; saving this model is not suggested.", c)


def verdict_of(result) -> TasteVerdict:
    """The verdict on a trained :class:`~photocull.training.personal.FineTuneResult`
    (:func:`taste_verdict` on its held-out ratings): what the window's Learn My Taste and
    ``photocull learn`` say."""
    held = [getattr(result, k, None) for k in ("val_targets", "val_before", "val_after")]
    if any(h is None for h in held):  # a result without its held-out predictions: nothing to compare
        held = [[], [], []]
    return taste_verdict(*held, n_ratings=getattr(result, "n_ratings", None))
