"""Checkpoints: plain dicts of tensors and JSON-like values, saved with ``torch.save``
and loaded with ``weights_only=True`` (a file carrying code is refused).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import torch

from photocull.media.fileops import atomic_write
from photocull.model import spec as modelspec
from photocull.model.nima import NIMA, LoadedModel, untrained_model
from photocull.model.spec import CHECKPOINT_FORMAT, ModelConfig, ModelError

log = logging.getLogger(__name__)


def _tensors_only(sd: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in sd.items()}


def save_checkpoint(model: NIMA, path: os.PathLike | str, meta: dict | None = None,
                    include_backbone: bool = False) -> str:
    """Save weights + metadata; returns the model id (hash of the file).

    With ``include_backbone=False`` only the heads are saved: the backbone is rebuilt
    from the pretrained package on load (ship only what was trained).
    """
    meta = dict(meta or {})
    meta.setdefault("date", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    sd = model.state_dict() if include_backbone else {f"heads.{k}": v for k, v in model.heads.state_dict().items()}
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "config": model.cfg.to_dict(),
        "includes_backbone": bool(include_backbone),
        "meta": meta,
        "state_dict": _tensors_only(sd),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write(path, buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()[:12]


def read_checkpoint(path: os.PathLike | str) -> tuple[dict, str]:
    """Load and validate a checkpoint file safely (``weights_only=True``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle errors come in many types
        text = str(exc)
        # torch says "weights_only" for *every* failure under weights_only=True, random
        # bytes included; only a blocked GLOBAL means the file asked to run code
        if "GLOBAL" in text or "Unsupported global" in text:
            raise ModelError(f"{path.name}: refused, the file contains code or objects that are not plain weights "
                             f"(untrusted pickle payload)") from None
        if "weights_only" in text:
            msg = "unreadable or damaged data"
        else:
            msg = text.splitlines()[0] if text else type(exc).__name__
        raise ModelError(f"{path.name}: not a photocull model file ({msg})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path.name}: not a photocull model file (format {ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__!r})")
    for key, typ in (("config", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(ckpt.get(key), typ):
            raise ModelError(f"{path.name}: damaged model file (missing {key})")
    return ckpt, hashlib.sha256(data).hexdigest()[:12]


def model_from_checkpoint(ckpt: dict, pretrained_backbone: bool = True) -> NIMA:
    cfg = ModelConfig.from_dict(ckpt["config"])
    includes = bool(ckpt.get("includes_backbone"))
    model = NIMA(cfg, pretrained=pretrained_backbone and not includes)
    sd = ckpt["state_dict"]
    try:
        if includes:
            model.load_state_dict(sd, strict=True)
        else:
            heads = {k[len("heads."):]: v for k, v in sd.items() if k.startswith("heads.")}
            if len(heads) != len(sd):
                raise ModelError("unexpected weights outside the heads")
            model.heads.load_state_dict(heads, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"model weights do not fit the architecture: {str(exc).splitlines()[0]}") from None
    return model.eval()


def load_model(path: os.PathLike | str, name: str | None = None) -> LoadedModel:
    ckpt, mid = read_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    meta = ckpt["meta"]
    return LoadedModel(model, mid, name or meta.get("name") or Path(path).stem,
                       trained=bool(meta.get("trained", True)), meta=meta,
                       backbone_trained=bool(ckpt.get("includes_backbone")))


def load_default_model() -> LoadedModel:
    """The shipped technical-quality model, or an honest untrained fallback."""
    p = modelspec.default_model_path()
    if p.is_file():
        return load_model(p, name="default")
    log.warning("no trained default model at %s; using an untrained head", p)
    return untrained_model()
