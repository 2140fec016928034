"""``photocull score --engine ray`` (photocull/cluster.py) on a local Ray: the same scores and
errors as the local engine, resumable through the catalog, ``--out`` CSV/Parquet, clear refusals.

One Ray for the whole module (started once: ~5 s); the photos are small, and the model is the
real one under ``--backend torch`` (conftest sets PHOTOCULL_BACKEND=torch)."""
from __future__ import annotations

import csv
import json
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
def test_out_parquet(shoot, tmp_path, capsys):
    import pyarrow.parquet as pq

    from photocull.cli.score import OUT_COLUMNS

    out = tmp_path / "archive.parquet"
    assert main(["--home", str(tmp_path / "h"), "score", str(shoot), "-q", "--model", "technical",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    table = pq.read_table(out)
    assert table.column_names == OUT_COLUMNS and table.num_rows == 22


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


def test_without_ray_it_says_how_to_install(shoot, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SystemExit, match=r"pip install 'photocull\[cluster\]'"):
        main(["--home", str(tmp_path / "h"), "score", str(shoot), "--engine", "ray"])


def test_bad_options_are_refused(shoot, tmp_path):
    with pytest.raises(SystemExit, match="go with --engine ray"):
        main(["--home", str(tmp_path / "h"), "score", str(shoot), "--address", "auto"])
    with pytest.raises(SystemExit, match=r"\.csv or \.parquet"):
        main(["--home", str(tmp_path / "h"), "score", str(shoot), "--out", str(tmp_path / "x.xlsx")])


def test_importing_the_engine_module_does_not_import_ray():
    code = "import sys, photocull.cluster, photocull.cli.score; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO))
