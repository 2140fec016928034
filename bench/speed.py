"""How fast is photocull?  Issue #6.

    .venv/bin/python bench/speed.py --n 500          # everything (needs the `bench` extra for pyiqa)
    .venv/bin/python bench/speed.py --n 64 --quick   # a smaller run while developing

Builds (once, cached in bench/out/) a shoot of N 24 MP camera JPEGs (6000x4000, q92,
8-12 MB, EXIF with a 160x120 IFD1 thumbnail; see bench/shoot.py) and folders of 1,000
and 10,000 small (640x427) JPEGs, then measures, all in one run so ratios are fair:

1. ``photocull score`` end to end (a subprocess, as a user runs it; the default: both
   networks, technical + aesthetic, and the overall rule): the very first run (PyTorch:
   nothing exported yet), ``photocull prepare`` (the export for ONNX Runtime, once per
   model), a cold catalog (the exports cached, as on every later shoot), a warm catalog,
   and a cold one with ``--backend torch``.  The CPU time of each run is kept too.
2. Where the time goes (issue 16's budget, per photo per core): the one decode that feeds
   both networks (``scoring.decode(path, (technical, aesthetic))``: DCT-scaled decode, the
   448 px view, both inputs, EXIF; the GUI's thumbnail on top), each network alone on the
   same batches of those inputs (one thread, batch 8; ONNX Runtime and PyTorch), burst
   grouping + the overall rule, and the rest (what the cold ``photocull score`` used beyond
   these); then the pipeline's own rate with both networks (and the technical one alone).
   Also how far the aesthetic means move when its NEAREST input is picked from the
   pipeline's DCT-scaled decode instead of from a full decode (as idealo/Keras did), on
   the camera originals in ../shared/data/camera (``--camera``).
3. Ratios on the same files: photocull's pipeline vs a naive one (full decode + resize,
   batch 1, the same model: compared with the technical model alone) vs pyiqa's NIMA (InceptionResNetV2, its own path->score).
4. The GUI (offscreen, a subprocess): first screen of thumbnails, a complete grid of
   1,000 photos, reopening a scored 10,000-photo folder, peak RSS (scan + score + reopen).

The machine is printed with the figures; other jobs on it slow everything down, so the
load average is printed before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PY = sys.executable
# the environment as the bench found it, for the photocull processes it starts: pyiqa's
# import of OpenCV points QT_QPA_PLATFORM_PLUGIN_PATH, QT_QPA_FONTDIR and LD_LIBRARY_PATH at
# OpenCV's own Qt, which the GUI children then inherited (measured against a GUI not run that way)
ENV0 = dict(os.environ)


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def code_state() -> str:
    """The commit measured, and whether photocull/ had changes not committed (the figures
    are those of the working tree)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cd", "--date=iso"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "photocull"],
                               capture_output=True, text=True).stdout.splitlines()
    except OSError:
        return "?"
    return f"{head}" + (f", {len(dirty)} uncommitted change(s) in photocull/" if dirty else "")


def machine() -> dict:
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    from photocull.model.devices import thread_plan

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dec, tt = thread_plan(torch.device(dev))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "ram": ram, "gpu": gpu,
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads_default": torch.get_num_threads(),
            "plan": f"{dec} decode threads, torch threads {tt or 'unchanged'} ({dev})",
            "os": f"{platform.system()} {platform.release()}"}


# --- 1. the CLI ------------------------------------------------------------------------

def cli_score(folder: Path, home: Path, extra=()) -> tuple[float, int, float]:
    """(wall seconds, CSV rows, CPU seconds of the process and its children)."""
    env = dict(ENV0, PHOTOCULL_HOME=str(home), PHOTOCULL_DEVICE=ENV0.get("PHOTOCULL_DEVICE", ""))
    if not env["PHOTOCULL_DEVICE"]:
        del env["PHOTOCULL_DEVICE"]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([PY, "-m", "photocull.cli", "score", str(folder), "--format", "csv", "-q", *extra],
                       env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"photocull score failed:\n{r.stderr[-2000:]}")
    rows = r.stdout.count("\n") - 1
    return dt, rows, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


# --- 2./3. pipelines in-process --------------------------------------------------------

def ours(files, loaded, results: list | None = None, **kw):
    """(seconds, the last BatchProgress) of the pipeline on ``files``; the results are
    appended to ``results`` when given."""
    from photocull.scoring import iter_scores

    t0 = time.perf_counter()
    last = None
    for last in iter_scores(files, loaded, **kw):
        if results is not None:
            results += last.results
    return time.perf_counter() - t0, last


def naive(files, loaded):
    """What a first version does: full-size decode, resize, one photo at a time."""
    import torch
    from PIL import Image, ImageOps

    from photocull.model.nima import predict, preprocess
    from photocull.model.spec import to_model_input

    model = loaded.model.eval()
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
        with torch.inference_mode():
            predict(model, preprocess([to_model_input(im, loaded.cfg)], loaded.cfg))
    return time.perf_counter() - t0


def split(files, loaded, aesthetic=None, accel_dir=None, repeats: int = 2) -> dict:
    """CPU ms per photo, one thread: the scorer's one decode of each photo for both networks
    (``scoring.decode(path, (technical cfg, aesthetic cfg))`` made as large as the pipeline's
    analyses ask, ``scoring.decode_side(ANALYSES)``; with the GUI's thumbnail too), each of
    the pipeline's analyses (``scoring.ANALYSES``) on that decode, then each network alone on
    the same batches of 8 of those inputs, in PyTorch and in ONNX Runtime (best of
    ``repeats`` passes)."""
    import torch

    from photocull import scoring
    from photocull.media.loaders import open_image, shrink
    from photocull.model.nima import predict
    from photocull.model.runtime import batch_to_device
    from photocull.scoring import THUMBNAIL, Analysis, decode

    models = {"technical": loaded, **({"aesthetic": aesthetic} if aesthetic is not None else {})}
    cfgs = tuple(m.cfg for m in models.values())
    analyses = tuple(scoring.ANALYSES)
    side = scoring.decode_side(analyses)
    # the decode as large as the pipeline makes it, without running its analyses (timed apart)
    size = (Analysis("_bench_size", lambda im, **kw: None, side=side),) if side > scoring.DECODE_SIDE else ()
    out: dict = {"decode_side": side, "analyses": [a.field for a in analyses]}
    decode(Path(files[0]), cfgs, size)  # warm-up (imports), not timed
    c0 = time.thread_time()
    decoded = [decode(Path(f), cfgs, size) for f in files]
    out["decode_cpu_ms"] = (time.thread_time() - c0) / len(files) * 1000
    c0 = time.thread_time()
    for f in files:
        decode(Path(f), cfgs, (*size, THUMBNAIL))
    out["decode_thumb_cpu_ms"] = (time.thread_time() - c0) / len(files) * 1000
    bad = [d.path for d in decoded if d.error]
    if bad:
        raise SystemExit(f"decode failed on {bad[:3]}")
    # each analysis on the decode it gets in scoring.decode (the full decode when it asks for
    # a side, else the DECODE_SIDE view), earlier ones' results passed as in the pipeline
    spent = {a.field: 0.0 for a in analyses}
    for i, f in enumerate([files[0], *files]):  # the first pass: warm-up (models load), not counted
        im = open_image(Path(f), max_side=side, draft_only=True)
        view = shrink(im.copy(), scoring.DECODE_SIDE)
        found: dict = {}
        for a in analyses:
            c0 = time.process_time()  # the whole process: an analysis may run ONNX Runtime threads
            try:
                found[a.field] = a.run(im if a.side else view, **{u: found.get(u) for u in a.uses})
            except Exception:  # noqa: BLE001 - as in the pipeline
                found[a.field] = None
            if i:
                spent[a.field] += time.process_time() - c0
    out["analysis_cpu_ms"] = {k: v / len(files) * 1000 for k, v in spent.items()}

    def per_photo(run, batches) -> float:
        run(batches[0])  # warm-up, not timed
        best = float("inf")
        for _ in range(repeats):
            c0 = time.process_time()  # the whole process: any thread the runtime starts counts
            for b in batches:
                run(b)
            best = min(best, time.process_time() - c0)
        return best / len(files) * 1000

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k, (name, m) in enumerate(models.items()):
            batches = [[d.arrays[k] for d in decoded[i:i + 8]] for i in range(0, len(decoded), 8)]
            model = m.model.to(memory_format=torch.channels_last).eval()

            def torch_run(b, model=model, cfg=m.cfg):
                with torch.inference_mode():
                    return predict(model, batch_to_device(b, cfg, torch.device("cpu")))

            out[f"{name}_torch_cpu_ms"] = per_photo(torch_run, batches)
            out[f"{name}_ort_cpu_ms"] = None
            if accel_dir is not None:
                from photocull.model.onnx_cache import OrtRunner
                from photocull.model.runtime import make_runner

                r = make_runner(m, torch.device("cpu"), batch_size=8, threads=1, cache_dir=accel_dir,
                                n_photos=len(files), backend="onnx")
                if isinstance(r, OrtRunner):
                    out[f"{name}_ort_cpu_ms"] = per_photo(r, batches)
                r.close()
    finally:
        torch.set_num_threads(old)
    return out


def judge_cost(results, loaded, aesthetic) -> float:
    """CPU ms per photo of what ``photocull score`` does after scoring in its default mode:
    burst groups (features, then tiny greys decoded for the frames that need a pixel
    check; no catalog here, as on a cold one) and the overall rule."""
    from photocull.cli.common import judge
    from photocull.model.registry import Scorers

    scored = [r for r in results if r.probs is not None]
    c0 = time.process_time()
    judge(scored, Scorers(loaded, aesthetic), None)
    return (time.process_time() - c0) / max(1, len(scored)) * 1000


def nearest_compare(camera: Path, aesthetic, accel_dir=None) -> dict:
    """Aesthetic means from the pipeline's input (NEAREST from the DCT-scaled decode,
    ``scoring.decode``) vs from a full decode (NEAREST straight to 224 from the full-size,
    upright image: Keras ``load_img`` as idealo scored).  Per file list: the iPhone
    originals, and the exif samples whose pipeline decode is smaller than the file (the
    others are decoded whole by the pipeline too: the same input, counted)."""
    import torch

    from photocull.media.loaders import ImageError, is_supported, open_image
    from photocull.model.losses import dist_mean
    from photocull.model.runtime import make_runner
    from photocull.model.spec import to_model_input
    from photocull import scoring

    runner = make_runner(aesthetic, torch.device("cpu"), batch_size=8, threads=None, cache_dir=accel_dir,
                         n_photos=1, backend="onnx" if accel_dir is not None else "torch")
    sides = {"decode_448": scoring.DECODE_SIDE, "decode_pipeline": scoring.decode_side(scoring.ANALYSES)}
    lists = {"iphone_xs_max": sorted((camera / "iphone_xs_max").glob("*.jpg")),
             "exif_samples": sorted(p for p in (camera / "exif_samples").rglob("*")
                                    if p.is_file() and "_upstream_readmes" not in p.parts and is_supported(p))}
    res: dict = {"runner": runner.name}
    res["sides"] = sides

    def means(arrays):
        return np.concatenate([dist_mean(runner(arrays[i:i + 8])[0]) for i in range(0, len(arrays), 8)])

    for name, files in lists.items():
        entry: dict = {"files": len(files)}
        ims, fulls, unreadable = {}, {}, 0
        for f in files:
            try:
                im = open_image(f)  # the full decode, upright RGB
            except ImageError:
                unreadable += 1
                continue
            fulls[f] = to_model_input(im, aesthetic.cfg)
            ims[f] = im.size
        entry["unreadable"] = unreadable
        for tag, side in sides.items():
            pipe, full, names, whole_large = [], [], [], []
            for f, size in ims.items():
                small = open_image(f, max_side=side, draft_only=True)  # what scoring.decode picks from
                if small.size == size:  # not DCT-scaled: the pipeline picks from the full decode as well
                    if min(size) >= 2 * side:  # big enough to be scaled, yet decoded whole (not a JPEG to Pillow)
                        whole_large.append(f"{f.relative_to(camera)} ({size[0]}x{size[1]})")
                    continue
                pipe.append(to_model_input(small, aesthetic.cfg))
                full.append(fulls[f])
                names.append(str(f.relative_to(camera)))
            e = {"compared": len(names), "decoded_whole_same_input": len(ims) - len(names),
                 "decoded_whole_large": whole_large}
            if names:
                mp, mf = means(pipe), means(full)
                diff = mp - mf
                k = int(np.argmax(np.abs(diff)))
                e.update(mean_abs_diff=float(np.mean(np.abs(diff))), max_abs_diff=float(abs(diff[k])),
                         max_file=names[k], mean_signed_diff=float(np.mean(diff)),
                         per_file={n: [round(float(a), 4), round(float(b), 4)] for n, a, b in zip(names, mp, mf)})
            entry[tag] = e
        res[name] = entry
    runner.close()
    return res


def pyiqa_nima(files):
    """pyiqa's NIMA (InceptionResNetV2 backbone) as its users run it: metric(path).

    Its weights (and timm's ImageNet weights, which its constructor always asks for)
    cannot be downloaded here; speed does not depend on weight values, so the
    architecture is built with random weights."""
    import pyiqa
    import pyiqa.archs.nima_arch as na
    import timm
    import torch

    class _TimmNoDownload:
        def __getattr__(self, name):
            return getattr(timm, name)

        @staticmethod
        def create_model(name, pretrained=False, **kw):
            return timm.create_model(name, pretrained=False, **kw)

    na.timm = _TimmNoDownload()
    try:
        metric = pyiqa.create_metric("nima", pretrained=False, device=torch.device("cpu"))
    finally:
        na.timm = timm
    metric(str(files[0]))  # warm-up (not timed), as for the others
    t0 = time.perf_counter()
    for f in files[1:]:
        metric(str(f))
    return (time.perf_counter() - t0) / max(1, len(files) - 1)


# --- 4. the GUI (child process) --------------------------------------------------------

def gui_child(mode: str, folder: str, home: str, out: str, rescan: int) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["PHOTOCULL_HOME"] = home
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from photocull.config import AppPaths
    from photocull.gui.mainwindow import MainWindow
    from photocull.gui.photomodel import SORT_KEYS

    app = QApplication.instance() or QApplication([])
    paths = AppPaths.default(home).ensure()
    win = MainWindow(paths)
    win.resize(1400, 900)
    win.show()
    app.processEvents()
    res: dict = {}

    def visible_rows():
        vp = win.grid.viewport().rect()
        top = win.grid.indexAt(vp.topLeft())
        rows = []
        for r in range(top.row() if top.isValid() else 0, win.proxy.rowCount()):
            rect = win.grid.visualRect(win.proxy.index(r, 0))
            if rect.isValid() and rect.intersects(vp):
                rows.append(r)
            elif rows:
                break
        return rows

    def first_screen_done(rows, limit=20):
        m = win.model
        items = [win.proxy.item(win.proxy.index(r, 0)) for r in rows[:limit]]
        return bool(items) and all(it.key in m._thumbs or m.thumbnail_error(it) for it in items)

    def page_through(timeout=60.0):
        """Page down the whole grid from the top, as a user flicking through it: each page
        once all its cells show a thumbnail.  Returns (seconds, pages, slowest page)."""
        from PySide6.QtWidgets import QAbstractItemView

        ts, pages, worst, row = time.perf_counter(), 0, 0.0, 0
        n = win.proxy.rowCount()
        seen = set()  # photos shown with their thumbnail (the grid re-sorts as scores come in)
        while row < n:
            win.grid.scrollTo(win.proxy.index(row, 0), QAbstractItemView.ScrollHint.PositionAtTop)
            tp = time.perf_counter()
            while True:
                app.processEvents()
                rows = visible_rows()
                if first_screen_done(rows, limit=len(rows)) or time.perf_counter() - tp > timeout:
                    break
                time.sleep(0.001)
            worst, pages = max(worst, time.perf_counter() - tp), pages + 1
            seen.update(win.proxy.item(win.proxy.index(r, 0)).key for r in rows)
            row = max(row + 1, rows[-1] + 1) if rows else n
        return time.perf_counter() - ts, pages, worst, len(seen)

    def is_sorted():
        key = SORT_KEYS[win.proxy.sort_key]
        ks = [key(it) for it in win.proxy.visible_items()]
        return all(a <= b for a, b in zip(ks, ks[1:]))

    def run_open(tag: str, timeout: float = 3600.0):
        """Open the folder; time first screen, rows present, scores done (sorted); max stall."""
        state = {"first": None, "rows": None, "done": None, "last": time.perf_counter(), "stall": 0.0,
                 "n_vis": 0, "paged": None}
        done = []
        win.scoringDone.connect(lambda: done.append(time.perf_counter()))

        def tick():
            now = time.perf_counter()
            state["stall"] = max(state["stall"], now - state["last"])
            state["last"] = now
            if state["first"] is None:
                rows = visible_rows()
                if first_screen_done(rows):
                    state["first"], state["n_vis"] = now - t0, min(20, len(rows))
            if state["rows"] is None and win.proxy.rowCount() == win.model.rowCount() > 0:
                state["rows"] = now - t0

        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(tick)
        # the whole grid, not just the first screen: once the first screen is shown, jump to
        # the end and to the middle while scoring runs; time until that screen's thumbnails show
        targets, scroll_s = (["end", "middle"] if tag == "cold" else []), {}
        t0 = time.perf_counter()
        win.open_folder(folder)
        n = win.model.rowCount()
        timer.start()
        if not targets and not done:
            # Qt's own event loop, as the app runs: a loop of processEvents + sleep(1 ms) wakes
            # the GUI thread 1,000 times a second, and each wake takes the GIL from the scorer
            # thread (a 10,000-photo reopen measured 0.5-0.8 s slower that way)
            loop = QEventLoop()
            win.scoringDone.connect(loop.quit)
            QTimer.singleShot(int(timeout * 1000), loop.quit)
            loop.exec()
            win.scoringDone.disconnect(loop.quit)
        while not done and time.perf_counter() - t0 < timeout:
            app.processEvents()
            time.sleep(0.001)
            if state["first"] is not None and targets:
                where = targets.pop(0)
                if where == "end":
                    win.grid.scrollToBottom()
                else:
                    win.grid.scrollTo(win.proxy.index(win.proxy.rowCount() // 2, 0))
                ts = time.perf_counter()
                while time.perf_counter() - ts < 60:
                    app.processEvents()
                    time.sleep(0.001)
                    if first_screen_done(visible_rows()):
                        break
                scroll_s[where] = time.perf_counter() - ts
                if not targets:  # then every thumbnail of the grid, page by page
                    # in shooting (name) order, as a photographer looks over a whole shoot: sorted
                    # by score the grid re-sorts under them while scores come in
                    win.set_sort("name")
                    paged = page_through()
                    state["paged"] = (time.perf_counter() - t0, *paged)
                    win.set_sort("score")
        # the last re-sort may follow scoringDone by up to PhotoListModel.REFRESH_MS: count it
        while done and getattr(win.model, "_dirty", False) and time.perf_counter() - t0 < timeout:
            app.processEvents()
            time.sleep(0.001)
        t_done = (time.perf_counter() - t0) if done else float("nan")
        while state["first"] is None and time.perf_counter() - t0 < timeout:
            app.processEvents()
            time.sleep(0.001)
        app.processEvents()
        timer.stop()
        ok_sorted = is_sorted()
        # burst grouping runs in the background after scoring: wait for it (not timed as
        # "complete grid"; a second open while it runs would leave it orphaned)
        tg = time.perf_counter()
        while getattr(win, "group_worker", None) is not None and time.perf_counter() - tg < timeout:
            app.processEvents()
            time.sleep(0.005)
        res[tag] = {"photos": n, "first_screen_s": state["first"], "first_screen_cells": state["n_vis"],
                    "rows_present_s": state["rows"], "all_scored_sorted_s": t_done,
                    "sorted": ok_sorted, "max_stall_s": state["stall"],
                    "scored": sum(1 for it in win.model.items if it.scored),
                    "groups_after_s": time.perf_counter() - tg, "scroll_screen_s": scroll_s}
        if state.get("paged"):
            (res[tag]["whole_grid_paged_s"], res[tag]["paging_s"], res[tag]["pages"], res[tag]["slowest_page_s"],
             res[tag]["photos_seen_paging"]) = state["paged"]

    def rss_mb():
        """This process's peak RSS.  Not ``ru_maxrss`` where /proc has VmHWM: Linux keeps
        ru_maxrss across fork + exec, so a child started by a 1-2 GB bench process reported
        the parent's size (this bench's GUI figure was 1.1-2.0 GB where the GUI peaked at ~550 MB)."""
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere

    if mode == "grid":
        run_open("cold")
        run_open("warm")
    elif mode == "open":  # a fresh window opening a folder (scored before: with ``home``), nothing else
        run_open("open")
        for i in range(rescan):
            run_open(f"reopen{i}")
    elif mode == "rss":
        run_open("cold")
        res["rss_after_score_mb"] = rss_mb()
        for i in range(rescan):
            run_open(f"reopen{i}")
        res["peak_rss_mb"] = rss_mb()
    Path(out).write_text(json.dumps(res))
    win.shutdown()


def gui(mode: str, folder: Path, rescan: int = 2, home: Path | None = None, onnx: Path | None = None,
        headers: Path | None = None) -> dict:
    """Run the GUI child; ``home`` (copied) starts it with an existing catalog; ``onnx``: a
    cache of exported models to start with, ``headers``: of model headers (as any run after
    the first has: the first run writes both)."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "res.json"
        h = Path(tmp) / "home"
        if home is not None:
            shutil.copytree(home, h)
        if onnx is not None and any(Path(onnx).glob("*.onnx")):
            shutil.copytree(onnx, h / "cache" / "onnx", dirs_exist_ok=True)
        if headers is not None and headers.is_dir():
            shutil.copytree(headers, h / "cache" / "models", dirs_exist_ok=True)
        env = dict(ENV0, QT_QPA_PLATFORM="offscreen")
        r = subprocess.run([PY, __file__, "--gui-child", mode, str(folder), str(h), str(out),
                            str(rescan)], env=env, capture_output=True, text=True)
        if not out.exists():
            raise SystemExit(f"GUI child failed:\n{r.stderr[-3000:]}")
        if r.returncode != 0:
            print(f"  (GUI child exited with {r.returncode} after writing its figures: {r.stderr.strip()[-200:]})")
        return json.loads(out.read_text())


def ensure_exports(models, accel_dir: Path) -> None:
    """Each model exported for ONNX Runtime into ``accel_dir`` (a look-up when it is)."""
    import torch

    from photocull.model.runtime import make_runner

    for m in models:
        if m is not None:
            make_runner(m, torch.device("cpu"), batch_size=8, threads=1, cache_dir=accel_dir, n_photos=1,
                        backend="onnx").close()


# --- the budget (issue 16) ----------------------------------------------------------------

def budget(fig: dict, n: int) -> None:
    """Per photo per core, ms: decode, technical model, aesthetic model (ONNX Runtime when
    it ran, else PyTorch), rest, total.  The total is the CPU the cold ``photocull score``
    used per photo (start-up and model load included); the rest is that total less the
    three measured parts (burst grouping + the overall rule, measured apart, is in it).
    Without the CLI step, the total is the three parts plus grouping."""
    sp = fig["split"]

    def model_ms(name):
        v = sp.get(f"{name}_ort_cpu_ms")
        return (v, "ONNX Runtime") if v is not None else (sp.get(f"{name}_torch_cpu_ms"), "PyTorch")

    tech, tech_rt = model_ms("technical")
    aest, aest_rt = model_ms("aesthetic")
    an = sp.get("analysis_cpu_ms", {})
    parts = [sp["decode_cpu_ms"], *an.values(), tech, aest or 0.0]
    cores = fig["machine"]["cores"]
    judge = fig.get("judge_cpu_ms")
    if "cli_cold_cpu_s" in fig:
        total = fig["cli_cold_cpu_s"] / n * 1000
        how = "CPU of the cold photocull score run per photo"
    else:
        total = sum(parts) + (judge or 0.0)
        how = "the parts measured (no CLI run)"
    rest = total - sum(parts)
    b = {"decode_ms": parts[0], "analyses_ms": dict(an), "technical_ms": tech, "technical_runtime": tech_rt, "aesthetic_ms": aest,
         "aesthetic_runtime": aest_rt, "rest_ms": rest, "judge_ms": judge, "total_ms": total,
         "total_is": how, "ceiling_rate": cores * 1000 / total}
    if "cli_cold_s" in fig:
        b["wall_core_ms"] = cores * fig["cli_cold_s"] / n * 1000
    fig["budget"] = b
    print(f"budget per photo per core ({cores} cores; {n} x 24 MP):")
    print(f"  decode (DCT-scaled to >= {sp['decode_side']} px + 448 view + both inputs + EXIF)  {parts[0]:6.1f} ms"
          f"   (thumbnail in the GUI {sp['decode_thumb_cpu_ms'] - parts[0]:+.1f} ms)")
    for name, ms in an.items():
        print(f"  analysis {name}  {ms:6.1f} ms")
    print(f"  technical model ({tech_rt}, 1 thread, batch 8)  {tech:6.1f} ms")
    if aest is not None:
        print(f"  aesthetic model ({aest_rt}, 1 thread, batch 8)  {aest:6.1f} ms   (aim <= 25 ms: "
              f"{'met' if aest <= 25 else 'NOT met'})")
    print(f"  rest                                                {rest:6.1f} ms"
          + (f"   (of which burst grouping + overall rule {judge:.1f} ms)" if judge is not None else ""))
    print(f"  total ({how})  {total:6.1f} ms -> {cores} x 1000 / total = {cores * 1000 / total:.1f} photos/s")
    if "wall_core_ms" in b:
        print(f"  wall clock x cores per photo (cold photocull score)  {b['wall_core_ms']:6.1f} ms "
              f"-> {n / fig['cli_cold_s']:.1f} photos/s (cores idle {b['wall_core_ms'] - total:.1f} ms per photo)")


# --- main --------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="24 MP photos in the shoot (default 500)")
    ap.add_argument("--grid-n", type=int, default=1000)
    ap.add_argument("--rss-n", type=int, default=10000)
    ap.add_argument("--rss-home", help="start the 10k GUI run with this photocull home (a scored catalog): "
                    "then 'scan+score' is a reopen too")
    ap.add_argument("--gui24-n", type=int, default=100, help="24 MP photos opened in the GUI (first screen, rate)")
    ap.add_argument("--naive-n", type=int, default=48, help="photos for the naive pipeline (same files as ours)")
    ap.add_argument("--pyiqa-n", type=int, default=5, help="photos for pyiqa (first one is a warm-up)")
    ap.add_argument("--split-n", type=int, default=32, help="photos for the per-photo CPU budget (default 32)")
    ap.add_argument("--camera", default=str(ROOT.parent / "shared" / "data" / "camera"),
                    help="camera originals for the NEAREST comparison (default ../shared/data/camera)")
    ap.add_argument("--skip", default="", help="comma list of: cli,split,ours,naive,pyiqa,nearest,grid,rss")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--gui-child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.gui_child:
        mode, folder, home, out, rescan = args.gui_child
        gui_child(mode, folder, home, out, int(rescan))
        return 0

    import torch

    from shoot import build_shoot

    skip = set(filter(None, args.skip.split(",")))
    fig: dict = {"machine": machine(), "load_before": load()}
    m = fig["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, GPU {m['gpu']}; {m['os']}; "
          f"Python {m['python']}, torch {m['torch']} (default {m['torch_threads_default']} threads); "
          f"scorer plan: {m['plan']}")
    print(f"load average before: {fig['load_before']}")
    fig["code"] = code_state()
    print(f"code: {fig['code']}")

    files = build_shoot("camera24mp", args.n, (6000, 4000), unique=min(args.n, 50))
    folder = files[0].parent
    if len(list(folder.glob("*.JPG"))) != args.n:  # the CLI scores the whole folder: use exactly N
        folder = Path(tempfile.mkdtemp(prefix="photocull-shoot-"))
        for f in files:
            os.symlink(f, folder / f.name)
    size_mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
    print(f"shoot: {args.n} x 6000x4000 JPEG q92, mean {size_mb:.1f} MB, EXIF + 160x120 thumbnail ({folder})")

    from photocull.model.checkpoint import load_default_model, load_model
    from photocull.model.spec import aesthetic_model_path

    loaded = load_default_model()
    # the second network photocull score runs by default (issue 16); None: not installed
    aest = load_model(aesthetic_model_path(), name="aesthetic") if aesthetic_model_path().is_file() else None
    if aest is None:
        print("aesthetic model missing: the figures below are the technical model's alone")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    accel_dir = Path(tempfile.mkdtemp(prefix="photocull-onnx-"))
    # what the first run leaves for later ones beside the export: the model's header (its
    # config and metadata, so that a session on the export never imports torch)
    from photocull.model.registry import LazyModel
    from photocull.model.spec import default_model_path

    header_dir = accel_dir.parent / (accel_dir.name + "-headers")
    if default_model_path().is_file():
        LazyModel(default_model_path(), "default", header_dir)
    if aest is not None:
        LazyModel(aesthetic_model_path(), "aesthetic", header_dir)

    if "cli" not in skip:
        import shutil

        with tempfile.TemporaryDirectory() as home:
            # a brand-new home: under 1,000 photos the first run is PyTorch (an export would not pay yet)
            dt0, _, _ = cli_score(folder, Path(home))
            fig["cli_first_ever_s"], fig["cli_first_ever_rate"] = dt0, args.n / dt0
            t0 = time.perf_counter()  # what the GUI then does in the background, once per model
            r = subprocess.run([PY, "-m", "photocull.cli", "--home", home, "prepare", "-q"], env=dict(ENV0), capture_output=True,
                               text=True)
            fig["prepare_s"] = time.perf_counter() - t0
            if r.returncode != 0:
                print(f"photocull prepare failed (ONNX Runtime figures below are PyTorch's): {r.stderr.strip()[-300:]}")
            else:
                shutil.copytree(Path(home) / "cache" / "onnx", accel_dir, dirs_exist_ok=True)
            for extra in ("", "-wal", "-shm"):
                Path(home, "data", "catalog.sqlite" + extra).unlink(missing_ok=True)
            dt, rows, cpu = cli_score(folder, Path(home))
            fig["cli_cold_s"], fig["cli_cold_rate"], fig["cli_cold_cpu_s"] = dt, args.n / dt, cpu
            dt2, _, _ = cli_score(folder, Path(home))
            fig["cli_warm_s"] = dt2
            dtt, _, _ = cli_score(folder, Path(home), ("--no-cache", "--backend", "torch"))
            fig["cli_torch_cold_s"], fig["cli_torch_cold_rate"] = dtt, args.n / dtt
        print(f"photocull score, very first run (PyTorch; nothing exported yet): {args.n} photos in {dt0:.1f} s "
              f"= {args.n / dt0:.1f} photos/s")
        print(f"photocull prepare (export for ONNX Runtime, once per model; the GUI does it in the background): "
              f"{fig['prepare_s']:.1f} s")
        print(f"photocull score, cold catalog (both networks + overall rule, the default): {args.n} photos in "
              f"{dt:.1f} s = {args.n / dt:.1f} photos/s (includes start-up and model load; goal >= 15: "
              f"{'met' if args.n / dt >= 15 else 'NOT met'}); CPU {cpu:.1f} s = {cpu / args.n * 1000:.0f} ms per photo")
        print(f"photocull score, warm catalog: {dt2:.2f} s")
        print(f"photocull score --backend torch, cold: {dtt:.1f} s = {args.n / dtt:.1f} photos/s")

    if "split" not in skip:
        sub = files[:min(len(files), args.split_n)]
        fig["split"] = sp = split(sub, loaded, aest, accel_dir)
        fig["decode_cpu_ms"], fig["model_cpu_ms"], fig["model_ort_cpu_ms"] = (
            sp["decode_cpu_ms"], sp["technical_torch_cpu_ms"], sp["technical_ort_cpu_ms"])
        print(f"CPU per photo, one thread ({len(sub)} photos, batch 8): decode for both networks (DCT-scaled to "
              f">= {sp['decode_side']} px + 448 view + both inputs + EXIF) {sp['decode_cpu_ms']:.1f} ms (with the "
              f"GUI's thumbnail: {sp['decode_thumb_cpu_ms']:.1f} ms)")
        for name, ms in sp["analysis_cpu_ms"].items():
            print(f"  analysis {name}: {ms:.1f} ms")
        for name in ("technical", "aesthetic"):
            if f"{name}_torch_cpu_ms" in sp:
                ort = sp[f"{name}_ort_cpu_ms"]
                print(f"  {name} model: ONNX Runtime {ort or float('nan'):.1f} ms, PyTorch "
                      f"{sp[name + '_torch_cpu_ms']:.1f} ms")

    sub = files[:min(len(files), args.naive_n)]
    sub = files[:min(len(files), args.naive_n)]
    if "ours" not in skip and dev == "cpu":
        ensure_exports([loaded, aest], accel_dir)  # (not inside the pipeline's timing: once per model)
    if "ours" in skip:
        skip |= {"naive", "pyiqa"}  # their ratios need it
    else:
        got: list = []
        dt_ours, last = ours(sub, loaded, got, batch_size=8, want_thumbnails=True, accel_dir=accel_dir,
                             backend="onnx", aesthetic=aest)
        fig["ours_rate"] = len(sub) / dt_ours
        fig["ours_decode_s"], fig["ours_model_s"] = last.decode_seconds, last.model_seconds
        both = "both networks" if aest is not None else "the technical network"
        print(f"photocull pipeline ({dev}, in-process, {len(sub)} photos, {both}, thumbnails): "
              f"{len(sub) / dt_ours:.1f} photos/s; BatchProgress: decode {last.decode_seconds:.1f} s (summed over "
              f"threads), model {last.model_seconds:.1f} s")
        if aest is not None:
            fig["judge_cpu_ms"] = judge_cost(got, loaded, aest)
            dt_tech, _ = ours(sub, loaded, batch_size=8, want_thumbnails=True, accel_dir=accel_dir, backend="onnx")
            fig["ours_tech_rate"] = len(sub) / dt_tech
            print(f"  the technical network alone: {len(sub) / dt_tech:.1f} photos/s")
        else:
            dt_tech = dt_ours
        dt_t, _ = ours(sub, loaded, batch_size=8, want_thumbnails=True, backend="torch", aesthetic=aest)
        fig["ours_torch_rate"] = len(sub) / dt_t
        print(f"  the same ({both}) with the models in PyTorch: {len(sub) / dt_t:.1f} photos/s")
        if torch.cuda.is_available():
            dt_gpu, _ = ours(sub, loaded, batch_size=8, device="cuda")
            fig["ours_gpu_rate"] = len(sub) / dt_gpu
            dt_cpu, _ = ours(sub, loaded, batch_size=8, device="cpu")
            fig["ours_cpu_rate"] = len(sub) / dt_cpu
            print(f"  GPU {len(sub) / dt_gpu:.1f} photos/s, CPU only {len(sub) / dt_cpu:.1f} photos/s")
    if "naive" not in skip:
        dt_naive = naive(sub, loaded)
        fig["naive_rate"] = len(sub) / dt_naive
        print(f"naive pipeline (full decode, resize, batch 1, same model; {len(sub)} photos): "
              f"{len(sub) / dt_naive:.2f} photos/s -> photocull (the technical network alone, as the naive one) "
              f"is {dt_naive / dt_tech:.1f}x faster")
    if "pyiqa" not in skip:
        try:
            per = pyiqa_nima(files[:max(2, args.pyiqa_n)])
            fig["pyiqa_rate"] = 1 / per
            print(f"pyiqa NIMA (InceptionResNetV2, metric(path), {max(2, args.pyiqa_n) - 1} photos): {1 / per:.2f} photos/s "
                  f"-> photocull (both networks) is {fig['ours_rate'] * per:.1f}x faster")
        except ImportError:
            print("pyiqa NIMA: skipped (pip install pyiqa, the `bench` extra)")

    if "split" in fig:
        budget(fig, args.n)

    if "nearest" not in skip and aest is not None:
        camera = Path(args.camera)
        if not camera.is_dir():
            print(f"NEAREST comparison: skipped ({camera} not found)")
        else:
            fig["nearest"] = nc = nearest_compare(camera, aest, accel_dir)
            print(f"aesthetic means, NEAREST from the pipeline's DCT-scaled decode vs from a full decode "
                  f"(NEAREST straight to 224 from the full-size image, as idealo/Keras; {nc['runner']}):")
            labels = {"decode_448": f"decode for {nc['sides']['decode_448']} px (the networks' own)",
                      "decode_pipeline": f"decode for {nc['sides']['decode_pipeline']} px (the pipeline's now, "
                                         f"with its analyses)"}
            for name in ("iphone_xs_max", "exif_samples"):
                for tag, label in labels.items():
                    if tag == "decode_pipeline" and nc["sides"][tag] == nc["sides"]["decode_448"]:
                        continue
                    e = nc[name][tag]
                    if e["compared"]:
                        print(f"  {name}, {label}: {e['compared']} of {nc[name]['files']} files decoded smaller "
                              f"than full size: mean |diff| {e['mean_abs_diff']:.3f}, max {e['max_abs_diff']:.3f} "
                              f"({e['max_file']}), mean signed {e['mean_signed_diff']:+.3f}; "
                              f"{e['decoded_whole_same_input']} decoded whole (same input), "
                              f"{nc[name]['unreadable']} unreadable")
                    else:
                        print(f"  {name}, {label}: no file decoded smaller than full size")
                    if e["decoded_whole_large"]:
                        print(f"    decoded whole although large (no DCT scaling for them): "
                              f"{', '.join(e['decoded_whole_large'])}")

    if not {"grid", "rss"} <= skip and dev == "cpu":
        # the GUI steps start where a later session does: the models exported (what the first
        # session's background `photocull prepare` leaves), even when the CLI step was skipped
        ensure_exports([loaded, aest], accel_dir)

    if "grid" not in skip:
        g_files = build_shoot("small1k", args.grid_n, (640, 427))
        r = gui("grid", g_files[0].parent, onnx=accel_dir, headers=header_dir)
        fig["gui_grid"] = r
        c, w = r["cold"], r["warm"]
        print(f"GUI, {c['photos']} photos 640x427 (offscreen): first screen ({c['first_screen_cells']} cells) "
              f"{c['first_screen_s']:.2f} s; all rows present {c['rows_present_s']:.2f} s; "
              f"all scored and sorted {c['all_scored_sorted_s']:.1f} s (cold); max GUI stall {c['max_stall_s']:.2f} s")
        if c.get("scroll_screen_s"):
            print("GUI, the rest of the grid while it scores: " + ", ".join(
                f"scrolled to the {k}, its screen of thumbnails in {v:.2f} s" for k, v in c["scroll_screen_s"].items()))
        if c.get("whole_grid_paged_s"):
            print(f"GUI, the whole grid: paging from the top to the end (by name) while it scores, "
                  f"{c['photos_seen_paging']} of the {c['photos']} photos shown with their thumbnails "
                  f"{c['whole_grid_paged_s']:.1f} s after opening ({c['pages']} pages in {c['paging_s']:.1f} s, "
                  f"slowest page {c['slowest_page_s']:.2f} s)")
        print(f"GUI, reopening it (scored): first screen {w['first_screen_s']:.2f} s, complete sorted grid "
              f"{w['all_scored_sorted_s']:.2f} s (sorted: {w['sorted']})")
    if "grid" not in skip and args.gui24_n > 0:  # (an empty folder would never finish scoring)
        f24 = Path(tempfile.mkdtemp(prefix="photocull-gui24-"))
        for f in files[:args.gui24_n]:
            os.symlink(f, f24 / f.name)
        r24 = gui("grid", f24, onnx=accel_dir, headers=header_dir)
        fig["gui_24mp"] = r24
        c = r24["cold"]
        print(f"GUI, {c['photos']} of the 24 MP photos: first screen ({c['first_screen_cells']} cells) {c['first_screen_s']:.2f} s; "
              f"all scored and sorted {c['all_scored_sorted_s']:.1f} s = {c['photos'] / c['all_scored_sorted_s']:.1f} photos/s; "
              f"max GUI stall {c['max_stall_s']:.2f} s")

    if "rss" not in skip:
        r_files = build_shoot("small10k", args.rss_n, (640, 427), unique=min(args.rss_n, 1000))
        r = gui("rss", r_files[0].parent, home=Path(args.rss_home) if args.rss_home else None, onnx=accel_dir,
                headers=header_dir)
        fig["gui_rss"] = r
        c = r["cold"]
        reopen = [r[k] for k in r if k.startswith("reopen")]
        best = min(x["all_scored_sorted_s"] for x in reopen)
        print(f"GUI, {c['photos']} photos: scan+score {c['all_scored_sorted_s']:.0f} s "
              f"({c['photos'] / c['all_scored_sorted_s']:.1f} photos/s), max GUI stall while scoring "
              f"{c['max_stall_s']:.2f} s; reopen (scored) {best:.2f} s to a complete sorted grid "
              f"(first screen {min(x['first_screen_s'] for x in reopen):.2f} s); peak RSS {r['peak_rss_mb']:.0f} MB")

    fig["load_after"] = load()
    print(f"load average after: {fig['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
