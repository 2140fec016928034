"""Where the model runs and with how many threads, found without importing torch
when that is certain (Linux without GPU device nodes).
"""
from __future__ import annotations

import glob
import os
import sys


def _no_gpu_here() -> bool:
    """True when this machine certainly has no GPU torch could use, found without importing
    torch: Linux with no NVIDIA or AMD (ROCm) device nodes.  Elsewhere (macOS has MPS,
    Windows hides its drivers) only torch can tell."""
    if not sys.platform.startswith("linux"):
        return False
    return not (glob.glob("/dev/nvidia*") or os.path.exists("/dev/kfd") or glob.glob("/dev/dxg"))


def device_name(prefer: str | None = None) -> str:
    """The device scoring would use, as a string: PHOTOCULL_DEVICE / ``prefer``, else CUDA,
    then Apple MPS, then CPU.  Imports torch only when the answer needs it."""
    prefer = prefer or os.environ.get("PHOTOCULL_DEVICE")
    if prefer:
        return str(prefer)
    if "torch" not in sys.modules and _no_gpu_here():
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def device_type(device) -> str:
    """'cpu' / 'cuda' / 'mps' for a torch.device or a device string ('cuda:1')."""
    t = getattr(device, "type", None)
    return t if t is not None else str(device).split(":", 1)[0]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_plan(device, cores: int | None = None) -> tuple[int, int | None]:
    """(decode threads, torch intra-op threads or None to leave torch alone).

    Decoding a 24 MP JPEG costs about twice the model's work per photo, so on a CPU
    torch gets about a third of the cores and decoding all of them (decode threads
    wait on I/O and the GIL now and then).  On a GPU the CPU only decodes.
    ``OMP_NUM_THREADS`` set by the user wins over the plan."""
    cores = cores or cpu_count()
    decode = max(1, min(8, cores))
    if device_type(device) != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return decode, None
    return decode, max(1, cores // 3)


def pin_memory_for(device) -> bool:
    """Page-locked staging buffers only help (and only work) for CUDA copies."""
    if device_type(device) != "cuda":
        return False
    import torch

    return torch.cuda.is_available()


def default_threads() -> int:
    """OMP_NUM_THREADS if the user set it, else the cores this process may use."""
    from photocull.model.devices import cpu_count

    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else cpu_count()
