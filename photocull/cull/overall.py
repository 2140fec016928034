"""The overall score the grid sorts by: faults first, then taste.

photocull scores every photo with two NIMA networks: an *aesthetic* one (idealo's NIMA
trained on AVA: composition, light, subject, as DPChallenge voters rated them) and a
*technical* one (focus, shake, exposure, noise...).  They answer different questions, so
the overall score is not a blend of the two.  The rule (:func:`overall_scores`):

1. **Taste decides among sound frames.**  A photo's taste score is the aesthetic model's
   mean, or a personal model's when one is chosen.
2. **Faults** are what the technical model reports *and* has been measured to report on at
   most 10 % of clean photos (:data:`photocull.model.reasons.FAULTS`: blurred, shaken, too
   dark, too bright; ``bench/faults.py`` measures them; too dark / too bright only when the
   pixels agree: :mod:`photocull.analysis.exposure`), plus, inside a burst group (the
   same scene), a technical mean at least :data:`GROUP_DROP` below the group's best: the
   same picture, visibly worse made (a frame taken at the same moment as a better one is
   what a photographer compares it with).
3. **A faulted frame is demoted**: ``taste - FAULT_PENALTY``; and inside its burst group it is
   placed just below the lowest sound frame, so it never ranks above a sound frame of the
   same scene, whatever its taste score.  A faulted frame with no sound frame beside it
   keeps the penalty only.

The faults that pulled a photo down are returned with its score, in words, so the grid,
the detail panel and ``photocull score``'s ``why`` can name them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from photocull.model.losses import mean_of
from photocull.model.reasons import faults as technical_faults
from photocull.model.spec import REASONS

# A fault costs this much on the 1-10 scale.  AVA means cluster between 4 and 7 (the
# aesthetic model's predictions spread less: ~0.4 std over a shoot), so a faulted frame
# drops to the bottom of most shoots without leaving the scale.
FAULT_PENALTY = 1.0
# Inside a burst group, a technical mean this far below the group's best is a fault
# (bench/faults.py: how often clean burst frames fall this far below their best).
GROUP_DROP = 0.75
# How far below the lowest sound frame of its group a faulted frame is put.
STEP = 0.01


@dataclass(frozen=True)
class Overall:
    """One photo's overall score (None when it has no taste score) and the faults that
    pulled it down (words; empty when it is sound)."""

    score: float | None
    faults: tuple[str, ...] = ()

    @property
    def demoted(self) -> bool:
        return bool(self.faults)


def _number(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# how a frame compares with the best of its burst, by the family whose severity rose most
# (bench/faults.py: the right family 71-100 % of the time)
COMPARED = {"blur": "softer", "motion": "shakier", "noise": "noisier", "dark": "darker", "bright": "brighter",
            "compression": "more compressed", "contrast": "flatter", "lowres": "less detailed",
            "colour": "colours further off"}


def group_faults(technical: Sequence[float | None], groups: Sequence[int | None],
                 severities: Sequence | None = None, families: Sequence[str] = ()) -> list[str]:
    """Per photo: '' or the words for "visibly worse made than the best frame of its burst"
    ("shakier than the best of its burst (T 7.1 vs 8.8)"), naming the technical model's
    family that rose most over that frame when ``severities`` are given."""
    best: dict[int, tuple[float, int]] = {}
    for i, (t, g) in enumerate(zip(technical, groups)):
        t = _number(t)
        if g is not None and t is not None and (g not in best or t > best[g][0]):
            best[g] = (t, i)
    out = []
    for i, (t, g) in enumerate(zip(technical, groups)):
        t = _number(t)
        if g is None or t is None or best[g][0] - t < GROUP_DROP:
            out.append("")
            continue
        word = "technically weaker"
        j = best[g][1]
        if severities is not None and severities[i] is not None and severities[j] is not None and len(families):
            rise = [float(a) - float(b) for a, b in zip(severities[i], severities[j])]
            k = max(range(len(rise)), key=rise.__getitem__)
            if rise[k] > 0 and k < len(families):
                word = COMPARED.get(families[k], word)
        out.append(f"{word} than the best of its burst (T {t:.1f} vs {best[g][0]:.1f})")
    return out


def overall_scores(taste: Sequence[float | None], faults: Sequence[Sequence[str]],
                   technical: Sequence[float | None] | None = None,
                   groups: Sequence[int | None] | None = None,
                   severities: Sequence | None = None, families: Sequence[str] = (),
                   burst_faults: Sequence[Sequence[str]] | None = None,
                   faces: Sequence | None = None) -> list[Overall]:
    """The rule above, for one shoot.  Per photo, in the same order: ``taste`` (the
    aesthetic or personal mean; None: not scored), ``faults`` (the technical model's, in
    words: :func:`photocull.model.reasons.faults`), ``technical`` (its mean; None
    when not known) and ``groups`` (the burst group's number; None when alone or not known
    yet); ``severities`` and ``families``, when given, name how a burst frame is worse
    than the group's best.  ``burst_faults`` are faults that count only against a sound frame
    of the same burst (eyes closed: a lone sleeping-baby shot keeps its place): no penalty,
    but placed below the group's sound frames.  ``faces`` (face reports, or None each): the
    burst faults of :func:`face_faults`, the frames with another fault not setting the sharpness
    the others are compared with (noise reads as fine detail)."""
    n = len(taste)
    technical = list(technical) if technical is not None else [None] * n
    groups = list(groups) if groups is not None else [None] * n
    if not len(faults) == len(technical) == len(groups) == n:
        raise ValueError("taste, faults, technical and groups must have one entry per photo")
    weaker = group_faults(technical, groups, severities, families)
    found = [tuple(f) + ((w,) if w else ()) for f, w in zip(faults, weaker)]
    if faces is not None:
        burst_faults = face_faults(faces, groups, [bool(f) for f in found])
    in_burst = [tuple(b) if g is not None else () for b, g in
                zip(burst_faults if burst_faults is not None else [()] * n, groups)]
    score = [None if _number(t) is None else (_number(t) - FAULT_PENALTY if f else _number(t))
             for t, f in zip(taste, found)]
    lowest_sound: dict[int, float] = {}
    for s, f, b, g in zip(score, found, in_burst, groups):
        if s is not None and g is not None and not f and not b:
            lowest_sound[g] = min(lowest_sound.get(g, s), s)
    out = []
    for s, f, b, g in zip(score, found, in_burst, groups):
        if s is not None and (f or b) and g in lowest_sound:
            s = min(s, lowest_sound[g] - STEP)
        out.append(Overall(s, f + b))
    return out


def focus_faults(focus) -> tuple[str, ...]:
    """The focus analysis's fault (missed focus, camera shake, subject soft and background
    sharp: judged at half the file's resolution at least; bench/focus.py: no sharp original
    and 1 of 608 clean web photos given one), or ()."""
    return (focus.reason(),) if focus is not None and focus.is_fault and focus.reason() else ()


# Inside a burst, a frame whose softest face is below this share of the sharpest such face of
# the group (frames with every face open) has a soft face: the best frame has them sharp.
FACE_SOFTER = 0.7


def face_faults(faces: Sequence, groups: Sequence[int | None],
                faulted: Sequence[bool] | None = None) -> list[tuple[str, ...]]:
    """Per photo, the faces' faults inside its burst group (issue 4/7): a frame where fewer
    faces have their eyes open than the most faces found in any frame of the group (a face
    that is missing counts as not open); among the frames where every face is open, one whose
    softest face is clearly softer than the group's best (:data:`FACE_SOFTER`).  ``faces``:
    face reports (``count``, ``eyes_open_count``, ``sharpness``: the softest face's,
    ``reason()``) or None (not analysed).  ``faulted``: frames with another fault, which do not
    set the sharpness the others are compared with (a noisy copy's faces read as sharper)."""
    most: dict[int, int] = {}
    for f, g in zip(faces, groups):
        if f is not None and g is not None:
            most[g] = max(most.get(g, 0), int(f.count))
    sharpest: dict[int, float] = {}
    for f, g, bad in zip(faces, groups, faulted if faulted is not None else [False] * len(faces)):
        if (f is not None and g is not None and not bad and most.get(g) and int(f.eyes_open_count) >= most[g]
                and getattr(f, "sharpness", None) is not None):
            sharpest[g] = max(sharpest.get(g, 0.0), float(f.sharpness))
    out = []
    for f, g in zip(faces, groups):
        if f is None or g is None or not most.get(g):
            out.append(())
        elif int(f.eyes_open_count) >= most[g]:
            sharp = getattr(f, "sharpness", None)
            soft = sharp is not None and sharpest.get(g, 0.0) > 0 and float(sharp) < FACE_SOFTER * sharpest[g]
            out.append(("face softer than in the best frame of its burst",) if soft else ())
        elif f.eyes_closed_count:
            out.append((f.reason().split(", ")[0],))  # "eyes closed", "1 of 3 people blinking"
        else:
            missing = most[g] - int(f.eyes_open_count)
            out.append(("face not found or eyes not seen" if most[g] == 1 else
                        f"{missing} of {most[g]} faces not found or eyes not seen",))
    return out


def own_faults(r, families: Sequence[str]) -> tuple:
    """The faults a photo has on its own (before its burst is looked at): the technical
    model's, where the pixels agree (``r.exposure``), and missed focus or shake (``r.focus``).
    ``r``: a ``ScoreResult`` or the window's item."""
    focus = getattr(r, "focus", None)
    return technical_faults(r.severities, families, (getattr(r, "exposure", None), focus)) + focus_faults(focus)


def judge_results(results: Sequence, families: Sequence[str], mode: str,
                  groups: Sequence[int | None] | None = None) -> list[Overall]:
    """:func:`overall_scores` for scoring results (anything with ``probs``, ``severities``
    and ``aesthetic``: ``ScoreResult``, the window's items).  ``mode`` as
    :attr:`photocull.model.registry.Scorers.mode`: "overall" (taste: the aesthetic mean;
    technical: the first model's), "personal" (taste: the personal model's mean; its
    severities still name the faults) or "single" (one model alone: its mean, no rule)."""
    mean = mean_of
    if mode == "single":
        return [Overall(mean(r.probs)) for r in results]
    if mode not in ("overall", "personal"):
        raise ValueError(f"unknown scoring mode {mode!r}")
    taste = [mean(r.aesthetic if mode == "overall" else r.probs) for r in results]
    technical = [mean(r.probs) for r in results] if mode == "overall" else None
    found = [own_faults(r, families) for r in results]
    groups = list(groups) if groups is not None else [None] * len(results)
    return overall_scores(taste, found, technical, groups, [r.severities for r in results], families,
                          faces=[getattr(r, "faces", None) for r in results])


# What the focus analysis says at full resolution stands for the technical model's guess at
# the same from its 224 px view: where it says one, the other is not said too.
FOCUS_SAYS_FOR = {"camera shake": "motion blur / camera shake",
                  "missed focus / soft at 100 %": "blurry / out of focus"}


def reason_words(why: str | None, faces=None, focus=None, faults: Sequence[str] = ()) -> str:
    """Every reason of a photo, once, as the grid, the detail panel and ``photocull
    score``'s ``why`` say them: the technical model's, the faces', the focus analysis's, then
    the faults the overall rule found (a burst comparison, say); the model's "motion blur" or
    "blurry" is left out where the focus analysis names the shake or missed focus itself."""
    said = (why or "").split(", ")
    if faces is not None:
        said += faces.reason().split(", ")
    if focus is not None:
        said.append(focus.reason())
    words = [w for w in dict.fromkeys([*said, *faults]) if w]
    covered = {FOCUS_SAYS_FOR[w] for w in words if w in FOCUS_SAYS_FOR}
    if focus is not None:  # the model's words the focus report does not allow (a reason stored before that rule)
        covered |= {w for family, w in REASONS.items() if not focus.supports(family)}
    return ", ".join(w for w in words if w not in covered)
