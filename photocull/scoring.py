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
from typing import TYPE_CHECKING, Callable, Generator, Iterable, Mapping, Sequence

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
    # -- the second network, when the job has one (see iter_scores' ``aesthetic``) --
    aesthetic: np.ndarray | None = None           # its 10-bucket distribution
    aesthetic_features: np.ndarray | None = None  # its pooled features (float16)
    # -- one field per analysis (see ANALYSES) --
    thumbnail: object | None = None  # PIL image, ``THUMB_SIDE`` px, when asked for
    tiny_gray: np.ndarray | None = None  # 64x64 uint8 grey for burst grouping (kept in the catalog's greys)
    faces: object | None = None      # photocull.analysis.faces.FaceReport
    focus: object | None = None      # photocull.analysis.focus.FocusReport
    exposure: object | None = None   # photocull.analysis.exposure.ExposureReport (the reasons' evidence)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def analyses_json(self) -> dict | None:
        """What the stored analyses found, as the catalog keeps it (field -> JSON value)."""
        out = {}
        for a in ANALYSES:
            v = getattr(self, a.field, None)
            if a.load is not None and v is not None:
                out[a.field] = v.to_json()
        return out or None

    def aesthetic_result(self) -> "ScoreResult":
        """The second network's part, as a result of its own (what the catalog stores
        under that model)."""
        failed = self.aesthetic is None
        return ScoreResult(self.path, self.aesthetic, None, self.aesthetic_features,
                           (self.error or "not scored") if failed else None, "", self.exif)


@dataclass
class BatchProgress:
    results: list[ScoreResult]
    done: int
    total: int
    elapsed: float
    decode_seconds: float = 0.0
    model_seconds: float = 0.0
    cached: int = 0  # of ``done``, the photos the catalog answered for (not scored now)

    @property
    def rate(self) -> float:
        """Photos scored per second (those the catalog answered for are not counted: 39 of 43
        from the catalog read as "737 photos/s, 0 s left" while 4 were being scored)."""
        return (self.done - self.cached) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        r = self.rate
        return (self.total - self.done) / r if r > 0 else float("nan")


@dataclass(frozen=True)
class Analysis:
    """One analysis of the decoded photo.  ``run(image)`` gets the upright RGB decode, made
    with a short side of at least ``side`` px when the file has that many (a JPEG at the
    smallest DCT scale that gives it; 0: the model's view, ``DECODE_SIDE`` on the long side)
    and returns the value stored in the :class:`ScoreResult` field named ``field``.  It runs
    in a decode thread; an exception costs only its own field (None)."""

    field: str
    run: Callable[..., object]
    side: int = 0
    # fields of analyses listed before this one that ``run`` gets as keyword arguments
    # (focus judges the faces found): ``run(image, faces=...)``; "decode" names the whole
    # decode (the largest any analysis asked for), for an analysis run on the model's view
    uses: tuple[str, ...] = ()
    # stored in the catalog when given: the value's ``to_json()`` is kept, ``load(that)``
    # makes it again (raising ValueError for anything malformed: then it is found again)
    load: Callable[[object], object] | None = None


def _thumbnail(im: "Image.Image") -> "Image.Image":
    thumb = im.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return thumb


THUMBNAIL = Analysis("thumbnail", _thumbnail)

# Faces of 3 % of the short side are found (issue 4/7): the decode's short side is at least this
# (a 24 MP JPEG at 1/4 DCT scale: 1500x1000; the face search reduces it as it needs).
FACE_SIDE = 1000


def _faces(im: Image.Image):
    from photocull.analysis.faces import find_faces  # (ONNX Runtime: loaded on first use)

    return find_faces(im)


def _load_faces(value):
    from photocull.analysis.faces import FaceReport

    return FaceReport.from_json(value)


FACES = Analysis("faces", _faces, side=FACE_SIDE, load=_load_faces)


def _tiny_gray(im: Image.Image) -> np.ndarray:
    from photocull.cull.bursts import tiny_gray_u8

    return tiny_gray_u8(im)


# Focus is judged at half the file's resolution (issue 5/7; analysis.focus.half_factor): a
# 24 MP JPEG at 1/2 DCT scale, 3000x2000, a 12 MP one decoded whole and reduced by 2 (the faces
# are searched on the decode itself: their cost hardly depends on its size).
FOCUS_SIDE = 2000


def _focus(im: Image.Image, faces=None):
    from photocull.analysis.focus import analyse_focus, half_factor

    return analyse_focus(im, faces=None if faces is None else [f.box for f in faces.faces], reduce=half_factor(im))


def _load_focus(value):
    from photocull.analysis.focus import FocusReport

    return FocusReport.from_json(value)


FOCUS = Analysis("focus", _focus, side=FOCUS_SIDE, uses=("faces",), load=_load_focus)


# Exposure and noise facts on the model's view (~2 ms): "too dark", "too bright" and "noisy"
# are said only when the pixels agree with the severity head (issue 5/7; bench/exposure.py).
def _exposure(im: Image.Image, decode: Image.Image | None = None):
    from photocull.analysis.exposure import analyse_exposure

    return analyse_exposure(im, large=decode)


def _load_exposure(value):
    from photocull.analysis.exposure import ExposureReport

    return ExposureReport.from_json(value)


EXPOSURE = Analysis("exposure", _exposure, uses=("decode",), load=_load_exposure)


# burst grouping compares tiny greys of frames: made from this decode, grouping never decodes
# a photo again (it did: as dear as scoring it, for a 24 MP JPEG)
TINY_GRAY = Analysis("tiny_gray", _tiny_gray)
ANALYSES: tuple[Analysis, ...] = (TINY_GRAY, FACES, FOCUS, EXPOSURE)  # every photo's; THUMBNAIL is asked for by the GUI


@dataclass
class Decoded:
    """A photo decoded once: each model's input, what the analyses found, its EXIF."""

    path: Path
    arrays: tuple  # per model asked for: its input (uint8, input_size square), None when not asked
    error: str | None
    exif: ExifInfo
    found: dict[str, object]  # Analysis.field -> value
    seconds: float

    @property
    def array(self) -> np.ndarray | None:
        """The first model's input."""
        return self.arrays[0] if self.arrays else None


def decode_side(analyses: Sequence[Analysis]) -> int:
    """How big the one decode must be for the models and these analyses."""
    return max([DECODE_SIDE, *(a.side for a in analyses)])


def decode(path: Path, cfgs, analyses: Sequence[Analysis] = (), need: Sequence[bool] | None = None) -> Decoded:
    """Decode ``path`` once; make each model's input (``cfgs``: one config or a tuple of
    them; ``need``: which of them to make, default all) and run ``analyses`` on the decode.

    The decode is the JPEG's DCT-scaled one (:func:`open_image` ``draft_only``: a 24 MP file
    at 1/8, 750x500; a web photo at its own size).  A bilinear model (photocull's) gets
    it shrunk to ``DECODE_SIDE`` first, as the shipped model was trained (going straight to
    224 px saves ~5 ms but moves the inputs enough to change the severity head's answers); a
    NEAREST model (idealo's NIMA: Keras ``load_img``) picks its pixels from the decode
    itself, so a web photo is scored on its own pixels, as idealo scored it."""
    t0 = time.perf_counter()
    cfgs = tuple(cfgs) if isinstance(cfgs, (tuple, list)) else (cfgs,)
    need = tuple(need) if need is not None else (True,) * len(cfgs)
    side = decode_side(analyses)
    try:
        im = open_image(path, max_side=side, draft_only=True)
        small = None  # the DECODE_SIDE view: bilinear models and the usual analyses (side 0)

        def view():
            nonlocal small
            if small is None:
                small = shrink(im.copy(), DECODE_SIDE)
            return small

        arrays = tuple((to_model_input(im if getattr(c, "resize", "bilinear") == "nearest" else view(), c)
                        if n else None) for c, n in zip(cfgs, need))
        found = {}
        for a in analyses:
            try:
                image = im if a.side else view()
                found[a.field] = a.run(image, **{u: im if u == "decode" else found.get(u) for u in a.uses})
            except Exception:  # noqa: BLE001 - an analysis never costs the photo its score
                log.exception("analysis %s failed on %s", a.field, path)
                found[a.field] = None
        exif = read_any_exif(path)
        return Decoded(path, arrays, None, exif, found, time.perf_counter() - t0)
    except ImageError as exc:
        return Decoded(path, (), str(exc), ExifInfo(), {}, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
        log.exception("unexpected error decoding %s", path)
        return Decoded(path, (), f"unexpected error: {exc}", ExifInfo(), {}, time.perf_counter() - t0)


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
    aesthetic: "LoadedModel | None" = None,
    need: Mapping[Path, tuple[bool, bool]] | None = None,
    runners: Sequence | None = None,
) -> Generator[BatchProgress, None, int]:
    """Score ``paths``; yield a :class:`BatchProgress` per batch; return the count done.

    ``loaded`` fills each result's ``probs``, ``severities``, ``features`` and ``why``;
    ``aesthetic``, a second network run on the same decode, its ``aesthetic`` and
    ``aesthetic_features``.  ``need`` (path -> (loaded, aesthetic)) says which of the two
    a photo still needs (default: both); a result then has None where a model did not run.

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
    ``runners``: one per model (:func:`photocull.model.runtime.make_runner`), made by a caller
    that scores job after job with the same models (a Ray actor, batch after batch); used
    as they are and not closed here (default: made for this job, closed at its end).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    check_pair(loaded, aesthetic)
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
               nice=nice, widen=widen, aesthetic=aesthetic, need=need,
               runners=None if runners is None else tuple(runners))
    return (yield from _run(paths, job))


def check_pair(loaded, aesthetic) -> None:
    """Refuse (:class:`ModelError`) a personal model whose head also reads the aesthetic
    network's features without that very network beside it."""
    if not loaded.cfg.extra_features:
        return
    from photocull.model.registry import EXTRA_FROM
    from photocull.model.spec import ModelError

    want = (loaded.meta or {}).get(EXTRA_FROM)
    if aesthetic is None or aesthetic.model_id != want:
        raise ModelError(f"model {loaded.name} learnt from the aesthetic model's features too "
                         f"({want or 'unknown model'}): score it with that model beside it "
                         f"(this installation's is {'missing' if aesthetic is None else aesthetic.model_id})")


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
    aesthetic: "LoadedModel | None" = None
    need: Mapping[Path, tuple[bool, bool]] | None = None
    runners: tuple | None = None  # the caller's, kept across jobs (not closed)

    @property
    def models(self) -> tuple:
        return (self.loaded,) if self.aesthetic is None else (self.loaded, self.aesthetic)

    def needs(self, path: Path) -> tuple[bool, ...]:
        n = self.need.get(path, (True, True)) if self.need is not None else (True, True)
        if n[0] and self.loaded.cfg.extra_features:
            n = (True, True)  # a personal head that also reads the aesthetic network's features
        return tuple(n[: len(self.models)])


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

    batch_size, workers, device, threads = job.batch_size, job.workers, job.device, job.threads
    models = job.models
    cfgs = tuple(m.cfg for m in models)
    total = len(paths)
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
                pending.append(pool.submit(decode, p, cfgs, job.analyses, job.needs(p)))

        fill()  # decoding starts while the models are being made ready
        extra = models[0].model.heads.extra if cfgs[0].extra_features else None
        runners = list(job.runners) if job.runners is not None else [
            make_runner(m, device, batch_size=batch_size, threads=threads, cache_dir=job.accel_dir,
                        n_photos=total, backend=job.backend, status=job.status, pin=job.pin) for m in models]
        log.info("scoring %d photos with %s on %s", total, " + ".join(r.name for r in runners), device)
        # ONNX Runtime may run two batches at once (one thread each): when decoding is cheap
        # (small files) the models then have both cores; when it is dear, decoding has them
        lanes = max(1, min(int(getattr(r, "lanes", 1)) for r in runners))
        model_pool = (ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="model", initializer=_lower_priority,
                                         initargs=(job.nice,)) if lanes > 1 else None)
        inflight: deque = deque()  # (decoded batch, future of the models' answers or None)

        def inputs(batch: list[Decoded]) -> list[list[Decoded]]:
            """Per model, the photos of the batch it runs on."""
            return [[d for d in batch if len(d.arrays) > k and d.arrays[k] is not None] for k in range(len(models))]

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
                    fut = None
                    if lanes > 1 and any(inputs(batch)):
                        fut = model_pool.submit(_timed_all, list(runners), inputs(batch))
                    inflight.append((batch, fut))
                batch, fut = inflight.popleft()
                decode_s += sum(d.seconds for d in batch)
                per_model = inputs(batch)
                try:
                    outs, dt = fut.result() if fut is not None else _timed_all(runners, per_model)
                except Exception as exc:  # noqa: BLE001 - the ONNX path failing must not cost a photo
                    if all(isinstance(r, TorchRunner) for r in runners):
                        raise  # (a RuntimeError there costs its photos only: _timed_all)
                    else:
                        log.warning("ONNX Runtime failed (%s); going on with PyTorch", exc)
                        for k, r in enumerate(runners):
                            if not isinstance(r, TorchRunner):
                                r.close()
                                runners[k] = torch_runner_for(models[k], device, job.pin, threads)
                        lanes = 1
                        outs, dt = _timed_all(runners, per_model)
                model_s += dt
                results = {d.path: ScoreResult(d.path, error=d.error, exif=d.exif, **d.found) for d in batch}
                second: dict[Path, np.ndarray] = {}  # the aesthetic network's features, for a personal head
                for k, (group, out) in enumerate(zip(per_model, outs)):
                    if isinstance(out, Exception):
                        for d in group:
                            results[d.path].error = f"model error: {out}"
                        continue
                    probs, sev, feats = out
                    for i, d in enumerate(group):
                        r = results[d.path]
                        f = feats[i].astype(np.float16) if job.want_features and feats is not None else None
                        if k == 0:
                            r.probs, r.features = probs[i], f
                            r.severities = None if sev is None else sev[i]
                            r.why = (explain(r.severities, cfgs[0].families, evidence=(r.exposure, r.focus))
                                     if models[0].trained else "")
                        else:
                            r.aesthetic, r.aesthetic_features = probs[i], f
                            second[d.path] = feats[i]
                if extra is not None:
                    _apply_extra(extra, results.values(), second)
                out = [results[d.path] for d in batch]
                for r in out:
                    if r.error is None and r.probs is None and r.aesthetic is None:
                        r.error = "not scored"
                done += len(batch)
                yield BatchProgress(out, done, total, time.perf_counter() - t_start, decode_s, model_s)
        finally:
            if model_pool is not None:
                model_pool.shutdown(wait=True, cancel_futures=True)
            for r in runners:
                if job.runners is None or r not in job.runners:
                    r.close()  # torch's thread setting back as it was
    return done


def _apply_extra(extra, results, second: Mapping[Path, np.ndarray]) -> None:
    """A personal head reading both networks: its distribution from the score head's and
    the aesthetic network's features (:func:`photocull.model.nima.with_extra`)."""
    from photocull.model.nima import with_extra

    for r in results:
        if r.probs is None:
            continue
        if r.path not in second:
            r.probs = r.features = r.severities = None
            r.why = ""
            r.error = r.error or "not scored: the aesthetic model failed on this photo"
            continue
        r.probs = with_extra(extra, r.probs[None], second[r.path][None])[0]


def _timed_all(runners, per_model: list[list[Decoded]]):
    """Each model on its photos of the batch: ([(probs, severities, features) or the
    RuntimeError it raised, per model], seconds).  A RuntimeError (a GPU out of memory)
    costs that model's photos their score, not the run."""
    t0 = time.perf_counter()
    outs = []
    for k, (runner, group) in enumerate(zip(runners, per_model)):
        if not group:
            outs.append((None, None, None))
            continue
        try:
            outs.append(runner([d.arrays[k] for d in group]))
        except RuntimeError as exc:
            if not _is_torch(runner):
                raise  # ONNX Runtime: the caller falls back to PyTorch
            log.exception("model failed on a batch")
            outs.append(exc)
    return outs, time.perf_counter() - t0


def _is_torch(runner) -> bool:
    from photocull.model.runtime import TorchRunner

    return isinstance(runner, TorchRunner)


def score_all(paths: Iterable, loaded: "LoadedModel", **kw) -> list[ScoreResult]:
    """Convenience: run :func:`iter_scores` to the end and return every result in order."""
    out: list[ScoreResult] = []
    for prog in iter_scores(list(paths), loaded, **kw):
        out += prog.results
    return out


def stored_to_result(s, path: Path | None = None) -> ScoreResult:
    """A catalog row (StoredScore) as a ScoreResult, for code that handles both alike
    (``path``: the Path it was looked up by, to save parsing ``s.path`` again)."""
    r = ScoreResult(path if path is not None else Path(s.path), s.probs, s.severities, None, s.error, s.why or "",
                    ExifInfo(s.capture_time, s.exposure_bias, s.camera))
    return load_analyses(r, getattr(s, "analyses", None) or {})


def load_analyses(r: ScoreResult, stored: Mapping) -> ScoreResult:
    """Fill ``r``'s analysis fields from what was kept of them (field -> JSON value, as
    :attr:`ScoreResult.analyses_json`); a value that does not load is left out (None)."""
    for a in ANALYSES:
        if a.load is not None and a.field in stored:
            try:
                setattr(r, a.field, a.load(stored[a.field]))
            except (ValueError, TypeError):
                log.warning("stored %s of %s unreadable; ignored", a.field, r.path)
    return r


def _has_analyses(s, wanted: Sequence[Analysis]) -> bool:
    """Whether a stored score holds what each of the stored ``wanted`` analyses found."""
    stored = getattr(s, "analyses", None) or {}
    return all(a.field in stored for a in wanted)


def iter_scores_cached(
    paths: Sequence[os.PathLike | str],
    loaded: "LoadedModel",
    catalog,
    *,
    aesthetic: "LoadedModel | None" = None,
    score: Callable[..., Generator[BatchProgress, None, int]] | None = None,
    **kw,
) -> Generator[BatchProgress, None, int]:
    """Like :func:`iter_scores`, but answers from the catalog first.

    The first yield carries every photo the catalog already knows for the model(s)
    (unchanged on disk); then only new or changed files are decoded, each running only
    the model(s) the catalog lacks for it (a folder scored before the aesthetic model
    existed gets just that one), and each batch is stored as it arrives (so a cancelled
    run keeps what it did).  ``score`` is what scores them, called as :func:`iter_scores`
    (the default) is, ``need`` included: :mod:`photocull.cluster` passes one that runs on Ray.
    """
    from photocull.cull.catalog import path_key

    score = score or iter_scores

    if aesthetic is not None and aesthetic.model_id == loaded.model_id:  # one network asked for twice
        done = 0
        for prog in iter_scores_cached(paths, loaded, catalog, score=score, **kw):
            for r in prog.results:
                r.aesthetic, r.aesthetic_features = r.probs, r.features
            done = prog.done
            yield prog
        return done
    paths = [p if isinstance(p, Path) else Path(p) for p in paths]
    t0 = time.perf_counter()
    known, known_a = catalog.lookup_models(paths, (loaded.model_id, None if aesthetic is None else aesthetic.model_id))
    wanted = [a for a in kw.get("analyses", ANALYSES) if a.load is not None]
    cached, todo, partial, need = [], [], {}, {}
    for p in paths:  # 10,000 photos on reopen: one key per path, no Path parsing
        k = path_key(p)
        s, sa = known.get(k), known_a.get(k)
        if s is not None and not _has_analyses(s, wanted) and s.error is None:
            partial[p] = (s, sa)  # scored before an analysis existed: decoded again for it alone
            need[p] = (False, aesthetic is not None and sa is None)
            todo.append(p)
        elif s is not None and (aesthetic is None or sa is not None):
            cached.append(_with_aesthetic(stored_to_result(s, p), sa))
        else:
            todo.append(p)
            if s is not None or sa is not None:
                partial[p] = (s, sa)
                need[p] = (s is None, sa is None)
    total = len(paths)
    if cached:
        yield BatchProgress(cached, len(cached), total, time.perf_counter() - t0, cached=len(cached))
    done = len(cached)
    for prog in score(todo, loaded, aesthetic=aesthetic, need=need or None, **kw):
        fresh = [r for r in prog.results if r.path not in partial or partial[r.path][0] is None]
        catalog.store_results(fresh, loaded.model_id)
        if aesthetic is not None:
            catalog.store_results([r.aesthetic_result() for r in prog.results
                                   if r.path not in partial or partial[r.path][1] is None], aesthetic.model_id)
        greys = [(r.path, r.tiny_gray) for r in prog.results if r.tiny_gray is not None]
        if greys:
            catalog.store_tiny_grays(greys)
        kept = []  # photos whose scores were kept: what the analyses found, and the reasons it changed
        for i, r in enumerate(prog.results):
            if r.path in partial:  # what the catalog had, beside what was scored now
                s, sa = partial[r.path]
                if s is not None:
                    found = r.analyses_json
                    r = prog.results[i] = _merged(stored_to_result(s, r.path), r)
                    if loaded.trained and r.severities is not None:  # the reasons the new evidence allows
                        r.why = explain(r.severities, loaded.cfg.families, evidence=(r.exposure, r.focus))
                    if found:
                        kept.append((r.path, found, r.why))
                if sa is not None:
                    _with_aesthetic(r, sa)
        if wanted and kept:
            catalog.store_analyses(kept, loaded.model_id)
        done = len(cached) + prog.done
        yield BatchProgress(prog.results, done, total, time.perf_counter() - t0,
                            prog.decode_seconds, prog.model_seconds, cached=len(cached))
    return done


def _with_aesthetic(r: ScoreResult, stored) -> ScoreResult:
    if stored is not None and stored.probs is not None:
        r.aesthetic = stored.probs
    return r


def _merged(stored: ScoreResult, new: ScoreResult) -> ScoreResult:
    """The stored result of the first model, with what the run added (the aesthetic
    distribution, the analyses' fields)."""
    stored.aesthetic, stored.aesthetic_features = new.aesthetic, new.aesthetic_features
    for a in (THUMBNAIL, *ANALYSES):
        setattr(stored, a.field, getattr(new, a.field))
    if stored.error is None and new.error is not None and new.aesthetic is None and stored.probs is None:
        stored.error = new.error
    return stored
