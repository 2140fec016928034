"""Agreement between predicted and target score distributions (SRCC, PLCC, EMD...).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from photocull.model.losses import dist_mean, dist_std, emd_loss


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
