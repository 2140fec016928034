"""One ranking (best mean first, ties by path, unscored last) and one percentile ("top X %")."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from photocull.cull import ranking
from photocull.cull.bursts import BurstInput, group_bursts
from photocull.cull.export import Candidate, choose


def item(name, mean):
    return SimpleNamespace(path=Path(name), mean=mean)


def test_best_first_ties_by_path_unscored_last_as_given():
    items = [item("z", 5.0), item("u2", None), item("m", 7.0), item("a", 5.0), item("u1", math.nan),
             item("b", 5.0)]
    assert [it.path.name for it in ranking.best_first(items)] == ["m", "a", "b", "z", "u2", "u1"]


def test_rank_items_in_the_order_given():
    items = [item("z", 5.0), item("u", None), item("m", 7.0), item("a", 5.0)]
    assert ranking.rank_items(items) == ([3, None, 1, 2], 3)
    assert ranking.rank_items([]) == ([], 0)
    other = [("x.jpg", 1.0), ("y.jpg", 2.0)]
    assert ranking.rank_items(other, mean=lambda t: t[1], path=lambda t: t[0]) == ([2, 1], 2)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 200, 1000])
def test_top_label_is_the_windows_badge(n):
    for rank in range(1, n + 1):
        pct = ranking.top_percent(rank, n)
        assert pct == 100.0 * rank / n
        # the words the window's badge showed before the ranking was shared
        assert ranking.top_label(rank, n) == f"top {max(1, round(100.0 * rank / n))}%"
    assert ranking.top_label(1, n) == f"top {max(1, round(100 / n))}%" and ranking.top_label(n, n) == "top 100%"


def test_top_label_words():
    assert ranking.top_label(1, 20) == "top 5%"
    assert ranking.top_label(1, 1000) == "top 1%"  # never "top 0%"
    with pytest.raises(ValueError):
        ranking.top_label(0, 5)
    with pytest.raises(ValueError):
        ranking.top_label(6, 5)


def test_top_count():
    assert ranking.top_count(6, 50) == 3
    assert ranking.top_count(6, 1) == 1  # at least one
    assert ranking.top_count(0, 50) == 0
    for bad in (0, -1, 100.5):
        with pytest.raises(ValueError, match="the top percentage"):
            ranking.top_count(5, bad)


def test_export_and_bursts_break_ties_as_the_ranking_does():
    cands = [Candidate(Path(n), 6.0) for n in ("c.jpg", "a.jpg", "b.jpg")]
    assert [c.path.name for c in choose(cands, top=3)] == ["a.jpg", "b.jpg", "c.jpg"]
    g = np.zeros((64, 64), np.float32)
    g[16:48, 16:40] = 1
    # shot in the order c, a, b, all scored 6: the best frame is the first by path
    frames = [BurstInput(Path(n), 1_700_000_000.0 + 0.1 * k, gray=g, score=6.0)
              for k, n in enumerate(("c.jpg", "a.jpg", "b.jpg"))]
    (grp,) = group_bursts(frames, gray_loader=None)
    assert grp.kind == "burst" and frames[grp.best].path.name == "a.jpg"
    frames[2].score = 6.5
    (grp,) = group_bursts(frames, gray_loader=None)
    assert frames[grp.best].path.name == "b.jpg"
