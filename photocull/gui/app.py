"""Start the GUI.  The entry points (``photocull``, ``photocull gui [FOLDER]``,
``photocull-gui``) live in :mod:`photocull.cli`, which sets up paths and logging and calls
:func:`run_gui`."""
from __future__ import annotations

import logging
import os
import sys

from photocull.config import AppPaths, Settings

ENV_QUIT_AFTER_MS = "PHOTOCULL_QUIT_AFTER_MS"  # smoke tests of the bundle: quit after N ms
ENV_SCREENSHOT = "PHOTOCULL_SCREENSHOT"  # ... and save the window to this PNG first


def _env_quit_after_ms() -> int | None:
    raw = os.environ.get(ENV_QUIT_AFTER_MS, "").strip()
    if not raw:
        return None
    try:
        return max(0, int(raw))
    except ValueError:
        logging.getLogger(__name__).warning("ignoring %s=%r: not a whole number", ENV_QUIT_AFTER_MS, raw)
        return None


def run_gui(folder: str | None, paths: AppPaths, *, quit_after_ms: int | None = None,
            screenshot: str | None = None) -> int:
    """Show the main window; ``quit_after_ms``/``screenshot`` default to the env vars above."""
    if quit_after_ms is None:
        quit_after_ms = _env_quit_after_ms()
    if screenshot is None:
        screenshot = os.environ.get(ENV_SCREENSHOT) or None
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .mainwindow import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("photocull")
    app.setOrganizationName("photocull")
    from photocull.cull.catalog import CatalogError

    try:
        win = MainWindow(paths, Settings.load(paths.settings_path))
    except CatalogError as exc:  # nothing can be remembered: say why instead of a traceback
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "photocull", f"photocull cannot open its catalog.\n\n{exc}")
        return 2
    win.show()
    if folder:
        QTimer.singleShot(0, lambda: win.open_folder(folder))
    if quit_after_ms is not None:
        def done():
            if screenshot:
                win.grab().save(screenshot)
            win.close()
            app.quit()
        QTimer.singleShot(quit_after_ms, done)
    return app.exec()
