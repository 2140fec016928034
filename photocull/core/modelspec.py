"""What scoring needs to know about a model without importing torch.

The model's configuration (input size and normalisation, heads), the degradation
families and their words, the input transform, and which device would run it.
Importing torch costs ~3 s of a CPU core (most of it loading the CUDA libraries of
a CUDA build); a run whose model is already exported for ONNX Runtime
(:mod:`photocull.core.accel`) never needs it, so nothing here imports it unless asked.
:mod:`photocull.core.nima` re-exports these names.
"""
from __future__ import annotations

import glob
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .config import resource_path

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
    :func:`photocull.core.nima.preprocess` (same operations, same order, float32)."""
    x = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32)
    x /= np.float32(255.0)
    x -= np.asarray(cfg.mean, np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(cfg.std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x)


def _no_gpu_here() -> bool:
    """True when this machine certainly has no GPU torch could use, found without importing
    torch: Linux with no NVIDIA or AMD (ROCm) device nodes.  Elsewhere (macOS has MPS,
    Windows hides its drivers) only torch can tell."""
    if not sys.platform.startswith("linux"):
        return False
    return not (glob.glob("/dev/nvidia*") or os.path.exists("/dev/kfd") or glob.glob("/dev/dxg"))


def device_name(prefer: str | None = None) -> str:
    """The device scoring would use, as a string: PHOTOCULL_DEVICE / ``prefer``, else CUDA,
    then Apple MPS, then CPU.  Imports torch only when the answer needs it."""
    prefer = prefer or os.environ.get("PHOTOCULL_DEVICE")
    if prefer:
        return str(prefer)
    if "torch" not in sys.modules and _no_gpu_here():
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def device_type(device) -> str:
    """'cpu' / 'cuda' / 'mps' for a torch.device or a device string ('cuda:1')."""
    t = getattr(device, "type", None)
    return t if t is not None else str(device).split(":", 1)[0]
