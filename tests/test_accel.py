"""The ONNX Runtime path (photocull.model.onnx_cache): same scores as PyTorch, cached once per
model, and never a reason for a photo to go unscored."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from photocull import scoring
from photocull.model import devices
from photocull.model import onnx_cache as ox
from photocull.model import spec as modelspec
from photocull.model import runtime
from photocull.media.listing import list_images
from photocull.scoring import score_all

pytestmark = pytest.mark.skipif(not ox.onnx_available(), reason="onnxruntime/onnxscript not installed")

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    monkeypatch.delenv(ox.ENV_BACKEND, raising=False)  # conftest sets "torch" for the other tests


@pytest.fixture(scope="session")
def onnx_cache(tiny_model, tmp_path_factory) -> Path:
    """The stand-in model exported once for the whole session (about 10 s)."""
    d = tmp_path_factory.mktemp("onnx")
    r = runtime.make_runner(tiny_model, CPU, batch_size=8, threads=1, cache_dir=d, n_photos=1, backend="onnx")
    assert isinstance(r, ox.OrtRunner)
    return d


@pytest.fixture
def cache_copy(onnx_cache, tmp_path) -> Path:
    d = tmp_path / "onnx"
    shutil.copytree(onnx_cache, d)
    return d


def _arrays(n, seed=0, size=224):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 3))
    noise = rng.integers(-40, 40, (n, size, size, 3))
    return list(np.clip(base + noise, 0, 255).astype(np.uint8))


def test_onnx_runner_gives_pytorchs_numbers(tiny_model, onnx_cache):
    ort = runtime.make_runner(tiny_model, CPU, batch_size=8, threads=1, cache_dir=onnx_cache, n_photos=1)
    assert isinstance(ort, ox.OrtRunner)  # cached: used even for one photo under "auto"
    ref = runtime.TorchRunner(tiny_model.model, CPU, tiny_model.cfg)
    for n in (8, 3, 11):  # a full batch, a short one (padded), more than one batch
        arrays = _arrays(n, seed=n)
        p1, s1, f1 = ref(arrays)
        p2, s2, f2 = ort(arrays)
        assert p2.shape == p1.shape == (n, 10) and f2.shape == f1.shape
        np.testing.assert_allclose(p2, p1, atol=1e-4)
        np.testing.assert_allclose(f2, f1, atol=1e-3 * np.abs(f1).max())
        assert (s1 is None) == (s2 is None)
        if s1 is not None:
            np.testing.assert_allclose(s2, s1, atol=1e-4)


def test_scoring_with_onnx_matches_torch_including_bad_files(photo_folder, tiny_model, onnx_cache):
    paths = list_images(photo_folder)
    a = score_all(paths, tiny_model, batch_size=8, backend="torch")
    b = score_all(paths, tiny_model, batch_size=8, backend="onnx", accel_dir=onnx_cache)
    assert [r.path for r in a] == [r.path for r in b]
    for x, y in zip(a, b):
        assert x.ok == y.ok and x.error == y.error
        if x.ok:
            assert y.mean == pytest.approx(x.mean, abs=1e-3)
            assert y.std == pytest.approx(x.std, abs=1e-3)


def test_small_job_without_export_stays_on_torch(tiny_model, tmp_path, monkeypatch):
    def no_export(*a, **k):
        raise AssertionError("exported for a handful of photos")

    monkeypatch.setattr(ox, "export_onnx", no_export)
    r = runtime.make_runner(tiny_model, CPU, batch_size=8, threads=1, cache_dir=tmp_path,
                          n_photos=ox.EXPORT_MIN_PHOTOS - 1, backend="auto")
    assert isinstance(r, runtime.TorchRunner)


def test_gpu_and_torch_choice_and_missing_runtime_use_torch(tiny_model, onnx_cache, monkeypatch):
    kw = dict(batch_size=8, threads=1, cache_dir=onnx_cache, n_photos=1000)
    assert isinstance(runtime.make_runner(tiny_model, CPU, backend="torch", **kw), runtime.TorchRunner)
    assert isinstance(runtime.make_runner(tiny_model, torch.device("cuda"), backend="onnx", **kw), runtime.TorchRunner)
    monkeypatch.setenv(ox.ENV_BACKEND, "torch")
    assert isinstance(runtime.make_runner(tiny_model, CPU, **kw), runtime.TorchRunner)
    monkeypatch.delenv(ox.ENV_BACKEND)
    monkeypatch.setattr(ox, "onnx_available", lambda: False)
    assert isinstance(runtime.make_runner(tiny_model, CPU, backend="onnx", **kw), runtime.TorchRunner)
    with pytest.raises(ValueError, match="unknown backend"):
        ox.backend_choice("tensorrt")


def test_checkpoint_model_reuses_export_without_building_the_network(tiny_model, cache_copy, tmp_path, monkeypatch):
    from photocull.model.registry import LazyModel
    from photocull.model.checkpoint import save_checkpoint

    ckpt = tmp_path / "mine.pt"
    save_checkpoint(tiny_model.model, ckpt, meta={"trained": True})  # heads only: same weights as tiny_model
    kw = dict(batch_size=8, threads=1, cache_dir=cache_copy, n_photos=1, backend="auto")
    first = runtime.make_runner(LazyModel(ckpt, "mine"), CPU, **kw)  # found by weights digest
    assert isinstance(first, ox.OrtRunner)

    def no_build(self):
        raise AssertionError("the network was built although its export is cached")

    monkeypatch.setattr(LazyModel, "load", no_build)
    again = runtime.make_runner(LazyModel(ckpt, "mine"), CPU, **kw)  # found by the file's hash
    assert isinstance(again, ox.OrtRunner)
    p1 = first(_arrays(2))[0]
    np.testing.assert_allclose(again(_arrays(2))[0], p1, atol=1e-6)


def test_changed_model_file_is_not_served_a_stale_export(tiny_model, cache_copy, tmp_path):
    from photocull.model.registry import LazyModel
    from photocull.model.nima import copy_model
    from photocull.model.checkpoint import save_checkpoint

    ckpt = tmp_path / "mine.pt"
    save_checkpoint(tiny_model.model, ckpt, meta={"trained": True})
    kw = dict(batch_size=8, threads=1, cache_dir=cache_copy, n_photos=1, backend="auto")
    assert isinstance(runtime.make_runner(LazyModel(ckpt, "mine"), CPU, **kw), ox.OrtRunner)
    other = copy_model(tiny_model.model)
    with torch.no_grad():
        other.heads.score[-1].bias.add_(1.0)
    save_checkpoint(other, ckpt, meta={"trained": True})  # new weights, same file name
    r = runtime.make_runner(LazyModel(ckpt, "mine"), CPU, **kw)  # not exported: small job -> torch
    assert isinstance(r, runtime.TorchRunner)


def test_damaged_cache_file_and_failed_export_fall_back_and_are_remembered(tiny_model, cache_copy, monkeypatch):
    (onnx_file,) = cache_copy.glob("nima-*.onnx")
    onnx_file.write_bytes(b"not an onnx model")
    calls = []

    def failing_export(model, path, batch_size):
        calls.append(path)
        raise ox.AccelError("ONNX export failed: simulated")

    monkeypatch.setattr(ox, "export_onnx", failing_export)
    kw = dict(batch_size=8, threads=1, cache_dir=cache_copy, n_photos=1000)
    r = runtime.make_runner(tiny_model, CPU, backend="auto", **kw)
    assert isinstance(r, runtime.TorchRunner) and len(calls) == 1
    assert not onnx_file.exists() and onnx_file.with_suffix(".failed").exists()
    # remembered: "auto" does not pay for the failing export again; "onnx" retries
    assert isinstance(runtime.make_runner(tiny_model, CPU, backend="auto", **kw), runtime.TorchRunner)
    assert len(calls) == 1
    runtime.make_runner(tiny_model, CPU, backend="onnx", **kw)
    assert len(calls) == 2


def test_runtime_failure_mid_run_finishes_with_torch(photo_folder, tiny_model, onnx_cache, monkeypatch):
    def broken(self, arrays):
        raise RuntimeError("simulated ONNX Runtime failure")

    monkeypatch.setattr(ox.OrtRunner, "__call__", broken)
    for cores in (1, 2):  # one batch at a time, and two in flight when it fails
        monkeypatch.setattr(devices, "default_threads", lambda: cores)
        results = score_all(list_images(photo_folder), tiny_model, batch_size=2, backend="onnx",
                            accel_dir=onnx_cache, torch_threads=1)
        assert sum(r.ok for r in results) == 6  # every readable photo scored, by PyTorch


def test_two_batches_in_flight_keep_order_and_numbers(photo_folder, tiny_model, onnx_cache, monkeypatch):
    """With 2 cores ONNX Runtime runs two batches side by side (one thread each)."""
    import threading

    monkeypatch.setattr(devices, "default_threads", lambda: 2)
    where = set()
    real = ox.OrtRunner.__call__

    def spy(self, arrays):
        where.add(threading.current_thread().name)
        return real(self, arrays)

    monkeypatch.setattr(ox.OrtRunner, "__call__", spy)
    paths = list_images(photo_folder) * 3
    a = score_all(paths, tiny_model, batch_size=2, backend="torch")
    b = score_all(paths, tiny_model, batch_size=2, backend="onnx", accel_dir=onnx_cache, torch_threads=1)
    assert where and all(name.startswith("model") for name in where)  # run in the lanes, not inline
    assert [r.path for r in b] == [r.path for r in a] == paths
    for x, y in zip(a, b):
        assert x.ok == y.ok and x.error == y.error
        if x.ok:
            assert y.mean == pytest.approx(x.mean, abs=1e-3)


def test_second_lane_only_when_widen_allows(photo_folder, tiny_model, onnx_cache, monkeypatch):
    """``widen`` (the GUI: "the thumbnails on screen are drawn") decides, batch by batch,
    whether the model may run two batches at once."""
    import threading
    import time



    monkeypatch.setattr(devices, "default_threads", lambda: 2)
    monkeypatch.setattr(scoring, "SECOND_LANE_AFTER_S", 0.0)
    lock, active, peak = threading.Lock(), [0], [0]
    real = ox.OrtRunner.__call__

    def spy(self, arrays):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.1)  # long enough for a second batch to be handed out meanwhile
            return real(self, arrays)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ox.OrtRunner, "__call__", spy)
    paths = list_images(photo_folder) * 3
    kw = dict(batch_size=2, backend="onnx", accel_dir=onnx_cache, torch_threads=1)
    asked = []
    held = score_all(paths, tiny_model, widen=lambda: asked.append(1) or False, **kw)
    assert asked and peak[0] == 1
    peak[0] = 0
    wide = score_all(paths, tiny_model, widen=lambda: True, **kw)
    assert peak[0] == 2
    assert [r.path for r in held] == [r.path for r in wide] == paths
    assert [r.mean for r in held if r.ok] == pytest.approx([r.mean for r in wide if r.ok], abs=1e-5)


def test_verification_refuses_an_export_that_disagrees(tiny_model):
    class Wrong:
        def run_nchw(self, x):
            n = x.shape[0]
            return np.full((n, 10), 0.1, np.float32), None, np.zeros((n, tiny_model.model.backbone.feature_dim),
                                                                      np.float32)

    with pytest.raises(ox.AccelError):
        ox._verify(tiny_model.model, Wrong(), ox._check_input(tiny_model.model, 2))


def test_cli_backend_flag_gives_the_same_ranking(photo_folder, app_paths, onnx_cache, capsys, monkeypatch, tmp_path):
    from photocull.cli import main


    # no shipped model -> the untrained stand-in, whose export the session already made
    monkeypatch.setattr(modelspec, "default_model_path", lambda: tmp_path / "missing.pt")
    shutil.copytree(onnx_cache, app_paths.onnx_dir, dirs_exist_ok=True)
    out = {}
    for b in ("torch", "onnx"):
        main(["score", str(photo_folder), "--no-cache", "--format", "csv", "-q", "--backend", b])
        out[b] = capsys.readouterr().out
    rows = {b: [line.split(",")[0] for line in o.strip().splitlines()[1:]] for b, o in out.items()}
    assert rows["torch"] and rows["torch"] == rows["onnx"]


def test_prepare_command(app_paths, onnx_cache, capsys, monkeypatch, tmp_path):
    from photocull.cli import main


    monkeypatch.setattr(modelspec, "default_model_path", lambda: tmp_path / "missing.pt")
    shutil.copytree(onnx_cache, app_paths.onnx_dir, dirs_exist_ok=True)
    assert main(["prepare"]) == 0  # already exported: found, not redone
    assert "ready for ONNX Runtime" in capsys.readouterr().err
    monkeypatch.setattr(ox, "onnx_available", lambda: False)
    assert main(["prepare"]) == 1
    assert "scoring still works" in capsys.readouterr().err


def test_gui_prepares_the_fast_model_in_the_background_once(qtbot, app_paths, tiny_model, photo_folder,
                                                           monkeypatch, tmp_path):
    import subprocess

    from photocull.gui.mainwindow import MainWindow

    started = []

    class FakeProc:
        def __init__(self, cmd, **kw):
            started.append(cmd)

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeProc)
    w = MainWindow(app_paths)
    w.holder.put("default", tiny_model)
    qtbot.addWidget(w)
    try:
        for _ in range(2):
            with qtbot.waitSignal(w.scoringDone, timeout=120_000):
                assert w.open_folder(photo_folder)
    finally:
        w.shutdown()
    assert len(started) == 1, started  # once per model, not after every folder
    cmd = started[0]
    assert cmd[cmd.index("prepare") + 1:] == ["--model", "overall", "-q"]  # (both networks)
    assert cmd[cmd.index("--home") + 1] == str(app_paths.cache_dir.parent)


def test_gui_does_not_prepare_when_pytorch_is_asked_for(qtbot, app_paths, tiny_model, photo_folder, monkeypatch):
    import subprocess

    from photocull.gui.mainwindow import MainWindow

    monkeypatch.setenv(ox.ENV_BACKEND, "torch")
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("prepare started"))
    w = MainWindow(app_paths)
    w.holder.put("default", tiny_model)
    qtbot.addWidget(w)
    try:
        with qtbot.waitSignal(w.scoringDone, timeout=120_000):
            assert w.open_folder(photo_folder)
    finally:
        w.shutdown()


def _exported_checkpoint(tiny_model, app_paths, onnx_cache, tmp_path) -> Path:
    """tiny_model's heads as a model file, its export (the session's) indexed under the file's
    hash in this home, and its header cached: what a home has after one ONNX run."""
    from photocull.model.registry import resolve_lazy
    from photocull.model.checkpoint import save_checkpoint

    ckpt = tmp_path / "mine.pt"
    save_checkpoint(tiny_model.model, ckpt, meta={"trained": True, "name": "mine"})
    shutil.copytree(onnx_cache, app_paths.onnx_dir, dirs_exist_ok=True)
    lazy = resolve_lazy(str(ckpt), app_paths)
    r = runtime.make_runner(lazy, CPU, batch_size=8, threads=1, cache_dir=app_paths.onnx_dir, n_photos=1)
    assert isinstance(r, ox.OrtRunner)
    return ckpt


def test_scoring_from_a_cached_export_never_imports_torch(tiny_model, app_paths, onnx_cache, photo_folder,
                                                          tmp_path, capsys):
    """Importing torch is ~3 s of start-up: a run on a cached export does without it, and
    ranks the photos as PyTorch does."""
    import json
    import os
    import subprocess
    import sys

    from photocull.cli import main

    if any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/kfd")):
        pytest.skip("a machine with a GPU scores with PyTorch")
    ckpt = _exported_checkpoint(tiny_model, app_paths, onnx_cache, tmp_path)
    script = ("import json, sys; from photocull.cli import main; "
              "rc = main(['score', sys.argv[1], '--model', sys.argv[2], '--no-cache', '--format', 'json', '-q']); "
              "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}), file=sys.stderr)")
    env = dict(os.environ, PHOTOCULL_BACKEND="auto", PHOTOCULL_HOME=str(app_paths.cache_dir.parent))
    env.pop("PHOTOCULL_DEVICE", None)  # the device is found without torch too
    r = subprocess.run([sys.executable, "-c", script, str(photo_folder), str(ckpt)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stderr.strip().splitlines()[-1]) == {"rc": 0, "torch": False}, r.stderr[-2000:]
    fast = json.loads(r.stdout)["photos"]
    capsys.readouterr()
    assert main(["score", str(photo_folder), "--model", str(ckpt), "--no-cache", "--format", "json", "-q",
                 "--backend", "torch"]) == 0
    ref = json.loads(capsys.readouterr().out)["photos"]
    assert [p["path"] for p in fast] == [p["path"] for p in ref]
    assert sum(p["error"] is None for p in fast) == 6
    for a, b in zip(fast, ref):
        assert a["error"] == b["error"]
        if a["error"] is None:
            assert a["mean"] == pytest.approx(b["mean"], abs=1e-3)


def test_model_header_is_cached_by_file_hash(tiny_model, app_paths, tmp_path, monkeypatch):
    """A model file is read with torch once; later runs know its config and metadata from the
    cache, keyed by the file's hash: a changed file or a damaged cache entry is read again."""
    import torch

    from photocull.model import checkpoint
    from photocull.model.registry import resolve_lazy
    from photocull.model.nima import copy_model
    from photocull.model.checkpoint import save_checkpoint

    ckpt = tmp_path / "mine.pt"
    save_checkpoint(tiny_model.model, ckpt, meta={"trained": True, "kind": "mine"})
    first = resolve_lazy(str(ckpt), app_paths)
    real = checkpoint.read_checkpoint
    reads = []

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(checkpoint, "read_checkpoint", counting)
    again = resolve_lazy(str(ckpt), app_paths)
    assert reads == []
    assert (again.model_id, again.cfg, again.meta, again.trained) == (first.model_id, first.cfg, first.meta, True)
    assert again.notice == "model mine (mine)"
    other = copy_model(tiny_model.model)
    with torch.no_grad():
        other.heads.score[-1].bias.add_(1.0)
    save_checkpoint(other, ckpt, meta={"trained": False})  # same name, new weights
    changed = resolve_lazy(str(ckpt), app_paths)
    assert len(reads) == 1 and changed.model_id != first.model_id and changed.trained is False
    for f in (app_paths.cache_dir / "models").glob("*.json"):
        f.write_text("{not json")
    assert resolve_lazy(str(ckpt), app_paths).model_id == changed.model_id and len(reads) == 2
