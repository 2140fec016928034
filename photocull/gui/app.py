"""Start the GUI: ``photocull`` / ``photocull gui [FOLDER]`` / ``photocull-gui``."""
from __future__ import annotations

import sys
from pathlib import Path

from photocull.core.config import AppPaths, Settings


def run_gui(folder: str | None, paths: AppPaths, *, quit_after_ms: int | None = None,
            screenshot: str | None = None) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .mainwindow import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("photocull")
    app.setOrganizationName("photocull")
    win = MainWindow(paths, Settings.load(paths.settings_path))
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``photocull-gui`` script."""
    from photocull.cli import main as cli_main

    argv = sys.argv[1:] if argv is None else argv
    return cli_main(["gui", *argv])


if __name__ == "__main__":
    sys.exit(main())
