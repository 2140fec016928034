"""Training through the whole network: a public dataset (AVA, KonIQ, LIVE-C, CSV; see
:mod:`photocull.training.datasets`) with the paper's augmentation (squash to 256, random
224 crop, horizontal flip), and the deeper personal fine-tune on the user's photos
(last backbone stage unfrozen).  Slow on a CPU.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from photocull.model.losses import dist_mean, emd_loss
from photocull.model.nima import NIMA, LoadedModel, normalise
from photocull.model.spec import ModelConfig
from photocull.training.datasets import Item, stratified_indices
from photocull.training.heads import BestEpoch, normalisation_fitted, unwrap_model
from photocull.training.metrics import score_metrics
from photocull.training.personal import (
    TrainingError,
    check_training_set,
    ratings_to_targets,
)

log = logging.getLogger(__name__)


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

        from photocull.media.loaders import ImageError, open_image

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
        feats.append(model.backbone(normalise(b[0], model.cfg)))
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
    (path, distribution) items: EMD loss (r=2, rooted per sample, batch mean), AdamW.

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
        base_model, base_trained = unwrap_model(base)
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
    if not normalisation_fitted(model.heads):
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
    best = BestEpoch(patience, min_delta=1e-6)
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
            feats = model.backbone(normalise(x, cfg)) if bb_params else _frozen(model, x, cfg)
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
            best.update(vl, epoch, model, info=m)
        history.append(row)
        yield row
        if best.stop:
            break
    best_epoch, val = epochs, {}
    if best.state is not None:
        model.load_state_dict(best.state)
        best_epoch, val = best.epoch, best.info
    if not keep_severity:
        model.heads.severity = None
        model.cfg = replace(model.cfg, families=())
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return TrainResult(model, history, best_epoch, val, bool(bb_params), time.perf_counter() - t0)


def _frozen(model: NIMA, x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    with torch.no_grad():
        return model.backbone(normalise(x, cfg))


@torch.no_grad()
def _predict_loader(model: NIMA, loader, cancelled) -> tuple[np.ndarray | None, np.ndarray]:
    model.eval()
    ps, ts = [], []
    for b in loader:
        if cancelled():
            return None, np.zeros((0, 10))
        if b is None:
            continue
        ps.append(model(normalise(b[0], model.cfg)).numpy())
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
    from photocull.scoring import iter_scores

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
