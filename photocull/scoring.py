"""The one scoring pipeline: decode each photo once -> every analysis -> one result type.

``iter_scores`` is a cancellable generator that yields once per batch.  Each photo is
decoded once (:func:`decode`), in a thread pool; what is decoded feeds the model (the whole
frame at its input size) and every :class:`Analysis` (the grid's thumbnail today; faces,
focus... later), each of which fills one field of :class:`ScoreResult`.  Adding an analysis
is one function, one ``Analysis`` entry and one field, nothing else: an analysis that needs
a larger view of the photo than the model's asks for it (``Analysis.side``) and the one
decode is made that large (a 1/2 or 1/4 DCT-scaled JPEG decode), the model's input then
being taken from it.

Decoding runs in a thread pool ahead of the model (Pillow releases the GIL while it
decodes), so the model never waits for the disk when it need not.  JPEGs are decoded
at reduced size (DCT scaling, ``draft``): a 6000x4000 file comes out at 750x500, which
is all a 224 px model needs; the same decode gives the grid its 256 px thumbnail.  A model
resized with NEAREST (the aesthetic model) scores the sharpness of its view, so its input is
made from a larger decode (:data:`NEAREST_DECODE_SIDE`), not from the 448 px one.  On
a CPU the cores are shared between decoding and torch (:func:`thread_plan`): with two
cores, two decode threads and one torch thread keep both busy without torch's
OpenMP threads spinning against the decoders.  The caller passes
a ``cancelled()`` callable; it is checked between batches, so Cancel takes effect
within one batch.  Nothing here knows about Qt: the GUI wraps this generator in a
QThread worker, the CLI drives it directly.  Nor does it import torch unless the
model runs in PyTorch: a model already exported for ONNX Runtime scores without it.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generator, Iterable, Sequence

import numpy as np

from photocull.media.exif import ExifInfo, read_any_exif
from photocull.media.loaders import ImageError, open_image, shrink
from photocull.model.devices import device_name, pin_memory_for, thread_plan
from photocull.model.losses import DistributionStats
from photocull.model.reasons import explain
from photocull.model.spec import to_model_input

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from photocull.model.nima import LoadedModel

log = logging.getLogger(__name__)

DECODE_SIDE = 448  # decode (draft) at least this big, then resize to the model input
# A model resized with NEAREST (idealo's NIMA: its config's ``resize``) picks single pixels of
# its view, so the view's own sharpness is what it scores: from the 448 px view a 640 px AVA
# photo scores up to 0.46 lower than idealo's published score.  Its view is a decode this big:
# web-size photos (up to 896 px) are the file's own pixels, as idealo scored them.
NEAREST_DECODE_SIDE = 2 * DECODE_SIDE
# a second model lane joins only after this long: the first moments belong to whatever
# started the job (the GUI's first screen of thumbnails came 0.3 s later with it at once)
SECOND_LANE_AFTER_S = 0.6
THUMB_SIDE = 256


@dataclass
class ScoreResult(DistributionStats):
    path: Path
    probs: np.ndarray | None = None
    severities: np.ndarray | None = None
    features: np.ndarray | None = None
    error: str | None = None
    why: str = ""
    exif: ExifInfo = field(default_factory=ExifInfo)
    # -- one field per analysis (see ANALYSES) --
    thumbnail: object | None = None  # PIL image, ``THUMB_SIDE`` px, when asked for

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchProgress:
    results: list[ScoreResult]
    done: int
    total: int
    elapsed: float
    decode_seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        r = self.rate
        return (self.total - self.done) / r if r > 0 else float("nan")


@dataclass(frozen=True)
class Analysis:
    """One analysis of the decoded photo.  ``run(image)`` gets the upright RGB decode (long
    side at least ``side`` px when the file has that many; 0: the model's decode,
    ``DECODE_SIDE``) and returns the value stored in the :class:`ScoreResult` field named
    ``field``.  It runs in a decode thread; an exception costs only its own field (None)."""

    field: str
    run: Callable[["Image.Image"], object]
    side: int = 0


def _thumbnail(im: "Image.Image") -> "Image.Image":
    thumb = im.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return thumb


THUMBNAIL = Analysis("thumbnail", _thumbnail)
ANALYSES: tuple[Analysis, ...] = ()  # run for every photo; THUMBNAIL is asked for by the GUI


@dataclass
class Decoded:
    """A photo decoded once: the model's input, what the analyses found, its EXIF."""

    path: Path
    array: np.ndarray | None  # the model's input (uint8, input_size square)
    error: str | None
    exif: ExifInfo
    found: dict[str, object]  # Analysis.field -> value
    seconds: float


def model_side(cfg=None) -> int:
    """The long side of the view a model's input is made from: ``DECODE_SIDE``, or
    ``NEAREST_DECODE_SIDE`` for a model resized with NEAREST."""
    return NEAREST_DECODE_SIDE if getattr(cfg, "resize", "bilinear") == "nearest" else DECODE_SIDE


def decode_side(analyses: Sequence[Analysis], cfg=None) -> int:
    """How big the one decode must be for the model (``cfg``; None: a bilinear one) and these analyses."""
    return max([model_side(cfg), *(a.side for a in analyses)])


def decode(path: Path, cfg, analyses: Sequence[Analysis] = ()) -> Decoded:
    """Decode ``path`` once; make the model's input and run ``analyses`` on the decode."""
    t0 = time.perf_counter()
    side, m_side = decode_side(analyses, cfg), model_side(cfg)
    try:
        im = open_image(path, max_side=side)
        # the same two resizes (to DECODE_SIDE, then the model input) as the features the
        # shipped model was trained on; going straight to 224 px saves ~5 ms but moves the
        # inputs enough to change the severity head's answers
        model_view = im if side == m_side else shrink(im.copy(), m_side)
        arr = to_model_input(model_view, cfg)
        # the analyses' usual view (side 0): DECODE_SIDE, whatever the model's
        view = (im if side == DECODE_SIDE else model_view if m_side == DECODE_SIDE
                else shrink(im.copy(), DECODE_SIDE) if any(not a.side for a in analyses) else None)
        found = {}
        for a in analyses:
            try:
                found[a.field] = a.run(im if a.side else view)
            except Exception:  # noqa: BLE001 - an analysis never costs the photo its score
                log.exception("analysis %s failed on %s", a.field, path)
                found[a.field] = None
        exif = read_any_exif(path)
        return Decoded(path, arr, None, exif, found, time.perf_counter() - t0)
    except ImageError as exc:
        return Decoded(path, None, str(exc), ExifInfo(), {}, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
        log.exception("unexpected error decoding %s", path)
        return Decoded(path, None, f"unexpected error: {exc}", ExifInfo(), {}, time.perf_counter() - t0)


def iter_scores(
    paths: Sequence[os.PathLike | str],
    loaded: "LoadedModel",
    *,
    batch_size: int = 8,
    cancelled: Callable[[], bool] = lambda: False,
    analyses: Sequence[Analysis] = ANALYSES,
    want_thumbnails: bool = False,
    want_features: bool = True,
    workers: int | None = None,
    device: "torch.device | str | None" = None,
    torch_threads: int | None = None,
    pin_memory: bool | None = None,
    backend: str | None = None,
    accel_dir: os.PathLike | str | None = None,
    status: Callable[[str], None] | None = None,
    nice: int = 0,
    widen: Callable[[], bool] | None = None,
) -> Generator[BatchProgress, None, int]:
    """Score ``paths``; yield a :class:`BatchProgress` per batch; return the count done.

    Files that fail to decode come back as results with ``error`` set, in the batch
    where they were met; they never stop the run.  ``analyses`` run on each decode
    (``want_thumbnails`` adds :data:`THUMBNAIL`).  ``workers`` / ``torch_threads`` (the
    model's threads, in PyTorch or ONNX Runtime) default to :func:`thread_plan`; torch's
    thread count is put back afterwards.
    ``pin_memory`` defaults to on for CUDA only.  ``backend`` / ``accel_dir``: see
    :mod:`photocull.model.onnx_cache` (without an ``accel_dir`` the model runs in PyTorch);
    ``status`` is told, in words, about slow one-off steps (preparing the fast model).
    ``nice``: lower the decode and model threads' priority by this much (Linux), so that a
    GUI's own threads (the thumbnails on screen) go first when they want the cores.
    ``widen``: asked before each batch whether the model may run a second lane now (when
    the runner has one); a GUI answers no while it is decoding the thumbnails on screen.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    paths = [Path(p) for p in paths]
    if not paths:
        return 0
    device = device if device is not None else device_name()  # a name: torch is not needed yet
    plan_workers, plan_threads = thread_plan(device)
    analyses = tuple(analyses) + ((THUMBNAIL,) if want_thumbnails and THUMBNAIL not in analyses else ())
    job = _Job(loaded=loaded, batch_size=batch_size, cancelled=cancelled, analyses=analyses,
               want_features=want_features, workers=workers or plan_workers, device=device,
               threads=torch_threads or plan_threads,
               pin=pin_memory_for(device) if pin_memory is None else bool(pin_memory),
               backend=backend, accel_dir=None if accel_dir is None else Path(accel_dir), status=status,
               nice=nice, widen=widen)
    return (yield from _run(paths, job))


@dataclass(frozen=True)
class _Job:
    """What :func:`iter_scores` was asked to do, resolved (threads, device, pinning)."""

    loaded: "LoadedModel"
    batch_size: int
    cancelled: Callable[[], bool]
    analyses: tuple[Analysis, ...]
    want_features: bool
    workers: int
    device: "torch.device | str"
    threads: int | None
    pin: bool
    backend: str | None
    accel_dir: Path | None
    status: Callable[[str], None] | None
    nice: int
    widen: Callable[[], bool] | None


def _lower_priority(nice: int) -> None:
    """Pool initializer: this thread only (on Linux, priorities are per thread)."""
    import threading

    if nice > 0 and hasattr(os, "setpriority"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError:
            pass


def _run(paths: list[Path], job: _Job):
    from photocull.model.runtime import TorchRunner, make_runner, torch_runner_for

    loaded, batch_size, workers, device, threads = job.loaded, job.batch_size, job.workers, job.device, job.threads
    total = len(paths)
    cfg = loaded.cfg
    t_start = time.perf_counter()
    done = 0
    decode_s = model_s = 0.0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode", initializer=_lower_priority,
                            initargs=(job.nice,)) as pool:
        pending: deque = deque()
        it = iter(paths)

        def fill():
            # keep about two batches of decodes in flight ahead of the model
            while len(pending) < batch_size * 2 + workers:
                p = next(it, None)
                if p is None:
                    return
                pending.append(pool.submit(decode, p, cfg, job.analyses))

        fill()  # decoding starts while the model is being made ready
        runner = make_runner(loaded, device, batch_size=batch_size, threads=threads, cache_dir=job.accel_dir,
                             n_photos=total, backend=job.backend, status=job.status, pin=job.pin)
        log.info("scoring %d photos with %s on %s", total, runner.name, device)
        # ONNX Runtime may run two batches at once (one thread each): when decoding is cheap
        # (small files) the model then has both cores; when it is dear, decoding has them
        lanes = max(1, int(getattr(runner, "lanes", 1)))
        model_pool = (ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="model", initializer=_lower_priority,
                                         initargs=(job.nice,)) if lanes > 1 else None)
        inflight: deque = deque()  # (decoded batch, the good ones, future of the model's answer)
        try:
            while pending or inflight:
                if job.cancelled():
                    for f in pending:
                        f.cancel()
                    return done
                now_lanes = (lanes if lanes > 1 and time.perf_counter() - t_start >= SECOND_LANE_AFTER_S
                             and (job.widen is None or job.widen()) else 1)
                while pending and len(inflight) < now_lanes:
                    batch: list[Decoded] = []
                    while pending and len(batch) < batch_size:
                        batch.append(pending.popleft().result())
                        fill()
                    good = [d for d in batch if d.array is not None]
                    fut = None
                    if good and lanes > 1:
                        fut = model_pool.submit(_timed, runner, [d.array for d in good])
                    inflight.append((batch, good, fut))
                batch, good, fut = inflight.popleft()
                decode_s += sum(d.seconds for d in batch)
                results: dict[Path, ScoreResult] = {}
                if good:
                    arrays = [d.array for d in good]
                    try:
                        try:
                            (probs, sev, feats), dt = fut.result() if fut is not None else _timed(runner, arrays)
                        except Exception as exc:  # noqa: BLE001 - the ONNX path failing must not cost a photo
                            if fut is None and isinstance(runner, TorchRunner):
                                raise
                            if not isinstance(runner, TorchRunner):  # (futures only ever ran ONNX Runtime)
                                log.warning("ONNX Runtime failed (%s); going on with PyTorch", exc)
                                runner.close()
                                runner, lanes = torch_runner_for(loaded, device, job.pin, threads), 1
                            (probs, sev, feats), dt = _timed(runner, arrays)
                        model_s += dt
                    except RuntimeError as exc:  # e.g. out of memory on a GPU: report, go on
                        log.exception("model failed on a batch")
                        probs = sev = feats = None
                        for d in good:
                            d.error = f"model error: {exc}"
                    if probs is not None:
                        for i, d in enumerate(good):
                            s = None if sev is None else sev[i]
                            results[d.path] = ScoreResult(
                                d.path, probs[i], s, feats[i].astype(np.float16) if job.want_features else None,
                                None, explain(s, cfg.families) if loaded.trained else "", d.exif, **d.found)
                out = [results.get(d.path) or ScoreResult(d.path, error=d.error or "not scored", exif=d.exif)
                       for d in batch]
                done += len(batch)
                yield BatchProgress(out, done, total, time.perf_counter() - t_start, decode_s, model_s)
        finally:
            if model_pool is not None:
                model_pool.shutdown(wait=True, cancel_futures=True)
            runner.close()  # torch's thread setting back as it was
    return done


def _timed(runner, arrays):
    t0 = time.perf_counter()
    out = runner(arrays)
    return out, time.perf_counter() - t0


def score_all(paths: Iterable, loaded: "LoadedModel", **kw) -> list[ScoreResult]:
    """Convenience: run :func:`iter_scores` to the end and return every result in order."""
    out: list[ScoreResult] = []
    for prog in iter_scores(list(paths), loaded, **kw):
        out += prog.results
    return out


def stored_to_result(s, path: Path | None = None) -> ScoreResult:
    """A catalog row (StoredScore) as a ScoreResult, for code that handles both alike
    (``path``: the Path it was looked up by, to save parsing ``s.path`` again)."""
    return ScoreResult(path if path is not None else Path(s.path), s.probs, s.severities, None, s.error, s.why or "",
                       ExifInfo(s.capture_time, s.exposure_bias, s.camera))


def iter_scores_cached(
    paths: Sequence[os.PathLike | str],
    loaded: "LoadedModel",
    catalog,
    **kw,
) -> Generator[BatchProgress, None, int]:
    """Like :func:`iter_scores`, but answers from the catalog first.

    The first yield carries every photo the catalog already knows for this model
    (unchanged on disk); then only new or changed files go through the model, and each
    batch is stored as it arrives (so a cancelled run keeps what it did).
    """
    from photocull.cull.catalog import path_key

    paths = [Path(p) for p in paths]
    t0 = time.perf_counter()
    known = catalog.lookup(paths, loaded.model_id)
    cached, todo = [], []
    for p in paths:  # 10,000 photos on reopen: one key per path, no Path parsing
        s = known.get(path_key(p))
        if s is not None:
            cached.append(stored_to_result(s, p))
        else:
            todo.append(p)
    total = len(paths)
    if cached:
        yield BatchProgress(cached, len(cached), total, time.perf_counter() - t0)
    done = len(cached)
    for prog in iter_scores(todo, loaded, **kw):
        catalog.store_results(prog.results, loaded.model_id)
        done = len(cached) + prog.done
        yield BatchProgress(prog.results, done, total, time.perf_counter() - t0,
                            prog.decode_seconds, prog.model_seconds)
    return done
