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


# The pixels must agree before "too dark", "too bright" and "noisy" are said (issue 5/7 item 4):
# the severity head, trained on clean photos darkened, brightened and noised on purpose, reads
# night skies, the moon, snow and fine texture as such faults.  ``evidence`` is what
# photocull.analysis.exposure found in the photo (anything with ``supports(family) -> bool``);
# None (a photo scored before that analysis existed) names the head's families as before.
# `python bench/exposure.py` (rule chosen on half A, figures on half B and the camera files): on
# the 608 clean photos of ../shared/data/pristine an exposure or noise reason 4.6 % -> 1.3 %
# (half B 2.0 -> 1.3 %; 101 camera files 11.9 -> 3.0 %; no night sky, moon or snow scene keeps
# one), any reason 7.4 -> 4.3 %; on degraded copies "too dark" is still named as often (33 % at
# -1.4 EV, 79 % at -2.2 EV), "noisy" too (87 %, 99 %), "too bright" 33 -> 30 % (+1.2 EV) and
# 63 -> 57 % (+1.8 EV).


def supported(families, evidence=None) -> np.ndarray:
    """Per family, whether the pixels let it be named (all True without ``evidence``).
    ``evidence``: one report with ``supports(family)`` or several (a tuple; None entries are
    photos without that analysis): a family is named only when every report allows it (the
    exposure report for dark/bright/noise, the focus report for blur)."""
    reports = [e for e in (evidence if isinstance(evidence, (tuple, list)) else (evidence,)) if e is not None]
    return np.array([all(bool(e.supports(f)) for e in reports) for f in families], bool)


def explain(severities, families, threshold=_CALIBRATED, most: int = 2, evidence=None) -> str:
    """'' when nothing stands out, else the one or two problems that stand out most
    (by how far each is above its threshold).  ``threshold`` overrides the per-family ones;
    ``evidence`` (the exposure and focus reports: :func:`supported`) silences the families
    the pixels disagree with."""
    if severities is None or not len(families):
        return ""
    sev = np.asarray(severities, dtype=np.float64)
    if threshold is _CALIBRATED:
        thr = np.array([THRESHOLDS.get(f, THRESHOLD) for f in families])
    else:
        thr = np.full(len(families), float(threshold))
    margin = np.where(supported(families, evidence), sev - thr, -np.inf)
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


def faults(severities, families, evidence=None) -> tuple[str, ...]:
    """The technical model's faults that demote a photo in the overall ranking (words);
    ``evidence`` as in :func:`explain` (too dark / too bright only when the pixels agree,
    blurry only when focus was not judged at full resolution)."""
    if severities is None or not len(families):
        return ()
    ok = supported(families, evidence)
    return tuple(REASONS.get(f, f) for f, s, k in zip(families, np.asarray(severities, dtype=np.float64), ok)
                 if f in FAULTS and s >= FAULTS[f] and k)
