"""Score distributions: EMD loss, mean/std, and rating <-> distribution conversions.

A NIMA distribution is a vector of 10 probabilities for the scores 1..10.
"""
from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SCORES = np.arange(1, 11, dtype=np.float64)
SCORES_SQ = SCORES**2
N_BUCKETS = 10


def _is_tensor(x) -> bool:
    # torch is imported only by code that makes tensors: scoring from an ONNX export never does
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def emd_loss(p: "torch.Tensor", q: "torch.Tensor", r: int = 2) -> "torch.Tensor":
    """Earth mover's distance between batches of distributions (NIMA, eq. 1).

    Computed per sample, ``(mean_k |CDF_p(k) - CDF_q(k)|^r)^(1/r)``, then averaged over
    the batch.  r=2 is the training loss of the paper, r=1 the evaluation metric.
    """
    import torch

    if p.shape != q.shape:
        raise ValueError(f"shape mismatch {tuple(p.shape)} vs {tuple(q.shape)}")
    cdf_diff = torch.cumsum(p, dim=-1) - torch.cumsum(q, dim=-1)
    per_sample = torch.mean(torch.abs(cdf_diff) ** r, dim=-1) ** (1.0 / r)
    return per_sample.mean()


def dist_mean(p) -> "np.ndarray | torch.Tensor":
    """Mean score sum_i i * p_i, for numpy arrays or tensors of shape (..., 10)."""
    if _is_tensor(p):
        import torch

        s = torch.arange(1, 11, dtype=p.dtype, device=p.device)
        return (p * s).sum(-1)
    return np.asarray(p, dtype=np.float64) @ SCORES


def dist_std(p) -> "np.ndarray | torch.Tensor":
    """Standard deviation sqrt(sum_i i^2 p_i - mean^2) (not the variance)."""
    if _is_tensor(p):
        import torch

        s = torch.arange(1, 11, dtype=p.dtype, device=p.device)
        m = (p * s).sum(-1)
        return torch.sqrt(torch.clamp((p * s * s).sum(-1) - m * m, min=0))
    p = np.asarray(p, dtype=np.float64)
    m = p @ SCORES
    return np.sqrt(np.clip(p @ SCORES_SQ - m * m, 0, None))


def mean_of(p) -> float | None:
    """:func:`dist_mean` of one distribution as a float; None when there is none."""
    if isinstance(p, np.ndarray) and p.ndim == 1:  # one photo's (10,000 of them on a reopen)
        return float(p.astype(np.float64) @ SCORES)
    return None if p is None else float(dist_mean(p))


def std_of(p) -> float | None:
    """:func:`dist_std` of one distribution as a float; None when there is none."""
    if isinstance(p, np.ndarray) and p.ndim == 1:  # one photo's (3 us, not 9: 10,000 on a reopen)
        a = p.astype(np.float64)
        m = float(a @ SCORES)
        return math.sqrt(max(float(a @ SCORES_SQ) - m * m, 0.0))
    return None if p is None else float(dist_std(p))


class DistributionStats:
    """``mean`` and ``std`` of a result's 10-bucket ``probs`` (None when it has none): one
    definition for scoring's results and the catalog's stored scores."""

    probs: np.ndarray | None

    @property
    def mean(self) -> float | None:
        return mean_of(self.probs)

    @property
    def std(self) -> float | None:
        return std_of(self.probs)


def max_std(mean: float) -> float:
    """Largest std a distribution on 1..10 can have with this mean."""
    mean = float(np.clip(mean, 1.0, 10.0))
    return float(np.sqrt(max((mean - 1.0) * (10.0 - mean), 0.0)))


def maxent_distribution(mean: float, std: float, iters: int = 100) -> np.ndarray:
    """The maximum-entropy distribution on 1..10 with the given mean and std.

    It has the form p_i ∝ exp(a*i + b*i^2); (a, b) are found by Newton's method on
    the convex dual.  This is how the MATLAB NIMA example turns LIVE In the Wild's
    mean/std into a 10-bucket target.  The std is clipped into what is feasible.
    """
    mean = float(np.clip(mean, 1.0, 10.0))
    hi = max_std(mean)
    if hi < 1e-6:
        out = np.zeros(N_BUCKETS)
        out[int(round(mean)) - 1] = 1.0
        return out
    # on the integers 1..10 a mean with fractional part f needs std >= sqrt(f(1-f))
    # (all mass on the two neighbours); below that Newton cannot converge and the mean drifts
    f = mean - np.floor(mean)
    lo = max(0.05, float(np.sqrt(f * (1.0 - f))) + 0.01)
    std = float(np.clip(std, lo, hi * 0.999))
    # work on centred, scaled support for conditioning
    x = (SCORES - 5.5) / 4.5
    mt = (mean - 5.5) / 4.5
    m2 = (std / 4.5) ** 2 + mt * mt
    lam = np.zeros(2)
    feats = np.stack([x, x * x], axis=1)
    target = np.array([mt, m2])
    for _ in range(iters):
        z = feats @ lam
        z -= z.max()
        w = np.exp(z)
        w /= w.sum()
        mu = w @ feats
        grad = mu - target
        if np.abs(grad).max() < 1e-10:
            break
        cov = (feats * w[:, None]).T @ feats - np.outer(mu, mu) + 1e-12 * np.eye(2)
        step = np.linalg.solve(cov, grad)
        # damped Newton: backtrack on the dual objective log Z - lam.target
        def dual(l):
            zz = feats @ l
            mx = zz.max()
            return mx + np.log(np.exp(zz - mx).sum()) - l @ target
        t, f0 = 1.0, dual(lam)
        while t > 1e-6 and dual(lam - t * step) > f0 - 1e-4 * t * (grad @ step):
            t *= 0.5
        lam = lam - t * step
    z = feats @ lam
    w = np.exp(z - z.max())
    return w / w.sum()


# What one star rating stands for: stars 1..5 -> mean 2.0, 3.75, 5.5, 7.25, 9.0 on the
# 1..10 scale, and the spread one rating implies (one person, one vote).
RATING_STD = 1.2


def rating_to_mean(rating: float, scale: int = 5) -> float:
    """Map a rating on a 1..scale scale to a mean on 1..10."""
    if scale == 10:
        return float(np.clip(rating, 1, 10))
    if scale != 5:
        raise ValueError("scale must be 5 or 10")
    return 2.0 + (float(np.clip(rating, 1, 5)) - 1.0) * 1.75


def rating_to_distribution(rating: float, scale: int = 5, std: float = RATING_STD) -> np.ndarray:
    """A 10-bucket target for one rating: maxent around the mean it stands for."""
    return maxent_distribution(rating_to_mean(rating, scale), std)


def votes_to_distribution(votes) -> np.ndarray:
    """Ten vote counts (AVA style) -> normalised distribution."""
    v = np.asarray(votes, dtype=np.float64)
    if v.shape != (N_BUCKETS,) or v.sum() <= 0 or (v < 0).any():
        raise ValueError("need ten non-negative vote counts with a positive sum")
    return v / v.sum()


def rescale(x, lo: float, hi: float, new_lo: float = 1.0, new_hi: float = 10.0):
    """Linear rescale from [lo, hi] to [new_lo, new_hi]."""
    return new_lo + (np.asarray(x, dtype=np.float64) - lo) * (new_hi - new_lo) / (hi - lo)
