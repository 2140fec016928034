"""Scoring on a Ray cluster (``photocull score --engine ray``): the one module that imports ray.

The same pipeline as on one machine (:func:`photocull.scoring.iter_scores`: decode once ->
both networks and every analysis), run by Ray Data actors that each load the models and
make their runners once, then score a batch of paths at a time with them.  The driver (this
process) runs :func:`photocull.scoring.iter_scores_cached` with the cluster as its scorer:
what the catalog holds for the same models is answered at once (so a killed job resumes
where it left off), a photo that lacks only the aesthetic score or an analysis runs only
that, and the results are stored as they stream back, with the same progress (count, rate,
time left) on stderr.

Actors are sized from the cluster (:func:`plan_actors`): one per GPU on GPU nodes, else
a few CPUs each.  An actor whose process dies (a node lost, a worker killed) is restarted
by Ray and its batch retried (:data:`TASK_RETRIES` times).

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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from photocull.media.exif import ExifInfo
from photocull.model.devices import thread_plan
from photocull.scoring import BatchProgress, ScoreResult, iter_scores, iter_scores_cached, load_analyses

if TYPE_CHECKING:
    from photocull.config import AppPaths

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'photocull[cluster]'"
VISIBLE_SAMPLE = 20  # paths checked on every node before the job starts
CPUS_PER_ACTOR = 4   # a CPU actor's cores (decode threads + the model's), when the nodes have them
# a batch is tried again this many times when its actor dies (the actor itself is restarted
# however often: a long job outlives lost nodes); a photo that kills every worker it meets
# then fails the job instead of killing workers for ever
TASK_RETRIES = 3
# tests: an actor's process exits (os._exit) on the first batch holding this photo (made
# once: a flag file beside the photo says it was done); forwarded to the actors
KILL_ENV = "PHOTOCULL_TEST_KILL_ACTOR"


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


@dataclass(frozen=True)
class ActorPlan:
    """How the scoring actors are sized (:func:`plan_actors`)."""

    actors: int
    num_cpus: float        # Ray resources each actor holds
    num_gpus: float
    device: str            # where its models run: "cuda" or "cpu"
    decode_threads: int    # its decode threads (iter_scores' ``workers``)
    model_threads: int | None  # its model's threads on a CPU (None on a GPU)

    def __str__(self) -> str:
        gpu = f", {self.num_gpus:g} GPU" if self.num_gpus else ""
        return (f"{self.actors} actor{'s' if self.actors != 1 else ''} ({self.num_cpus:g} CPU{gpu} each, "
                f"models on {self.device})")


def plan_actors(nodes: Sequence[dict], n_photos: int, batch_size: int, *, actors: int | None = None,
                actor_cpus: float | None = None, actor_gpus: float | None = None) -> ActorPlan:
    """The scoring actors for a cluster whose alive nodes have these resources (each node's
    ``{"CPU": 16, "GPU": 2, ...}``, as ``ray.nodes()`` gives them; per node, since an actor
    must fit on one).

    With GPUs (and ``actor_gpus`` not 0): one actor per GPU (``actor_gpus`` each, default 1),
    the models on CUDA, each with its node's CPUs shared among its GPUs for decoding.
    Otherwise CPU actors of ``actor_cpus`` cores (default :data:`CPUS_PER_ACTOR`, or the
    cluster's CPUs shared among ``actors`` when that is given), as many as the nodes hold, the
    cores split between decoding and the model as on one machine (:func:`thread_plan`).
    ``actors`` caps the count; so does the work (no more actors than batches)."""
    nodes = [n for n in nodes if n.get("CPU", 0) > 0 or n.get("GPU", 0) > 0]
    if not nodes:
        raise ClusterError("the Ray cluster has no node with CPUs or GPUs")
    batches = max(1, math.ceil(n_photos / batch_size))
    per_gpu = 1.0 if actor_gpus is None else float(actor_gpus)
    gpu_nodes = [n for n in nodes if per_gpu > 0 and n.get("GPU", 0) >= per_gpu]
    if actor_gpus and not gpu_nodes:
        raise ClusterError(f"--actor-gpus {actor_gpus:g}: no node of the Ray cluster has that many GPUs")
    if gpu_nodes:
        slots = [int(n["GPU"] // per_gpu) for n in gpu_nodes]
        share = min(n.get("CPU", 0) / k for n, k in zip(gpu_nodes, slots))
        cpus = float(actor_cpus) if actor_cpus else (float(math.floor(share)) if share >= 1 else share)
        if cpus > max(n.get("CPU", 0) for n in gpu_nodes):
            raise ClusterError(f"--actor-cpus {cpus:g}: no GPU node of the Ray cluster has that many CPUs")
        decode, threads = thread_plan("cuda", cores=max(1, int(cpus)))
        return ActorPlan(max(1, min(sum(slots), actors or sum(slots), batches)), cpus, per_gpu, "cuda",
                         decode, threads)
    cpu_nodes = [n.get("CPU", 0) for n in nodes if n.get("CPU", 0) >= 1]
    if not cpu_nodes:
        raise ClusterError("the Ray cluster has no node with a whole CPU")
    if actor_cpus:
        cpus = float(actor_cpus)
        if cpus > max(cpu_nodes):
            raise ClusterError(f"--actor-cpus {cpus:g}: no node of the Ray cluster has that many CPUs "
                               f"(the biggest has {max(cpu_nodes):g})")
    elif actors:
        cpus = float(max(1, min(sum(cpu_nodes) // actors, min(cpu_nodes))))
    else:
        cpus = float(min(CPUS_PER_ACTOR, math.floor(min(cpu_nodes))))
    slots = sum(int(c // cpus) for c in cpu_nodes)
    decode, threads = thread_plan("cpu", cores=max(1, int(cpus)))
    return ActorPlan(max(1, min(slots, actors or slots, batches)), cpus, 0.0, "cpu", decode,
                     threads or max(1, int(cpus) // 3))


class ScoreActor:
    """One Ray actor: loads the models once (resolved by the same spec, under the same home, as
    on the driver, and checked to be the same files) and makes their runners once, on its
    device; then scores each batch of paths with :func:`photocull.scoring.iter_scores`,
    running for each photo only what the driver says it lacks (the batch's ``need_loaded`` /
    ``need_aesthetic``)."""

    def __init__(self, spec: str | None, paths: "AppPaths", model_ids: tuple[str, str | None],
                 backend: str | None = None, batch_size: int = 8, device: str = "cpu",
                 decode_threads: int = 1, model_threads: int | None = 1):
        from photocull.model.devices import pin_memory_for
        from photocull.model.registry import resolve_scorers
        from photocull.model.runtime import make_runner

        scorers = resolve_scorers(spec, paths)
        self.loaded, self.aesthetic = scorers.loaded, scorers.aesthetic
        here = (self.loaded.model_id, None if self.aesthetic is None else self.aesthetic.model_id)
        if here != tuple(model_ids):
            raise ClusterError(f"the worker on {_host()} resolved --model {spec or 'overall'} to models {here}, "
                               f"not {tuple(model_ids)} as the driver did: give a .pt file on shared storage "
                               "or the same --home on every node")
        self.batch_size, self.device, self.workers = batch_size, device, decode_threads
        self.pin = pin_memory_for(device)
        # n_photos=0: an ONNX export already made (photocull prepare, under a shared --home) is
        # used, but "auto" never makes one on every actor at once
        self.runners = [make_runner(m, device, batch_size=batch_size, threads=model_threads,
                                    cache_dir=paths.onnx_dir, n_photos=0, backend=backend, pin=self.pin)
                        for m in (self.loaded, self.aesthetic) if m is not None]

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        _die_if_asked(paths)
        need = {Path(p): (bool(t), bool(a)) for p, t, a in zip(paths, batch["need_loaded"], batch["need_aesthetic"])}
        rows = []
        for prog in iter_scores(paths, self.loaded, aesthetic=self.aesthetic, need=need, runners=self.runners,
                                workers=self.workers, batch_size=self.batch_size, device=self.device,
                                pin_memory=self.pin):
            rows += [result_to_row(r) for r in prog.results]
        return {c: [row[c] for row in rows] for c in COLUMNS}


def _die_if_asked(paths: list[str]) -> None:
    """The test hook of :data:`KILL_ENV`: this process exits as a lost node's would."""
    marked = os.environ.get(KILL_ENV)
    if marked and marked in paths:
        flag = Path(marked + ".killed")
        if not flag.exists():
            flag.touch()
            log.warning("%s: exiting on %s", KILL_ENV, marked)
            os._exit(1)


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
    concurrency: int | None = None  # actors at most (default: as many as the cluster holds, plan_actors)
    num_cpus: int | None = None     # a local Ray's CPUs (default: this machine's)
    actor_cpus: float | None = None  # each actor's CPUs (default: plan_actors)
    actor_gpus: float | None = None  # each actor's GPUs (default: 1 on GPU nodes; 0: CPU actors only)
    status: Callable[[str], None] | None = None  # told the actors planned, in words


def connect(job: RayJob) -> bool:
    """Connect to the cluster (or start a local Ray); True when this call started it."""
    ray = require_ray()
    # (Ray's start-up notices, e.g. on token authentication, are not the user's business:
    # photocull says what it does and what failed)
    logging.getLogger("ray").setLevel(logging.ERROR)
    if ray.is_initialized():
        return False
    kw = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=True)
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
    """:func:`photocull.scoring.iter_scores_cached` (with a catalog; else the scoring alone),
    scored on Ray: the first yield carries what the catalog already holds for these models
    (the photos left, and only what each of them lacks, are then all that is sent to the
    cluster); each later :class:`BatchProgress` carries results as they arrive, stored in the
    catalog first.  ``scored(n)`` is told how many photos the cluster scored."""
    require_ray()

    def on_ray(paths, loaded_, *, aesthetic=None, need=None):
        return (yield from _score_on_ray(paths, loaded_, job, aesthetic=aesthetic, need=need, scored=scored))

    if catalog is None:
        return (yield from on_ray(files, loaded, aesthetic=aesthetic))
    return (yield from iter_scores_cached(files, loaded, catalog, aesthetic=aesthetic, score=on_ray))


def _score_on_ray(files: Sequence[os.PathLike | str], loaded, job: RayJob, *, aesthetic=None,
                  need=None, scored: Callable[[int], None] | None = None):
    """The scorer :func:`iter_scores_ray` gives :func:`photocull.scoring.iter_scores_cached`:
    called as :func:`photocull.scoring.iter_scores` is (``need``: path -> which models a photo
    lacks), it scores ``files`` on Ray Data actors and yields the results as they arrive."""
    ray = require_ray()

    t0 = time.perf_counter()
    given = {os.path.abspath(f): Path(f) for f in files}  # results carry the paths as given
    total, done = len(given), 0
    if not given:
        return 0
    need = need or {}
    started = connect(job)
    try:
        check_visible(list(given))
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        plan = plan_actors(nodes, total, job.batch_size, actors=job.concurrency, actor_cpus=job.actor_cpus,
                           actor_gpus=job.actor_gpus)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours is on stderr already
        logging.getLogger("ray").setLevel(logging.WARNING)
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and timings: in its own log files
        rows = []
        for a, p in given.items():
            t, ae = need.get(p, (True, True))
            rows.append({"path": a, "need_loaded": bool(t), "need_aesthetic": bool(ae)})
        ds = ray.data.from_items(rows)
        extra = {}
        if os.environ.get(KILL_ENV):
            extra["runtime_env"] = {"env_vars": {KILL_ENV: os.environ[KILL_ENV]}}
        ds = _with_retries(ds.map_batches, ScoreActor, compute=ray.data.ActorPoolStrategy(size=plan.actors),
                           batch_size=job.batch_size, num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None,
                           fn_constructor_args=(job.spec, job.paths,
                                                (loaded.model_id, None if aesthetic is None else aesthetic.model_id),
                                                job.backend, job.batch_size, plan.device, plan.decode_threads,
                                                plan.model_threads),
                           batch_format="numpy", **extra)
        log.info("scoring %d photos on Ray with %s", total, plan)
        if job.status is not None:
            job.status(f"{total} photos to score with {plan}")
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            results = [row_to_result({c: _plain(batch[c][i]) for c in COLUMNS}) for i in range(len(batch["path"]))]
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
        if isinstance(exc, ray.exceptions.RayActorError):
            raise ClusterError(f"a scoring actor died on the same batch {TASK_RETRIES + 1} times ({exc}): what was "
                               "scored is kept in the catalog and a new run goes on from there; a photo that "
                               "kills its worker every time is named in the Ray worker logs: leave it out") from None
        raise
    finally:
        if started:
            ray.shutdown()
    return done


def _with_retries(map_batches, *args, **kw):
    """``map_batches`` with the actors restarted however often and a batch retried
    :data:`TASK_RETRIES` times.  Ray Data 2.60 takes these as ``ray_remote_args`` and warns
    that it will stop taking them (2.64); one that no longer does falls back to its own
    defaults (actors restarted and batches retried, without a bound)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        try:
            return map_batches(*args, max_restarts=-1, max_task_retries=TASK_RETRIES, **kw)
        except TypeError as exc:
            if "max_restarts" not in str(exc) and "max_task_retries" not in str(exc):
                raise
            log.warning("this Ray Data sets actor restarts and retries itself (%s)", exc)
            return map_batches(*args, **kw)


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
