"""Scoring on a Ray cluster (``photocull score --engine ray``): the one module that imports ray.

The same pipeline as on one machine (:func:`photocull.scoring.iter_scores`: decode once ->
both networks and every analysis), run by Ray Data actors that each load the models once
and score a batch of paths at a time.  The driver (this process) lists the files, skips
those the catalog already holds for the same models (so a killed job resumes where it left
off), streams the results back as they are made and stores them in the catalog exactly as
:func:`photocull.scoring.iter_scores_cached` does, with the same progress (count, rate,
time left) on stderr.

The files must be visible at the same absolute path on every node (shared storage): a
sample of them is checked on every node before any work starts.  ray is imported only
when a job runs, so ``import photocull.cluster`` is cheap and works without it.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from photocull.media.exif import ExifInfo
from photocull.scoring import ANALYSES, BatchProgress, ScoreResult, iter_scores, load_analyses

if TYPE_CHECKING:
    from photocull.config import AppPaths

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'photocull[cluster]'"
VISIBLE_SAMPLE = 20  # paths checked on every node before the job starts


class ClusterError(Exception):
    """The job cannot run on the cluster (no ray, files not visible, other models there); the
    message says why and what to do."""


def require_ray():
    """The ray module, or a :class:`ClusterError` that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - ray without its data extra is not enough
    except ImportError as exc:
        raise ClusterError(f"--engine ray needs Ray Data ({exc}): {INSTALL_HINT}") from None
    return ray


# -- on the workers -------------------------------------------------------------------------

def _arr(a, dtype=np.float32) -> str:
    return "" if a is None else json.dumps([float(x) for x in np.asarray(a, dtype=dtype).ravel()])


def _unarr(s: str, dtype=np.float32):
    return None if not s else np.asarray(json.loads(s), dtype=dtype)


def _raw(a, dtype) -> str:
    return "" if a is None else base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _unraw(s: str, dtype):
    return None if not s else np.frombuffer(base64.b64decode(s), dtype=dtype).copy()


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def _unnum(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


COLUMNS = ("path", "probs", "severities", "features", "aesthetic", "aesthetic_features", "why", "error",
           "analyses", "tiny_gray", "capture_time", "exposure_bias", "camera")


def result_to_row(r: ScoreResult) -> dict:
    """A result as plain columns (strings and floats: Arrow stores them whatever is missing)."""
    g = r.tiny_gray
    return {"path": str(r.path), "probs": _arr(r.probs), "severities": _arr(r.severities),
            "features": _raw(r.features, np.float16), "aesthetic": _arr(r.aesthetic),
            "aesthetic_features": _raw(r.aesthetic_features, np.float16), "why": r.why or "",
            "error": r.error or "", "analyses": json.dumps(r.analyses_json) if r.analyses_json else "",
            "tiny_gray": "" if g is None else f"{g.shape[0]}:{_raw(g, np.uint8)}",
            "capture_time": _num(r.exif.capture_time), "exposure_bias": _num(r.exif.exposure_bias),
            "camera": r.exif.camera or ""}


def row_to_result(row: dict) -> ScoreResult:
    """A row of :func:`result_to_row` as a ScoreResult again (the analyses made again by each
    Analysis's ``load``, as from the catalog)."""
    r = ScoreResult(Path(row["path"]), _unarr(row["probs"]), _unarr(row["severities"]),
                    _unraw(row["features"], np.float16), row["error"] or None, row["why"] or "",
                    ExifInfo(_unnum(row["capture_time"]), _unnum(row["exposure_bias"]), row["camera"] or None))
    r.aesthetic, r.aesthetic_features = _unarr(row["aesthetic"]), _unraw(row["aesthetic_features"], np.float16)
    load_analyses(r, json.loads(row["analyses"]) if row["analyses"] else {})
    if row["tiny_gray"]:
        side, data = row["tiny_gray"].split(":", 1)
        r.tiny_gray = _unraw(data, np.uint8).reshape(int(side), int(side))
    return r


class ScoreActor:
    """One Ray actor: loads the models once (resolved by the same spec, under the same home, as
    on the driver, and checked to be the same files), then scores each batch of paths with
    :func:`photocull.scoring.iter_scores` on one core."""

    def __init__(self, spec: str | None, paths: "AppPaths", model_ids: tuple[str, str | None],
                 backend: str | None = None, batch_size: int = 8):
        from photocull.model.registry import resolve_scorers

        scorers = resolve_scorers(spec, paths)
        self.loaded, self.aesthetic = scorers.loaded, scorers.aesthetic
        here = (self.loaded.model_id, None if self.aesthetic is None else self.aesthetic.model_id)
        if here != tuple(model_ids):
            raise ClusterError(f"the worker on {_host()} resolved --model {spec or 'overall'} to models {here}, "
                               f"not {tuple(model_ids)} as the driver did: give a .pt file on shared storage "
                               "or the same --home on every node")
        self.backend, self.batch_size = backend, batch_size
        self.accel_dir = paths.onnx_dir

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        rows = []
        for prog in iter_scores(paths, self.loaded, aesthetic=self.aesthetic, torch_threads=1, workers=1,
                                batch_size=self.batch_size, backend=self.backend, accel_dir=self.accel_dir):
            rows += [result_to_row(r) for r in prog.results]
        return {c: [row[c] for row in rows] for c in COLUMNS}


def _host() -> str:
    import socket

    return socket.gethostname()


def _missing(paths: list[str]) -> tuple[str, list[str]]:
    """(this node's host name, the paths it cannot see)."""
    return _host(), [p for p in paths if not os.path.exists(p)]


# -- on the driver --------------------------------------------------------------------------

@dataclass
class RayJob:
    """What the driver asks of the cluster."""

    spec: str | None
    paths: "AppPaths"
    address: str | None = None   # None: start a local Ray; "auto" or "ray://HOST:10001"
    batch_size: int = 8
    backend: str | None = None
    concurrency: int | None = None  # actors (one CPU each); default: the cluster's CPUs
    num_cpus: int | None = None     # a local Ray's CPUs (default: this machine's)


def connect(job: RayJob) -> bool:
    """Connect to the cluster (or start a local Ray); True when this call started it."""
    ray = require_ray()
    logging.getLogger("ray").setLevel(logging.WARNING)
    if ray.is_initialized():
        return False
    kw = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    try:
        if job.address is None:
            ray.init(num_cpus=job.num_cpus, **kw)
        else:
            ray.init(address=job.address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {job.address}: {exc}") from None
    return True


def check_visible(paths: Sequence[str], sample: int = VISIBLE_SAMPLE) -> None:
    """Refuse (:class:`ClusterError`) unless a sample of ``paths`` exists on every alive node."""
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not paths:
        return
    picked = random.Random(0).sample(list(paths), min(sample, len(paths)))
    remote = ray.remote(num_cpus=0)(_missing)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(picked) for n in nodes]
    for node, (host, missing) in zip(nodes, ray.get(refs)):
        if missing:
            raise ClusterError(
                f"{len(missing)} of {len(picked)} sampled files are not visible on node {host} "
                f"({node.get('NodeManagerAddress')}), e.g. {missing[0]}: every node must see the photos at "
                "the same absolute path (shared storage: NFS, SMB, a mounted bucket)")


def iter_scores_ray(files: Sequence[os.PathLike | str], loaded, job: RayJob, *, catalog=None, aesthetic=None,
                    scored: Callable[[int], None] | None = None):
    """Like :func:`photocull.scoring.iter_scores_cached`, on Ray: the first yield carries what
    the catalog already holds for these models (the photos left are then all that is sent to
    the cluster); each later :class:`BatchProgress` carries results as they arrive, stored in
    the catalog first.  ``scored(n)`` is told how many photos the cluster scored."""
    ray = require_ray()
    from photocull.cull.catalog import path_key
    from photocull.scoring import stored_to_result

    t0 = time.perf_counter()
    given = {os.path.abspath(f): Path(f) for f in files}  # results carry the paths as given
    files = [Path(a) for a in given]
    total = len(files)
    todo, done = files, 0
    wanted = [a for a in ANALYSES if a.load is not None]
    if catalog is not None:
        known = catalog.lookup(files, loaded.model_id)
        known_a = catalog.lookup(files, aesthetic.model_id) if aesthetic is not None else {}
        cached, todo = [], []
        for p in files:
            k = path_key(p)
            s, sa = known.get(k), known_a.get(k)
            stored = getattr(s, "analyses", None) or {}
            if (s is not None and (aesthetic is None or sa is not None)
                    and (s.error is not None or all(a.field in stored for a in wanted))):
                r = stored_to_result(s, given[str(p)])
                if sa is not None and sa.probs is not None:
                    r.aesthetic = sa.probs
                cached.append(r)
            else:
                todo.append(p)  # new, changed, or lacking a model or an analysis: scored again whole
        if cached:
            done = len(cached)
            yield BatchProgress(cached, done, total, time.perf_counter() - t0)
    if not todo:
        return done
    started = connect(job)
    try:
        check_visible([str(p) for p in todo])
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = max(1, min(job.concurrency or cpus, cpus, math.ceil(len(todo) / job.batch_size)))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours is on stderr already
        logging.getLogger("ray").setLevel(logging.WARNING)
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and timings: in its own log files
        ds = ray.data.from_items([{"path": str(p)} for p in todo])
        ds = ds.map_batches(ScoreActor, compute=ray.data.ActorPoolStrategy(size=actors),
                            batch_size=job.batch_size, num_cpus=1,
                            fn_constructor_args=(job.spec, job.paths,
                                                 (loaded.model_id, None if aesthetic is None else aesthetic.model_id),
                                                 job.backend, job.batch_size),
                            batch_format="numpy")
        log.info("scoring %d photos on Ray with %d actors", len(todo), actors)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            rows = [{c: _plain(batch[c][i]) for c in COLUMNS} for i in range(len(batch["path"]))]
            results = [row_to_result(row) for row in rows]
            if catalog is not None:
                store(catalog, results, loaded, aesthetic)
            for r in results:
                r.path = given.get(str(r.path), r.path)
            if scored is not None:
                scored(len(results))
            done += len(results)
            yield BatchProgress(results, done, total, time.perf_counter() - t0)
    except Exception as exc:
        cause = _cluster_error_in(exc)
        if cause is not None:
            raise ClusterError(cause) from None
        raise
    finally:
        if started:
            ray.shutdown()
    return done


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def _cluster_error_in(exc: BaseException) -> str | None:
    """The message of a ClusterError raised on a worker, however Ray wrapped it."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ClusterError):
            return str(exc)
        text = str(exc)
        if "ClusterError" in text:
            line = [ln for ln in text.splitlines() if "ClusterError:" in ln]
            return line[-1].split("ClusterError:", 1)[1].strip() if line else text
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def store(catalog, results: list[ScoreResult], loaded, aesthetic=None) -> None:
    """Store fresh results in the catalog as :func:`photocull.scoring.iter_scores_cached` does."""
    catalog.store_results(results, loaded.model_id)
    if aesthetic is not None:
        catalog.store_results([r.aesthetic_result() for r in results], aesthetic.model_id)
    greys = [(r.path, r.tiny_gray) for r in results if r.tiny_gray is not None]
    if greys:
        catalog.store_tiny_grays(greys)


def run_on_ray(files: list[Path], scorers, job: RayJob, *, catalog=None, progress: bool = True,
               scored: Callable[[int], None] | None = None) -> list[ScoreResult]:
    """Score ``files`` on Ray with a progress bar on stderr; results in input order (as
    :func:`photocull.cli.common.run_scoring` returns them)."""
    from tqdm import tqdm

    by_path = {}
    bar = tqdm(total=len(files), unit="img", file=sys.stderr, disable=not progress or None, leave=False)
    try:
        for prog in iter_scores_ray(files, scorers.loaded, job, catalog=catalog, aesthetic=scorers.aesthetic,
                                    scored=scored):
            for r in prog.results:
                by_path[os.path.abspath(r.path)] = r
            bar.update(len(prog.results))
    finally:
        bar.close()
    return [by_path[os.path.abspath(f)] for f in files if os.path.abspath(f) in by_path]
