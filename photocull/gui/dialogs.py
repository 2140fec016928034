"""Dialogs: export the keepers; manage models; preferences."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
)

from photocull.cull.export import Candidate, choose, export

from .notify import notify
from .workers import GeneratorWorker, error_text


def _export_job(chosen, dest, move, catalog_path, source=None, cancelled=lambda: False):
    from photocull.cull.catalog import Catalog

    with Catalog(catalog_path) as cat:  # a move takes the catalog's lock; marks and scores follow the photo
        # nothing that resolves outside the open folder is exported (a row of the report says so)
        return export(chosen, dest, move=move, cancelled=cancelled, catalog=cat, source=source)


class ExportDialog(QDialog):
    MODES = ("top", "percent", "score", "selection", "picks", "stars")

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.setWindowTitle("Export keepers")
        self.worker: GeneratorWorker | None = None
        self.report = None
        lay = QVBoxLayout(self)
        g = QGridLayout()
        self.mode_group = QButtonGroup(self)
        self.radios = {}
        self.top_n = QSpinBox(); self.top_n.setRange(1, 1_000_000); self.top_n.setValue(20)
        self.top_pct = QDoubleSpinBox(); self.top_pct.setRange(0.1, 100); self.top_pct.setValue(10); self.top_pct.setSuffix(" %")
        self.min_score = QDoubleSpinBox(); self.min_score.setRange(1, 10); self.min_score.setValue(6); self.min_score.setSingleStep(0.25)
        self.min_stars = QSpinBox(); self.min_stars.setRange(1, 5); self.min_stars.setValue(3)
        rows = (("top", "Best", self.top_n), ("percent", "Best", self.top_pct), ("score", "Score at least", self.min_score),
                ("selection", "The selected photos", None), ("picks", "Picks only", None), ("stars", "At least stars", self.min_stars))
        for i, (key, text, w) in enumerate(rows):
            rb = QRadioButton(text)
            self.mode_group.addButton(rb, i)
            self.radios[key] = rb
            g.addWidget(rb, i, 0)
            if w is not None:
                g.addWidget(w, i, 1)
        self.radios["top"].setChecked(True)
        lay.addLayout(g)
        h = QHBoxLayout()
        self.dest = QLineEdit()
        self.dest.setPlaceholderText("destination folder")
        b = QPushButton("Choose…")
        b.clicked.connect(self._choose_dest)
        h.addWidget(QLabel("To"))
        h.addWidget(self.dest, 1)
        h.addWidget(b)
        lay.addLayout(h)
        self.one_per_burst = QCheckBox("One per burst: only the best frame of each burst "
                                       "(brackets and panoramas keep every frame)")
        self.one_per_burst.toggled.connect(lambda *_: self._update_summary())
        lay.addWidget(self.one_per_burst)
        self.move_box = QCheckBox("Move instead of copy (originals are removed only after a verified copy)")
        lay.addWidget(self.move_box)
        self.summary = QLabel()
        lay.addWidget(self.summary)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.start_export)
        self.buttons.rejected.connect(self._cancel)
        lay.addWidget(self.buttons)
        for w in (self.top_n, self.top_pct, self.min_score, self.min_stars):
            w.valueChanged.connect(self._update_summary)
        self.mode_group.idToggled.connect(lambda *_: self._update_summary())
        self._update_summary()

    def mode(self) -> str:
        return self.MODES[self.mode_group.checkedId()]

    def set_mode(self, key: str) -> None:
        self.radios[key].setChecked(True)

    def _choose_dest(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export to", self.dest.text() or str(Path.home()))
        if d:
            self.dest.setText(d)

    def chosen(self) -> list[Candidate]:
        w = self.win
        mode = self.mode()
        items = w.selected_items() if mode == "selection" else w.model.items
        if self.one_per_burst.isChecked():  # as `photocull export --one-per-burst`: the group's best frame
            items = [it for it in items if it.group is None or it.group_kind != "burst" or it.group_best]
        cands = [Candidate(it.path, it.mean, it.std, it.flag, it.rating, list(it.companions)) for it in items]
        if mode == "selection":
            return choose(cands, exclude_rejects=False)
        kw = {"top": {"top": self.top_n.value()}, "percent": {"top_percent": self.top_pct.value()},
              "score": {"min_score": self.min_score.value()}, "picks": {"picks_only": True},
              "stars": {"min_stars": self.min_stars.value()}}[mode]
        return choose(cands, **kw)

    def _update_summary(self) -> None:
        try:
            n = len(self.chosen())
        except ValueError as exc:
            self.summary.setText(str(exc))
            return
        self.summary.setText(f"{n} photo{'s' * (n != 1)} will be exported, with their RAW files and sidecars, "
                             "and a CSV report. Nothing is ever overwritten.")

    def start_export(self) -> None:
        self.win.flush_marks()  # a mark made just before travels with the photo
        dest = self.dest.text().strip()
        if not dest:
            notify(self, "Export", "Choose a destination folder.")
            return
        chosen = self.chosen()
        if not chosen:
            notify(self, "Export", "No photo matches; nothing to export.", warning=False)
            return
        src = self.win.folder
        if src is not None and Path(dest).expanduser().resolve() == Path(src).resolve():
            notify(self, "Export", "The destination is the folder being culled; choose another.")
            return
        self.buttons.setEnabled(False)
        self.summary.setText(f"Exporting {len(chosen)} photos…")
        w = GeneratorWorker(_export_job, chosen, dest, self.move_box.isChecked(), self.win.paths.catalog_path, src)
        w.returned.connect(self._done)
        w.errored.connect(self._failed)
        w.aborted.connect(self.reject)
        w.finished.connect(self._ended)
        self.worker = w
        w.start()

    @Slot(object)
    def _done(self, report) -> None:
        self.report = report
        if self.move_box.isChecked() and self.win.folder is not None:
            self.win.open_folder(self.win.folder)
        msg = f"Exported {len(report.items)} photos."
        if report.already:
            msg += f" {len(report.already)} were there already with the same bytes: not copied again."
        if report.errors:
            msg += "\n\nProblems:\n" + "\n".join(f"{p.name}: {why}" for p, why in report.errors[:20])
        self.win.status_label.setText(msg.splitlines()[0] + (f" Report: {report.report_path}" if report.report_path else ""))
        notify(self.win, "Export", msg, warning=bool(report.errors))
        self.accept()

    @Slot(object)
    def _failed(self, exc) -> None:
        msg = error_text(exc)
        self.summary.setText(f"Export failed: {msg}")
        notify(self, "Export", f"Export failed:\n{msg}")

    @Slot()
    def _ended(self) -> None:
        """The export ended, whatever happened: the dialog can start another or close."""
        self.worker = None
        self.buttons.setEnabled(True)

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        else:
            self.reject()


class ModelsDialog(QDialog):
    """Rename, delete, import and export personal models."""

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.setWindowTitle("Models")
        lay = QVBoxLayout(self)
        self.list = QListWidget()
        lay.addWidget(self.list)
        row = QHBoxLayout()
        for text, fn in (("Use", self._use), ("Rename…", self._rename), ("Delete", self._delete),
                         ("Import…", self._import), ("Export…", self._export)):
            b = QPushButton(text)
            b.clicked.connect(fn)
            row.addWidget(b)
        lay.addLayout(row)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay.addWidget(close)
        self.refresh()

    def refresh(self) -> None:
        from photocull.model.registry import list_models

        self.list.clear()
        for e in list_models(self.win.paths):
            self.list.addItem(e.name + ("  (active)" if e.name == self.win.model_spec else ""))
            self.list.item(self.list.count() - 1).setData(Qt.ItemDataRole.UserRole, e.name)

    def _name(self) -> str | None:
        it = self.list.currentItem()
        return None if it is None else it.data(Qt.ItemDataRole.UserRole)

    def _error(self, exc) -> None:
        notify(self, "Models", str(exc))

    def _use(self) -> None:
        name = self._name()
        if name:
            self.win.set_model(name)
            self.refresh()

    def _rename(self) -> None:
        from photocull.model.registry import DEFAULT, rename_model

        name = self._name()
        if not name or name == DEFAULT:
            return
        new, ok = QInputDialog.getText(self, "Rename model", "New name", text=name)
        if ok and new:
            try:
                rename_model(self.win.paths, name, new)
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
            self.refresh()

    def _delete(self) -> None:
        from photocull.model.registry import DEFAULT, delete_model

        name = self._name()
        if not name or name == DEFAULT:
            return
        if QMessageBox.question(self, "Delete model", f"Move the model {name!r} to the trash?") == QMessageBox.StandardButton.Yes:
            try:
                delete_model(self.win.paths, name)
                if self.win.model_spec == name:
                    self.win.set_model("overall")
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
            self.refresh()

    def _import(self) -> None:
        from photocull.model.registry import import_model

        f, _ = QFileDialog.getOpenFileName(self, "Import a model", "", "photocull models (*.pt)")
        if f:
            try:
                import_model(self.win.paths, f)
            except Exception as exc:  # noqa: BLE001 - ModelError and I/O errors
                self._error(exc)
            self.refresh()

    def _export(self) -> None:
        import shutil

        from photocull.model.registry import personal_model_path

        name = self._name()
        if not name or name == "default":
            return
        f, _ = QFileDialog.getSaveFileName(self, "Export model", f"{name}.pt", "photocull models (*.pt)")
        if f:
            try:
                if Path(f).exists():
                    raise FileExistsError(f"{f} exists already")
                shutil.copyfile(personal_model_path(self.win.paths, name), f)
            except Exception as exc:  # noqa: BLE001
                self._error(exc)


PICK_CHOICES = (("none", "only photocull's own pick flag"), ("label:Green", "a Green colour label"),
                ("label:Yellow", "a Yellow colour label"), ("stars:3", "at least 3 stars"),
                ("stars:4", "at least 4 stars"), ("stars:5", "5 stars"))
SIMILARITY_CHOICES = (("strict", "strict: nearly identical frames only"),
                      ("normal", "normal"), ("loose", "loose: also a small zoom or reframing"))


class PreferencesDialog(QDialog):
    """The settings a photographer changes: keys, where marks are written, bursts.  Works on
    a :class:`~photocull.config.Settings`; :meth:`apply_to` writes the choices into one."""

    def __init__(self, settings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        lay = QVBoxLayout(self)

        keys = QGroupBox("Keys")
        kf = QFormLayout(keys)
        self.auto_advance = QCheckBox("Go to the next photo after a flag or stars")
        self.auto_advance.setChecked(settings.auto_advance)
        kf.addRow(self.auto_advance)
        lay.addWidget(keys)

        marks = QGroupBox("Marks (flags, stars, colour labels)")
        mf = QFormLayout(marks)
        self.sidecars = QCheckBox("Write XMP sidecars (IMG_1.xmp), read by Lightroom for RAW files, "
                                  "darktable, digiKam, Capture One")
        self.sidecars.setChecked(settings.write_sidecars)
        mf.addRow(self.sidecars)
        self.style = QComboBox()
        self.style.addItem("IMG_1.xmp (Adobe, Capture One)", "adobe")
        self.style.addItem("IMG_1.JPG.xmp (darktable)", "darktable")
        self.style.setCurrentIndex(max(0, self.style.findData(settings.sidecar_style)))
        mf.addRow("Sidecar names", self.style)
        self.embed = QCheckBox("Also write marks into JPEG, TIFF and DNG files")
        self.embed.setChecked(settings.embed_xmp)
        self.embed.setToolTip(
            "Lightroom Classic reads XMP sidecars only for camera RAW files; for JPEG, TIFF and DNG it reads "
            "the XMP inside the file. With this on, photocull writes rating, label and reject into that XMP "
            "as Lightroom, Bridge and Photo Mechanic do. This changes the original file: its metadata only, "
            "never its pixels (the image data is copied byte for byte, into a checked copy that then replaces "
            "the file). HEIC, PNG and RAW files keep their marks in the sidecar.")
        mf.addRow(self.embed)
        note = QLabel("Changes the original files (metadata only, never the pixels). Off by default.")
        note.setStyleSheet("color: gray")
        mf.addRow(note)
        self.pick_as = QComboBox()
        for value, text in PICK_CHOICES:
            self.pick_as.addItem(text, value)
        i = self.pick_as.findData(settings.pick_as)
        if i < 0:  # a value set by hand in settings.json: kept and shown
            self.pick_as.addItem(settings.pick_as, settings.pick_as)
            i = self.pick_as.count() - 1
        self.pick_as.setCurrentIndex(i)
        self.pick_as.setToolTip("Lightroom keeps its pick flag in its catalog, never in XMP: other programs "
                                "see a photocull pick as this (written into files only).")
        mf.addRow("A pick shows in other programs as", self.pick_as)
        self.embed.toggled.connect(self.pick_as.setEnabled)
        self.pick_as.setEnabled(self.embed.isChecked())
        lay.addWidget(marks)

        bursts = QGroupBox("Bursts")
        bf = QFormLayout(bursts)
        self.gap = QDoubleSpinBox()
        self.gap.setRange(0.5, 30.0)
        self.gap.setSingleStep(0.5)
        self.gap.setDecimals(1)
        self.gap.setSuffix(" s")
        self.gap.setValue(min(30.0, max(0.5, float(settings.burst_gap_seconds))))
        self.gap.setToolTip("Frames taken at most this far apart (and alike) are one burst.")
        bf.addRow("Frames at most this far apart", self.gap)
        self.similarity = QComboBox()
        for value, text in SIMILARITY_CHOICES:
            self.similarity.addItem(text, value)
        self.similarity.setCurrentIndex(max(0, self.similarity.findData(settings.burst_similarity)))
        bf.addRow("and this alike", self.similarity)
        lay.addWidget(bursts)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def apply_to(self, settings) -> set[str]:
        """Write the choices into ``settings``; returns the names of the fields that changed."""
        new = {"auto_advance": self.auto_advance.isChecked(), "write_sidecars": self.sidecars.isChecked(),
               "sidecar_style": self.style.currentData(), "embed_xmp": self.embed.isChecked(),
               "pick_as": self.pick_as.currentData(), "burst_gap_seconds": round(self.gap.value(), 1),
               "burst_similarity": self.similarity.currentData()}
        changed = {k for k, v in new.items() if getattr(settings, k) != v}
        for k in changed:
            setattr(settings, k, new[k])
        return changed
