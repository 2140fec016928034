"""Where photocull keeps its files, the user's settings, resources, and logging set-up.

One frozen :class:`AppPaths` is made in the entry points and passed down;
nothing here is a module global.  ``PHOTOCULL_HOME`` (or ``--home``) puts every
directory under one folder, which is what the tests and the demo do.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

from photocull.media.fileops import atomic_write

log = logging.getLogger(__name__)

APP_NAME = "photocull"
ENV_HOME = "PHOTOCULL_HOME"


def resource_path(*parts: str) -> Path:
    """Path of a file under ``resources/``.

    Works from a source checkout (``resources/`` beside the package), from a
    wheel (force-included as ``photocull/resources``) and from a PyInstaller
    bundle (``sys._MEIPASS/resources``).
    """
    here = Path(__file__).resolve().parent  # photocull/
    candidates = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        candidates.append(Path(meipass) / "resources")
    candidates += [here / "resources", here.parent / "resources"]
    for base in candidates:
        if base.is_dir():
            return base.joinpath(*parts)
    return candidates[-1].joinpath(*parts)


@dataclass(frozen=True)
class AppPaths:
    cache_dir: Path
    data_dir: Path
    log_dir: Path

    @classmethod
    def default(cls, home: str | os.PathLike | None = None) -> "AppPaths":
        home = home or os.environ.get(ENV_HOME)
        if home:
            h = Path(home).expanduser()
            return cls(h / "cache", h / "data", h / "logs")
        return cls(
            Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        )

    @property
    def home(self) -> Path | None:
        """The ``--home`` / PHOTOCULL_HOME folder these paths were made from, if any."""
        h = self.cache_dir.parent
        return h if (self.cache_dir.name, self.data_dir, self.log_dir) == ("cache", h / "data", h / "logs") else None

    def ensure(self) -> "AppPaths":
        for d in (self.cache_dir, self.data_dir, self.log_dir, self.models_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def models_dir(self) -> Path:
        """Personal (user-trained or imported) models."""
        return self.data_dir / "models"

    @property
    def settings_path(self) -> Path:
        return self.data_dir / "settings.json"

    @property
    def onnx_dir(self) -> Path:
        """Models exported for ONNX Runtime (:mod:`photocull.model.onnx_cache`), one per model and batch size."""
        return self.cache_dir / "onnx"


@dataclass
class Settings:
    """User settings, stored as JSON.  Unknown keys are ignored, bad values fall back."""

    recent_folders: list[str] = field(default_factory=list)
    recursive: bool = False
    active_model: str = "overall"
    write_sidecars: bool = True
    sidecar_style: str = "adobe"  # "adobe" -> IMG_1.xmp, "darktable" -> IMG_1.JPG.xmp
    # also write marks into the XMP inside JPEG, TIFF and DNG files (what Lightroom reads for them);
    # changes the original files (never their pixels): off unless the user turns it on
    embed_xmp: bool = False
    # how a pick shows in XMP for programs that cannot read photocull:Pick (photocull.media.embedded.PICK_AS_HELP):
    # "none", "label:Green" (a pick without a label gets Green) or "stars:3" (a pick gets at least 3 stars)
    pick_as: str = "none"
    auto_advance: bool = False
    burst_gap_seconds: float = 2.0
    burst_similarity: str = "normal"  # "strict", "normal" or "loose" (photocull.cull.bursts.SIMILARITY)
    pick_rating: int = 5  # what a pick means when learning taste (stars)
    reject_rating: int = 1
    batch_size: int = 8
    # how the window was left: the grid's order and the loupe's overlays come back as they were
    sort_key: str = "score"
    show_faces: bool = False
    show_focus: bool = False
    show_clipping: bool = False  # J: highlight and shadow clipping in the loupe and compare
    show_histogram: bool = True  # H: the RGB histogram in the loupe's corner
    thumb_size: int = 220  # the grid's cell size in px (View ▸ Thumbnail Size, the toolbar's slider)
    window_geometry: str = ""  # the main window's size, place and maximized state (Qt's saveGeometry, base64)

    MAX_RECENT = 10

    @classmethod
    def load(cls, path: Path) -> "Settings":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("settings file %s unreadable (%s); using defaults", path, exc)
            return cls()
        s = cls()
        names = {f.name: f for f in fields(cls)}
        for k, v in raw.items() if isinstance(raw, dict) else []:
            if k in names and isinstance(v, type(getattr(s, k))):
                setattr(s, k, v)
        return s

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(asdict(self), indent=2).encode("utf-8"))

    def add_recent(self, folder: str) -> None:
        folder = str(folder)
        self.recent_folders = [folder] + [f for f in self.recent_folders if f != folder]
        del self.recent_folders[self.MAX_RECENT:]


def setup_logging(paths: AppPaths | None, verbose: bool = False) -> None:
    """Logging for both entry points: warnings (or everything, ``verbose``) on stderr, and
    INFO and up in ``photocull.log`` under the log folder."""
    handlers: list[logging.Handler] = []
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handlers.append(err)
    if paths is not None:
        try:
            paths.log_dir.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(paths.log_dir / "photocull.log", encoding="utf-8")
            fh.setLevel(logging.INFO)
            handlers.append(fh)
        except OSError:
            pass
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
