"""Convert the shipped technical model to "multilevel_cs" pooling without retraining.

The 80 appended centre-surround features get zero weights in the score and severity
heads (identical outputs) and a normalisation measured on ~200 pristine photos.

    .venv/bin/python bench/convert_technical_cs.py [--n 200] [--check 20] [--dry-run]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from photocull.model import nima  # noqa: E402
from photocull.model import checkpoint  # noqa: E402
from photocull.model import spec as modelspec  # noqa: E402
from photocull.training import technical  # noqa: E402
from photocull.media.listing import list_images  # noqa: E402
from photocull.media.loaders import open_image

DATA = Path("/work/shared/data/pristine")


def outputs(model: nima.NIMA, paths: list[Path]):
    arrs = [modelspec.to_model_input(open_image(p, max_side=448), model.cfg) for p in paths]
    probs, sev, feats = nima.predict(model, nima.preprocess(arrs, model.cfg), torch.device("cpu"))
    return probs, sev, feats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(modelspec.default_model_path()))
    ap.add_argument("--out", default=None, help="default: over --model")
    ap.add_argument("--pristine", default=str(DATA))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--check", type=int, default=20)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    old = checkpoint.load_model(args.model, name="default")
    print(f"old: {old.cfg.pooling}, {old.model.backbone.feature_dim} features, id {old.model_id}")
    new, meta = technical.extend_to_cs(old, args.pristine, n_photos=args.n)

    out = Path(args.out or args.model)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "technical.pt"
        checkpoint.save_checkpoint(new, tmp, meta)
        reloaded = checkpoint.load_model(tmp, name="default")
        paths = sorted(p for d in sorted(Path(args.pristine).iterdir()) if d.is_dir()
                       for p in list_images(d, recursive=True))
        rng = np.random.default_rng(123)
        check = [paths[i] for i in rng.choice(len(paths), args.check, replace=False)]
        p0, s0, f0 = outputs(old.model, check)
        p1, s1, f1 = outputs(reloaded.model, check)
        dp, ds = float(np.abs(p0 - p1).max()), float(np.abs(s0 - s1).max())
        df = float(np.abs(f0 - f1[:, :f0.shape[1]]).max())
        print(f"new: {reloaded.cfg.pooling}, {reloaded.model.backbone.feature_dim} features, id {reloaded.model_id}")
        print(f"on {len(check)} photos: max |d probs| {dp:.2e}, max |d severities| {ds:.2e}, "
              f"max |d first {f0.shape[1]} features| {df:.2e}")
        if max(dp, ds) >= 1e-5:
            print("FAILED: outputs differ")
            return 1
        if not args.dry_run:
            shutil.copyfile(tmp, out)
            print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
