"""Convert idealo's NIMA aesthetic model (Keras 2.1.6 HDF5 weights) into a photocull model file.

    .venv/bin/pip install -e '.[convert]'      # h5py; no TensorFlow needed
    .venv/bin/python scripts/convert_idealo_nima.py \\
        ../shared/data/weights/weights_mobilenet_aesthetic_0.07.hdf5 resources/models/aesthetic.pt

The input is idealo/image-quality-assessment's ``models/MobileNet/weights_mobilenet_aesthetic_0.07.hdf5``
(Apache-2.0, Copyright 2018 idealo internet GmbH): MobileNet-v1 (alpha 1, 224 px) trained on
AVA, then dropout + Dense(10, softmax).  The file is identified by its git blob id before
anything is read from it.  What the conversion does:

* every convolution's BatchNorm (Keras default eps 1e-3) is folded into it:
  ``w' = w * gamma / sqrt(var + eps)``, ``b' = beta - mean * gamma / sqrt(var + eps)``;
* kernels go from Keras' (kh, kw, in, out) / depthwise (kh, kw, in, 1) to torch's layouts;
* the network (:mod:`photocull.model.mobilenet`) pads every 3x3 conv by 1 pixel on each
  side, as Keras 2.1.6 did (``ZeroPadding2D((1, 1))`` + ``'valid'``);
* the checkpoint carries idealo's transform: RGB, NEAREST resize straight to 224 x 224
  (aspect not kept, as Keras ``load_img``), ``x / 127.5 - 1`` (mean = std = 0.5 of 0..1 pixels).

``--half`` stores the weights as float16 (loaded back as float32).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

EXPECTED_BLOB = "003fb321ce92445e41d708144a3656589f9214e7"  # git hash-object of idealo's file
BN_EPS = 1e-3  # Keras BatchNormalization's default, which idealo's MobileNet kept
SOURCE = ("idealo/image-quality-assessment, models/MobileNet/weights_mobilenet_aesthetic_0.07.hdf5 "
          f"(git blob {EXPECTED_BLOB}); Keras 2.1.6 MobileNet-v1 alpha 1, 224 px, trained on AVA")
LICENCE = "Apache-2.0, Copyright 2018 idealo internet GmbH; converted to PyTorch by photocull (see NOTICE)"
META = {"name": "aesthetic", "kind": "aesthetics (AVA, idealo NIMA MobileNet)", "trained": True,
        "source": SOURCE, "licence": LICENCE,
        "reported": {"dataset": "AVA test split", "emd": 0.071, "lcc": 0.626, "srcc": 0.609}}
DROPOUT = 0.75  # idealo's config for this model (inactive at inference)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _weights(h5, layer: str) -> dict[str, np.ndarray]:
    """A layer's arrays by short name ("kernel", "gamma", ...), as Keras 2 saved them."""
    group = h5[layer]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
    return {n.split("/")[-1].split(":")[0]: np.asarray(group[n], dtype=np.float64) for n in names}


def _folded(h5, conv: str) -> tuple[np.ndarray, np.ndarray]:
    """(torch weight, bias) of Keras conv ``conv`` with its BatchNorm ``conv_bn`` folded in."""
    w = _weights(h5, conv)
    depthwise = "depthwise_kernel" in w
    k = w["depthwise_kernel"] if depthwise else w["kernel"]
    if "bias" in w:
        raise SystemExit(f"{conv}: unexpected bias (Keras MobileNet convs have none)")
    bn = _weights(h5, conv + "_bn")
    scale = bn["gamma"] / np.sqrt(bn["moving_variance"] + BN_EPS)
    bias = bn["beta"] - bn["moving_mean"] * scale
    if depthwise:  # (kh, kw, in, 1) -> (in, 1, kh, kw); out channel = in channel
        t = k.transpose(2, 3, 0, 1) * scale[:, None, None, None]
    else:  # (kh, kw, in, out) -> (out, in, kh, kw)
        t = k.transpose(3, 2, 0, 1) * scale[:, None, None, None]
    return t, bias


def convert(hdf5: Path, out: Path, half: bool = False) -> str:
    data = hdf5.read_bytes()
    blob = git_blob_id(data)
    if blob != EXPECTED_BLOB:
        raise SystemExit(f"{hdf5}: git blob id {blob}, expected {EXPECTED_BLOB} (idealo's file); refusing to convert")
    import h5py
    import torch

    from photocull.model.checkpoint import read_checkpoint, save_checkpoint
    from photocull.model.mobilenet import keras_layer_names
    from photocull.model.nima import NIMA
    from photocull.model.spec import ModelConfig

    cfg = ModelConfig(backbone="mobilenet_v1", pooling="last", hidden=0, dropout=DROPOUT, families=(),
                      input_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize="nearest")
    model = NIMA(cfg, pretrained=False).eval()
    sd = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    with h5py.File(hdf5, "r") as h5:
        keras_version = h5.attrs.get("keras_version")
        if isinstance(keras_version, bytes):
            keras_version = keras_version.decode()
        if keras_version != "2.1.6":
            raise SystemExit(f"{hdf5}: saved by Keras {keras_version}, expected 2.1.6")
        for keras_name, ours in keras_layer_names():
            w, b = _folded(h5, keras_name)
            new[f"backbone.net.{ours}.weight"] = torch.from_numpy(w.astype(np.float32))
            new[f"backbone.net.{ours}.bias"] = torch.from_numpy(b.astype(np.float32))
        dense = _weights(h5, "dense_1")
        new["heads.score.1.weight"] = torch.from_numpy(dense["kernel"].T.astype(np.float32))  # (1024, 10) -> (10, 1024)
        new["heads.score.1.bias"] = torch.from_numpy(dense["bias"].astype(np.float32))
    new["heads.feat_mean"] = torch.zeros(1024)  # the features go to the dense layer as they are
    new["heads.feat_std"] = torch.ones(1024)
    missing, extra = set(sd) - set(new), set(new) - set(sd)
    if missing or extra:
        raise SystemExit(f"state dict mismatch: missing {sorted(missing)}, unexpected {sorted(extra)}")
    for k, v in new.items():
        if v.shape != sd[k].shape:
            raise SystemExit(f"{k}: shape {tuple(v.shape)} from the HDF5, {tuple(sd[k].shape)} in the network")
    model.load_state_dict(new, strict=True)
    if half:
        model = model.half()
    meta = dict(META, converted_by="scripts/convert_idealo_nima.py", bn_eps=BN_EPS,
                dtype="float16" if half else "float32")
    mid = save_checkpoint(model, out, meta, include_backbone=True)
    read_checkpoint(out)  # it must pass the checks every model file passes
    return mid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hdf5", type=Path, help="idealo's weights_mobilenet_aesthetic_0.07.hdf5")
    ap.add_argument("out", type=Path, help="the photocull model file to write (e.g. resources/models/aesthetic.pt)")
    ap.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    args = ap.parse_args(argv)
    mid = convert(args.hdf5, args.out, args.half)
    print(f"wrote {args.out} (model id {mid})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
