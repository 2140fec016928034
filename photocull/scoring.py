"""Scoring a list of photos: a generator that yields once per batch.

Decoding runs in a thread pool ahead of the model (Pillow releases the GIL while it
decodes), so the model never waits for the disk when it need not.  JPEGs are decoded
at reduced size (DCT scaling, ``draft``): a 6000x4000 file comes out at 750x500, which
is all a 224 px model needs; the same decode gives the grid its 256 px thumbnail.  On
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

from photocull.media.exif import read_any_exif
from photocull.media.exif import ExifInfo
from photocull.media.loaders import ImageError, open_image
from photocull.model.devices import device_name, pin_memory_for, thread_plan
from photocull.model.losses import dist_mean, dist_std
from photocull.model.reasons import explain
from photocull.model.spec import to_model_input

log = logging.getLogger(__name__)


if TYPE_CHECKING:
    import torch

    from photocull.model.nima import LoadedModel
DECODE_SIDE = 448  # decode (draft) at least this big, then resize to the model input


# a second model lane joins only after this long: the first moments belong to whatever
# started the job (the GUI's first screen of thumbnails came 0.3 s later with it at once)
SECOND_LANE_AFTER_S = 0.6
THUMB_SIDE = 256


@dataclass
class ScoreResult:
    path: Path
    probs: np.ndarray | None = None
    severities: np.ndarray | None = None
    features: np.ndarray | None = None
    error: str | None = None
    why: str = ""
    exif: ExifInfo = field(default_factory=ExifInfo)
    thumbnail: object | None = None  # PIL image, when asked for

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def mean(self) -> float | None:
        return None if self.probs is None else float(dist_mean(self.probs))

    @property
    def std(self) -> float | None:
        return None if self.probs is None else float(dist_std(self.probs))


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


@dataclass
class _Decoded:
    path: Path
    array: np.ndarray | None
    error: str | None
    exif: ExifInfo
    thumbnail: object | None
    seconds: float


def _decode(path: Path, input_size_cfg, want_thumb: bool) -> _Decoded:
    t0 = time.perf_counter()
    try:
        # the same two resizes (to DECODE_SIDE, then the model input) as the features the
        # shipped model was trained on; going straight to 224 px saves ~5 ms but moves the
        # inputs enough to change the severity head's answers
        im = open_image(path, max_side=DECODE_SIDE)
        arr = to_model_input(im, input_size_cfg)
        thumb = None
        if want_thumb:
            thumb = im.copy()
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
        exif = read_any_exif(path)
        return _Decoded(path, arr, None, exif, thumb, time.perf_counter() - t0)
    except ImageError as exc:
        return _Decoded(path, None, str(exc), ExifInfo(), None, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
        log.exception("unexpected error decoding %s", path)
        return _Decoded(path, None, f"unexpected error: {exc}", ExifInfo(), None, time.perf_counter() - t0)


def iter_scores(
    paths: Sequence[os.PathLike | str],
    loaded: "LoadedModel",
    batch_size: int = 8,
    cancelled: Callable[[], bool] = lambda: False,
    workers: int | None = None,
    device: "torch.device | str | None" = None,
    want_thumbnails: bool = False,
    want_features: bool = True,
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
    where they were met; they never stop the run.  ``workers`` / ``torch_threads`` (the
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
    total = len(paths)
    if total == 0:
        return 0
    device = device if device is not None else device_name()  # a name: torch is not needed yet
    plan_workers, plan_threads = thread_plan(device)
    workers = workers or plan_workers
    threads = torch_threads or plan_threads
    pin = pin_memory_for(device) if pin_memory is None else bool(pin_memory)
    return (yield from _run(paths, loaded, batch_size, cancelled, workers, device, threads, want_thumbnails,
                            want_features, pin, backend, accel_dir, status, nice, widen))


def _lower_priority(nice: int) -> None:
    """Pool initializer: this thread only (on Linux, priorities are per thread)."""
    import threading

    if nice > 0 and hasattr(os, "setpriority"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError:
            pass


def _run(paths, loaded, batch_size, cancelled, workers, device, threads, want_thumbnails, want_features, pin,
         backend=None, accel_dir=None, status=None, nice=0, widen=None):
    from photocull.model.runtime import TorchRunner, make_runner, torch_runner_for

    total = len(paths)
    cfg = loaded.cfg
    t_start = time.perf_counter()
    done = 0
    decode_s = model_s = 0.0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode", initializer=_lower_priority,
                            initargs=(nice,)) as pool:
        pending: deque = deque()
        it = iter(paths)

        def fill():
            # keep about two batches of decodes in flight ahead of the model
            while len(pending) < batch_size * 2 + workers:
                p = next(it, None)
                if p is None:
                    return
                pending.append(pool.submit(_decode, p, cfg, want_thumbnails))

        fill()  # decoding starts while the model is being made ready
        runner = make_runner(loaded, device, batch_size=batch_size, threads=threads,
                             cache_dir=None if accel_dir is None else Path(accel_dir), n_photos=total,
                             backend=backend, status=status, pin=pin)
        log.info("scoring %d photos with %s on %s", total, runner.name, device)
        # ONNX Runtime may run two batches at once (one thread each): when decoding is cheap
        # (small files) the model then has both cores; when it is dear, decoding has them
        lanes = max(1, int(getattr(runner, "lanes", 1)))
        model_pool = (ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="model", initializer=_lower_priority,
                                         initargs=(nice,)) if lanes > 1 else None)
        inflight: deque = deque()  # (decoded batch, the good ones, future of the model's answer)
        try:
            while pending or inflight:
                if cancelled():
                    for f in pending:
                        f.cancel()
                    return done
                now_lanes = (lanes if lanes > 1 and time.perf_counter() - t_start >= SECOND_LANE_AFTER_S
                             and (widen is None or widen()) else 1)
                while pending and len(inflight) < now_lanes:
                    batch: list[_Decoded] = []
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
                                runner, lanes = torch_runner_for(loaded, device, pin, threads), 1
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
                                d.path, probs[i], s, feats[i].astype(np.float16) if want_features else None,
                                None, explain(s, cfg.families) if loaded.trained else "", d.exif, d.thumbnail)
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
    gen = iter_scores(todo, loaded, **kw)
    while True:
        try:
            prog = next(gen)
        except StopIteration:
            break
        catalog.store_results(prog.results, loaded.model_id)
        done = len(cached) + prog.done
        yield BatchProgress(prog.results, done, total, time.perf_counter() - t0,
                            prog.decode_seconds, prog.model_seconds)
    return done
