"""The main window: grid of thumbnails best first, detail panel, progress, culling keys."""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QItemSelectionModel, QObject, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QActionGroup, QColor, QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from photocull.config import AppPaths, Settings
from photocull.cull.catalog import Catalog, Marks
from photocull.cull.marks import embed_marks, load_marks, save_marks, sidecar_figures
from photocull.gui.memory import limit_malloc_arenas, release_free_memory
from photocull.media.listing import list_images
from photocull.model.losses import mean_of, std_of

from .jobs import ModelHolder, embedded_marks_job, group_job, score_job
from .notify import notify
from .photomodel import PhotoItem, PhotoListModel, PhotoProxy
from .widgets import LABEL_COLOURS, HistogramWidget, ThumbDelegate, reasons_line
from .workers import FullImageCache, GeneratorWorker, ImageLoader, error_text

log = logging.getLogger(__name__)

LABELS = {Qt.Key.Key_6: "Red", Qt.Key.Key_7: "Yellow", Qt.Key.Key_8: "Green", Qt.Key.Key_9: "Blue"}


@dataclass
class MarkStep:
    """One undoable step: every photo it changed, ``(key, old, new)``, and what it was."""

    changes: list[tuple[str, Marks, Marks]]
    what: str = ""

    def describe(self) -> str:
        n = len(self.changes)
        return self.what or f"{n} change{'s' * (n != 1)}"


class _EnterStaysHere(QObject):
    """Event filter for the filter bar's number boxes: Return / Enter belong to the box
    (which applies the value), not to the window's Return shortcut (the loupe)."""

    KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() == QEvent.Type.ShortcutOverride and ev.key() in self.KEYS:
            ev.accept()
            return True
        return False


class DetailPanel(QWidget):
    """Large preview, score histogram and facts about the selected photo."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.preview = QLabel("Select a photo")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(320, 240)
        self.preview.setStyleSheet("background:#1e1e1e;color:#aaa")
        self.histogram = HistogramWidget()   # the taste distribution (aesthetic or personal), or the one model's
        self.histogram2 = HistogramWidget()  # the technical model's, beside it
        self.histogram2.hide()
        self.marks = QLabel()  # flag, stars, colour label: follows every mark at once (refresh_marks)
        self.marks.setTextFormat(Qt.TextFormat.RichText)
        self.shooting = QLabel()  # camera, lens, focal length, shutter, aperture, ISO, EV (from EXIF)
        self.shooting.setWordWrap(True)
        self.shooting.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.preview, 1)
        lay.addWidget(self.marks)
        lay.addWidget(self.shooting)
        lay.addWidget(self.histogram)
        lay.addWidget(self.histogram2)
        lay.addWidget(self.info)
        self.item: PhotoItem | None = None
        self._pixmap: QPixmap | None = None
        self._exif_final = False  # the loader has read the shown photo's EXIF

    def show_item(self, it: PhotoItem | None, total_scored: int = 0) -> None:
        """Show ``it``; the preview is kept when it is the photo already shown."""
        same = it is not None and self.item is not None and it.key == self.item.key
        self.item = it
        if it is None:
            self._pixmap = None
            self.preview.setText("Select a photo")
            self.histogram.set_distribution(None)
            self.histogram2.set_distribution(None)
            self.info.setText("")
            self.marks.setText("")
            self.shooting.setText("")
            return
        if not same:
            self._pixmap = None
            self._exif_final = False
            self.preview.setText("loading…")
        self.refresh_marks()
        self.show_exif()
        two = it.aesthetic is not None and it.technical_mean is not None  # the overall rule's two networks
        personal = it.aesthetic is not None and it.technical_mean is None and it.taste_mean is not None
        if two:
            self.histogram.set_distribution(it.aesthetic, "aesthetic (AVA)")
            self.histogram2.set_distribution(it.probs, "technical")
        else:
            self.histogram.set_distribution(it.probs, "your model" if personal else it.name)
            self.histogram2.set_distribution(it.aesthetic if personal else None, "aesthetic (AVA)")
        self.histogram2.setVisible(two or personal)
        lines = [f"<b>{it.name}</b>"]
        if it.scored:
            head = "overall" if it.technical_mean is not None or personal else "score"
            lines.append(f"{head} <b>{it.mean:.2f}</b>"
                         + (f" — rank {it.rank} of {total_scored} ({it.top})" if it.rank else ""))
            parts = []
            if it.aesthetic is not None:
                parts.append(f"aesthetic {it.aesthetic_mean:.2f}")
            if it.technical_mean is not None:
                parts.append(f"technical {it.technical_mean:.2f}")
            if personal:
                parts.append(f"your model {it.taste_mean:.2f}")
            if parts:
                lines.append(" · ".join(parts))
        if it.faults:
            lines.append("<span style='color:#c03030'>ranked below sound frames: " + "; ".join(it.faults) + "</span>")
        why = reasons_line(it)
        if why:
            lines.append(f"<span style='color:#d06020'>why: {why}</span>")
        if it.faces is not None and it.faces.count:
            lines.append(f"{it.faces.count} face{'s' * (it.faces.count != 1)}, "
                         f"{it.faces.eyes_closed_count} with eyes closed; face sharpness "
                         f"{it.faces.sharpness:.2f}" + (" (the softest)" if it.faces.count > 1 else "")
                         + " — O shows them in the loupe")
        elif it.faces is not None:  # searched, none found (smaller faces are not looked for)
            lines.append("no face found" + (f" (faces from {it.faces.searched:.0%} of the short side are looked for)"
                                            if it.faces.searched > 0 else ""))
        describe = getattr(it.focus, "describe", None)
        if callable(describe):
            lines.append(f"focus: {describe()} — M shows the focus map in the loupe")
        if it.error:
            lines.append(f"<span style='color:#c03030'>cannot use this file: {it.error}</span>")
        if it.capture_time:
            lines.append("taken " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(it.capture_time)))
        if it.companions:
            lines.append("with " + ", ".join(c.name for c in it.companions))
        if it.group_size > 1:
            lines.append(f"{it.group_kind or 'burst'} of {it.group_size}")
        self.info.setText("<br>".join(lines))

    def refresh_marks(self) -> None:
        """The shown photo's flag, stars and colour label, as they are now."""
        it = self.item
        if it is None:
            self.marks.setText("")
            return
        flag = ("<span style='color:#1f7a1f;font-weight:bold'>⚑ Pick</span>" if it.flag > 0 else
                "<span style='color:#c03030;font-weight:bold'>✕ Rejected</span>" if it.flag < 0 else
                "<span style='color:#999'>unflagged</span>")
        stars = (f"<span style='color:#d09a00;font-size:large'>{'★' * it.rating}</span>"
                 f"<span style='color:#999;font-size:large'>{'☆' * (5 - it.rating)}</span>")
        label = (f"<span style='color:{LABEL_COLOURS.get(it.label, '#999')}'>■</span> {it.label}" if it.label
                 else "<span style='color:#999'>no label</span>")
        self.marks.setText("&nbsp;&nbsp;&nbsp;".join((flag, stars, label)))

    def show_exif(self) -> None:
        """Camera, lens and settings: what scoring read, else what the loader read for the
        preview (a folder answered by the catalog has no settings until then)."""
        from photocull.media.exif import shooting_lines

        ex = self.item.exif if self.item is not None else None
        lines = shooting_lines(ex) if ex is not None else []
        if lines:
            self.shooting.setText("<br>".join(lines))
        elif ex is not None and ex.has_shooting() is False and self._exif_final:
            self.shooting.setText("<span style='color:#888'>no shooting information in this file</span>")
        else:
            self.shooting.setText("")

    def set_exif(self, path: str, info) -> None:
        """The loader read the photo's EXIF (with its preview)."""
        if self.item is not None and os.path.abspath(path) == self.item.key:
            self._exif_final = True
            self.show_exif()

    def set_preview(self, path: str, image) -> None:
        if self.item is None or os.path.abspath(path) != self.item.key:
            return
        self._pixmap = QPixmap.fromImage(image)
        self._fit()

    def set_preview_error(self, path: str, reason: str) -> None:
        if self.item is not None and os.path.abspath(path) == self.item.key:
            self.preview.setText(f"⚠ {reason}")

    def _fit(self) -> None:
        if self._pixmap is not None:
            self.preview.setPixmap(self._pixmap.scaled(self.preview.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                       Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._fit()


class MainWindow(QMainWindow):
    scoringDone = Signal()
    groupsDone = Signal()
    marksProblem = Signal(str)  # from the marks writer thread: a sidecar that could not be written
    PREVIEW_SIZE = 1280
    THUMB_MIN, THUMB_MAX = 120, 320  # the grid's cell size (px), View ▸ Thumbnail Size and the toolbar's slider
    THUMB_PRESETS = {"Small": 150, "Medium": 220, "Large": 300}
    RELEASE_AFTER = 500  # photos decoded by a scoring run before its freed memory is handed back

    def __init__(self, paths: AppPaths, settings: Settings | None = None, *, autoscore: bool = True):
        super().__init__()
        limit_malloc_arenas()  # before the scorer's and loader's threads exist (gui/memory.py)
        self.paths = paths
        self.settings = settings or Settings.load(paths.settings_path)
        self.autoscore = autoscore
        self.catalog = Catalog(paths.catalog_path)
        # marks are written (catalog, then sidecars) in this order, off the GUI thread: a
        # slow disk or a big sidecar never stalls the keys
        self._marks_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marks")
        self._marks_pending: list[Future] = []
        self.marksProblem.connect(self._on_marks_problem)
        self.holder = ModelHolder(paths)
        # "default" was the default before there were two networks: it means the overall
        # ranking now ("technical" is the technical model alone)
        spec = self.settings.active_model
        self.model_spec = "overall" if not spec or spec == "default" else spec
        self.loaded_model = None
        self.folder: Path | None = None
        self.worker: GeneratorWorker | None = None
        self._prepare_proc = None  # a background `photocull prepare` (core.accel), if running
        self._n_decoded = 0
        self._scoring_error: str | None = None  # what made the current scoring run fail
        self.group_worker: GeneratorWorker | None = None
        self.embedded_worker: GeneratorWorker | None = None  # read_embedded_marks
        self._embedded_pending: list[Path] | None = None  # read once the catalog's scores are in
        self._marked_here: set[str] = set()  # photos marked by hand since the folder opened
        self._old_workers: list[GeneratorWorker] = []
        self.undo_stack: list[MarkStep] = []
        self.redo_stack: list[MarkStep] = []

        self.setWindowTitle("photocull")
        self.resize(1400, 900)
        if self.settings.window_geometry:  # where and how big it was left (a bad value: the default)
            self.restoreGeometry(QByteArray.fromBase64(self.settings.window_geometry.encode("ascii", "replace")))
        self.model = PhotoListModel(self)
        self.proxy = PhotoProxy(self)
        self.proxy.setSourceModel(self.model)
        self.loader = ImageLoader()
        self.model.thumbnailWanted.connect(self.loader.request)
        self.loader.ready.connect(self._on_image)
        self.loader.failed.connect(self._on_image_failed)
        self.loader.sized.connect(self._on_full_size)
        self.loader.exif_read.connect(self._on_exif)
        self.full_cache = FullImageCache(2)  # full-resolution images for 100 % (loupe, compare)

        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(200)
        self.grid.setSpacing(2)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.setItemDelegate(ThumbDelegate(self.grid))
        self.grid.setModel(self.proxy)
        self.grid.selectionModel().currentChanged.connect(self._on_current)
        # a filter (a burst folding away, a flag filter) can take the selected photo out of the
        # grid; Qt then moves the cursor to a neighbour without selecting it: select it, so
        # the detail panel (which shows the cursor's photo) always shows the selection
        for sig in (self.proxy.rowsRemoved, self.proxy.layoutChanged, self.proxy.modelReset):
            sig.connect(self._select_current)
        # new scores re-sort the grid: the selected photo keeps its place on the screen
        self._anchor: tuple | None = None  # (persistent index, its top in the viewport) across a re-sort
        self._auto_current = False  # the cursor was put on the first photo by opening the folder, not by the user
        self.proxy.layoutAboutToBeChanged.connect(self._remember_anchor)
        self.proxy.layoutChanged.connect(self._restore_anchor)
        self.grid.doubleClicked.connect(lambda ix: self.open_loupe())
        self.grid.setStyleSheet("QListView{background:#202020}")
        # the columns fill the width (no dead strip): cells are the chosen thumbnail size,
        # widened to share what is left; the scroll bar is always there, so showing it
        # never changes the width (and the layout) back and forth
        self.grid.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.thumb_size = min(max(self.settings.thumb_size, self.THUMB_MIN), self.THUMB_MAX)
        self.grid_columns = 1
        self.grid.viewport().installEventFilter(self)
        self._save_thumb_size = QTimer(self, singleShot=True, interval=600)  # once the slider rests
        self._save_thumb_size.timeout.connect(self._save_settings)

        self.detail = DetailPanel()
        split = QSplitter()
        split.addWidget(self.grid)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([1000, 400])
        self.stack = QStackedWidget()
        self.stack.addWidget(split)
        self.setCentralWidget(self.stack)
        self.loupe = None
        self._state_before_full = Qt.WindowState.WindowNoState  # maximised or not, before F
        self.compare = None
        self.show_faces = self.settings.show_faces  # O: face boxes in the loupe and compare (remembered)
        self.show_focus = self.settings.show_focus  # M: the focus map
        self.show_clipping = self.settings.show_clipping  # J: highlight / shadow clipping
        self.show_histogram = self.settings.show_histogram  # H: the loupe's RGB histogram

        self._build_menus()
        for menu in self.menuBar().findChildren(QMenu):  # their keys work with the menu bar hidden (F)
            self.addActions([a for a in menu.actions() if not a.shortcut().isEmpty()])
        self._build_toolbar()
        self._build_statusbar()
        self._install_keys()
        self.set_sort(self.settings.sort_key)  # as the window was left
        self._fit_columns()
        self.set_overlays()

    # -- UI construction ------------------------------------------------------------
    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        a = f.addAction("&Open Folder…", self.choose_folder)
        a.setShortcut(QKeySequence.StandardKey.Open)
        self.recent_menu = f.addMenu("Open &Recent")
        self.recursive_action = f.addAction("Include &Subfolders")
        self.recursive_action.setCheckable(True)
        self.recursive_action.setChecked(self.settings.recursive)
        self.recursive_action.toggled.connect(self._on_recursive)
        f.addSeparator()
        a = f.addAction("&Export…", self.show_export_dialog)
        a.setShortcut(QKeySequence("Ctrl+E"))
        f.addSeparator()
        a = f.addAction("&Quit", self.close)
        a.setShortcut(QKeySequence.StandardKey.Quit)
        self._fill_recent()

        e = mb.addMenu("&Edit")
        a = e.addAction("&Undo", self.undo)
        a.setShortcut(QKeySequence.StandardKey.Undo)
        a = e.addAction("&Redo", self.redo)
        a.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        e.addSeparator()
        self.auto_advance_action = e.addAction("Auto-&advance after a flag or stars")
        self.auto_advance_action.setCheckable(True)
        self.auto_advance_action.setChecked(self.settings.auto_advance)
        self.auto_advance_action.toggled.connect(lambda v: setattr(self.settings, "auto_advance", v))
        self.sidecar_action = e.addAction("Write ratings to &XMP sidecars")
        self.sidecar_action.setCheckable(True)
        self.sidecar_action.setChecked(self.settings.write_sidecars)
        self.sidecar_action.toggled.connect(lambda v: setattr(self.settings, "write_sidecars", v))
        e.addSeparator()
        a = e.addAction("&Preferences…", self.open_preferences)
        a.setShortcut(QKeySequence.StandardKey.Preferences)
        a.setMenuRole(a.MenuRole.PreferencesRole)

        v = mb.addMenu("&View")
        grp = QActionGroup(self)
        self._sort_actions = {}
        for key, label in (("score", "Sort by &Score"), ("name", "Sort by &Name"), ("time", "Sort by Capture &Time"),
                           ("std", "Sort by Score &Spread"), ("face_sharpness", "Sort by &Face Sharpness")):
            act = v.addAction(label)
            act.setCheckable(True)
            act.setChecked(key == "score")
            act.triggered.connect(lambda _=False, k=key: self.set_sort(k))
            grp.addAction(act)
            self._sort_actions[key] = act
        v.addSeparator()
        a = v.addAction("&Loupe", self.open_loupe)
        a = v.addAction("&Compare Selected", self.open_compare)
        self.full_screen_action = v.addAction("&Full Screen Loupe\tF", self.toggle_full_screen)
        self.full_screen_action.setCheckable(True)
        self.groups_action = v.addAction("Collapse &Bursts")
        self.groups_action.setCheckable(True)
        self.groups_action.setChecked(True)
        self.groups_action.toggled.connect(lambda on: self.proxy.set_filter(collapse_groups=on))
        v.addSeparator()
        self.faces_action = v.addAction("Face B&oxes in the Loupe\tO", self.toggle_faces)
        self.faces_action.setCheckable(True)
        self.focus_action = v.addAction("Focus &Map in the Loupe\tM", self.toggle_focus_map)
        self.focus_action.setCheckable(True)
        self.clipping_action = v.addAction("Highlight && Shadow &Clipping\tJ", self.toggle_clipping)
        self.clipping_action.setCheckable(True)
        self.histogram_action = v.addAction("&Histogram in the Loupe\tH", self.toggle_histogram)
        self.histogram_action.setCheckable(True)
        v.addSeparator()
        sizes = v.addMenu("Thumbnail Si&ze")
        for name, px in self.THUMB_PRESETS.items():
            sizes.addAction(name, lambda px=px: self.set_thumb_size(px))
        a = sizes.addAction("Larger", lambda: self.set_thumb_size(self.thumb_size + 20))
        a.setShortcut(QKeySequence("Ctrl+="))
        a = sizes.addAction("Smaller", lambda: self.set_thumb_size(self.thumb_size - 20))
        a.setShortcut(QKeySequence("Ctrl+-"))

        s = mb.addMenu("&Select")
        s.addAction("Pick best of each burst, reject the rest…", self.pick_best_of_groups)

        m = mb.addMenu("&Model")
        m.addAction("Learn My &Taste…", self.show_training_dialog)
        m.addAction("&Manage Models…", self.show_models_dialog)

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("main-toolbar")
        self.addToolBar(tb)
        self.toolbar = tb
        tb.addWidget(QLabel(" Sort "))
        self.sort_combo = QComboBox()
        for key, label in (("score", "Score (best first)"), ("name", "File name"), ("time", "Capture time"),
                           ("std", "Spread (std)"), ("face_sharpness", "Face sharpness")):
            self.sort_combo.addItem(label, key)
        self.sort_combo.currentIndexChanged.connect(lambda i: self.set_sort(self.sort_combo.itemData(i)))
        tb.addWidget(self.sort_combo)
        tb.addSeparator()
        tb.addWidget(QLabel(" Show "))
        self.flag_combo = QComboBox()
        for key, label in (("all", "All"), ("picks", "Picks"), ("rejects", "Rejects"), ("unflagged", "Unflagged")):
            self.flag_combo.addItem(label, key)
        self.flag_combo.currentIndexChanged.connect(lambda i: self.proxy.set_filter(flags=self.flag_combo.itemData(i)))
        tb.addWidget(self.flag_combo)
        tb.addWidget(QLabel(" ≥ stars "))
        self.stars_spin = QSpinBox()
        self.stars_spin.setRange(0, 5)
        self.stars_spin.valueChanged.connect(lambda v: self.proxy.set_filter(min_stars=v))
        tb.addWidget(self.stars_spin)
        tb.addWidget(QLabel(" Label "))
        self.label_combo = QComboBox()
        for name, colour in (("Any", None), *LABEL_COLOURS.items(), ("No label", None)):
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(colour) if colour else Qt.GlobalColor.transparent)
            self.label_combo.addItem(QIcon(swatch), name, {"Any": "all", "No label": "none"}.get(name, name))
        self.label_combo.currentIndexChanged.connect(
            lambda i: self.proxy.set_filter(label=self.label_combo.itemData(i)))
        tb.addWidget(self.label_combo)
        tb.addWidget(QLabel(" ≥ score "))
        self.score_spin = QDoubleSpinBox()
        self.score_spin.setRange(0, 10)
        self.score_spin.setSingleStep(0.25)
        self.score_spin.setSpecialValueText("any")
        self.score_spin.valueChanged.connect(lambda v: self.proxy.set_filter(min_score=v or None))
        tb.addWidget(self.score_spin)
        self.eyes_check = QCheckBox("eyes closed")
        self.eyes_check.setToolTip("Show only photos with at least one face whose eyes are closed\n"
                                   "(every such frame, bursts included)")
        self.eyes_check.toggled.connect(lambda on: self.proxy.set_filter(eyes_closed=on))
        self.eyes_check.clicked.connect(self.grid.setFocus)
        tb.addWidget(self.eyes_check)
        # Enter in a number box applies it (the value is live already) and hands the keys
        # back to the grid; it never reaches the window's Return shortcut (the loupe).
        # A choice in a list does the same (else the next P or G picks a list entry)
        self._enter_stays = _EnterStaysHere(self)
        for box in (self.stars_spin, self.score_spin):
            box.installEventFilter(self._enter_stays)
            box.lineEdit().returnPressed.connect(self.grid.setFocus)
        for combo in (self.sort_combo, self.flag_combo, self.label_combo):
            combo.activated.connect(self.grid.setFocus)
        tb.addSeparator()
        tb.addWidget(QLabel(" Size "))
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(self.THUMB_MIN, self.THUMB_MAX)
        self.size_slider.setSingleStep(10)
        self.size_slider.setPageStep(40)
        self.size_slider.setFixedWidth(110)
        self.size_slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the arrow keys stay with the grid
        self.size_slider.setToolTip("Thumbnail size (View ▸ Thumbnail Size; Ctrl+= / Ctrl+-)")
        self.size_slider.setValue(self.thumb_size)
        self.size_slider.valueChanged.connect(self.set_thumb_size)
        tb.addWidget(self.size_slider)
        tb.addSeparator()
        tb.addWidget(QLabel(" Model "))
        self.model_combo = QComboBox()
        self._fill_models()
        self.model_combo.activated.connect(lambda i: self.set_model(self.model_combo.itemData(i)))
        self.model_combo.activated.connect(self.grid.setFocus)
        tb.addWidget(self.model_combo)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Open a folder to start (File ▸ Open Folder)")
        self.model_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_scoring)
        self.shown_label = QLabel("")  # "12 of 43 shown" while a filter is on
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.shown_label)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        for sig in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset, self.proxy.layoutChanged):
            sig.connect(self._show_count)

    def say(self, text: str, ms: int = 6000) -> None:
        """A passing message (an overlay switched, an undo): shown over the status line for
        ``ms`` and gone, so that the folder's summary or the scoring progress comes back."""
        self.statusBar().showMessage(text, ms)

    def _show_count(self, *_args) -> None:
        """How many photos the filters let through, or that none do (a blank grid said nothing)."""
        n, total = self.proxy.rowCount(), self.model.rowCount()
        if not self.proxy.filter.narrowing or not total:
            text, style = "", ""
        elif n:
            text, style = f"{n} of {total} shown (filtered)", ""
        else:
            text, style = f"No photo of {total} matches the filters", "color:#c03030;font-weight:bold"
        self.shown_label.setText(text)
        self.shown_label.setStyleSheet(style)

    def _install_keys(self) -> None:
        def sc(key, fn):
            s = QShortcut(QKeySequence(key), self)
            s.setContext(Qt.ShortcutContext.WindowShortcut)
            s.activated.connect(fn)
            return s

        sc("P", lambda: self.set_flag(1))
        sc("X", lambda: self.set_flag(-1))
        sc("U", lambda: self.set_flag(0))
        for n in range(6):
            sc(str(n), lambda n=n: self.set_rating(n))
        for key, name in LABELS.items():
            sc(QKeySequence(key).toString(), lambda name=name: self.toggle_label(name))
        sc("Space", self.toggle_loupe)
        sc("Return", self.toggle_loupe)
        sc("Escape", self.escape)
        sc("F", self.toggle_full_screen)
        sc("C", self.open_compare)
        sc("Z", self.toggle_zoom)
        sc("G", self.toggle_group)
        sc("O", self.toggle_faces)
        sc("M", self.toggle_focus_map)
        sc("J", self.toggle_clipping)
        sc("H", self.toggle_histogram)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_folders:
            self.recent_menu.addAction(folder, lambda f=folder: self.open_folder(f))
        self.recent_menu.setEnabled(bool(self.settings.recent_folders))

    def _fill_models(self) -> None:
        from photocull.model.registry import list_models

        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem("overall (aesthetic + technical)", "overall")
        for e in list_models(self.paths):
            name = "technical" if e.name == "default" else e.name
            self.model_combo.addItem(f"{name} alone" if name in ("technical", "aesthetic") else name, name)
        i = self.model_combo.findData(self.model_spec)
        self.model_combo.setCurrentIndex(max(i, 0))
        self.model_combo.blockSignals(False)

    # -- folders and scoring ----------------------------------------------------------
    def choose_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Open a folder of photos", str(self.folder or Path.home()))
        if d:
            self.open_folder(d)

    def _on_recursive(self, on: bool) -> None:
        self.settings.recursive = on
        if self.folder is not None:
            self.open_folder(self.folder)

    def open_folder(self, folder) -> bool:
        self.flush_marks()  # the marks read below include the last keys pressed
        folder = Path(folder).expanduser().absolute()  # (its photos' paths are then their keys, as they are)
        try:
            files = list_images(folder, self.settings.recursive)
        except (OSError, ValueError) as exc:
            msg = f"Cannot open {folder}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
            self.status_label.setText(msg)
            self.warn(msg)
            return False
        self._embedded_pending = None  # (the last folder's: not read now)
        self.cancel_scoring()
        self.folder = folder
        self.settings.add_recent(str(folder.absolute()))
        self._save_settings()
        self._fill_recent()
        self.setWindowTitle(f"photocull — {folder}")
        items, no_marks = self._make_items(files)
        self.loader.clear()
        self.model.set_items(items)
        self.undo_stack.clear()
        self.redo_stack.clear()
        self.status_label.setText(f"{len(items)} photos in {folder}")
        if items:
            self.grid.setCurrentIndex(self.proxy.index(0, 0))
            self._auto_current = True
        self._marked_here = set()
        if self.autoscore and items:
            # after the catalog's scores are in (a reopen is not slowed by the header reads;
            # a new folder gets them as soon as its first photos are being decoded)
            self._embedded_pending = no_marks
            self.start_scoring()
        else:
            self.read_embedded_marks(no_marks)
        return True

    def _read_pending_embedded(self) -> None:
        paths, self._embedded_pending = self._embedded_pending, None
        if paths is not None:
            self.read_embedded_marks(paths)

    def read_embedded_marks(self, paths: list[Path]) -> None:
        """Marks that Lightroom, Photo Mechanic or the camera wrote *inside* JPEG/TIFF/DNG
        files, for photos without marks of their own (catalog, sidecar): read in a thread
        (a header read per file), shown as they come, never over a mark made meanwhile."""
        if self.embedded_worker is not None:
            self.embedded_worker.cancel()
            self._old_workers.append(self.embedded_worker)
            self.embedded_worker = None
        from photocull.media.embedded import can_embed

        paths = [p for p in paths if can_embed(p)]
        if not paths:
            return
        w = GeneratorWorker(embedded_marks_job, paths)
        w.yielded.connect(self._on_embedded_marks)
        w.finished.connect(self._on_embedded_end)
        self.embedded_worker = w
        w.start()

    @Slot(object)
    def _on_embedded_marks(self, found) -> None:
        if self.sender() is not self.embedded_worker:
            return  # another folder's
        changed = False
        for key, m in found:
            it = self.model.item_for(key)
            if it is None or key in self._marked_here or not Marks(it.flag, it.rating, it.label).is_empty:
                continue
            it.flag, it.rating, it.label = m.flag, m.rating, m.label
            self.model.touch(it.path)
            changed = True
            if self.detail.item is it:
                self.detail.refresh_marks()
        if changed:
            for v in (self.loupe, self.compare):
                if v is not None:
                    v.refresh()
            self.proxy.refilter()

    @Slot()
    def _on_embedded_end(self) -> None:
        if self.sender() is self.embedded_worker:
            self.embedded_worker = None

    def _make_items(self, files: list[Path]) -> tuple[list[PhotoItem], list[Path]]:
        """The grid's items with the marks the catalog and sidecars hold, and the photos
        without any (for :meth:`read_embedded_marks`)."""
        try:
            from photocull.media.listing import pair_raw_jpeg
            units = [(u.primary, list(u.companions), u.kind if u.companions else "") for u in pair_raw_jpeg(files)]
        except ImportError:
            units = [(f, [], "") for f in files]
        items = [PhotoItem(p if isinstance(p, Path) else Path(p), companions=c, kind=k) for p, c, k in units]
        marks = load_marks([it.path for it in items], self.catalog, embedded=False)  # those: read_embedded_marks
        for it in items:
            m = marks.get(it.key)
            if m is not None:
                it.flag, it.rating, it.label = m.flag, m.rating, m.label
        return items, [it.path for it in items if it.key not in marks]

    def screen_settled(self) -> bool:
        """The grid has been painted and every thumbnail it asked for is decoded (called
        from the scorer's thread: reads two flags, touches no widget)."""
        return self.model.thumbnails_asked and self.loader.idle()

    def start_scoring(self) -> None:
        self.cancel_scoring()
        paths = [it.path for it in self.model.items]
        if not paths:
            return
        for it in self.model.items:  # a rescore: the old scores stay, greyed, until replaced
            it.stale = it.scored
        w = GeneratorWorker(score_job, paths, self.holder, self.model_spec, self.paths.catalog_path,
                            batch_size=self.settings.batch_size, accel_dir=self.paths.onnx_dir, with_report=True,
                            screen_settled=self.screen_settled if self.grid.isVisible() else None)
        w.yielded.connect(self._on_scoring_yield)
        w.message.connect(self._on_scoring_message)
        w.errored.connect(self._on_scoring_failed)
        w.finished.connect(self._on_scoring_end)  # after a cancel, self.worker is no longer w
        self.worker = w
        self._scoring_error = None
        self._n_decoded = 0  # photos this run decoded and scored (not answered by the catalog)
        self.progress.setRange(0, len(paths))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.status_label.setText(f"Scoring {len(paths)} photos…")
        w.start()

    def cancel_scoring(self) -> None:
        w = self.worker
        if w is not None:
            w.cancel()
            self._old_workers.append(w)
            self.worker = None
            self._scoring_ui_off("Cancelled")
            self._read_pending_embedded()

    def _scoring_ui_off(self, msg: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if msg:
            self.status_label.setText(msg)

    @Slot(str)
    def _on_scoring_message(self, msg: str) -> None:
        if self.sender() is self.worker:
            self.status_label.setText(msg)

    @Slot(object)
    def _on_scoring_yield(self, value) -> None:
        if self.sender() is not self.worker:
            return  # a cancelled run still finishing its batch
        kind = value[0]
        if kind == "model":
            scorers = value[1]
            self.loaded_model = scorers.loaded
            # the models in the status bar, how they are combined in its tooltip (the whole
            # sentence pushed the status text out of a window that is not maximized)
            self.model_label.setText(scorers.notice.split(" (overall:", 1)[0])
            self.model_label.setToolTip(scorers.notice)
            self.model_label.setStyleSheet("" if scorers.loaded.trained else "color:#c03030;font-weight:bold")
            self.model.set_mode(scorers.mode, scorers.loaded.cfg.families)
            return
        _, prog, thumbs = value
        self._n_decoded += len(thumbs)
        if thumbs:  # decoding: the catalog's part is done
            self._read_pending_embedded()
        for path, data in thumbs.items():
            self.model.set_packed_thumbnail(path, data)
        self.model.update_results(prog.results)
        self.progress.setValue(prog.done)
        if prog.rate > 0:
            eta = "" if prog.eta != prog.eta else f", {prog.eta:.0f} s left"
            self.status_label.setText(f"Scored {prog.done} of {prog.total} — {prog.rate:.1f} photos/s{eta}")
        else:  # the catalog's answer
            rest = "; scoring the rest…" if prog.done < prog.total else ""
            self.status_label.setText(f"Scored {prog.done} of {prog.total} (kept from before){rest}")
        if self.detail.item is not None:  # ranks move as scores arrive
            self.detail.show_item(self.detail.item, self._n_scored())

    def _n_scored(self) -> int:
        return sum(1 for it in self.model.items if it.scored)

    @Slot(object)
    def _on_scoring_failed(self, exc) -> None:
        if self.sender() is self.worker:
            self._scoring_error = error_text(exc)  # told by _on_scoring_end, which comes next

    @Slot()
    def _on_scoring_end(self) -> None:
        if self.sender() is not self.worker:
            return  # a cancelled run: cancel_scoring already reset the UI
        self.worker = None
        self._read_pending_embedded()
        err, self._scoring_error = self._scoring_error, None
        if err is not None:
            self._scoring_ui_off(f"Scoring failed: {err}")
            self.warn(f"Scoring failed:\n{err}")
            self.scoringDone.emit()
            return
        n_err = sum(1 for it in self.model.items if it.error)
        self.model.flush()
        if self.detail.item is not None:  # its rank "of N" counts the last photos too
            self.detail.show_item(self.detail.item, self._n_scored())
        msg = f"{self._n_scored()} photos scored" + (f", {n_err} could not be read (hover for the reason)" if n_err else "")
        spread = self.model.spread()
        if spread is not None:
            msg += f" — this shoot's spread (10th–90th percentile): {spread[0]:.2f}–{spread[1]:.2f}"
        self._scoring_ui_off(msg)
        if self._n_decoded >= self.RELEASE_AFTER:  # not after a folder the catalog answered
            self._release_memory()
        self.update_groups()
        self.scoringDone.emit()
        # after the sorted grid is shown: its first look-up in a process reads package versions (~0.2 s)
        QTimer.singleShot(0, self._prepare_fast_model)

    def _prepare_fast_model(self) -> None:
        """Once a folder is scored, export the model for ONNX Runtime in a background
        process (once per model), so the next folder scores faster (core.accel)."""
        if self._prepare_proc is not None and self._prepare_proc.poll() is None:
            return
        if self.loaded_model is None:
            return
        from photocull.model.onnx_cache import start_background_prepare

        self._prepare_proc = start_background_prepare(self.loaded_model, self.model_spec, self.paths)

    def set_model(self, spec: str) -> None:
        if not spec or spec == self.model_spec:
            return
        self.model_spec = spec
        self.settings.active_model = spec
        self._save_settings()
        self._fill_models()
        if self.model.items:
            self.start_scoring()

    def set_sort(self, key: str) -> None:
        from .photomodel import SORT_KEYS

        if key not in SORT_KEYS:
            key = "score"
        self.proxy.set_sort_key(key)
        if self.settings.sort_key != key:
            self.settings.sort_key = key  # remembered for the next start
            self._save_settings()
        i = self.sort_combo.findData(key)
        if i >= 0 and i != self.sort_combo.currentIndex():
            self.sort_combo.setCurrentIndex(i)
        act = self._sort_actions.get(key)
        if act is not None:
            act.setChecked(True)

    # -- the grid's cells ------------------------------------------------------------------
    def set_thumb_size(self, px: int) -> None:
        """The thumbnails' size (remembered); the columns still fill the width."""
        px = min(max(int(px), self.THUMB_MIN), self.THUMB_MAX)
        if self.size_slider.value() != px:
            self.size_slider.setValue(px)  # (comes back here)
            return
        if px == self.thumb_size and self.settings.thumb_size == px:
            return
        self.thumb_size = self.settings.thumb_size = px
        self._save_thumb_size.start()
        self._fit_columns()

    def _fit_columns(self) -> None:
        """As many columns of at least ``thumb_size`` px as fit, sharing the whole width;
        square cells; the photo under the cursor stays in view."""
        vw = self.grid.viewport().width()
        if vw <= 0:
            return
        cols = max(1, vw // self.thumb_size)
        side = (vw - 1) // cols  # (QListView wraps a row that would reach the very last pixel)
        cell = QSize(side, side)
        delegate = self.grid.itemDelegate()
        if cell == self.grid.gridSize() and delegate.CELL == cell:
            return
        self.grid_columns = cols
        delegate.set_cell(cell)
        self.model.set_display_size(delegate.picture_size())
        self.grid.setGridSize(cell)
        cur = self.grid.currentIndex()
        if cur.isValid():
            self.grid.scrollTo(cur)

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() == QEvent.Type.Resize and obj is self.grid.viewport():
            self._fit_columns()
        return super().eventFilter(obj, ev)

    def _remember_anchor(self, *_args) -> None:
        """Before a re-sort: where the photo under the cursor is on screen (only when it is
        on screen: a user who scrolled away from it keeps the place they scrolled to)."""
        from PySide6.QtCore import QPersistentModelIndex

        cur = self.grid.currentIndex()
        self._anchor = None
        if cur.isValid():
            r = self.grid.visualRect(cur)
            if r.isValid() and r.intersects(self.grid.viewport().rect()):
                self._anchor = (QPersistentModelIndex(cur), r.top())

    def _restore_anchor(self, *_args) -> None:
        """After a re-sort: scroll so that photo is where it was (cells are a fixed grid, so
        its place is known before Qt lays the rows out again)."""
        anchor, self._anchor = self._anchor, None
        if self._auto_current and self.proxy.rowCount():
            # the folder was just opened and no photo chosen yet: the cursor stays on the
            # top photo (the best so far), the grid at the top
            top = self.proxy.index(0, 0)
            if top != self.grid.currentIndex():  # (a new best: one preview to decode)
                self.grid.selectionModel().setCurrentIndex(top, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.grid.verticalScrollBar().setValue(0)
            self._auto_current = True
            return
        if anchor is None or not anchor[0].isValid():
            return
        self.grid.doItemsLayout()  # now, not at the next event: the rows' new places
        bar = self.grid.verticalScrollBar()
        r = self.grid.visualRect(self.proxy.index(anchor[0].row(), 0))
        if r.isValid():
            bar.setValue(bar.value() + r.top() - anchor[1])

    # -- selection and images ------------------------------------------------------------
    def current_item(self) -> PhotoItem | None:
        return self.proxy.item(self.grid.currentIndex())

    def selected_items(self) -> list[PhotoItem]:
        rows = sorted(self.grid.selectionModel().selectedIndexes(), key=lambda ix: ix.row())
        items = [self.proxy.item(ix) for ix in rows]
        if not items and self.current_item() is not None:
            items = [self.current_item()]
        return [it for it in items if it is not None]

    def _select_current(self, *_args) -> None:
        """The cursor's photo is selected: alone when nothing is, else the cursor goes to
        the first selected photo."""
        sel = self.grid.selectionModel()
        cur = self.grid.currentIndex()
        if not cur.isValid() or sel.isSelected(cur):
            return
        chosen = sorted(sel.selectedIndexes(), key=lambda ix: ix.row())
        if chosen:
            sel.setCurrentIndex(chosen[0], QItemSelectionModel.SelectionFlag.NoUpdate)
        else:
            sel.select(cur, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _on_current(self, cur, prev) -> None:
        self._auto_current = False  # (set again by whoever moved it automatically)
        it = self.proxy.item(cur)
        self.detail.show_item(it, self._n_scored())
        if it is not None:
            self.loader.request(str(it.path), self.PREVIEW_SIZE)

    @Slot(str, int, object)
    def _on_image(self, path: str, size: int, image) -> None:
        if size == PhotoListModel.THUMB_SIZE:
            self.model.set_thumbnail(path, image)
        elif size == ImageLoader.FULL:
            v = self._viewer()
            if v is not None and os.path.abspath(path) in {it.key for it in v.wanted_full()}:
                self.full_cache.put(os.path.abspath(path), image)
                v.set_full(path, image)
            # else: the user has moved on; the pixels go at once
        else:
            self.detail.set_preview(path, image)
            for v in (self.loupe, self.compare):
                if v is not None:
                    v.set_image(path, image)

    @Slot(str, object)
    def _on_exif(self, path: str, info) -> None:
        """The loader read a photo's EXIF with its preview: its shooting settings are kept."""
        it = self.model.item_for(path)
        if it is not None and info is not None:
            if it.exif is None or info.has_shooting() or not it.exif.has_shooting():
                it.exif = info
            self.detail.set_exif(path, info)

    @Slot(str, int, str)
    def _on_image_failed(self, path: str, size: int, reason: str) -> None:
        if size == PhotoListModel.THUMB_SIZE:
            self.model.set_thumbnail_error(path, reason)
        elif size == ImageLoader.FULL:
            for v in (self.loupe, self.compare):
                if v is not None:
                    v.set_full_failed(path, reason)
        else:
            self.detail.set_preview_error(path, reason)

    # -- culling --------------------------------------------------------------------------
    def _apply(self, changes: list[tuple[PhotoItem, Marks]], record: bool = True, what: str = "") -> None:
        """Set marks, queue their write, refresh grid, viewers and filter.  With ``record``
        the changes become one undo step (and the redo history ends)."""
        undo, writes = [], []
        model_id = self.loaded_model.model_id if self.loaded_model is not None else None
        for it, new in changes:
            old = Marks(it.flag, it.rating, it.label)
            if old == new:
                continue
            undo.append((it.key, old, new))
            self._auto_current = False  # (a marked photo is a chosen one)
            self._marked_here.add(it.key)
            it.flag, it.rating, it.label = new.flag, new.rating, new.label
            # the sidecar's figures are the named model's own (as `photocull rate` writes them); the
            # overall score depends on the rest of the shoot, so it is not a figure of the photo
            writes.append((it.path, new, it.companions,
                           sidecar_figures(mean_of(it.probs), std_of(it.probs), it.why, model_id)))
            self.model.touch(it.path)
        if writes:
            self._marks_pending = [f for f in self._marks_pending if not f.done()]
            self._marks_pending.append(self._marks_writer.submit(
                self._write_marks, writes, self.settings.write_sidecars, self.settings.sidecar_style,
                self.settings.pick_as if self.settings.embed_xmp else None))
        if undo and record:
            self.undo_stack.append(MarkStep(undo, what))
            del self.undo_stack[:-200]
            self.redo_stack.clear()
        for v in (self.loupe, self.compare):
            if v is not None and undo:
                v.refresh()  # the panes' overlays show the new marks
        if undo and self.detail.item is not None and self.detail.item.key in {k for k, _, _ in undo}:
            self.detail.refresh_marks()
        self.proxy.refilter()

    def _write_marks(self, writes, write_sidecars: bool, style: str, embed_pick_as: str | None = None) -> None:
        """In the marks writer thread: the catalog and the sidecars (and, with
        ``embed_pick_as``, the XMP inside JPEG/TIFF/DNG files: Preferences); problems go back
        to the GUI thread as a signal."""
        try:
            problems = save_marks(self.catalog, writes, write_sidecars=write_sidecars, style=style)
            if embed_pick_as is not None:
                gone = {Path(p) for p, _ in problems if not Path(p).is_file()}
                rep = embed_marks(self.catalog, [(p, m, comps) for p, m, comps, _ in writes if Path(p) not in gone],
                                  pick_as=embed_pick_as)
                problems += [(p, f"not written into the file, which is as it was: {why}") for p, why in rep.problems]
        except Exception as exc:  # noqa: BLE001 - a full disk, a locked catalog: say so, keep culling
            log.exception("could not save marks")
            problems = [(writes[0][0], f"{type(exc).__name__}: {exc}")]
        if problems:
            p, why = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.marksProblem.emit(f"Could not save the marks of {p.name}: {why}{more}")

    @Slot(str)
    def _on_marks_problem(self, msg: str) -> None:
        self.status_label.setText(msg)

    def flush_marks(self, timeout: float = 60.0) -> bool:
        """Wait (at most ``timeout`` s) until every mark made so far is written: before
        reading marks again, exporting, closing.  False (and says so) if they are not."""
        deadline = time.monotonic() + timeout
        for f in list(self._marks_pending):
            try:
                f.result(max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                self.status_label.setText("Still saving marks (the catalog is busy)…")
                return False
        self._marks_pending = []
        return True

    def mark_targets(self) -> list[PhotoItem]:
        """The photos a mark key applies to: compare's focused pane, the loupe's photo,
        else the grid's selection."""
        w = self.stack.currentWidget()
        if w is not None and w is self.compare:
            it = self.compare.focused_item()
            return [it] if it is not None else []
        if w is not None and w is self.loupe:
            it = self.loupe.item()
            return [it] if it is not None else []
        return self.selected_items()

    def _mark(self, items: list[PhotoItem], make, advance: bool) -> None:
        """Apply ``make(item) -> Marks`` to ``items``; with ``advance`` (and the
        auto-advance setting, one photo) move on to the next photo or pane."""
        row = self.grid.currentIndex().row()
        self._apply([(it, make(it)) for it in items])
        if advance and self.settings.auto_advance and len(items) == 1:
            self._advance(items[0], row)

    def _advance(self, it: PhotoItem, row: int) -> None:
        w = self.stack.currentWidget()
        if w is not None and w is self.compare:
            self.compare.move_focus(1, wrap=False)
            return
        src = self.model.row_of(it.path)
        still_shown = src is not None and self.proxy.mapFromSource(self.model.index(src)).isValid()
        if still_shown:  # the next one after it
            self.move_current(1)
        elif self.proxy.rowCount():  # a filter hid it: the next one has moved up into its row
            self.move_current(min(row, self.proxy.rowCount() - 1) - self.grid.currentIndex().row())
        if w is not None and w is self.loupe:
            self.open_loupe()

    def set_flag(self, flag: int) -> None:
        self._mark(self.mark_targets(), lambda it: Marks(flag, it.rating, it.label), advance=bool(flag))

    def set_rating(self, stars: int) -> None:
        self._mark(self.mark_targets(), lambda it: Marks(it.flag, stars, it.label), advance=bool(stars))

    def toggle_label(self, name: str) -> None:
        self._mark(self.mark_targets(), lambda it: Marks(it.flag, it.rating, None if it.label == name else name),
                   advance=False)

    def _replay(self, step: MarkStep, undo: bool) -> None:
        changes = [(self.model.item_for(k), old if undo else new) for k, old, new in step.changes]
        self._apply([(it, m) for it, m in changes if it is not None], record=False)

    def undo(self) -> None:
        if not self.undo_stack:
            self.say("Nothing to undo")
            return
        step = self.undo_stack.pop()
        self._replay(step, undo=True)
        self.redo_stack.append(step)
        self.say(f"Undid {step.describe()} (Ctrl+Shift+Z to redo)")

    def redo(self) -> None:
        if not self.redo_stack:
            self.say("Nothing to redo")
            return
        step = self.redo_stack.pop()
        self._replay(step, undo=False)
        self.undo_stack.append(step)
        self.say(f"Redid {step.describe()}")

    def move_current(self, delta: int) -> None:
        row = self.grid.currentIndex().row() + delta
        if 0 <= row < self.proxy.rowCount():
            ix = self.proxy.index(row, 0)
            self.grid.setCurrentIndex(ix)
            self.grid.selectionModel().select(ix, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    # -- viewers (loupe, compare) ----------------------------------------------------------
    def open_loupe(self) -> None:
        it = self.current_item()
        if it is None:
            return
        self._auto_current = False  # the photo looked at is chosen: new scores no longer move the cursor off it
        from .viewers import LoupeView

        if self.loupe is None:
            self.loupe = LoupeView(self)
            self.loupe.set_overlays(self.show_faces, self.show_focus, self.show_clipping)
            self.loupe.show_histogram(self.show_histogram)
            self.loupe.fullWanted.connect(self._on_full_wanted)
            self.loupe.show_strip(self.proxy, self.grid.selectionModel(), ThumbDelegate(self.loupe.strip, compact=True))
            self.loupe.strip.clicked.connect(self._on_strip_clicked)
            self.stack.addWidget(self.loupe)
        if self.stack.currentWidget() is not self.loupe:
            self._leave_viewer()
            self.full_cache.size = 2
            if self.loupe.pane.zoom_100:  # opened from the grid: the whole photo first (100 % stays
                self.loupe.pane.set_zoom(False)  # from photo to photo inside the loupe only)
        self.stack.setCurrentWidget(self.loupe)
        self.loupe.show_item(it)
        self.loader.request(str(it.path), self.PREVIEW_SIZE)
        self.loupe.setFocus()

    @Slot(object)
    def _on_strip_clicked(self, ix) -> None:
        """A photo of the loupe's filmstrip: the loupe shows it (the grid's cursor is on it)."""
        self.grid.selectionModel().setCurrentIndex(ix, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.open_loupe()

    def toggle_loupe(self) -> None:
        if self.stack.currentIndex() == 0:
            self.open_loupe()
        else:
            self.close_viewers()

    def open_compare(self) -> None:
        items = self.selected_items()[:4]
        if len(items) < 2:
            self.say("Select two to four photos to compare (Ctrl+click)")
            return
        self._auto_current = False
        from .viewers import CompareView

        if self.compare is None:
            self.compare = CompareView(self)
            self.compare.set_overlays(self.show_faces, self.show_focus, self.show_clipping)
            self.compare.focusMoved.connect(self._on_compare_focus)
            self.compare.fullWanted.connect(self._on_full_wanted)
            self.stack.addWidget(self.compare)
        cur = self.current_item()
        self._leave_viewer()
        self.full_cache.size = max(2, len(items))
        self.compare.show_items(items, focus=items.index(cur) if cur in items else 0)
        self.stack.setCurrentWidget(self.compare)
        self.compare.setFocus()
        for it in items:
            self.loader.request(str(it.path), self.PREVIEW_SIZE)

    @Slot(object)
    def _on_compare_focus(self, it: PhotoItem) -> None:
        """The grid's cursor follows compare's focused pane (the selection stays), so the
        detail panel and Escape land on the photo last looked at."""
        row = self.model.row_of(it.path)
        ix = self.proxy.mapFromSource(self.model.index(row)) if row is not None else None
        if ix is not None and ix.isValid():
            self.grid.selectionModel().setCurrentIndex(ix, QItemSelectionModel.SelectionFlag.NoUpdate)

    def close_viewers(self) -> None:
        self.set_full_screen(False)
        self._leave_viewer()
        self.full_cache.clear()  # back to the grid: the full-resolution pixels go
        self.stack.setCurrentIndex(0)
        self.grid.setFocus()

    def escape(self) -> None:
        """Esc: out of full screen first, then back to the grid."""
        if self.isFullScreen():
            self.set_full_screen(False)
        else:
            self.close_viewers()

    def toggle_full_screen(self) -> None:
        """F: the loupe (or compare) on the whole screen, without menus, toolbar and status
        bar; from the grid it opens the loupe so.  F again or Esc leaves it."""
        if self._viewer() is None:
            self.open_loupe()
            if self._viewer() is None:
                return
        self.set_full_screen(not self.isFullScreen())

    def set_full_screen(self, on: bool) -> None:
        if on == self.isFullScreen():
            self.full_screen_action.setChecked(on)
            return
        for bar in (self.menuBar(), self.toolbar, self.statusBar()):
            bar.setVisible(not on)
        if on:
            self._state_before_full = self.windowState()
            self.showFullScreen()
        else:
            self.setWindowState(self._state_before_full)
            self.show()
        self.full_screen_action.setChecked(on)

    # -- 100 %: full-resolution pixels, decoded on demand in the loader's thread ----------
    def _viewer(self):
        """The loupe or compare view on screen, else None."""
        w = self.stack.currentWidget()
        return w if w is not None and w in (self.loupe, self.compare) else None

    def _leave_viewer(self) -> None:
        """The viewer on screen is going away: its panes let their full images go (the
        cache keeps the last two) and nothing more is decoded for it."""
        v = self._viewer()
        if v is not None:
            v.drop_full()
        self.loader.want_full([])

    @Slot(object)
    def _on_full_wanted(self, it: PhotoItem) -> None:
        """A pane went to 100 % (or got a new photo there): from the cache, else decoded in
        the loader's thread; the preview stays on screen until then."""
        v = self._viewer()
        if v is None or self.sender() is not v:
            return
        image = self.full_cache.get(it.key)
        if image is not None:
            v.set_full(str(it.path), image)
        self.loader.want_full([str(w.path) for w in v.wanted_full()])

    @Slot(str, int, int)
    def _on_full_size(self, path: str, w: int, h: int) -> None:
        for v in (self.loupe, self.compare):
            if v is not None:
                v.set_full_size(path, w, h)

    def toggle_zoom(self) -> None:
        w = self.stack.currentWidget()
        if hasattr(w, "toggle_zoom"):
            w.toggle_zoom()

    def toggle_faces(self) -> None:
        """O: face boxes over the photo in the loupe and compare (green eyes open, red closed,
        orange looking away); on until pressed again, from photo to photo."""
        self.set_overlays(faces=not self.show_faces)
        self.say("Face boxes " + ("on: green eyes open, red closed, orange looking away, grey eyes too small to "
                                  "tell (O hides them)" if self.show_faces else "off"))

    def toggle_focus_map(self) -> None:
        """M: the focus map (where the photo is sharp) over the photo in the loupe and compare."""
        self.set_overlays(focus=not self.show_focus)
        self.say("Focus map " + ("on: green sharp, red soft, hatched where there is no detail to judge "
                                 "(M hides it)" if self.show_focus else "off"))

    def toggle_clipping(self) -> None:
        """J: blown highlights red and crushed shadows blue over the photo (as Lightroom's J)."""
        self.set_overlays(clipping=not self.show_clipping)
        self.say("Clipping " + ("on: red where a channel is blown, blue where the shadows are "
                                "crushed to black (J hides it)" if self.show_clipping else "off"))

    def toggle_histogram(self) -> None:
        """H: the RGB histogram in the loupe's corner on or off (it covers that corner at 100 %)."""
        self.set_overlays(histogram=not self.show_histogram)
        self.say("Histogram " + ("on (H hides it)" if self.show_histogram else "off (H shows it)"))

    def set_overlays(self, faces: bool | None = None, focus: bool | None = None, clipping: bool | None = None,
                     histogram: bool | None = None) -> None:
        """The loupe's and compare's overlays on or off (None: as they are), shown at once,
        checked in the View menu and remembered."""
        names = ("show_faces", "show_focus", "show_clipping", "show_histogram")
        for name, on in zip(names, (faces, focus, clipping, histogram)):
            if on is not None:
                setattr(self, name, on)
        for v in (self.loupe, self.compare):
            if v is not None:
                v.set_overlays(self.show_faces, self.show_focus, self.show_clipping)
        if self.loupe is not None:
            self.loupe.show_histogram(self.show_histogram)
        for action, name in zip((self.faces_action, self.focus_action, self.clipping_action, self.histogram_action),
                                names):
            action.setChecked(getattr(self, name))
        now = [getattr(self, n) for n in names]
        if [getattr(self.settings, n) for n in names] != now:
            for name, on in zip(names, now):
                setattr(self.settings, name, on)
            self._save_settings()

    def keyPressEvent(self, ev) -> None:
        if self.stack.currentWidget() is self.loupe and ev.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.move_current(-1 if ev.key() == Qt.Key.Key_Left else 1)
            self.open_loupe()
            return
        super().keyPressEvent(ev)

    # -- preferences ----------------------------------------------------------------------
    def open_preferences(self) -> bool:
        """The Preferences dialog; returns whether the user accepted it."""
        from .dialogs import PreferencesDialog

        d = PreferencesDialog(self.settings, self)
        self._prefs_dialog = d  # (tests reach it while it runs)
        try:
            if d.exec() != d.DialogCode.Accepted:
                return False
            self.apply_preferences(d)
            return True
        finally:
            self._prefs_dialog = None
            d.deleteLater()

    def apply_preferences(self, d) -> set[str]:
        """Take the dialog's choices: saved at once, the menu's toggles follow, bursts are
        grouped again when their sensitivity changed."""
        changed = d.apply_to(self.settings)
        for action, key in ((self.auto_advance_action, "auto_advance"), (self.sidecar_action, "write_sidecars")):
            if action.isChecked() != getattr(self.settings, key):
                action.setChecked(getattr(self.settings, key))
        self._save_settings()
        if changed & {"burst_gap_seconds", "burst_similarity"}:
            self.update_groups()
        if "embed_xmp" in changed:
            self.status_label.setText("Marks will also be written into JPEG, TIFF and DNG files (metadata only)"
                                      if self.settings.embed_xmp else "Marks go to the catalog and sidecars only")
        return changed

    # -- bursts ----------------------------------------------------------------------------
    def update_groups(self) -> None:
        """Group bursts in the background; the grid shows each group's best frame."""
        from types import SimpleNamespace

        items = self.model.items  # set_items() replaces this list: identity tells a new folder
        if len(items) < 2:
            return
        if self.group_worker is not None:
            self.group_worker.cancel()
            self._old_workers.append(self.group_worker)
            self.group_worker = None
        snap = [SimpleNamespace(path=it.path, capture_time=it.capture_time, exposure_bias=it.exposure_bias,
                                mean=it.mean) for it in items]
        w = GeneratorWorker(group_job, snap, self.paths.catalog_path, self.settings.burst_gap_seconds,
                            similarity=self.settings.burst_similarity)

        def apply(result):
            if result is None or self.model.items is not items:
                return
            for it, (g, n, kind, best) in zip(items, result):
                it.group, it.group_size, it.group_kind, it.group_best = g, n, kind, best
            self.model.recompute_ranks()  # (the overall rule looks at the groups)
            self.model.resort()  # a group's frames together
            self.proxy.refilter()
            n_groups = len({g for g, *_ in result if g is not None})
            if n_groups:
                self.status_label.setText(self.status_label.text() + f"; {n_groups} burst group"
                                          + "s" * (n_groups != 1) + " (G expands, Select menu picks the best)")
            self.groupsDone.emit()

        w.returned.connect(self._on_groups)
        w.errored.connect(self._on_groups_failed)
        w.finished.connect(self._on_groups_end)
        self._group_apply = apply
        self.group_worker = w
        w.start()

    @Slot(object)
    def _on_groups(self, result) -> None:
        if self.sender() is self.group_worker:
            self._group_apply(result)
            self._release_memory()  # the greys and features grouping went through

    @Slot(object)
    def _on_groups_failed(self, exc) -> None:
        log.warning("burst grouping failed: %s", error_text(exc))

    @Slot()
    def _on_groups_end(self) -> None:
        if self.sender() is self.group_worker:
            self.group_worker = None

    def _release_memory(self) -> None:
        """Hand the heap's free pages back (gui/memory.py) in a short-lived thread: with a
        GB of fragmented heap it takes a few hundred ms, which the GUI thread need not wait."""
        threading.Thread(target=release_free_memory, name="release-memory", daemon=True).start()

    def toggle_group(self) -> None:
        it = self.current_item()
        if it is None or it.group is None:
            return
        exp = self.proxy.filter.expanded
        exp.symmetric_difference_update({it.group})
        self.proxy.refilter()

    def pick_best_of_groups(self) -> None:
        """In each burst pick the best frame and reject the rest, after saying what will
        change and asking.  The plan is the core's (cull.bursts.best_of_groups_changes):
        photos you marked are left as they are.  One undo (and redo) step."""
        try:
            from photocull.cull.bursts import best_of_groups_changes
        except ImportError:
            self.status_label.setText("Burst grouping is not available")
            return
        groups = len({it.group for it in self.model.items if it.group is not None and it.group_kind == "burst"})
        if not groups:
            self.status_label.setText("No bursts found in this folder")
            return
        plan = best_of_groups_changes(self.model.items)
        if not plan.changes:
            self.status_label.setText(f"Pick best of each burst: nothing to change ({plan.summary})")
            return
        answer = QMessageBox.question(
            self, "Pick best of each burst",
            f"In {groups} burst{'s' * (groups != 1)}: {plan.summary}.\n\nUndo (Ctrl+Z) takes it all back in one step.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            self.status_label.setText("Pick best of each burst: cancelled")
            return
        self._apply([(it, Marks(flag, it.rating, it.label)) for it, flag in plan.changes],
                    what="pick best of each burst")
        self.proxy.refilter()  # each collapsed burst now shows its pick
        self.status_label.setText(f"Picked the best of each burst: {plan.summary} (Ctrl+Z to undo)")

    # -- dialogs ------------------------------------------------------------------------
    def show_export_dialog(self) -> None:
        from .dialogs import ExportDialog

        ExportDialog(self).exec()

    def show_training_dialog(self) -> None:
        try:
            from .training_dialog import TrainingDialog
        except ImportError:
            notify(self, "photocull", "Learning your taste is not available in this build.", warning=False)
            return
        TrainingDialog(self).exec()

    def show_models_dialog(self) -> None:
        from .dialogs import ModelsDialog

        ModelsDialog(self).exec()
        self._fill_models()

    def warn(self, msg: str) -> None:
        self.last_warning = notify(self, "photocull", msg)

    # -- lifecycle ------------------------------------------------------------------------
    def _save_settings(self) -> None:
        try:
            self.settings.save(self.paths.settings_path)
        except OSError as exc:
            log.warning("could not save settings: %s", exc)

    def shutdown(self, timeout_ms: int = 120000) -> None:
        """Stop background work and wait for it (called on close and by tests).

        Cancel takes effect between batches, so this waits at most for one batch."""
        self.cancel_scoring()
        for w in (self.group_worker, self.embedded_worker):
            if w is not None:
                w.cancel()
                self._old_workers.append(w)
        self.group_worker = self.embedded_worker = None
        self._old_workers = [w for w in self._old_workers if not w.wait(timeout_ms)]
        if self._prepare_proc is not None and self._prepare_proc.poll() is None:
            self._prepare_proc.terminate()  # its half-written file is a temp file; next time it starts over
        self.loader.stop()
        self._marks_writer.shutdown(wait=True)  # every mark lands before the window goes
        self._save_settings()

    def closeEvent(self, ev) -> None:
        if not self.isFullScreen():  # (full screen is F's, for a moment: the window as it was before stays)
            self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
        self.shutdown()
        super().closeEvent(ev)
