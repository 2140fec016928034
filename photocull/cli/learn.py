"""``photocull learn``, ``train``, ``evaluate`` and ``train-technical``.

Each sub-parser sets ``func`` to its ``cmd_*(args, paths)`` function, which returns an
exit code (0 success, 1 failure with a message on stderr).  The commands need torch
(through training and the model); registering them must not (so that ``photocull --help``
and ``--version`` start fast): each command imports what it needs when it runs.

    photocull learn RATINGS.csv --name NAME      a personal model from path,rating rows
    photocull train --dataset ava|koniq|livec|csv --images DIR --labels FILE
    photocull evaluate --model M --dataset ... --images DIR --labels FILE
    photocull train-technical PRISTINE_DIR --out FILE
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from photocull.config import AppPaths, Settings
from photocull.model.spec import BACKBONES, MAX_HIDDEN
from photocull.training.datasets import DATASETS
from photocull.training.metrics import format_metric, without_nan

from .common import int_in

log = logging.getLogger(__name__)

DATASET_KIND = {
    "ava": "aesthetics (AVA)",
    "koniq": "technical quality (KonIQ-10k)",
    "livec": "technical quality (LIVE In the Wild)",
    "csv": "trained on a labelled CSV",
}


# --- helpers --------------------------------------------------------------------------------

def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


def resolve_model(spec: str | None, paths: AppPaths):
    """"default", a model file, or the name of a personal model in ``paths.models_dir``."""
    from photocull.model.registry import resolve

    return resolve(spec, paths)


def _print_metrics(title: str, m: dict) -> None:
    f = {k: format_metric(m.get(k)) for k in ("emd", "accuracy", "srcc", "plcc", "srcc_std", "plcc_std")}
    print(f"{title}: n={m.get('n', 0)}  EMD {f['emd']}  accuracy {f['accuracy']}  SRCC {f['srcc']}  LCC {f['plcc']}  "
          f"std SRCC {f['srcc_std']}  std LCC {f['plcc_std']}"
          + (f"  ({m['failed']} unreadable)" if m.get("failed") else ""))


def _print_learn_row(row: dict) -> None:
    if row["phase"] == "features" and "photos" in row:
        bad = row["unreadable"]
        print(f"features of {row['photos']} photos in {row['seconds']:.1f} s"
              + (f"; {len(bad)} unreadable, skipped (e.g. {bad[0][0].name}: {bad[0][1]})" if bad else ""))
    elif row["phase"] == "select" and (row["epoch"] == 1 or row["epoch"] % 10 == 0):
        print(f"  epoch {row['epoch']:3d}  train {row['train_loss']:.4f}  held-out {row['val_loss']:.4f}  "
              f"SRCC {format_metric(row['val_srcc'])}", flush=True)


def _load_items(args):
    from photocull.training import datasets

    ds = datasets.load_dataset(args.dataset, args.labels, args.images, scale=args.scale)
    print(ds.summary())
    for note in ds.notes:
        print(f"  note: {note}")
    if args.limit and len(ds.items) > args.limit:
        rng = np.random.default_rng(args.seed)
        keep = sorted(rng.choice(len(ds.items), args.limit, replace=False))
        ds.items = [ds.items[i] for i in keep]
        print(f"  using a random {args.limit} of them (--limit)")
    if len(ds.items) == 0:
        raise datasets.DatasetError("no labelled images found (check --images and --labels)")
    return ds


# --- commands -------------------------------------------------------------------------------

def _aesthetic_or_none(paths: AppPaths):
    """The aesthetic model, whose features a personal head reads too; None (a head on the
    base's features alone) if this installation lacks it."""
    from photocull.model.registry import AESTHETIC, resolve_lazy
    from photocull.model.spec import ModelError

    try:
        return resolve_lazy(AESTHETIC, paths).load()
    except ModelError as exc:
        print(f"note: {exc}; learning from the technical model's features alone", file=sys.stderr)
        return None


def cmd_learn(args, paths: AppPaths) -> int:
    """Learn a personal model from a ``path,rating`` CSV."""
    from photocull.cull.catalog import Catalog
    from photocull.model.spec import ModelError
    from photocull.training import personal as training
    from photocull.training.heads import drive
    from photocull.training.ratings import read_ratings_csv

    try:
        settings = Settings.load(paths.settings_path)
        ratings, skipped = read_ratings_csv(args.ratings, settings.pick_rating, settings.reject_rating, args.scale)
        print(f"{len(ratings)} rated photos in {args.ratings}"
              + (f" ({len(skipped)} unreadable rows skipped)" if skipped else ""))
        for why in skipped[:5]:
            print(f"  skipped {why}", file=sys.stderr)
        training.check_training_set(training.ratings_to_targets(list(ratings.values()), args.scale), args.min_ratings)
        dest = paths.models_dir / f"{training.slug(args.name)}.pt"
        if dest.exists() and not args.overwrite:
            return _err(f"a model named {dest.stem!r} already exists ({dest}); use --overwrite or another --name")
        base = resolve_model(args.base, paths)
        aesthetic = _aesthetic_or_none(paths)
        print(base.notice + ("" if aesthetic is None else f", reading the {aesthetic.name} model's features too"))
        with Catalog(paths.catalog_path) as catalog:
            learned = drive(training.learn_from_ratings(ratings, base, catalog, aesthetic=aesthetic, scale=args.scale,
                                                        min_ratings=args.min_ratings, seed=args.seed,
                                                        batch_size=args.batch_size), _print_learn_row)
        if learned is None:
            return _err("cancelled")
        result = learned.tuned
        path, mid = training.save_personal_model(result, args.name, paths.models_dir, base_id=base.model_id,
                                                 overwrite=args.overwrite)
    except (training.TrainingError, ModelError) as exc:
        return _err(str(exc))
    print(f"trained in {result.seconds:.1f} s (best epoch {result.best_epoch}"
          f"{', then refit on all ratings' if result.refit else ''})")
    print(f"on {result.n_val} held-out ratings:")
    default = "aesthetic, the default order" if result.compared_with_extra else base.name
    _print_metrics(f"  default  ({default})", result.before)
    _print_metrics(f"  personal ({args.name})", result.after)
    from photocull.training.metrics import verdict_of

    print(verdict_of(result).text)  # the window's words: better, worse, or can't tell
    print(f"saved {path} (id {mid})")
    return 0


def cmd_train(args, paths: AppPaths) -> int:
    """Train a model on a public dataset (train/val/test split 70/15/15, stratified)."""
    from photocull.model.checkpoint import save_checkpoint
    from photocull.model.spec import ModelConfig, ModelError
    from photocull.training import datasets, network
    from photocull.training.heads import drive
    from photocull.training.personal import TrainingError, slug

    def show(row: dict) -> None:
        if row["phase"] == "normalise":
            print("fitting feature normalisation ...", flush=True)
        elif row["phase"] == "train":
            print(f"  epoch {row['epoch']} batch {row['batch']}/{row['batches']}  loss {row['train_loss']:.4f}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        else:
            print(f"epoch {row['epoch']}/{row['epochs']}  train {row['train_loss']:.4f}  "
                  f"val {format_metric(row.get('val_loss'))}  SRCC {format_metric(row.get('val_srcc'))}  "
                  f"EMD {format_metric(row.get('val_emd'))}", flush=True)

    try:
        ds = _load_items(args)
        train, val, test = datasets.split(ds.items, (0.7, 0.15, 0.15), seed=args.seed)
        print(f"split: {len(train)} train, {len(val)} validation, {len(test)} test")
        base = resolve_model(args.base, paths) if args.base else None
        cfg = ModelConfig(backbone=args.backbone, pooling="multilevel_cs" if args.backbone == "efficientnet_lite0" else "last")
        name = args.name or f"{args.dataset}-{args.backbone}"
        dest = Path(args.out) if args.out else paths.models_dir / f"{slug(name)}.pt"
        if dest.exists() and not args.overwrite:
            return _err(f"{dest} exists; use --overwrite or another --name/--out")
        gen = network.train_on_dataset(train, cfg, base=base, val_items=val, epochs=args.epochs,
                                        batch_size=args.batch_size, lr=args.lr, unfreeze=args.unfreeze,
                                        augment=not args.no_augment, seed=args.seed, num_workers=args.workers)
        t0 = time.perf_counter()
        result = drive(gen, show)
        if result is None:
            return _err("cancelled")
        test_m = network.evaluate(result.model, test, batch_size=args.batch_size)
        _print_metrics("test", test_m)
        meta = {"name": name, "kind": DATASET_KIND[args.dataset], "trained": True, "dataset": args.dataset,
                "labels": str(args.labels), "n_train": len(train), "best_epoch": result.best_epoch,
                "unfreeze": args.unfreeze,
                "metrics_test": without_nan(test_m)}
        mid = save_checkpoint(result.model, dest, meta, include_backbone=result.backbone_trained)
    except (TrainingError, datasets.DatasetError, ModelError) as exc:
        return _err(str(exc))
    print(f"saved {dest} (id {mid})")
    return 0


def cmd_evaluate(args, paths: AppPaths) -> int:
    """Evaluate a model on a labelled dataset (all of it, or the test part of the split)."""
    from photocull.model.spec import ModelError
    from photocull.training import datasets, network
    from photocull.training.personal import TrainingError
    try:
        loaded = resolve_model(args.model, paths)
        print(loaded.notice)
        ds = _load_items(args)
        items = ds.items
        if args.split == "test":
            items = datasets.split(items, (0.7, 0.15, 0.15), seed=args.seed)[2]
            print(f"test part of the split: {len(items)} images")
        m = network.evaluate(loaded, items, batch_size=args.batch_size)
    except (TrainingError, datasets.DatasetError, ModelError) as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps(without_nan(m)))
    else:
        _print_metrics(loaded.name, m)
    return 0


def cmd_train_technical(args, paths: AppPaths) -> int:
    """Train the technical-quality model from clean photos."""
    from photocull.training.technical import rounded, train_technical

    if not args.pristine_dir.is_dir():
        return _err(f"{args.pristine_dir} is not a folder")
    metrics = train_technical(args.pristine_dir, args.out, args.cache_dir or paths.cache_dir / "technical-features",
                              seed=args.seed,
                              epochs=args.epochs, max_refs=args.max_refs,
                              n_single=args.variants, n_mix=args.mixtures, n_eval_refs=args.eval_refs,
                              hidden=args.hidden, feature_minutes=args.feature_minutes)
    if args.metrics_json:
        args.metrics_json.write_text(json.dumps(rounded(metrics), indent=2))
    return 0


# --- argparse -------------------------------------------------------------------------------

def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=DATASETS,
                   help="the labels' format: AVA, KonIQ-10k, LIVE In the Wild, or a CSV (path,mean[,std] "
                        "or path,c1..c10 rows)")
    p.add_argument("--labels", required=True,
                   help="AVA.txt, a KonIQ-10k CSV, the folder of LIVE's All*_release.mat, or a CSV")
    p.add_argument("--images", help="image folder (default: beside the labels)")
    p.add_argument("--scale", type=int, choices=(5, 10), default=10, help="scale of a CSV's mean/std (default 10)")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="use a random N of the images (default: all)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the split and the --limit sample (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per batch (default %(default)s)")


def add_parsers(subparsers) -> None:
    """Register ``learn``, ``train`` and ``evaluate`` on an argparse subparsers object."""
    p = subparsers.add_parser("learn", help="learn your taste from rated photos",
                              description="Train a personal model from a CSV of path,rating rows "
                                          "(stars 1..5, or pick/reject; header optional).")
    p.add_argument("ratings", metavar="RATINGS", help="CSV file: path,rating")
    p.add_argument("--name", required=True, help="name of the personal model")
    p.add_argument("--scale", type=int, choices=(5, 10), default=5, help="rating scale (default 5 stars)")
    p.add_argument("--base", help="model to start from (default: the shipped default)")
    p.add_argument("--min-ratings", type=int, default=20, metavar="N",
                   help="refuse to learn from fewer rated photos (default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the held-out split and the training (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="photos per batch when computing features (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a personal model of the same name")
    p.set_defaults(func=cmd_learn)

    p = subparsers.add_parser("train", help="train a model on a public dataset",
                              description="Train NIMA on AVA, KonIQ-10k, LIVE In the Wild or a labelled CSV "
                                          "(70/15/15 split, early stopping on the validation part).")
    _dataset_args(p)
    p.add_argument("--backbone", choices=BACKBONES, default="efficientnet_lite0",
                   help="the ImageNet network under the score head (default %(default)s)")
    p.add_argument("--base", help="start from this model instead of a fresh head")
    p.add_argument("--unfreeze", choices=("none", "last", "all"), default="none",
                   help="backbone layers to train too (default none: head only)")
    p.add_argument("--epochs", type=int, default=10, metavar="N",
                   help="passes over the training part (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="head learning rate (backbone: a tenth)")
    p.add_argument("--no-augment", action="store_true", help="train without the random crops and flips")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="data loader processes (default 0: load in this process)")
    p.add_argument("--name", help="model name (default DATASET-BACKBONE)")
    p.add_argument("--out", help="model file to write (default: the personal models folder)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("evaluate", help="evaluate a model on a labelled dataset",
                              description="Evaluate a model on a labelled dataset: EMD, binary accuracy at 5, "
                                          "LCC/SRCC of means and of stds.")
    p.add_argument("--model", default="default", help="'default', a model file, or a personal model's name")
    _dataset_args(p)
    p.add_argument("--split", choices=("all", "test"), default="all",
                   help="all images, or the test part of train's split (same --seed)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("train-technical",
                              help="rebuild the default technical-quality model from a folder of clean photos",
                              description="Rebuild the default technical-quality model from a folder of clean photos: "
                                          "each is degraded (blur, motion, noise, dark, bright, compression, "
                                          "contrast, low resolution, colour) and the model's heads learn how "
                                          "much and what went wrong; metrics on held-out references "
                                          "are printed.  Features are cached, so a second run is quick.")
    p.add_argument("pristine_dir", type=Path, metavar="PRISTINE_DIR",
                   help="a folder of clean, well-exposed photos (the references degraded for training)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="checkpoint to write (heads only)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the split, the degradations and the training (default %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="where to cache features (default: technical-features/ in photocull's cache folder)")
    p.add_argument("--epochs", type=int, default=60, metavar="N",
                   help="training epochs of the heads (default %(default)s)")
    p.add_argument("--max-refs", type=int, default=None, metavar="N", help="cap the training references (quick runs)")
    p.add_argument("--variants", type=int, default=9, metavar="N",
                   help="single degradations per training reference (default %(default)s)")
    p.add_argument("--mixtures", type=int, default=1, metavar="N",
                   help="mixtures of two degradations per training reference (default %(default)s)")
    p.add_argument("--feature-minutes", type=float, default=None, metavar="M",
                   help="stop extracting new training references after this many minutes")
    p.add_argument("--eval-refs", type=int, default=12, metavar="N",
                   help="held-out references to evaluate on (default %(default)s)")
    p.add_argument("--hidden", type=int_in(0, MAX_HIDDEN), default=0, metavar="N",
                   help=f"hidden units in the score head (0: linear; at most {MAX_HIDDEN})")
    p.add_argument("--metrics-json", type=Path, default=None, metavar="FILE", help="also write the metrics here")
    p.set_defaults(func=cmd_train_technical)
