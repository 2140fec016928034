"""EMD, distribution mean/std and the rating <-> distribution conversions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from photocull.model.losses import dist_mean, dist_std, emd_loss, max_std, maxent_distribution, rating_to_distribution, rating_to_mean, votes_to_distribution


def onehot(score: int) -> list[float]:
    v = [0.0] * 10
    v[score - 1] = 1.0
    return v


# Two samples worked by hand.
#   sample 1: all mass on 1 vs all mass on 2  -> CDF difference [1, 0, 0, ..., 0]
#   sample 2: all mass on 1 vs all mass on 10 -> CDF difference [1]*9 + [0]
# r=1: per sample mean|d| = 0.1 and 0.9                 -> batch mean 0.5
# r=2: per sample sqrt(mean d^2) = sqrt(.1), sqrt(.9)   -> batch mean (0.316228 + 0.948683) / 2
# (averaging over batch and buckets before the root would give sqrt(0.5) = 0.7071 instead)
P = torch.tensor([onehot(1), onehot(1)], dtype=torch.float64)
Q = torch.tensor([onehot(2), onehot(10)], dtype=torch.float64)


def test_emd_r1_matches_hand_computation():
    assert emd_loss(P, Q, r=1).item() == pytest.approx(0.5, abs=1e-12)


def test_emd_r2_is_root_per_sample_then_batch_mean():
    expected = (math.sqrt(0.1) + math.sqrt(0.9)) / 2
    got = emd_loss(P, Q, r=2).item()
    assert got == pytest.approx(expected, abs=1e-12)
    assert abs(got - math.sqrt(0.5)) > 0.05  # not the "mean before the root" variant


def test_emd_default_is_r2_and_symmetric():
    assert emd_loss(P, Q).item() == pytest.approx(emd_loss(P, Q, r=2).item())
    assert emd_loss(Q, P).item() == pytest.approx(emd_loss(P, Q).item())


def test_emd_of_distribution_with_itself_is_zero():
    p = torch.softmax(torch.randn(5, 10, generator=torch.Generator().manual_seed(1)), dim=1)
    assert emd_loss(p, p, r=2).item() == pytest.approx(0.0, abs=1e-7)
    assert emd_loss(p, p, r=1).item() == pytest.approx(0.0, abs=1e-7)


def test_emd_has_gradient_and_rejects_shape_mismatch():
    logits = torch.zeros(2, 10, requires_grad=True)
    emd_loss(torch.softmax(logits, 1), Q.float()).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        emd_loss(P, Q[:1])


def test_dist_mean_and_std_on_hand_examples():
    half = np.zeros(10)
    half[[0, 9]] = 0.5  # scores 1 and 10 equally: mean 5.5, std 4.5 (variance would be 20.25)
    uniform = np.full(10, 0.1)  # mean 5.5, variance 8.25
    assert float(dist_mean(half)) == pytest.approx(5.5)
    assert float(dist_std(half)) == pytest.approx(4.5)
    assert float(dist_mean(np.array(onehot(7)))) == pytest.approx(7.0)
    assert float(dist_std(np.array(onehot(7)))) == pytest.approx(0.0, abs=1e-9)
    assert float(dist_std(uniform)) == pytest.approx(math.sqrt(8.25))
    # batched, numpy and torch agree
    batch = np.stack([half, uniform])
    np.testing.assert_allclose(dist_mean(batch), [5.5, 5.5])
    np.testing.assert_allclose(dist_std(batch), [4.5, math.sqrt(8.25)])
    t = torch.tensor(batch)
    np.testing.assert_allclose(dist_mean(t).numpy(), [5.5, 5.5])
    np.testing.assert_allclose(dist_std(t).numpy(), [4.5, math.sqrt(8.25)])


def test_max_std():
    assert max_std(5.5) == pytest.approx(4.5)
    assert max_std(1.0) == 0.0 and max_std(10.0) == 0.0


FEASIBLE = [(m, s) for m in (1.5, 2.0, 3.0, 4.25, 5.5, 7.0, 8.75, 9.5)
            for s in (0.6, 1.0, 1.5, 2.5, 3.5)
            if s < 0.95 * max_std(m) and s > math.sqrt((m % 1) * (1 - m % 1)) + 0.02]


@pytest.mark.parametrize("mean,std", FEASIBLE)
def test_maxent_hits_requested_mean_and_std(mean, std):
    p = maxent_distribution(mean, std)
    assert p.shape == (10,)
    assert (p >= 0).all()
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert float(dist_mean(p)) == pytest.approx(mean, abs=1e-3)
    assert float(dist_std(p)) == pytest.approx(std, abs=1e-3)


def test_feasible_grid_is_not_trivially_small():
    assert len(FEASIBLE) >= 25


def _is_unimodal(p: np.ndarray) -> bool:
    d = np.diff(p)
    signs = np.sign(d[np.abs(d) > 1e-12])
    return bool(np.all(np.diff(signs) <= 0))  # rises (maybe), then falls (maybe), never rises again


@pytest.mark.parametrize("mean", [2.0, 3.0, 5.5, 7.0, 9.0])
@pytest.mark.parametrize("std", [0.3, 0.8, 1.2, 1.5])
def test_maxent_is_unimodal_for_moderate_spread(mean, std):
    # (a maxent distribution is exp(a*i + b*i^2); with a spread wider than the
    # exponential one for that mean, b > 0 and it is U-shaped by necessity)
    p = maxent_distribution(mean, std)
    assert _is_unimodal(p), p
    assert abs(int(np.argmax(p)) + 1 - mean) <= 1.0


def test_unimodal_check_can_fail():
    assert not _is_unimodal(np.array([0.3, 0.1, 0, 0, 0, 0, 0, 0, 0.1, 0.5]))


@pytest.mark.parametrize("mean", [1.2, 1.5, 2.0, 5.5, 9.5])
@pytest.mark.parametrize("std", [0.0, -1.0, 1e-9, 0.05, 100.0, float("inf")])
def test_maxent_degenerate_std_is_clipped_gracefully(mean, std):
    p = maxent_distribution(mean, std)
    assert np.isfinite(p).all() and (p >= 0).all()
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert float(dist_mean(p)) == pytest.approx(mean, abs=1e-3)  # the mean is kept
    assert float(dist_std(p)) <= max_std(mean) + 1e-6


@pytest.mark.parametrize("mean", [1.0, 10.0, 0.0, 11.0, 1.0001, 9.9999])
def test_maxent_at_and_beyond_the_ends(mean):
    p = maxent_distribution(mean, 1.0)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
    assert float(dist_mean(p)) == pytest.approx(min(max(mean, 1.0), 10.0), abs=1e-3)


def test_rating_to_mean_scale_5_and_10():
    assert [rating_to_mean(r) for r in (1, 2, 3, 4, 5)] == pytest.approx([2.0, 3.75, 5.5, 7.25, 9.0])
    assert rating_to_mean(7, scale=10) == 7.0
    assert rating_to_mean(0) == 2.0 and rating_to_mean(9) == 9.0  # clipped
    with pytest.raises(ValueError):
        rating_to_mean(3, scale=7)


def test_rating_to_distribution_monotone_in_rating():
    means = [float(dist_mean(rating_to_distribution(r))) for r in (1, 2, 3, 4, 5)]
    assert all(b > a + 1.0 for a, b in zip(means, means[1:])), means
    for r, m in zip((1, 2, 3, 4, 5), means):
        assert m == pytest.approx(rating_to_mean(r), abs=1e-3)
    # finer: half-stars on the 10 scale too
    m10 = [float(dist_mean(rating_to_distribution(r, scale=10))) for r in np.arange(1, 10.5, 0.5)]
    assert all(b > a for a, b in zip(m10, m10[1:]))
    # higher rating shifts mass upward: the CDF of a better rating lies below
    c3, c4 = np.cumsum(rating_to_distribution(3)), np.cumsum(rating_to_distribution(4))
    assert (c4[:-1] <= c3[:-1] + 1e-12).all()


def test_votes_to_distribution():
    v = votes_to_distribution([0, 0, 1, 1, 2, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(v, [0, 0, .25, .25, .5, 0, 0, 0, 0, 0])
    for bad in ([0] * 10, [1] * 9, [-1] + [1] * 9):
        with pytest.raises(ValueError):
            votes_to_distribution(bad)
