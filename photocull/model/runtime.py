"""Running the network: PyTorch, or its ONNX Runtime export when that is faster and
checked (:mod:`photocull.model.onnx_cache`), with a fallback to PyTorch that never costs a
photo.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from photocull.model import devices, onnx_cache
from photocull.model.devices import device_type
from photocull.model.onnx_cache import AccelError, OrtRunner

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def batch_to_device(arrays: list[np.ndarray], cfg, device: "torch.device", pin: bool = False) -> "torch.Tensor":
    """uint8 HxWx3 arrays -> normalised float NCHW batch (channels_last) on ``device``.

    The uint8 batch is what crosses to the device (a quarter of the float bytes),
    from pinned memory with ``non_blocking`` on CUDA; normalising happens there.  On
    the CPU this gives exactly :func:`photocull.model.nima.preprocess`'s values."""
    import torch

    from photocull.model.nima import normalise

    x = torch.from_numpy(np.stack(arrays))  # N,H,W,C uint8
    if pin:
        x = x.pin_memory()
    x = x.to(device, non_blocking=pin).permute(0, 3, 1, 2)  # a channels_last view, no copy
    return normalise(x, cfg).contiguous(memory_format=torch.channels_last)


class TorchRunner:
    """The PyTorch path: uint8 HxWx3 arrays (model input size) -> (probs, severities or None,
    features) as numpy.  ``model`` may be a callable returning the model: it is then built
    only when first needed (a cached ONNX model that fails mid-run falls back to this).
    ``threads``: torch's intra-op threads while this runner works (None: leave torch's
    setting alone); :meth:`close` puts the old setting back."""

    name = "torch"

    def __init__(self, model, device, cfg, pin: bool = False, threads: int | None = None):
        import torch

        self._model, self.device, self.cfg, self.pin = model, torch.device(device), cfg, pin
        self.threads, self._old_threads = threads, None

    @property
    def model(self):
        import torch

        if not isinstance(self._model, torch.nn.Module):
            self._model = self._model()
        return self._model

    def __call__(self, arrays: list[np.ndarray]):
        import torch

        from photocull.model.nima import predict
        from photocull.model.runtime import batch_to_device

        if self.threads and self._old_threads is None and torch.get_num_threads() != self.threads:
            self._old_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)  # the calling thread runs the model
        model = self.model
        return predict(model, batch_to_device(arrays, self.cfg, self.device, self.pin), self.device)

    def close(self) -> None:
        if self._old_threads is not None:
            import torch

            torch.set_num_threads(self._old_threads)
            self._old_threads = None


def torch_runner_for(loaded, device, pin: bool = False, threads: int | None = None) -> TorchRunner:
    """PyTorch on ``device``; the network is built (or moved) on first use."""
    import torch

    dev = torch.device(device)
    return TorchRunner(lambda: loaded.model.to(dev).to(memory_format=torch.channels_last).eval(),
                       dev, loaded.cfg, pin, threads)


def make_runner(loaded, device, *, batch_size: int, threads: int | None,
                cache_dir: Path | None, n_photos: int, backend: str | None = None,
                status: Callable[[str], None] | None = None, pin: bool = False):
    """The fastest trustworthy runner for this job; never raises for the ONNX path's sake.

    ``loaded`` is a LoadedModel or a LazyModel: with an earlier export of the same model
    file the network is never built, and torch is not imported.  ``device``: a torch.device
    or its name.  ``threads``: the model's threads (None: torch's setting / all cores).
    ``backend="onnx"`` insists (exports whatever the job size, retries a remembered
    failure) but still falls back to PyTorch, with a warning, if ONNX cannot be had."""
    choice = onnx_cache.backend_choice(backend)

    def torch_runner():
        return torch_runner_for(loaded, device, pin, threads)

    if choice == "torch" or device_type(device) != "cpu" or cache_dir is None:
        return torch_runner()
    if not onnx_cache.onnx_available():
        if choice == "onnx":
            log.warning("backend onnx asked for, but onnxruntime/onnxscript are not installed; using PyTorch")
        return torch_runner()
    ort_threads = threads or devices.default_threads()
    cache_dir = Path(cache_dir)
    try:
        indexed = onnx_cache.indexed_export(cache_dir, loaded.model_id, batch_size)
        if indexed is not None:
            try:
                return OrtRunner(indexed, batch_size, ort_threads, loaded.cfg)
            except AccelError as exc:  # damaged: found again (and removed) by its digest below
                log.warning("%s", exc)
        fallback = torch_runner()
        path, state, runner = onnx_cache.locate_export(fallback.model, loaded, cache_dir, batch_size, ort_threads)
        if runner is not None:
            return runner
        if choice == "auto" and (n_photos < onnx_cache.EXPORT_MIN_PHOTOS or state == "failed"):
            return fallback
        try:
            path = onnx_cache.export_and_index(fallback.model, loaded, path, batch_size, status)
        except AccelError as exc:
            log.warning("%s; scoring with PyTorch", exc)
            return fallback
        return OrtRunner(path, batch_size, ort_threads, loaded.cfg)
    except Exception as exc:  # noqa: BLE001 - the fast path is optional
        log.warning("ONNX Runtime path unavailable (%s); scoring with PyTorch", exc)
        return torch_runner()
