"""Agreement between predicted and target score distributions (SRCC, PLCC, EMD...), and how
a metric is written out (:func:`format_metric`, :func:`without_nan`).  Importing it does not
import torch (the CLI's formatting uses it).
"""
from __future__ import annotations

import math
import warnings

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
