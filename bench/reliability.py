"""Figures for README's Reliability section: hostile inputs tried, faults survived, files lost.

    .venv/bin/python bench/reliability.py [--kills 10] [--rate-kills 10] [--keep]

One run, every case generated here (tests/reliability_helpers.py) plus the shared EXIF corpus
when ../shared/data is present; a tiny stand-in model (this measures the file pipeline):

* hostile photo files and the corpus, scored;
* FIFOs named like a photo, a RAW companion, a sidecar: scored, exported, rated, none may hang;
* hostile XMP sidecars (unknown encoding, 1000 levels, 150,000 elements, 17 MB, entity bombs,
  not XML, a FIFO, a folder) through ``score``, ``rate``, ``trash-rejects`` and ``export``;
* hostile model files, each refused in a process of its own (its peak memory measured);
* unusable catalogs (a folder in its place, a read-only file system), damaged ones (ratings
  back from the sidecars), two processes opening a damaged one at once;
* ``rate`` runs killed with SIGKILL between and inside sidecar saves;
* a shoot of links (to a key outside, out of the folder, inside it, broken, looping) exported,
  moved and trashed;
* ``--kills`` slowed exports/moves killed with SIGKILL at random moments.

Every CLI call must end with an exit code and a message (a traceback counts as a crash);
nothing outside the source may reach a destination; every photo must be intact at its source
or verified at its destination.  Exit status 1 when any of that fails.
"""
from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("PHOTOCULL_DEVICE", "cpu")
os.environ.setdefault("PHOTOCULL_BACKEND", "torch")

from reliability_helpers import (CATALOG_DAMAGE, ERROR, build_fifo_folder, build_hostile_folder,  # noqa: E402
                                 build_hostile_models, build_hostile_sidecars, build_link_shoot, corpus_files,
                                 damage_catalog, fast_model, leaked_from_outside, model_refusal_cost, unblock_fifos)
from conftest import make_photo  # noqa: E402
from test_dataloss import DRIVER, TMP_PREFIX  # noqa: E402
from test_hostile_cull import KILLED_RATE, OPEN_AT_ONCE, READ_ONLY, _read_only_fs  # noqa: E402

from photocull.config import AppPaths  # noqa: E402
from photocull.cull import leftovers  # noqa: E402
from photocull.cull.catalog import Catalog  # noqa: E402
from photocull.cull.marks import load_marks  # noqa: E402
from photocull.media.listing import list_images  # noqa: E402
from photocull.media.loaders import is_supported  # noqa: E402
from photocull.media.sidecar import read_sidecar  # noqa: E402
from photocull.scoring import score_all  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}


class Tally:
    """What the summary adds up."""

    def __init__(self):
        self.cases = self.good = self.refused = self.crashes = self.lost = self.leaked = self.hangs = 0
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            print(f"  FAILED: {what}")


T = Tally()
MODEL = fast_model()


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def cli(*argv, home: Path) -> tuple[int, str, str]:
    """photocull's CLI in this process (the tiny model); a traceback or an escaping
    exception counts as a crash."""
    import photocull.model.registry as registry
    from photocull.cli import main

    os.environ["PHOTOCULL_HOME"] = str(home)
    registry.resolve_lazy = lambda spec, paths: MODEL
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse and a few refusals exit with a message
        rc = exc.code if isinstance(exc.code, int) else 2
        err.write(str(exc.code))
    except BaseException as exc:  # noqa: BLE001 - this is what the benchmark counts
        T.crashes += 1
        T.check(False, f"photocull {argv[0]} raised {type(exc).__name__}: {exc}")
        return -1, out.getvalue(), err.getvalue()
    if "Traceback" in err.getvalue():
        T.crashes += 1
        T.check(False, f"photocull {argv[0]} printed a traceback")
    return rc, out.getvalue(), err.getvalue()


def promptly(fn, *args, fifos=(), timeout: float = 30.0, **kw):
    """``fn(*args)`` in a thread; a call still running after ``timeout`` is a hang (its
    FIFOs are then opened for writing to release it)."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        T.hangs += 1
        T.check(False, f"{getattr(fn, '__name__', fn)} hung on a FIFO")
        unblock_fifos(fifos)
        t.join(10)
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ----------------------------------------------------------------------------- sections

def hostile_files(tmp: Path) -> None:
    expected = build_hostile_folder(tmp / "hostile")
    corpus = [p for p in corpus_files() if is_supported(p)]
    files = list_images(tmp / "hostile") + corpus
    t0 = time.perf_counter()
    results = score_all(files, MODEL, batch_size=16)
    refused = [r for r in results if r.error]
    crashes = len(files) - len(results)
    T.cases += len(files)
    T.good += len(results) - len(refused)
    T.refused += len(refused)
    T.crashes += crashes
    print(f"photo files: {len(files)} ({len(expected)} generated hostile cases, {len(corpus)} corpus files): "
          f"scored {len(results) - len(refused)}, refused with a reason {len(refused)}, crashes {crashes} "
          f"({time.perf_counter() - t0:.1f} s)")
    T.check(len([r for r in refused if r.path.parent == tmp / "hostile"])
            == sum(1 for v in expected.values() if v == ERROR), "the generated bad files are the refused ones")
    T.check(all(r.error.strip() for r in refused), "every refusal has a reason")


def fifos(tmp: Path) -> None:
    d = tmp / "fifos"
    roles = build_fifo_folder(d)
    every = [d / n for n in roles]
    files = promptly(list_images, d, fifos=every)
    results = promptly(score_all, files, MODEL, batch_size=16, fifos=every)
    by_name = {r.path.name: r for r in results}
    photo_fifos = [n for n, role in roles.items() if role == "photo"]
    T.check(all(by_name[n].error for n in photo_fifos), "a FIFO named like a photo is refused")
    T.check(all(not by_name[n].error for n in ("good.jpg", "IMG_1.jpg", "IMG_2.jpg")), "the photos beside FIFOs score")
    home = tmp / "fifo-home"
    rc_x, _, err_x = promptly(cli, "export", d, tmp / "fifo-dest", "--top-percent", "100", "-q", home=home, fifos=every)
    copied = {p.name for p in (tmp / "fifo-dest").iterdir()} if (tmp / "fifo-dest").exists() else set()
    T.check(not copied & set(roles), "no FIFO is copied into an export")
    rc_r, _, err_r = promptly(cli, "rate", "--stars", "2", d / "IMG_2.jpg", d / "IMG_1.jpg", home=home, fifos=every)
    T.check(os.path.exists(d / "IMG_2.xmp") and not (d / "IMG_2.xmp").is_file(), "a FIFO sidecar is never replaced")
    T.cases += len(roles)
    T.good += 3
    T.refused += len(photo_fifos)
    print(f"FIFOs: {len(roles)} (named like a photo x{len(photo_fifos)}, a RAW companion, a sidecar): "
          f"photos refused with a reason {len(photo_fifos)}, good photos beside them scored 3, FIFOs copied "
          f"{len(copied & set(roles))}, hangs {T.hangs} (export exit {rc_x}, rate exit {rc_r})")


def sidecars(tmp: Path) -> None:
    d = tmp / "sidecars"
    kinds = build_hostile_sidecars(d)
    hostile = {n: k for n, k in kinds.items() if k != "good"}
    before = {p.name: p.read_bytes() for p in d.glob("*.xmp") if p.is_file()}
    home, t0 = tmp / "sidecar-home", time.perf_counter()
    runs = {
        "score": cli("score", d, "--format", "csv", "-q", home=home),
        "rate": cli("rate", "--stars", "4", *sorted(d.glob("*.jpg")), home=home),
        "trash-rejects": cli("trash-rejects", d, home=home),
        "export": cli("export", d, tmp / "sidecar-dest", "--top-percent", "100", "-q", home=home),
    }
    rc, _, err = runs["rate"]
    named = [n for n in hostile if n in err]
    untouched = [p for p in d.glob("*.xmp") if p.is_file() and before.get(p.name) == p.read_bytes()]
    good_rated = [n for n, k in kinds.items() if k == "good" and read_sidecar(d / n).rating == 4]
    with Catalog(AppPaths.default(home).catalog_path) as cat:
        in_catalog = sum(1 for m in load_marks(sorted(d.glob("*.jpg")), cat).values() if m.rating == 4)
    T.cases += len(hostile)
    T.refused += len(named)
    T.good += len(good_rated)
    T.check(len(named) == len(hostile), f"rate names every hostile sidecar ({sorted(set(hostile) - set(named))} not)")
    T.check(len(untouched) == len(before), "hostile sidecars are left untouched")
    T.check(len(good_rated) == 3 and in_catalog == len(kinds), "every photo's rating is in the catalog")
    print(f"hostile sidecars: {len(hostile)} ({', '.join(hostile.values())}) through score, rate, trash-rejects "
          f"and export: exit codes {', '.join(f'{k} {v[0]}' for k, v in runs.items())}; each named in rate's "
          f"messages {len(named)}/{len(hostile)}, left untouched {len(untouched)}/{len(before)}, good photos "
          f"rated {len(good_rated)}/3, ratings in the catalog {in_catalog}/{len(kinds)} "
          f"({time.perf_counter() - t0:.1f} s)")


def models(tmp: Path) -> None:
    marker = tmp / "payload-ran"
    expect = build_hostile_models(tmp / "models", marker)
    print(f"hostile model files: {len(expect)}, each loaded in a fresh process")
    print(f"  {'file':<22} {'size':>9}  {'peak RSS growth':>15}  {'Python peak':>11}  refusal")
    for name, word in expect.items():
        p = tmp / "models" / name
        [row, *extra] = model_refusal_cost([p])
        ok = row["outcome"].startswith("ModelError") and word in row["outcome"] and not extra
        T.cases += 1
        T.refused += ok
        T.crashes += row["outcome"].startswith(("escaped", "crashed")) or bool(extra)
        T.check(ok, f"{name} refused naming {word!r}: {row['outcome'][:160]}")
        reason = row["outcome"].removeprefix("ModelError: ").replace(str(p), name)
        print(f"  {name:<22} {p.stat().st_size / 1e6:>7.2f}MB  {row['rss_growth_mb']:>12.1f} MB  "
              f"{row['python_peak_mb']:>8.1f} MB  {reason[:90]}")
    T.check(not marker.exists(), "a pickle payload never runs")


def catalogs(tmp: Path) -> None:
    d = tmp / "cat-shoot"
    photos = [make_photo(d / f"IMG_{i}.jpg", seed=i, size=(48, 32))
              for i in range(4)]
    cases = ok = 0
    # unusable: a folder where the catalog goes; a read-only file system
    home = tmp / "cat-folder"
    AppPaths.default(home).ensure().catalog_path.mkdir()
    unusable = [("folder", home)]
    if READ_ONLY.parent.is_dir() and _read_only_fs():
        unusable.append(("read-only", None))
    for kind, h in unusable:
        saved = AppPaths.catalog_path
        if h is None:
            h = tmp / "cat-ro"
            AppPaths.catalog_path = property(lambda self: READ_ONLY)
        try:
            where = str(AppPaths.default(h).catalog_path)
            rc_s, out_s, err_s = cli("score", d, "--format", "csv", "-q", home=h)
            rc_r, _, err_r = cli("rate", "--stars", "3", photos[0], home=h)
        finally:
            AppPaths.catalog_path = saved
        good = (rc_s == 0 and len(out_s.strip().splitlines()) == 1 + len(photos) and where in err_s
                and rc_r == 2 and where in err_r and not (d / "IMG_0.xmp").exists())
        cases += 2
        ok += good
        T.check(good, f"an unusable catalog ({kind}): score scores without it, rate saves nothing, both say where")
    # damaged: ratings come back from the sidecars
    recovered = expected = 0
    for damage in CATALOG_DAMAGE:
        home = tmp / f"cat-{damage}"
        for i, p in enumerate(photos):
            cli("rate", "--stars", str(i + 1), p, home=home)
        damage_catalog(AppPaths.default(home).catalog_path, damage)
        with Catalog(AppPaths.default(home).catalog_path) as cat:
            aside = cat.recovered_from is not None and cat.recovered_from.exists()
            got = load_marks(photos, cat)
        recovered += sum(1 for i, p in enumerate(photos) if got.get(os.path.abspath(p)) and
                         got[os.path.abspath(p)].rating == i + 1)
        expected += len(photos)
        cases += 1
        ok += aside
        T.check(aside, f"a damaged catalog ({damage}) is set aside, not deleted")
        for p in d.glob("*.xmp"):
            p.unlink()
    T.check(recovered == expected, "ratings come back from the sidecars")
    # two processes open one damaged catalog at once
    trials, both = 4, 0
    cat_path = tmp / "cat-two" / "catalog.sqlite"
    cat_path.parent.mkdir()
    for trial in range(trials):
        for p in cat_path.parent.glob("catalog.sqlite*"):
            if ".corrupt-" not in p.name:
                p.unlink()
        cat_path.write_bytes(f"trial {trial}: not a database\n".encode() * 400)
        start = time.time() + 2.0
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(cat_path), str(p), str(i + 1), str(start)],
                                  env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i, p in enumerate(photos[:2])]
        outs = [p.communicate(timeout=120) for p in procs]
        T.crashes += sum(1 for p in procs if p.returncode)
        with Catalog(cat_path) as c:
            got = c.get_marks(photos[:2])
        both += (sorted(o.strip() for o, _ in outs) == ["aside", "fresh"]
                 and sorted(m.rating for m in got.values()) == [1, 2])
    cases += trials
    ok += both
    T.check(both == trials, "two processes at once: both ratings saved, one copy set aside")
    T.cases += cases
    T.refused += len(unusable) * 2
    print(f"catalogs: {cases} cases: unusable ({', '.join(k for k, _ in unusable)}) named with where, score "
          f"going on without it; damaged ({', '.join(CATALOG_DAMAGE)}) set aside, ratings back from sidecars "
          f"{recovered}/{expected}; two processes opening a damaged one at once: {both}/{trials} with both "
          f"ratings saved and one copy set aside")


def killed_rates(tmp: Path, kills: int) -> None:
    d = tmp / "rate-kills"
    photos = [make_photo(d / f"IMG_{i}.jpg", seed=i, size=(32, 24))
              for i in range(8)]
    cat_path = tmp / "rate-kills-home" / "catalog.sqlite"
    cat_path.parent.mkdir()

    def rate(stars: int, where: str = "none", after: int = 0) -> int:
        return subprocess.run([sys.executable, "-c", KILLED_RATE, str(d), str(cat_path), str(stars), where, str(after)],
                              env=ENV, capture_output=True, text=True, timeout=120).returncode

    def on_open() -> dict[str, int]:
        with Catalog(cat_path) as c:
            return {Path(k).name: m.rating for k, m in load_marks(photos, c).items()}

    rate(5)
    rng = random.Random(1)
    killed = deterministic = 0
    for k in range(kills):
        stars = k % 5
        rc = rate(stars, "sidecar" if k % 2 else "replace", rng.randrange(0, 7))
        killed += rc == -signal.SIGKILL
        first, second = on_open(), on_open()
        deterministic += first == second and set(first.values()) == {stars}
    litter = [p for p in d.iterdir() if leftovers.SIDECAR_TEMP.fullmatch(p.name)]
    old = time.time() - 3600
    for p in litter:
        os.utime(p, (old, old))
    rate(3)
    left = [p for p in d.iterdir() if leftovers.SIDECAR_TEMP.fullmatch(p.name)]
    disagree = sum(1 for p in photos if read_sidecar(p).rating != 3) + sum(1 for v in on_open().values() if v != 3)
    T.cases += kills
    T.check(killed == kills, "every rate run was killed")
    T.check(deterministic == kills, "after a killed rate run the last saved marks win, every time")
    T.check(not left and not disagree, "the next save sweeps the litter and puts sidecars and catalog in step")
    print(f"rate runs killed with SIGKILL between or inside sidecar saves: {killed} (8 photos each): the same marks "
          f"on every open {deterministic}/{kills}, temporary files left {len(litter)} then swept to {len(left)}, "
          f"sidecars disagreeing with the catalog after the next save {disagree}")


def links(tmp: Path) -> None:
    import send2trash

    results = []
    for mode in ("copy", "move"):
        shoot = build_link_shoot(tmp / f"links-{mode}")
        src, dest = shoot["source"], tmp / f"links-{mode}" / "dest"
        before = {rel: sha(src / rel) for rel in shoot["exported"]}
        args = ["export", src, dest, "--top-percent", "100", "--recursive", "-q"] + (["--move"] if mode == "move" else [])
        rc, _, err = cli(*args, home=tmp / f"links-{mode}" / "home")
        leaked = leaked_from_outside(dest, shoot["outside_hashes"])
        outside_ok = all(p.is_file() and sha(p) == h for p, h in shoot["outside_hashes"].items())
        arrived = {sha(p) for p in dest.rglob("*") if p.is_file()}
        lost = [rel for rel, h in before.items()
                if h not in arrived and not (os.path.isfile(src / rel) and sha(src / rel) == h)]
        said = [rel for rel in shoot["refused"] if f"{src / rel}: " in err]
        # the looping photos cannot be read, so are never scored nor chosen: nothing to refuse
        expected = [rel for rel in shoot["refused"] if not rel.startswith("loop-")]
        T.check(set(said) == set(expected), f"links ({mode}): every link refused says why ({set(expected) - set(said)})")
        results.append((mode, len(said), len(expected), len(leaked), outside_ok, len(lost), rc))
        T.leaked += len(leaked)
        T.lost += len(lost)
        T.check(not leaked and outside_ok, f"links ({mode}): nothing from outside copied, nothing outside touched")
    # trash-rejects: the links go, never their targets
    shoot = build_link_shoot(tmp / "links-trash")
    src, bin_ = shoot["source"], tmp / "links-trash" / "Trash"
    bin_.mkdir()
    home = tmp / "links-trash" / "home"
    cli("rate", "--reject", src / "IMG_1.jpg", src / "IMG_2.jpg", home=home)
    real = send2trash.send2trash
    send2trash.send2trash = lambda p: os.rename(p, bin_ / Path(p).name)  # never the user's real trash
    try:
        rc_t, out_t, _ = cli("trash-rejects", src, "--yes", home=home)
    finally:
        send2trash.send2trash = real
    trash_ok = (all(os.path.islink(bin_ / n) for n in ("IMG_1.CR2", "IMG_2.jpg"))
                and all(p.is_file() and sha(p) == h for p, h in shoot["outside_hashes"].items()))
    T.check(trash_ok, "trash-rejects sends links, never their targets")
    n = len(shoot["refused"]) + 1  # and the one link inside the shoot
    T.cases += 3 * n
    T.refused += sum(r[1] for r in results)
    T.good += 2 * len(shoot["exported"])
    print(f"links: {n} (to a key outside, to a photo outside, through a linked folder, broken inside and outside, "
          f"loops, one inside the shoot) exported (copy, move) and trashed: "
          + "; ".join(f"{m}: {s}/{e} refused with the reason (the 2 looping photos are never scored, never "
                      f"chosen), copied from outside {lk}, outside files intact {'yes' if ok else 'NO'}, lost {ls} "
                      f"(exit {rc})" for m, s, e, lk, ok, ls, rc in results)
          + f"; trash-rejects sent the links, targets intact: {'yes' if trash_ok else 'NO'}")


def killed_exports(tmp: Path, kills: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    master = tmp / "master"
    master.mkdir()
    hashes = {}
    for i in range(30):
        data = rng.bytes(int(rng.integers(400_000, 1_200_000)))
        (master / f"IMG_{i:04d}.jpg").write_bytes(data)
        hashes[f"IMG_{i:04d}.jpg"] = hashlib.sha256(data).hexdigest()
    lost = damaged = half_final = 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for k in range(kills):
        src, dest = tmp / f"kill{k}" / "src", tmp / f"kill{k}" / "dest"
        src.mkdir(parents=True)
        for p in master.iterdir():
            (src / p.name).write_bytes(p.read_bytes())
        mode = "move" if k % 3 else "copy"
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(dest), mode], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        proc.stdout.readline()
        time.sleep(random.Random(k).uniform(0.2, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        final = {p.name: sha(p) for p in dest.iterdir() if not p.name.startswith(TMP_PREFIX)} if dest.exists() else {}
        half_final += sum(1 for n, h in final.items() if hashes.get(n) != h)
        for n, h in hashes.items():
            if (src / n).exists():
                damaged += sha(src / n) != h
            elif final.get(n) != h:
                lost += 1
    T.cases += kills
    T.lost += lost + damaged
    T.check(not (lost or damaged or half_final), "killed exports lose nothing")
    print(f"exports killed with SIGKILL: {kills} (30 files each, copy and move): files lost {lost}, "
          f"sources damaged {damaged}, half-written files under a final name {half_final}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10, help="exports killed with SIGKILL")
    ap.add_argument("--rate-kills", type=int, default=10, help="rate runs killed with SIGKILL")
    ap.add_argument("--keep", action="store_true", help="keep the generated cases (their folder is printed)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")  # corpus files with broken EXIF
    faulthandler.dump_traceback_later(1200, exit=True)  # a hang ends the run with where it hung
    tmp = Path(tempfile.mkdtemp(prefix="photocull-reliability-"))
    t0 = time.perf_counter()
    for section in (hostile_files, fifos, sidecars, models, catalogs):
        section(tmp)
    killed_rates(tmp, args.rate_kills)
    links(tmp)
    killed_exports(tmp, args.kills)
    print(f"\ncases tried: {T.cases}; good files scored or exported: {T.good}; bad ones refused with a readable "
          f"reason: {T.refused}; crashes/tracebacks: {T.crashes}; hangs: {T.hangs}; files lost: {T.lost}; "
          f"copied from outside the source: {T.leaked}  ({time.perf_counter() - t0:.0f} s)")
    if T.failures:
        print(f"{len(T.failures)} checks failed:\n  " + "\n  ".join(T.failures))
    if args.keep:
        print(f"cases kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if T.failures or T.crashes or T.hangs or T.lost or T.leaked else 0


if __name__ == "__main__":
    sys.exit(main())
