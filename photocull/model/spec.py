"""What scoring needs to know about a model without importing torch.

The model's configuration (input size and normalisation, heads), the degradation
families and their words, and the input transform.  Importing torch costs ~3 s of a CPU
core (most of it loading the CUDA libraries of a CUDA build); a run whose model is already
exported for ONNX Runtime (:mod:`photocull.model.onnx_cache`) never needs it.
"""
from __future__ import annotations

import math
import re
import reprlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from photocull.config import resource_path

CHECKPOINT_FORMAT = "photocull-nima/1"
DEFAULT_MODEL_FILE = "models/technical.pt"
AESTHETIC_MODEL_FILE = "models/aesthetic.pt"  # idealo's NIMA (AVA), converted: scripts/convert_idealo_nima.py


# Degradation families the severity head reports, with the word shown to the user.
FAMILIES = ("blur", "motion", "noise", "dark", "bright", "compression", "contrast", "lowres", "colour")
REASONS = {
    "blur": "blurry / out of focus",
    "motion": "motion blur / camera shake",
    "noise": "noisy",
    "dark": "too dark",
    "bright": "too bright / blown highlights",
    "compression": "compression artefacts",
    "contrast": "low contrast / haze",
    "lowres": "low resolution / soft",
    "colour": "colour cast / saturation off",
}


class ModelError(Exception):
    """A model file that cannot be used; ``str(exc)`` says why."""


# What a model file may ask for.  A config comes from a file someone sent: it is checked
# against these bounds before anything is built from it, since the network's size follows
# from it (hidden=300000 alone is a 2.7 GB layer; input_size=20000 an 8 GB activation).
BACKBONES = ("efficientnet_lite0", "mobilenet_v2", "mobilenet_v1")  # the networks model.nima builds
POOLINGS = ("last", "multilevel", "multilevel_cs")  # model.nima.Backbone's global poolings
# those with ImageNet weights to train a new model on (mobilenet_v1 comes whole from a model file)
PRETRAINED_BACKBONES = ("efficientnet_lite0", "mobilenet_v2")
LAST_ONLY = ("mobilenet_v2", "mobilenet_v1")  # backbones with the last layer's global average only
# How the decoded photo is resized to the model's square input (:func:`to_model_input`).
# "bilinear": photocull's own models; "nearest": as Keras' ``load_img`` did for idealo's NIMA
RESIZES = ("bilinear", "nearest")
MAX_MODEL_BYTES = 256 << 20  # a model file; real ones: 200 KB (heads) to ~60 MB (backbone, hidden layer)
MAX_HIDDEN = 4096  # 2224 x 4096 floats: a 36 MB layer; the shipped model has none
MAX_EXTRA = 4096  # pooled features of a second network a personal head may read (MobileNet: 1024)
MAX_FAMILIES = 32  # the shipped model reports 9
INPUT_SIZES = (32, 1024)  # the paper's 224; tests train at 64
MAX_NORM = 1000.0  # |mean| and std beyond this are not a normalisation of 0..1 pixels
MIN_STD = 1e-4
_FAMILY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}\Z")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_config(d: dict) -> None:
    """Raise :class:`ModelError` unless ``d`` (the fields present) is a sane model config."""
    def bad(field: str, why: str):
        return ModelError(f"model config: {field} = {reprlib.repr(d[field])} refused, {why}")

    if "backbone" in d and d["backbone"] not in BACKBONES:
        raise bad("backbone", f"known backbones: {', '.join(BACKBONES)}")
    if "pooling" in d and d["pooling"] not in POOLINGS:
        raise bad("pooling", f"known poolings: {', '.join(POOLINGS)}")
    if d.get("backbone") in LAST_ONLY and d.get("pooling", "multilevel_cs") != "last":
        raise ModelError(f"model config: {d['backbone']} supports pooling 'last' only")
    if "resize" in d and d["resize"] not in RESIZES:
        raise bad("resize", f"known resize filters: {', '.join(RESIZES)}")
    if "hidden" in d and not (_is_int(d["hidden"]) and 0 <= d["hidden"] <= MAX_HIDDEN):
        raise bad("hidden", f"it must be a whole number from 0 to {MAX_HIDDEN}")
    if "extra_features" in d and not (_is_int(d["extra_features"]) and 0 <= d["extra_features"] <= MAX_EXTRA):
        raise bad("extra_features", f"it must be a whole number from 0 to {MAX_EXTRA}")
    if "dropout" in d and not (_is_number(d["dropout"]) and 0 <= d["dropout"] < 1):
        raise bad("dropout", "it must be a number from 0 up to (not including) 1")
    if "input_size" in d:
        lo, hi = INPUT_SIZES
        if not (_is_int(d["input_size"]) and lo <= d["input_size"] <= hi):
            raise bad("input_size", f"it must be a whole number of pixels from {lo} to {hi}")
    if "families" in d:
        fam = d["families"]
        if not isinstance(fam, (list, tuple)) or len(fam) > MAX_FAMILIES:
            raise bad("families", f"it must be a list of at most {MAX_FAMILIES} names")
        if not all(isinstance(f, str) and _FAMILY_NAME.match(f) for f in fam):
            raise bad("families", "every name must be a short word (letters, digits, _ or -)")
        if len(set(fam)) != len(fam):
            raise bad("families", "a name appears twice")
    for k in ("mean", "std"):
        if k in d:
            v = d[k]
            if not (isinstance(v, (list, tuple)) and len(v) == 3 and all(_is_number(x) for x in v)):
                raise bad(k, "it must be 3 finite numbers (red, green, blue)")
            if k == "mean" and not all(abs(x) <= MAX_NORM for x in v):
                raise bad(k, f"each value must lie within +-{MAX_NORM:g}")
            if k == "std" and not all(MIN_STD <= x <= MAX_NORM for x in v):
                raise bad(k, f"each value must lie from {MIN_STD:g} to {MAX_NORM:g} (the pixels are divided by it)")


@dataclass
class ModelConfig:
    backbone: str = "efficientnet_lite0"
    pooling: str = "multilevel_cs"
    hidden: int = 0  # 0: the paper's single linear layer
    dropout: float = 0.75
    families: tuple[str, ...] = FAMILIES
    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resize: str = "bilinear"  # the filter to the input size (RESIZES)
    # a personal model's score head also reads this many pooled features of a second network
    # (the aesthetic model's, named by the checkpoint's meta "extra_features_from"); 0: none
    extra_features: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["families"], d["mean"], d["std"] = list(self.families), list(self.mean), list(self.std)
        if self.resize == "bilinear":
            # the default is left out: a bilinear model's config (its file, its ONNX export's
            # digest) is what it was before the field existed, and older versions read it
            del d["resize"]
        if not self.extra_features:
            del d["extra_features"]  # likewise: models without it are what they were
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """The config a model file carries, checked against sane bounds (:class:`ModelError`
        says which field is wrong and why; nothing is built from a config before this)."""
        if not isinstance(d, dict):
            raise ModelError(f"model config must be a mapping, not {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            names = sorted(str(k)[:40] for k in unknown)
            raise ModelError(f"model config has unknown fields: {names[:10]}{' ...' if len(names) > 10 else ''}")
        _check_config(d)
        d = dict(d)
        for k in ("families", "mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def default_model_path() -> Path:
    return resource_path(DEFAULT_MODEL_FILE)


def aesthetic_model_path() -> Path:
    return resource_path(AESTHETIC_MODEL_FILE)


def to_model_input(im, cfg: ModelConfig) -> np.ndarray:
    """PIL RGB image -> uint8 array of the model's input size (the whole frame, squashed,
    as in the NIMA paper's test-time transform), with the config's resize filter:
    bilinear (photocull's models), or nearest neighbour (idealo's NIMA: Keras ``load_img``)."""
    from PIL import Image

    s = cfg.input_size
    if cfg.resize == "nearest":
        return np.asarray(im.resize((s, s), Image.Resampling.NEAREST), dtype=np.uint8)
    return np.asarray(im.resize((s, s), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.uint8)


def preprocess_np(arrays: list[np.ndarray], cfg: ModelConfig) -> np.ndarray:
    """uint8 HxWx3 arrays -> normalised float32 NCHW batch; the same numbers as
    :func:`photocull.model.nima.preprocess` (same operations, same order, float32)."""
    x = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32)
    x /= np.float32(255.0)
    x -= np.asarray(cfg.mean, np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(cfg.std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x)
