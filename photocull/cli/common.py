"""What the command modules share: collecting files, resolving the model, scoring with
the catalog, formatting numbers."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from photocull.config import AppPaths
from photocull.training.metrics import format_metric


MODEL_HELP = ('"overall" (the default: the aesthetic and technical networks, ranked by the overall rule), '
              '"aesthetic" (trained on AVA) or "technical" (also "default") alone, '
              'a personal model\'s name (beside the aesthetic network, in its place in the rule), or a .pt file')
"""The help of every ``--model`` option that scores."""


def collect(paths: list[str], recursive: bool, exclude: os.PathLike | str | None = None
            ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files named directly plus the photos in named folders; problems as (path, reason).
    Photos in the ``exclude`` folder (or under it; an export's destination) are left out
    of the folders listed."""
    from photocull.cull.export import is_within
    from photocull.media.listing import list_images
    from photocull.media.loaders import is_supported

    files, problems = [], []
    inside = (lambda f: is_within(f, exclude)) if exclude is not None else (lambda f: False)
    for p in map(Path, paths):
        if p.is_dir():
            try:
                files += [f for f in list_images(p, recursive) if not inside(f)]
            except OSError as exc:
                problems.append((p, f"cannot read folder: {exc.strerror or exc}"))
        elif p.exists() or p.is_symlink():
            files.append(p) if is_supported(p) else problems.append((p, f"unsupported file type {p.suffix or '(none)'}"))
        else:
            problems.append((p, "not found"))
    seen, uniq = set(), []
    for f in files:
        k = os.path.abspath(f)
        if k not in seen:
            seen.add(k)
            uniq.append(f)
    return uniq, problems


def collect_photos(paths: list[str], recursive: bool, exclude: os.PathLike | str | None = None):
    """:func:`collect`, then the files as the window shows them
    (:func:`photocull.media.listing.pair_raw_jpeg`): a RAW+JPEG pair is one photo, the JPEG
    (scored, shown, ranked) with the RAW as its companion; a lone RAW is a photo of its own.
    Returns (the photos as listing ``Item``s, in the files' order; the problems)."""
    from photocull.media.listing import pair_raw_jpeg

    files, problems = collect(paths, recursive, exclude)
    return pair_raw_jpeg(files), problems


def load_scorers(spec: str | None, paths: AppPaths):
    """The models a scoring command runs (:func:`photocull.model.registry.resolve_scorers`)."""
    from photocull.model.registry import resolve_scorers
    from photocull.model.spec import ModelError

    try:
        return resolve_scorers(spec, paths)
    except ModelError as exc:
        raise SystemExit(f"photocull: {exc}")


def burst_settings(paths) -> dict:
    """The burst sensitivity the user chose (Preferences; ``settings.json``), as keyword
    arguments of :func:`photocull.cull.bursts.groups_of_results`: the CLI groups as the window does."""
    from photocull.config import Settings

    s = Settings.load(paths.settings_path)
    return {"gap_seconds": s.burst_gap_seconds, "similarity": s.burst_similarity}


def judge(results, scorers, catalog=None, bursts: dict | None = None) -> list:
    """The overall score and faults of each result (:mod:`photocull.cull.overall`), with
    the burst groups found among them (kept in ``catalog`` when there is one)."""
    return judge_and_group(results, scorers, catalog, bursts)[0]


def judge_and_group(results, scorers, catalog=None, bursts: dict | None = None) -> tuple[list, list | None]:
    """:func:`judge`, and each result's :class:`~photocull.cull.bursts.ItemGroup` (None for a
    result without a score; the whole list None when one model runs alone: no rule, no groups)."""
    from photocull.cull.bursts import groups_of_results
    from photocull.cull.catalog import CatalogError
    from photocull.cull.overall import judge_results

    mode = scorers.mode
    found = None
    if mode != "single":
        scored = [r for r in results if r.probs is not None]
        try:
            grouped = groups_of_results(scored, catalog, **(bursts or {}))
        except CatalogError:
            grouped = groups_of_results(scored, **(bursts or {}))
        by_id = dict(zip(map(id, scored), grouped))
        found = [by_id.get(id(r)) for r in results]
    groups = None if found is None else [None if g is None else g.group for g in found]
    return judge_results(results, scorers.loaded.cfg.families, mode, groups), found


def fmt(x: float | None, nd: int = 3) -> str:
    """A score for a table or CSV cell: ``nd`` decimals, empty when there is none."""
    return format_metric(x, nd, missing="")


def run_scoring(files: list[Path], loaded, paths: AppPaths, *, use_cache: bool = True, batch_size: int = 8,
                progress: bool = True, backend: str | None = None, catalog=None, aesthetic=None):
    """Score with the catalog (``catalog``, else the one in ``paths``); returns ScoreResults
    in input order.  A catalog that cannot be used is said once on stderr and the photos
    are scored without it (nothing cached); so are those left when it fails midway."""
    from tqdm import tqdm

    from photocull.cull.catalog import Catalog, CatalogError
    from photocull.scoring import iter_scores, iter_scores_cached

    by_path = {}
    bar = tqdm(total=len(files), unit="img", file=sys.stderr, disable=not progress or None, leave=False)

    def status(msg: str) -> None:
        if progress:
            bar.write(msg, file=sys.stderr)

    def without_catalog(exc: CatalogError) -> None:
        print(f"photocull: {exc}; scoring without the catalog (no scores are cached)", file=sys.stderr)

    kw = dict(batch_size=batch_size, backend=backend, accel_dir=paths.onnx_dir, status=status)
    try:
        with contextlib.ExitStack() as stack:
            gen = None
            if use_cache:
                try:
                    cat = catalog if catalog is not None else stack.enter_context(Catalog(paths.catalog_path))
                    gen = iter_scores_cached(files, loaded, cat, aesthetic=aesthetic, **kw)
                    for prog in gen:
                        _collect(prog, by_path, bar)
                except CatalogError as exc:
                    without_catalog(exc)
                    gen = None  # the photos not scored yet are scored below, without it
                    if catalog is None:
                        stack.close()
            if gen is None:
                left = [f for f in files if os.path.abspath(f) not in by_path]
                for prog in iter_scores(left, loaded, aesthetic=aesthetic, **kw):
                    _collect(prog, by_path, bar)
    finally:
        bar.close()
    return [by_path[os.path.abspath(f)] for f in files if os.path.abspath(f) in by_path]


def _collect(prog, by_path: dict, bar) -> None:
    for r in prog.results:
        by_path[os.path.abspath(r.path)] = r
    bar.update(len(prog.results))


def rank_results(results):
    """(the results with a distribution, in :mod:`photocull.cull.ranking`'s order: best
    first; those without, as given)."""
    from photocull.cull import ranking

    return ranking.best_first(r for r in results if r.probs is not None), [r for r in results if r.probs is None]


def int_in(lo: int, hi: int | None = None):
    """An argparse type: a whole number from ``lo`` to ``hi`` (no upper bound: None)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"must be at least {lo}, not {n}" if hi is None
                                             else f"must be from {lo} to {hi}, not {n}")
        return n
    return parse


positive_int = int_in(1)
