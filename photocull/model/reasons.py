"""Turn the severity head's output into a short reason a photographer can read."""
from __future__ import annotations

import numpy as np

from photocull.model.spec import REASONS

# Severity (0..1) above which a family is named.  0.72 was calibrated on the held-out
# references of the shipped technical model (11 of 12 clean photos get no reason; see
# resources/models/MODEL_CARD.md).  Measured on the 608 clean photos of ../shared/data/pristine
# and 1,800 degraded copies (bench/faults.py's cache): with noise at 0.48 and colour at 0.72,
# 13.8 % of clean photos got some reason (noise alone 6.3 %: fine texture read as noise); with
# noise at 0.60 and colour at 0.80, 7.4 %, while moderate sensor noise is still named in 87 %
# of copies (94 % before) and strong noise in 99 %; no other family's detection moved by more
# than a point.  `python bench/calibrate_reasons.py` prints per-family figures.
THRESHOLD = 0.72
THRESHOLDS = {"noise": 0.60, "colour": 0.80}
_CALIBRATED = object()


def explain(severities, families, threshold=_CALIBRATED, most: int = 2) -> str:
    """'' when nothing stands out, else the one or two problems that stand out most
    (by how far each is above its threshold).  ``threshold`` overrides the per-family ones."""
    if severities is None or not len(families):
        return ""
    sev = np.asarray(severities, dtype=np.float64)
    if threshold is _CALIBRATED:
        thr = np.array([THRESHOLDS.get(f, THRESHOLD) for f in families])
    else:
        thr = np.full(len(families), float(threshold))
    margin = sev - thr
    order = np.argsort(-margin)
    names = [REASONS.get(families[i], families[i]) for i in order[:most] if margin[i] >= 0]
    return ", ".join(names)


# Faults for the overall ranking (photocull.cull.overall): blurred, shaken, badly exposed, at
# thresholds chosen on one half of ../shared/data/pristine and measured on the other
# (`python bench/faults.py`): 0.7 % of clean photos flagged (1.1 % of those the model never
# trained on; the reason thresholds above flag 6.6 %); alone, a frame is caught at 61 % (blurred,
# σ 3.2), 83 % (shaken 16 px), 23 % (-2.2 EV), 43 % (+1.8 EV); in a burst, with the group
# comparison of cull.overall, 93-100 % (blurred, shaken, dark) and 69 % (bright).
FAULTS = {"blur": 0.75, "motion": 0.70, "dark": 0.90, "bright": 0.85}


def faults(severities, families) -> tuple[str, ...]:
    """The technical model's faults that demote a photo in the overall ranking (words)."""
    if severities is None or not len(families):
        return ()
    return tuple(REASONS.get(f, f) for f, s in zip(families, np.asarray(severities, dtype=np.float64))
                 if f in FAULTS and s >= FAULTS[f])
