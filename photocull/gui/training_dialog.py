"""Learn my taste: fine-tune a personal score head on the user's own ratings."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from PySide6.QtCore import QPointF, Qt, Slot
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from photocull.cull.catalog import Catalog, Marks
from photocull.cull.marks import load_marks
from photocull.media.listing import list_images
from photocull.training.metrics import METRIC_HELP, TasteVerdict, format_metric, verdict_of
from photocull.training.ratings import ratings_from_marks

from .notify import notify
from .workers import GeneratorWorker

MIN_RATINGS = 20


def personal_job(ratings: dict[str, int], holder, catalog_path, cancelled=lambda: False):
    """The learn-my-taste pipeline the command line runs too (features from the catalog,
    else computed and stored; then the personal head); yields its progress rows."""
    from photocull.training.personal import learn_from_ratings  # torch: only once training starts

    from photocull.model.registry import AESTHETIC, DEFAULT
    from photocull.model.spec import ModelError

    base = holder.get(DEFAULT)
    base = base.load() if hasattr(base, "load") else base
    try:  # the personal head reads the aesthetic network's features too
        aesthetic = holder.get(AESTHETIC)
        aesthetic = aesthetic.load() if hasattr(aesthetic, "load") else aesthetic
    except ModelError:
        aesthetic = None  # not in this installation: the technical features alone
    with Catalog(catalog_path) as cat:
        learned = yield from learn_from_ratings(dict(sorted(ratings.items())), base, cat, aesthetic=aesthetic,
                                                min_ratings=MIN_RATINGS, cancelled=cancelled)
    return None if learned is None else (learned.tuned, base)



class LossCurve(QWidget):
    """Train and validation loss per epoch."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.train: list[float] = []
        self.val: list[float] = []
        self.setMinimumSize(360, 160)

    def add(self, train: float | None, val: float | None) -> None:
        if train is not None:
            self.train.append(float(train))
        if val is not None:
            self.val.append(float(val))
        self.update()

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#1e1e1e"))
        r = self.rect().adjusted(30, 10, -10, -20)
        vals = [v for v in self.train + self.val if math.isfinite(v)]
        if not vals:
            p.setPen(QColor("#aaa"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "loss curve")
            return
        lo, hi = min(vals), max(vals)
        hi = hi if hi > lo else lo + 1e-6
        n = max(len(self.train), len(self.val), 2)

        def pt(i, v):
            return QPointF(r.left() + r.width() * i / (n - 1), r.bottom() - r.height() * (v - lo) / (hi - lo))

        for series, colour, name, y in ((self.train, "#4a9bd0", "train", 12), (self.val, "#e0a040", "validation", 26)):
            p.setPen(QPen(QColor(colour), 2))
            for i in range(1, len(series)):
                p.drawLine(pt(i - 1, series[i - 1]), pt(i, series[i]))
            p.drawText(r.right() - 80, r.top() + y, name)
        p.setPen(QColor("#aaa"))
        p.drawText(2, r.top() + 10, f"{hi:.3f}")
        p.drawText(2, r.bottom(), f"{lo:.3f}")


class TrainingDialog(QDialog):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.setWindowTitle("Learn my taste")
        self.resize(560, 560)
        self.folders: list[Path] = [win.folder] if win.folder else []
        self.ratings: dict[str, int] = {}
        self.worker: GeneratorWorker | None = None
        self.result = None
        self.base = None
        lay = QVBoxLayout(self)
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        lay.addWidget(self.intro)
        row = QHBoxLayout()
        add = QPushButton("Add a folder of rated photos…")
        add.setAutoDefault(False)  # Enter never opens a folder picker
        add.clicked.connect(self._add_folder)
        row.addWidget(add)
        row.addStretch(1)
        lay.addLayout(row)
        self.spread = QLabel()
        lay.addWidget(self.spread)
        self.curve = LossCurve()
        lay.addWidget(self.curve, 1)
        self.metrics = QLabel()
        self.metrics.setWordWrap(True)
        self.metrics.setToolTip(METRIC_HELP)
        lay.addWidget(self.metrics)
        self.verdict = QLabel()  # in plain words: is yours better than the default?
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)
        self.verdict.setToolTip(METRIC_HELP)
        lay.addWidget(self.verdict)
        self.taste: TasteVerdict | None = None
        self.progress = QProgressBar()
        lay.addWidget(self.progress)
        g = QGridLayout()
        g.addWidget(QLabel("Name"), 0, 0)
        self.name = QLineEdit("my style")
        g.addWidget(self.name, 0, 1)
        lay.addLayout(g)
        row = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        self.save_button = QPushButton("Save, use and rescore")
        self.save_button.setEnabled(False)
        self._suggest_saving(False)  # until a verdict says the model is better
        self.save_button.clicked.connect(self.save_and_use)
        for b in (self.train_button, self.cancel_button, self.save_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.gather()

    # -- ratings ----------------------------------------------------------------
    def _add_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "A folder with rated photos")
        if d:
            self.folders.append(Path(d))
            self.gather()

    def gather(self) -> None:
        s = self.win.settings
        ratings: dict[str, int] = {}
        for folder in self.folders:
            if self.win.folder is not None and Path(folder) == Path(self.win.folder):
                marks = {it.key: Marks(it.flag, it.rating, it.label) for it in self.win.model.items}
            else:
                try:
                    files = list_images(folder, s.recursive)
                except OSError as exc:
                    notify(self, "Learn my taste", f"Cannot read {folder}: {exc}")
                    continue
                marks = load_marks(files, self.win.catalog)
            ratings.update(ratings_from_marks(marks, s.pick_rating, s.reject_rating))
        self.ratings = ratings
        c = Counter(ratings.values())
        self.spread.setText("Ratings: " + ("  ".join(f"{'★' * k}: {c[k]}" for k in range(1, 6)) or "none"))
        ok = len(ratings) >= MIN_RATINGS and len(c) >= 2
        self.intro.setText(
            f"{len(ratings)} rated photos in {len(self.folders)} folder(s). Stars count as given; a pick "
            f"without stars counts as {s.pick_rating}, a reject as {s.reject_rating}. photocull learns a personal score head on what both "
            "networks (technical and aesthetic) see in each photo; the shipped models are never changed."
            + ("" if ok else f"\n\nRate at least {MIN_RATINGS} photos, with at least two different ratings, to train."))
        self.train_button.setEnabled(ok and self.worker is None)

    # -- training -----------------------------------------------------------------
    def start(self) -> None:
        if self.worker is not None:
            return
        self.curve.train.clear()
        self.curve.val.clear()
        self.result = None
        self.taste = None
        self.verdict.clear()
        self.save_button.setEnabled(False)
        self._suggest_saving(False)
        self.train_button.setEnabled(False)
        self.metrics.setText("Preparing…")
        w = GeneratorWorker(personal_job, dict(self.ratings), self.win.holder, self.win.paths.catalog_path)
        w.yielded.connect(self._on_progress)
        w.returned.connect(self._on_done)
        w.errored.connect(self._on_failed)
        w.aborted.connect(self._on_aborted)
        w.finished.connect(self._on_ended)
        self.worker = w
        w.start()

    @Slot(object)
    def _on_progress(self, row: dict) -> None:
        if self.sender() is not self.worker:
            return
        if row.get("phase") == "features":
            if "photos" in row:  # the summary row once every feature is there
                return
            self.progress.setRange(0, row["total"])
            self.progress.setValue(row["done"])
            self.metrics.setText(f"Reading photos not scored yet: {row['done']} of {row['total']}")
            return
        self.progress.setRange(0, row.get("epochs", 0) or 0)
        self.progress.setValue(row.get("epoch", 0))
        if row.get("phase") == "select":
            self.curve.add(row.get("train_loss"), row.get("val_loss"))
            self.metrics.setText(f"epoch {row['epoch']}: validation SRCC {row.get('val_srcc', float('nan')):.3f}, "
                                 f"PLCC {row.get('val_plcc', float('nan')):.3f}, EMD {row.get('val_emd', float('nan')):.3f}")
        else:
            self.metrics.setText(f"final fit on all ratings: epoch {row.get('epoch')}")

    @Slot(object)
    def _on_done(self, value) -> None:
        if value is None:
            self.metrics.setText("Cancelled.")
            return
        self.result, self.base = value
        r = self.result
        b, a = r.before, r.after

        def row(name: str, key: str, higher_is_better: bool = True) -> str:
            fb, fa = format_metric(b.get(key), nd=2), format_metric(a.get(key), nd=2)
            vb, va = b.get(key), a.get(key)
            if vb is not None and va is not None and math.isfinite(vb) and math.isfinite(va) and vb != va:
                if (va > vb) == higher_is_better:  # bold marks the better figure, whichever model has it
                    fa = f"<b>{fa}</b>"
                else:
                    fb = f"<b>{fb}</b>"
            return f"<tr><td>{name}&nbsp;</td><td>{fb}</td><td>{fa}</td></tr>"

        self.metrics.setText(
            f"<b>On {r.n_val} held-out ratings</b> (hover for what the figures mean)<table>"
            f"<tr><td></td><td>default&nbsp;</td><td>yours</td></tr>"
            + row("rank agreement (SRCC)", "srcc") + row("linear agreement (PLCC)", "plcc")
            + row("EMD (lower is better)", "emd", higher_is_better=False)
            + f"</table>trained on {r.n_ratings} ratings in {r.seconds:.1f} s")
        self.taste = verdict_of(r)
        self.verdict.setText(self.taste.text)
        self.save_button.setEnabled(True)
        self._suggest_saving(self.taste.suggest_saving)

    def _suggest_saving(self, yes: bool) -> None:
        """Saving is the default action (Enter, bold) only for a model that is better."""
        self.save_button.setDefault(yes)
        self.save_button.setAutoDefault(yes)
        font = self.save_button.font()
        font.setBold(yes)
        self.save_button.setFont(font)

    @Slot(object)
    def _on_failed(self, exc) -> None:
        self.metrics.setText(f"Could not train: {exc}")

    @Slot()
    def _on_aborted(self) -> None:
        self.metrics.setText("Cancelled.")

    @Slot()
    def _on_ended(self) -> None:
        """Training ended, whatever happened: another run may start."""
        self.worker = None
        self.train_button.setEnabled(True)

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        else:
            self.reject()

    def save_and_use(self) -> str | None:
        from photocull.training.personal import save_personal_model
        from photocull.training.ratings import TrainingError

        if self.result is None:
            return None
        name = self.name.text().strip()
        if not name:
            notify(self, "Learn my taste", "Give the model a name.")
            return None
        try:
            path, _ = save_personal_model(self.result, name, self.win.paths.models_dir,
                                          base_id=self.base.model_id if self.base else None)
        except (TrainingError, OSError) as exc:
            notify(self, "Learn my taste", str(exc))
            self.metrics.setText(str(exc))
            return None
        self.win.set_model(path.stem)
        self.accept()
        return path.stem

    def done(self, r: int) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(60_000)
        super().done(r)

