"""Turn the severity head's output into a short reason a photographer can read."""
from __future__ import annotations

import numpy as np

from .nima import REASONS

# Severity (0..1) above which a family is named.  Calibrated on the held-out references of
# the shipped technical model: ~90% of clean photos have no family above it, while single
# defects at severity >= 0.6 mostly do (see resources/models/MODEL_CARD.md).
THRESHOLD = 0.72


def explain(severities, families, threshold: float = THRESHOLD, most: int = 2) -> str:
    """'' when nothing stands out, else the worst one or two problems, worst first."""
    if severities is None or not len(families):
        return ""
    sev = np.asarray(severities, dtype=np.float64)
    order = np.argsort(-sev)
    names = [REASONS.get(families[i], families[i]) for i in order[:most] if sev[i] >= threshold]
    return ", ".join(names)
