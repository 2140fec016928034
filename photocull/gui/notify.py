"""Messages to the user that never block the event loop (and never pop up offscreen in tests)."""
from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger(__name__)


def notify(parent: QWidget, title: str, msg: str, warning: bool = True) -> QMessageBox | None:
    """Window-modal message box, opened (not exec'd).  Logged instead when ``parent`` is hidden."""
    log.log(logging.WARNING if warning else logging.INFO, "%s: %s", title, msg)
    if parent is None or not parent.isVisible():
        return None
    icon = QMessageBox.Icon.Warning if warning else QMessageBox.Icon.Information
    box = QMessageBox(icon, title, msg, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
