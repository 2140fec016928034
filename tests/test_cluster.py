"""``photocull score --engine ray`` (photocull/cluster.py) on a local Ray: the same scores and
errors as the local engine, resumable through the catalog, ``--out`` CSV/Parquet, clear refusals.

One Ray for the whole module (started once: ~5 s); the photos are small, and the model is the
real one under ``--backend torch`` (conftest sets PHOTOCULL_BACKEND=torch)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own

from conftest import REPO, make_photo
from photocull.cli import main

try:
    import ray
    import ray.data  # noqa: F401
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="ray[data] not installed (pip install 'photocull[cluster]')")


@pytest.fixture(scope="module")
def ray_session():
    if ray is None:
        pytest.skip("ray[data] not installed")
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shoot(tmp_path_factory) -> Path:
    """20 generated photos and 2 broken files."""
    d = tmp_path_factory.mktemp("cluster") / "shoot"
    for i in range(20):
        make_photo(d / f"IMG_{i:04d}.jpg", seed=300 + i, size=(160, 120))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    (d / "empty.png").write_bytes(b"")
    return d


def _json(capsys, *argv) -> dict:
    assert main(list(map(str, argv))) == 0
    out, _ = capsys.readouterr()
    return json.loads(out)


@needs_ray
def test_same_scores_and_errors_as_the_local_engine(ray_session, shoot, tmp_path, capsys):
    local = _json(capsys, "--home", tmp_path / "a", "score", shoot, "-q", "--format", "json", "--backend", "torch")
    on_ray = _json(capsys, "--home", tmp_path / "b", "score", shoot, "-q", "--format", "json", "--backend", "torch",
                   "--engine", "ray")
    assert on_ray["model_id"] == local["model_id"] and on_ray["aesthetic_model_id"] == local["aesthetic_model_id"]
    by_path = {p["path"]: p for p in on_ray["photos"]}
    assert len(by_path) == len(local["photos"]) == 22
    errors = 0
    for p in local["photos"]:
        q = by_path[p["path"]]
        assert q["error"] == p["error"]
        errors += p["error"] is not None
        if p.get("mean") is None:
            continue
        for key in ("mean", "std", "aesthetic", "technical"):
            assert q[key] == pytest.approx(p[key], abs=1e-4), (p["path"], key)
        for key in ("aesthetic_distribution", "technical_distribution"):
            assert q[key] == pytest.approx(p[key], abs=1e-4), (p["path"], key)
        assert q["why"] == p["why"] and q["faults"] == p["faults"] and q["faces"] == p["faces"]
        assert q["rank"] == p["rank"]  # the overall rule and burst groups, unchanged
    assert errors == 2


@needs_ray
def test_an_interrupted_job_resumes_where_it_left_off(ray_session, shoot, app_paths):
    from photocull.cluster import RayJob, iter_scores_ray, run_on_ray
    from photocull.cull.catalog import Catalog
    from photocull.model.registry import resolve_scorers

    files = sorted(shoot.iterdir())
    scorers = resolve_scorers("technical", app_paths)
    job = RayJob("technical", app_paths, batch_size=4, backend="torch", concurrency=2)
    with Catalog(app_paths.catalog_path) as cat:
        gen = iter_scores_ray(files, scorers.loaded, job, catalog=cat)
        first = next(gen)  # then the job is killed: what arrived is kept
        gen.close()
        kept = len(cat.lookup(files, scorers.loaded.model_id))
        assert kept == len(first.results) and 0 < kept < len(files)

        scored = []
        results = run_on_ray(files, scorers, job, catalog=cat, progress=False, scored=scored.append)
        assert sum(scored) == len(files) - kept  # only the rest went to the cluster
        assert [r.path for r in results] == files
        assert sum(r.error is not None for r in results) == 2
        assert all(r.probs is not None for r in results if r.error is None)

        scored.clear()
        again = run_on_ray(files, scorers, job, catalog=cat, progress=False, scored=scored.append)
        assert sum(scored) == 0  # all in the catalog: Ray is not even asked
        for a, b in zip(results, again):
            assert (a.error is None) == (b.error is None)
            if a.probs is not None:
                assert b.probs == pytest.approx(a.probs, abs=1e-6)
                assert b.why == a.why


@needs_ray
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_out_csv_has_the_columns(ray_session, shoot, tmp_path, capsys, engine):
    from photocull.cli.score import OUT_COLUMNS

    out = tmp_path / "archive.csv"
    assert main(["--home", str(tmp_path / "h"), "score", str(shoot), "-q", "--model", "technical",
                 "--engine", engine, "--out", str(out)]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == OUT_COLUMNS
    assert len(rows) == 22
    assert sum(bool(r["error"]) for r in rows) == 2
    good = [r for r in rows if not r["error"]]
    assert all(float(r["mean"]) > 0 and float(r["technical"]) > 0 and int(r["size"]) > 0 and r["model_id"]
               for r in good)


@needs_ray
def test_out_parquet(shoot, tmp_path, capsys, monkeypatch):
    """Parquet, with absolute paths when the folder was given as a relative one."""
    import pyarrow.parquet as pq

    from photocull.cli.score import OUT_COLUMNS

    out = tmp_path / "archive.parquet"
    monkeypatch.chdir(shoot.parent)
    assert main(["--home", str(tmp_path / "h"), "score", shoot.name, "-q", "--model", "technical",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    table = pq.read_table(out)
    assert table.column_names == OUT_COLUMNS and table.num_rows == 22
    paths = table.column("path").to_pylist()
    assert all(os.path.isabs(p) and os.path.exists(p) for p in paths)
    assert {os.path.dirname(p) for p in paths} == {str(shoot)}


@needs_ray
def test_files_the_workers_cannot_see_are_refused(ray_session, tmp_path):
    from photocull.cluster import ClusterError, check_visible

    make_photo(tmp_path / "here.jpg")
    check_visible([str(tmp_path / "here.jpg")])
    with pytest.raises(ClusterError, match="not visible on node .*shared storage"):
        check_visible([str(tmp_path / "here.jpg"), str(tmp_path / "gone" / "x.jpg")])


@needs_ray
def test_workers_with_other_models_are_refused(ray_session, shoot, app_paths):
    from types import SimpleNamespace

    from photocull.cluster import ClusterError, RayJob, iter_scores_ray

    driver_model = SimpleNamespace(model_id="not-the-same")  # as if the driver had resolved another file
    with pytest.raises(ClusterError, match="resolved --model technical to models"):
        list(iter_scores_ray([shoot / "IMG_0000.jpg"], driver_model, RayJob("technical", app_paths)))


@needs_ray
def test_only_what_a_photo_lacks_is_run_on_the_cluster(ray_session, shoot, app_paths):
    """As on the local path (scoring.iter_scores_cached): a photo with its technical score but
    not its aesthetic one or an analysis runs only that; what was kept stays as it was."""
    import numpy as np

    from photocull import scoring
    from photocull.cluster import RayJob, run_on_ray
    from photocull.cull.catalog import Catalog
    from photocull.model.registry import resolve_scorers
    from photocull.scoring import ScoreResult

    a, b, c, d = (shoot / f"IMG_{i:04d}.jpg" for i in range(4))
    scorers = resolve_scorers(None, app_paths)
    tech, aest = scorers.loaded, scorers.aesthetic
    kept_t, kept_a = np.eye(10, dtype=np.float32)[9], np.eye(10, dtype=np.float32)[0]  # no network gives these
    found = scoring.decode(c, tech.cfg, scoring.ANALYSES).found
    c_kept = ScoreResult(c, kept_t, **found)
    with Catalog(app_paths.catalog_path) as cat:
        cat.store_results([ScoreResult(a, kept_t), ScoreResult(b, kept_t), c_kept], tech.model_id)
        cat.store_results([ScoreResult(b, kept_a)], aest.model_id)
        # a: lacks the aesthetic score and the analyses; b: the analyses; c: the aesthetic score; d: all
        scored = []
        job = RayJob(None, app_paths, batch_size=2, backend="torch", concurrency=1)
        got = {r.path: r for r in run_on_ray([a, b, c, d], scorers, job, catalog=cat, progress=False,
                                             scored=scored.append)}
        assert sum(scored) == 4
        for p in (a, b, c):
            assert got[p].probs == pytest.approx(kept_t)  # the technical network did not run again
        assert got[b].aesthetic == pytest.approx(kept_a)
        for p in (a, c, d):
            assert got[p].aesthetic is not None and got[p].aesthetic[0] < 0.99  # scored by the network
        assert got[d].probs is not None and got[d].probs[9] < 0.99
        assert all(got[p].faces is not None and got[p].focus is not None for p in (a, b, c, d))
        stored = cat.lookup([a, b, c, d], tech.model_id)
        assert all(set(s.analyses) >= {"faces", "focus"} for s in stored.values())
        assert [stored[str(p)].probs[9] for p in (a, b, c)] == pytest.approx([1, 1, 1])
        stored_a = cat.lookup([a, b, c, d], aest.model_id)
        assert len(stored_a) == 4 and stored_a[str(b)].probs == pytest.approx(kept_a)

        scored.clear()
        run_on_ray([a, b, c, d], scorers, job, catalog=cat, progress=False, scored=scored.append)
        assert sum(scored) == 0  # nothing lacking now


def test_an_actor_loads_its_models_once_and_runs_only_what_is_asked(shoot, app_paths, monkeypatch):
    """ScoreActor in this process: the models are resolved and their runners made once, then
    reused batch after batch; ``need_*`` says which network each photo runs."""
    import numpy as np

    from photocull import cluster
    from photocull.model import registry, runtime

    counts = {"resolve": 0, "runner": 0}

    def counted(fn, key):
        def wrapper(*a, **kw):
            counts[key] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(registry, "resolve_scorers", counted(registry.resolve_scorers, "resolve"))
    monkeypatch.setattr(runtime, "make_runner", counted(runtime.make_runner, "runner"))
    scorers = registry.resolve_scorers(None, app_paths)
    counts["resolve"] = 0
    actor = cluster.ScoreActor(None, app_paths, (scorers.loaded.model_id, scorers.aesthetic.model_id),
                               backend="torch", batch_size=2)
    assert counts == {"resolve": 1, "runner": 2}
    files = [str(shoot / f"IMG_{i:04d}.jpg") for i in range(6)]
    rows = []
    for k in range(3):
        batch = {"path": np.array(files[2 * k: 2 * k + 2]),
                 "need_loaded": np.array([True, k != 1]), "need_aesthetic": np.array([k != 2, True])}
        out = actor(batch)
        rows += [cluster.row_to_result({c: out[c][i] for c in cluster.COLUMNS}) for i in range(2)]
    assert counts == {"resolve": 1, "runner": 2}  # nothing made again per batch
    assert [r.probs is not None for r in rows] == [True, True, True, False, True, True]
    assert [r.aesthetic is not None for r in rows] == [True, True, True, True, False, True]
    assert all(r.faces is not None and r.focus is not None and r.tiny_gray is not None for r in rows)


def test_actors_are_sized_from_the_cluster(monkeypatch):
    from photocull.cluster import CPUS_PER_ACTOR, ClusterError, plan_actors

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    many = 10_000
    # GPU nodes: one actor per GPU, models on CUDA, the node's CPUs shared among its GPUs
    p = plan_actors([{"CPU": 16, "GPU": 2}, {"CPU": 8, "GPU": 1}], many, 8)
    assert (p.actors, p.num_gpus, p.num_cpus, p.device, p.model_threads) == (3, 1, 8, "cuda", None)
    assert p.decode_threads == 8
    assert plan_actors([{"CPU": 16, "GPU": 2}], many, 8, actor_gpus=0.5).actors == 4
    assert plan_actors([{"CPU": 16, "GPU": 2}], many, 8, actors=1).actors == 1
    assert plan_actors([{"CPU": 16, "GPU": 2}], many, 8, actor_cpus=2).num_cpus == 2
    # CPU nodes: actors x cores match the CPUs, the cores split as on one machine
    p = plan_actors([{"CPU": 32}, {"CPU": 8}], many, 8)
    assert (p.actors, p.num_cpus, p.num_gpus, p.device) == (40 // CPUS_PER_ACTOR, CPUS_PER_ACTOR, 0, "cpu")
    assert p.decode_threads == CPUS_PER_ACTOR and p.model_threads == 1
    p = plan_actors([{"CPU": 32}, {"CPU": 8}], many, 8, actor_gpus=0)
    assert p.device == "cpu"
    p = plan_actors([{"CPU": 2}], many, 8)
    assert (p.actors, p.num_cpus) == (1, 2)  # a small node: one actor with its cores
    p = plan_actors([{"CPU": 2}], many, 8, actors=2)
    assert (p.actors, p.num_cpus) == (2, 1)  # asked for two: a core each
    p = plan_actors([{"CPU": 32}], many, 8, actor_cpus=12)
    assert (p.actors, p.num_cpus, p.decode_threads, p.model_threads) == (2, 12, 8, 4)
    p = plan_actors([{"CPU": 64, "GPU": 0}, {"CPU": 4, "GPU": 1}], many, 8, actor_gpus=0)
    assert p.actors == 17 and p.device == "cpu"  # GPUs declined: every node's CPUs
    assert plan_actors([{"CPU": 64}], 5, 2).actors == 3  # no more actors than batches
    with pytest.raises(ClusterError, match="no node .* has that many CPUs"):
        plan_actors([{"CPU": 8}], many, 8, actor_cpus=16)
    with pytest.raises(ClusterError, match="GPUs"):
        plan_actors([{"CPU": 8}], many, 8, actor_gpus=1)


@needs_ray
def test_a_worker_that_dies_is_restarted_and_its_batch_retried(ray_session, shoot, app_paths, monkeypatch):
    from photocull.cluster import KILL_ENV, RayJob, run_on_ray
    from photocull.model.registry import resolve_scorers

    files = [shoot.parent / "killed" / f"IMG_{i}.jpg" for i in range(4)]
    for i, f in enumerate(files):
        make_photo(f, seed=900 + i, size=(160, 120))
    monkeypatch.setenv(KILL_ENV, str(files[2]))  # the actor exits on its first batch holding it
    scorers = resolve_scorers("technical", app_paths)
    job = RayJob("technical", app_paths, batch_size=2, backend="torch", concurrency=1)
    results = run_on_ray(files, scorers, job, progress=False)
    assert Path(f"{files[2]}.killed").exists()  # it did die
    assert [r.path for r in results] == files
    assert all(r.error is None and r.probs is not None for r in results)


def test_without_ray_it_says_how_to_install(shoot, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SystemExit, match=r"pip install 'photocull\[cluster\]'"):
        main(["--home", str(tmp_path / "h"), "score", str(shoot), "--engine", "ray"])


def test_bad_options_are_refused(shoot, tmp_path):
    with pytest.raises(SystemExit, match="go with --engine ray"):
        main(["--home", str(tmp_path / "h"), "score", str(shoot), "--address", "auto"])
    with pytest.raises(SystemExit, match="go with --engine ray"):
        main(["--home", str(tmp_path / "h"), "score", str(shoot), "--actor-gpus", "0"])
    with pytest.raises(SystemExit, match=r"\.csv or \.parquet"):
        main(["--home", str(tmp_path / "h"), "score", str(shoot), "--out", str(tmp_path / "x.xlsx")])


def test_files_from_a_list(shoot, tmp_path, capsys, monkeypatch):
    """--files-from LIST (any engine): one path per line, relative to the list's folder,
    blank lines and # comments skipped; '-' reads stdin (relative to the working folder)."""
    import io

    from photocull.cli.score import read_file_list

    lists = tmp_path / "lists"
    lists.mkdir()
    listed = lists / "todo.txt"
    listed.write_text(f"# the keepers\n\n../../{shoot.parent.name}/{shoot.name}/IMG_0001.jpg\n"
                      f"  {shoot / 'IMG_0002.jpg'}  \n{shoot / 'gone.jpg'}\n", encoding="utf-8")
    assert Path(read_file_list(str(listed))[0]).resolve() == (shoot / "IMG_0001.jpg").resolve()
    home = tmp_path / "h"
    got = _json(capsys, "--home", home, "score", "--files-from", listed, "-q", "--model", "technical",
                "--format", "json", "--backend", "torch")
    paths = {Path(p["path"]).resolve(): p for p in got["photos"]}
    assert set(paths) == {(shoot / n).resolve() for n in ("IMG_0001.jpg", "IMG_0002.jpg", "gone.jpg")}
    assert paths[(shoot / "gone.jpg").resolve()]["error"] == "not found"

    monkeypatch.chdir(shoot)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"IMG_0003.jpg\r\n# done\r\n")))
    got = _json(capsys, "--home", home, "score", str(shoot / "IMG_0001.jpg"), "--files-from", "-", "-q",
                "--model", "technical", "--format", "json", "--backend", "torch")
    assert sorted(Path(p["path"]).name for p in got["photos"]) == ["IMG_0001.jpg", "IMG_0003.jpg"]
    with pytest.raises(SystemExit, match="give photos or folders, or --files-from"):
        main(["--home", str(home), "score"])
    with pytest.raises(SystemExit, match="--files-from .*nope.txt"):
        main(["--home", str(home), "score", "--files-from", str(tmp_path / "nope.txt")])


def test_importing_the_engine_module_does_not_import_ray():
    code = "import sys, photocull.cluster, photocull.cli.score; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO))
