"""Which models exist: the shipped default and the user's personal models.

A model is named on the command line or in the GUI by the name of a shipped model
("default", also called "technical": the technical-quality model; "aesthetic": idealo's
NIMA trained on AVA), by the name of a personal model (a file ``<slug>.pt`` in the models
folder), or by a file path.  What a scoring job runs is :func:`resolve_scorers`: by
default ("overall") both shipped networks, whose scores make the overall ranking
(:mod:`photocull.cull.overall`); a personal model runs with the aesthetic network beside it
and takes its place in that rule; any other model runs alone.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from photocull.config import AppPaths
from photocull.media.fileops import atomic_write
from photocull.model import spec as modelspec
from photocull.model.spec import ModelConfig, ModelError

if TYPE_CHECKING:
    from photocull.model.nima import LoadedModel

log = logging.getLogger(__name__)

DEFAULT = "default"
AESTHETIC = "aesthetic"
TECHNICAL = "technical"  # another name of DEFAULT
OVERALL = "overall"      # not a model: both shipped networks and the overall rule
SHIPPED = (DEFAULT, AESTHETIC)  # names of the models in resources/models/; no personal model takes them
RESERVED = (*SHIPPED, TECHNICAL, OVERALL)  # names no personal model can take
PERSONAL_KIND = "personal taste"  # a personal model's meta["kind"]
EXTRA_FROM = "extra_features_from"  # meta: the id of the model whose features a personal head also reads


def slugify(name: str) -> str:
    s = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-._").lower()
    if not s:
        raise ModelError(f"invalid model name {name!r}")
    return s[:64]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path | None  # None: a shipped model


def list_models(paths: AppPaths) -> list[ModelEntry]:
    out = [ModelEntry(DEFAULT, None)]
    if modelspec.aesthetic_model_path().is_file():
        out.append(ModelEntry(AESTHETIC, None))
    if paths.models_dir.is_dir():
        out += [ModelEntry(p.stem, p) for p in sorted(paths.models_dir.glob("*.pt")) if p.stem not in RESERVED]
    return out


def personal_model_path(paths: AppPaths, name: str) -> Path:
    slug = slugify(name)
    if slug in RESERVED:
        raise ModelError(f'"{slug}" is a shipped model\'s name; choose another name')
    return paths.models_dir / f"{slug}.pt"


def resolve(spec: str | None, paths: AppPaths) -> "LoadedModel":
    """Load a model by name or file path; ModelError with a clear message if unknown."""
    return resolve_lazy(spec, paths).load()


def import_model(paths: AppPaths, file: os.PathLike | str, name: str | None = None) -> Path:
    """Copy a model file in after checking it is a photocull model that loads."""
    from photocull.model.checkpoint import model_from_checkpoint, read_checkpoint

    src = Path(file)
    ckpt, _ = read_checkpoint(src)  # weights_only; refuses pickles with code
    model_from_checkpoint(ckpt)  # the architecture must fit
    dest = personal_model_path(paths, name or ckpt["meta"].get("name") or src.stem)
    if dest.exists():
        raise ModelError(f"a model named {dest.stem!r} exists already")
    paths.models_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def rename_model(paths: AppPaths, name: str, new_name: str) -> Path:
    src, dest = personal_model_path(paths, name), personal_model_path(paths, new_name)
    if not src.is_file():
        raise ModelError(f"no personal model named {name!r}")
    if dest.exists():
        raise ModelError(f"a model named {dest.stem!r} exists already")
    os.rename(src, dest)
    return dest


def delete_model(paths: AppPaths, name: str) -> None:
    """Personal models go to the trash (recoverable); the default cannot be deleted."""
    p = personal_model_path(paths, name)
    if not p.is_file():
        raise ModelError(f"no personal model named {name!r}")
    from send2trash import send2trash

    try:
        send2trash(str(p))
    except Exception:  # noqa: BLE001 - no trash on this system: keep a .deleted copy
        os.replace(p, p.with_suffix(".pt.deleted"))


class LazyModel:
    """A model known by its id, name and metadata, built only when a photo must be scored.

    Hashing a checkpoint takes milliseconds; building the network takes seconds.  A folder
    whose scores are all in the catalog never needs the network.  With a ``header_dir``
    (the cache), the checkpoint's config and metadata are kept there as JSON under the
    file's hash, so later runs know the model without reading it with torch (importing
    torch is ~3 s of start-up that a run on an ONNX export does not need otherwise).
    Quacks like :class:`~photocull.model.nima.LoadedModel` (``model``, ``cfg``, ``model_id``,
    ``name``, ``trained``, ``meta``, ``notice``).
    """

    def __init__(self, path: Path | None, name: str, header_dir: Path | None = None):
        self.path, self.name = path, name
        self._loaded: LoadedModel | None = None
        if path is None:  # no trained head shipped: the honest fallback
            from photocull.model.nima import untrained_model

            self._loaded = untrained_model()
            self.model_id, self.trained, self.meta = self._loaded.model_id, False, self._loaded.meta
            self.cfg = self._loaded.cfg
            return
        header = _cached_header(Path(path), header_dir)
        if header is None:
            from photocull.model.checkpoint import read_checkpoint

            ckpt, model_id = read_checkpoint(path)  # validates the file (weights only)
            header = {"model_id": model_id, "config": ckpt["config"], "meta": ckpt["meta"]}
            _store_header(header_dir, header)
        self.model_id = header["model_id"]
        self.meta = header["meta"]
        self.trained = bool(self.meta.get("trained", True))
        self.cfg = ModelConfig.from_dict(header["config"])

    def load(self) -> "LoadedModel":
        """Build the network (once)."""
        if self._loaded is None:
            from photocull.model.checkpoint import load_model

            self._loaded = load_model(self.path, name=self.name)
            if self._loaded.model_id != self.model_id:
                raise ModelError(f"model file {self.path} changed while in use")
        return self._loaded

    @property
    def model(self):
        return self.load().model

    @property
    def notice(self) -> str:
        if not self.trained:
            return f"model {self.name}: untrained head, scores are not meaningful"
        return f"model {self.name} ({self.meta.get('kind', 'quality')})"


def _header_path(header_dir: Path, model_id: str) -> Path:
    return header_dir / f"{model_id}.json"


def _cached_header(path: Path, header_dir: Path | None) -> dict | None:
    """The config and metadata stored for this exact file (by its hash), or None."""
    if header_dir is None:
        return None
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > modelspec.MAX_MODEL_BYTES:
            return None  # read_checkpoint refuses it, and says why
        with open(path, "rb") as f:
            model_id = hashlib.file_digest(f, "sha256").hexdigest()[:12]  # as read_checkpoint names it
        h = json.loads(_header_path(header_dir, model_id).read_text(encoding="utf-8"))
        if h.get("model_id") == model_id and isinstance(h.get("meta"), dict) and isinstance(h.get("config"), dict):
            ModelConfig.from_dict(h["config"])
            return h
    except (OSError, ValueError, TypeError, ModelError):  # unreadable file: read_checkpoint says why
        pass
    return None


def _store_header(header_dir: Path | None, header: dict) -> None:
    if header_dir is None:
        return
    with contextlib.suppress(OSError, TypeError, ValueError):  # metadata that isn't JSON: not cached
        text = json.dumps(header)
        header_dir.mkdir(parents=True, exist_ok=True)
        dest = _header_path(header_dir, header["model_id"])
        atomic_write(dest, text.encode("utf-8"))


@dataclass(frozen=True)
class Scorers:
    """What a scoring job runs: ``loaded`` (the technical model, a personal model or a
    model alone) and ``aesthetic`` beside it (None: ``loaded`` alone)."""

    loaded: LazyModel
    aesthetic: LazyModel | None = None

    @property
    def mode(self) -> str:
        """"overall" (technical + aesthetic), "personal" (personal + aesthetic) or "single"."""
        if self.aesthetic is None:
            return "single"
        return "personal" if is_personal(self.loaded) else "overall"

    @property
    def notice(self) -> str:
        if self.mode != "single" and not self.loaded.trained:
            return self.loaded.notice
        if self.mode == "overall":
            return f"models {AESTHETIC} + {TECHNICAL} (overall: faulted frames last, then the aesthetic score)"
        if self.mode == "personal":
            return f"{self.loaded.notice} + {AESTHETIC} (overall: faulted frames last, then your model's score)"
        return self.loaded.notice


def is_personal(model) -> bool:
    return (getattr(model, "meta", None) or {}).get("kind") == PERSONAL_KIND


def resolve_scorers(spec: str | None, paths: AppPaths) -> Scorers:
    """The models a scoring job runs for ``spec`` (see the module's docstring)."""
    if not spec or spec == OVERALL:
        return Scorers(resolve_lazy(DEFAULT, paths), resolve_lazy(AESTHETIC, paths))
    loaded = resolve_lazy(spec, paths)
    if is_personal(loaded):
        return Scorers(loaded, resolve_lazy(AESTHETIC, paths))
    return Scorers(loaded)


def resolve_lazy(spec: str | None, paths: AppPaths) -> LazyModel:
    """Like :func:`resolve`, without building the network until it is needed."""
    headers = paths.cache_dir / "models"
    if not spec or spec in (DEFAULT, TECHNICAL):
        p = modelspec.default_model_path()
        if not p.is_file():
            log.warning("no trained default model at %s; using an untrained head", p)
        return LazyModel(p if p.is_file() else None, DEFAULT, headers)
    if spec == AESTHETIC:
        p = modelspec.aesthetic_model_path()
        if not p.is_file():
            raise ModelError(f"the aesthetic model is missing from this installation ({p})")
        return LazyModel(p, AESTHETIC, headers)
    p = Path(spec).expanduser()
    if p.suffix == ".pt" and (p.is_file() or os.sep in spec or "/" in spec):
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        return LazyModel(p, p.stem, headers)
    try:
        cand = personal_model_path(paths, spec)
    except ModelError:
        cand = None
    if cand is not None and cand.is_file():
        return LazyModel(cand, cand.stem, headers)
    names = ", ".join(e.name for e in list_models(paths))
    raise ModelError(f"no model named {spec!r} (known: {names})")
