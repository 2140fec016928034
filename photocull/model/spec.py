"""What scoring needs to know about a model without importing torch.

The model's configuration (input size and normalisation, heads), the degradation
families and their words, and the input transform.  Importing torch costs ~3 s of a CPU
core (most of it loading the CUDA libraries of a CUDA build); a run whose model is already
exported for ONNX Runtime (:mod:`photocull.model.onnx_cache`) never needs it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from photocull.config import resource_path

CHECKPOINT_FORMAT = "photocull-nima/1"
DEFAULT_MODEL_FILE = "models/technical.pt"


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["families"], d["mean"], d["std"] = list(self.families), list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ModelError(f"model config has unknown fields: {sorted(unknown)}")
        d = dict(d)
        for k in ("families", "mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def default_model_path() -> Path:
    return resource_path(DEFAULT_MODEL_FILE)


def to_model_input(im, cfg: ModelConfig) -> np.ndarray:
    """PIL RGB image -> uint8 array of the model's input size (the whole frame, squashed,
    as in the NIMA paper's test-time transform)."""
    from PIL import Image

    s = cfg.input_size
    return np.asarray(im.resize((s, s), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.uint8)


def preprocess_np(arrays: list[np.ndarray], cfg: ModelConfig) -> np.ndarray:
    """uint8 HxWx3 arrays -> normalised float32 NCHW batch; the same numbers as
    :func:`photocull.model.nima.preprocess` (same operations, same order, float32)."""
    x = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32)
    x /= np.float32(255.0)
    x -= np.asarray(cfg.mean, np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(cfg.std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x)
