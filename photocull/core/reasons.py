"""Turn the severity head's output into a short reason a photographer can read."""
from __future__ import annotations

import numpy as np

from .nima import REASONS

THRESHOLD = 0.35  # severity (0..1) above which a family is named


def explain(severities, families, threshold: float = THRESHOLD, most: int = 2) -> str:
    """'' when nothing stands out, else the worst one or two problems, worst first."""
    if severities is None or not len(families):
        return ""
    sev = np.asarray(severities, dtype=np.float64)
    order = np.argsort(-sev)
    names = [REASONS.get(families[i], families[i]) for i in order[:most] if sev[i] >= threshold]
    return ", ".join(names)
