"""The one head-training loop, and what every trainer shares.

:func:`train_epochs` trains a head on cached backbone features, one ``yield`` per epoch:
the personal score head (:func:`photocull.training.personal.fine_tune`) and the default
model's heads (:func:`photocull.training.technical.train_heads`) both run it, each with its
own loss, optimiser, schedule, seeds and early stopping.  :class:`BestEpoch` is the early
stopping of every trainer (:mod:`.network` too), :func:`drive` runs any training generator
to its end.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Generator
from typing import TypeVar

import torch
from torch import nn

from photocull.model.nima import NIMA, LoadedModel

R = TypeVar("R")


def drive(gen: Generator[object, None, R], on_yield: Callable[[object], None] | None = None) -> R:
    """Run a generator to its end, handing every yielded value to ``on_yield``; return
    the generator's return value."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_yield is not None:
            on_yield(item)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to ``n`` for the block, then put back.  Process-wide
    while it lasts, so a generator holds it only between yields, never across one."""
    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != old:
            torch.set_num_threads(old)


def squared_emd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The personal head's loss: EMD with r=2, squared (no root), per sample, then the batch mean.

    Same minimiser per sample as ``losses.emd_loss(r=2)``; without the root the gradient
    does not blow up as a prediction nears its target, which trains the small personal
    head more smoothly (held-out SRCC equal or slightly better in bench/personalization).
    """
    return ((torch.cumsum(p, -1) - torch.cumsum(q, -1)) ** 2).mean(-1).mean()


def unwrap_model(base: LoadedModel | NIMA) -> tuple[NIMA, bool]:
    """(network, trained) of a base model given as a LoadedModel or a bare NIMA (trained)."""
    if isinstance(base, LoadedModel):
        return base.model, bool(base.trained)
    if isinstance(base, NIMA):
        return base, True
    raise TypeError(f"base must be a LoadedModel or NIMA, not {type(base).__name__}")


def normalisation_fitted(heads: nn.Module) -> bool:
    """False for heads whose feature normalisation was never fitted (mean 0, std 1)."""
    return not (bool(torch.all(heads.feat_mean == 0)) and bool(torch.all(heads.feat_std == 1)))


class BestEpoch:
    """Early stopping: the epoch with the lowest validation loss so far (its weights and
    whatever ``info`` came with it), and whether ``patience`` epochs in a row failed to
    beat it by more than ``min_delta`` (``patience=None``: never stop early)."""

    def __init__(self, patience: int | None = None, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.loss, self.epoch, self.state, self.info, self.bad = float("inf"), 0, None, None, 0

    def update(self, loss: float, epoch: int, module: nn.Module, info=None) -> None:
        if loss < self.loss - self.min_delta:
            self.loss, self.epoch, self.info, self.bad = loss, epoch, info, 0
            self.state = copy.deepcopy(module.state_dict())
        else:
            self.bad += 1

    @property
    def stop(self) -> bool:
        return self.patience is not None and self.bad >= self.patience


def train_epochs(
    module: nn.Module,
    n: int,
    batch_loss: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    optimiser: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    validate: Callable[[], tuple[float, dict]] | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    scheduler=None,
    threads: int | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Generator[dict, None, BestEpoch | None]:
    """Train ``module`` on ``n`` cached samples, mini-batches drawn by ``gen``.

    ``batch_loss(indices)`` returns (the loss to minimise, the loss to report); after it
    the loop zeroes the gradients, steps ``optimiser`` (and ``scheduler``, per batch).
    ``validate()`` (module in eval mode) returns (the loss that picks the best epoch, a
    dict of keys for the epoch's row).  ``threads``: torch's threads while the batches
    run (None: leave them).  ``cancelled()`` is checked before every batch.

    Yields ``{"epoch", "epochs", "train_loss"}`` plus ``validate``'s keys after each
    epoch; returns the :class:`BestEpoch` (without validation: the last epoch, no state),
    or ``None`` if cancelled.  The module keeps the last epoch's weights: the caller
    loads ``best.state`` if it wants the best one.
    """
    best = BestEpoch(patience, min_delta)
    for epoch in range(1, epochs + 1):
        module.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        with torch_threads(threads) if threads else contextlib.nullcontext():
            for s in range(0, n, batch_size):
                if cancelled():
                    return None
                idx = perm[s:s + batch_size]
                objective, reported = batch_loss(idx)
                optimiser.zero_grad(set_to_none=True)
                objective.backward()
                optimiser.step()
                if scheduler is not None:
                    scheduler.step()
                total += float(reported.detach()) * len(idx)
        row = {"epoch": epoch, "epochs": epochs, "train_loss": total / n}
        if validate is not None:
            module.eval()
            loss, keys = validate()
            row.update(keys)
            best.update(loss, epoch, module)
        else:
            best.epoch = epoch
        yield row
        if best.stop:
            break
    return best
