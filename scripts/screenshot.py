"""Take the README screenshot: the real main window on a folder, scored, first photo selected.

    QT_QPA_PLATFORM=offscreen python scripts/screenshot.py FOLDER docs/screenshot.png
"""
from __future__ import annotations

import sys
import tempfile

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from photocull.config import AppPaths, Settings
from photocull.gui.mainwindow import MainWindow


def main(folder: str, out: str) -> int:
    app = QApplication(sys.argv[:1])
    paths = AppPaths.default(tempfile.mkdtemp(prefix="photocull-shot-")).ensure()
    win = MainWindow(paths, Settings())
    win.resize(1500, 950)
    win.show()

    def select_and_shoot():
        win.grid.setCurrentIndex(win.proxy.index(0, 0))
        QTimer.singleShot(4000, shoot)

    def shoot():
        win.grab().save(out)
        win.close()
        app.quit()

    win.groupsDone.connect(lambda: QTimer.singleShot(2500, select_and_shoot))
    win.open_folder(folder)
    QTimer.singleShot(600_000, app.quit)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
