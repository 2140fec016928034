"""Qt-free core of photocull. Nothing here imports PySide6."""
