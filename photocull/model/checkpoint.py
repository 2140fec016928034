"""Checkpoints: plain dicts of tensors and JSON-like values, saved with ``torch.save``
and loaded with ``weights_only=True`` (a file carrying code is refused).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickletools
import re
import reprlib
import stat
import struct
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from photocull.media.fileops import atomic_write
from photocull.model import spec as modelspec
from photocull.model.nima import NIMA, LoadedModel, untrained_model
from photocull.model.spec import CHECKPOINT_FORMAT, MAX_MODEL_BYTES, ModelConfig, ModelError

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


# What a model file may be.  A heads-only checkpoint is ~200 KB in 12 zip entries; one with
# the backbone ~20 MB in a few hundred; a 4096-unit hidden layer adds 36 MB.  Everything is
# checked from the archive's directory before torch reads (and allocates) anything.
MAX_ENTRIES = 4096
MAX_DIRECTORY_BYTES = 1 << 20  # the zip's central directory (the shipped model's: 763 bytes)
MAX_PICKLE_BYTES = 1 << 20  # data.pkl: config, metadata, tensor list (the shipped one: 3 KB); torch's
#                            weights-only unpickler is pure Python: ~1 s per MB of hostile pickle
MAX_NUMEL = MAX_MODEL_BYTES // 4  # elements over all tensors (float32), views included
_CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"})
_EOCD, _EOCD64, _EOCD64_LOCATOR = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"


def _directory_sizes(f, size: int) -> list[int]:
    """The central directory sizes a zip reader could take from this file's end records
    (the classic one and, when present, the ZIP64 one), found as :mod:`zipfile` finds them."""
    tail_len = min(size, 22 + 65535 + 76)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = len(tail) - 22 if tail[-22:-18] == _EOCD else tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise zipfile.BadZipFile("no end of central directory")
    out = [struct.unpack_from("<I", tail, at + 12)[0]]
    if at >= 76 and tail[at - 20: at - 16] == _EOCD64_LOCATOR and tail[at - 76: at - 72] == _EOCD64:
        out.append(struct.unpack_from("<Q", tail, at - 76 + 40)[0])
    return out


def _check_archive(path: Path, size: int) -> None:
    """Refuse, from the zip's directory alone, an archive that would make torch allocate more
    than a model file ever needs: too many or too large entries, compressed entries (torch.save
    never compresses; a compressed one is how a 2 MB file inflates to gigabytes)."""
    name = path.name
    try:
        with open(path, "rb") as f:
            if max(_directory_sizes(f, size)) > MAX_DIRECTORY_BYTES:
                raise ModelError(f"{name}: refused, its zip directory is far larger than a model file's")
            with zipfile.ZipFile(f) as zf:
                infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, struct.error) as exc:
        raise ModelError(f"{name}: not a photocull model file (damaged archive: {exc})") from None
    if len(infos) > MAX_ENTRIES:
        raise ModelError(f"{name}: refused, {len(infos)} entries in the archive (a model has at most {MAX_ENTRIES})")
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelError(f"{name}: refused, entry {info.filename!r} is compressed ({info.compress_size} bytes "
                             f"declared to inflate to {info.file_size}); torch.save never compresses")
        if info.file_size != info.compress_size:
            raise ModelError(f"{name}: not a photocull model file (entry {info.filename!r} has inconsistent sizes)")
        if info.filename.endswith("/data.pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise ModelError(f"{name}: refused, its data.pkl (config, metadata and tensor list) has {info.file_size} "
                             f"bytes, far more than a model's (at most {MAX_PICKLE_BYTES})")
        total += info.file_size
    if total > MAX_MODEL_BYTES:
        raise ModelError(f"{name}: refused, its entries declare {total} bytes "
                         f"(a model file holds at most {MAX_MODEL_BYTES})")


def _pickle_code(data: bytes) -> list[str] | None:
    """What a plain pickle (not a torch archive) would import or call on loading, read
    without running it (pickletools): global names, or "code" for an opcode that calls one.
    None when ``data`` is not one complete pickle."""
    if len(data) > MAX_PICKLE_BYTES:
        return None
    found: list[str] = []
    strings: list[str] = []  # the last two strings pushed: STACK_GLOBAL's module and name
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str):
                strings = (strings + [arg])[-2:]
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                found.append(".".join(strings) or "a global")
            elif op.name in _CODE_OPCODES and not found:
                found.append("code")
            if op.name == "STOP":
                return found
    except (ValueError, EOFError, UnicodeDecodeError, struct.error, OverflowError, MemoryError):
        return None
    return None


def _refused_code(name: str, what: str) -> ModelError:
    return ModelError(f"{name}: contains code, refused (loading it would call {what}: an untrusted "
                      f"pickle payload; a model file holds plain weights only)")


def read_checkpoint(path: os.PathLike | str) -> tuple[dict, str]:
    """Load and validate a checkpoint file safely.

    Before torch reads anything: the file's size, then the zip archive's directory (entry
    count and sizes, no compressed entries), so a hostile file is refused without being
    inflated.  Then ``torch.load(weights_only=True)`` (a file carrying code is refused),
    then the config against sane bounds (:meth:`ModelConfig.from_dict`) and the tensors'
    total size.  Every refusal is a :class:`ModelError` saying why.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"cannot read model file {path}: not a regular file")
    if st.st_size > MAX_MODEL_BYTES:
        raise ModelError(f"{path.name}: refused, {st.st_size} bytes is far larger than a model file "
                         f"(at most {MAX_MODEL_BYTES})")
    is_zip = False
    try:
        with open(path, "rb") as f:
            is_zip = zipfile.is_zipfile(f)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if is_zip:
        _check_archive(path, st.st_size)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if not is_zip:
        # torch.save has written zip archives since torch 1.6, and so has photocull, always.
        # Anything else is never given to torch (its legacy reader allocates what the file
        # declares); a pickle that would import something is named as what it is.
        found = _pickle_code(data)
        if found:
            raise _refused_code(path.name, reprlib.repr(", ".join(dict.fromkeys(found))).strip("'"))
        raise ModelError(f"{path.name}: not a photocull model file (not a torch zip archive: "
                         f"{'empty' if not data else 'unreadable or damaged data'})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notes: the error says it all
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle errors come in many types
        text = str(exc)
        # torch says "weights_only" for *every* failure under weights_only=True, random
        # bytes included; only a blocked GLOBAL means the file asked to run code
        m = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if m or "GLOBAL" in text:
            raise _refused_code(path.name, m.group(1) if m else "a global") from None
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
    try:
        ModelConfig.from_dict(ckpt["config"])
    except ModelError as exc:
        raise ModelError(f"{path.name}: {exc}") from None
    _check_state_dict(ckpt["state_dict"], path.name)
    return ckpt, hashlib.sha256(data).hexdigest()[:12]


def _check_state_dict(sd: dict, name: str) -> None:
    """Names and plain tensors only, of a bounded total size (a view can declare any shape
    over a tiny storage: counted by its elements, as loading copies it whole)."""
    if len(sd) > MAX_ENTRIES:
        raise ModelError(f"{name}: refused, {len(sd)} weight tensors (a model has at most {MAX_ENTRIES})")
    numel = 0
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise ModelError(f"{name}: damaged model file (weight {reprlib.repr(k)} is not a named tensor)")
        numel += v.numel()
    if numel > MAX_NUMEL:
        raise ModelError(f"{name}: refused, its weights declare {numel} numbers (a model has at most {MAX_NUMEL})")


def model_from_checkpoint(ckpt: dict, pretrained_backbone: bool = True) -> NIMA:
    """The network a checkpoint (from :func:`read_checkpoint`) describes; its config and
    tensors are checked again before anything is built."""
    cfg = ModelConfig.from_dict(ckpt["config"])
    _check_state_dict(ckpt["state_dict"], "model")
    includes = bool(ckpt.get("includes_backbone"))
    if not includes and pretrained_backbone and cfg.backbone not in modelspec.PRETRAINED_BACKBONES:
        raise ModelError(f"a {cfg.backbone} model file must carry its whole network (this one has the heads only)")
    model = NIMA(cfg, pretrained=pretrained_backbone and not includes)
    sd = ckpt["state_dict"]
    try:
        if includes:
            _check_fit(model, sd)
            model.load_state_dict(sd, strict=True)
        else:
            heads = {k[len("heads."):]: v for k, v in sd.items() if k.startswith("heads.")}
            if len(heads) != len(sd):
                raise ModelError("unexpected weights outside the heads")
            _check_fit(model.heads, heads)
            model.heads.load_state_dict(heads, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"model weights do not fit the architecture: {str(exc).splitlines()[0]}") from None
    return model.eval()


def _check_fit(module: torch.nn.Module, sd: dict) -> None:
    """The first weight that is missing, extra or of the wrong shape, named in a ModelError."""
    want = module.state_dict()
    why = None
    for k, v in want.items():
        if k not in sd:
            why = f"{k} is missing"
        elif tuple(sd[k].shape) != tuple(v.shape):
            why = f"{k} has shape {tuple(sd[k].shape)}, the network expects {tuple(v.shape)}"
        if why:
            break
    else:
        extra = [k for k in sd if k not in want]
        if extra:
            why = f"{reprlib.repr(extra[0])} is not a weight of this network ({len(extra)} such)"
    if why:
        raise ModelError(f"model weights do not fit the architecture: {why}")


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
