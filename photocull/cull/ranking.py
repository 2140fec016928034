"""One ranking and one percentile, for the command line, the window, export and bursts.

The order: the best mean score first, ties by path (``str(path)``), unscored photos
(no mean, or NaN) last in the order given.  The rank of a scored photo is its 1-based place
among the scored ones; its percentile is "top X %": ``100 * rank / n`` over the ``n`` scored
photos, shown as ``top_label(rank, n)`` (``"top 5%"``; never "top 0%").

Items are duck-typed: anything with ``mean`` and ``path`` (a :class:`ScoreResult`, an
export :class:`Candidate`, the window's photo items); other shapes pass ``mean=`` and
``path=`` getters.
"""
from __future__ import annotations

import math
from operator import attrgetter
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

_MEAN = attrgetter("mean")
_PATH = attrgetter("path")


def is_scored(mean: float | None) -> bool:
    """Whether ``mean`` ranks: a number, not NaN."""
    return mean is not None and not math.isnan(mean)


def best_first(items: Iterable[T], *, mean: Callable[[T], float | None] = _MEAN,
               path: Callable[[T], object] = _PATH) -> list[T]:
    """``items`` in rank order: scored best first (ties by path), then the unscored as given."""
    items = list(items)
    scored = [it for it in items if is_scored(mean(it))]
    scored.sort(key=lambda it: (-mean(it), str(path(it))))
    return scored + [it for it in items if not is_scored(mean(it))]


def rank_items(items: Iterable[T], *, mean: Callable[[T], float | None] = _MEAN,
               path: Callable[[T], object] = _PATH) -> tuple[list[int | None], int]:
    """(the rank of each item, in the order given: 1 is the best, None when unscored;
    the number of scored items, the ``n`` of :func:`top_percent`)."""
    items = list(items)
    ranks: list[int | None] = [None] * len(items)
    order = best_first(range(len(items)), mean=lambda i: mean(items[i]), path=lambda i: path(items[i]))
    n = 0
    for i in order:
        if not is_scored(mean(items[i])):
            break
        n += 1
        ranks[i] = n
    return ranks, n


def top_percent(rank: int, n: int) -> float:
    """The percentile of rank ``rank`` among ``n`` scored photos, as "top X %": 100 * rank / n
    (the best of 20 is in the top 5 %, the worst in the top 100 %)."""
    if not 1 <= rank <= n:
        raise ValueError(f"rank {rank} is not between 1 and {n}")
    return 100.0 * rank / n


def top_label(rank: int, n: int) -> str:
    """:func:`top_percent` in words, as the window and the command line show it: ``"top 5%"``."""
    return f"top {max(1, round(top_percent(rank, n)))}%"


def top_count(n: int, percent: float) -> int:
    """How many of ``n`` scored photos make "the top ``percent`` %": at least one (when there
    are any), rounded up."""
    if not 0 < percent <= 100:
        raise ValueError(f"the top percentage must be in (0, 100], not {percent}")
    return max(1, math.ceil(n * percent / 100.0)) if n else 0


def by_face_sharpness(sharpness: float | None, rank: int | None, name: str = "") -> tuple:
    """Sort key: the sharpest softest face first (a group frame is as good as its softest
    face), then photos without faces; each part in the score's order (``rank``)."""
    return (sharpness is None, -(sharpness or 0.0), rank is None, rank or 0, name)
