"""Dataset loaders on tiny datasets written here in each format."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from photocull.training import datasets
from photocull.model.losses import dist_mean, dist_std


def _jpeg(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (value, value // 2, 255 - value)).save(path, quality=90)
    return path


def test_ava(tmp_path):
    images = tmp_path / "images"
    _jpeg(images / "953619.jpg")
    _jpeg(images / "953958.jpg")
    (tmp_path / "AVA.txt").write_text(
        "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n"
        "2 953958 10 7 15 26 26 21 10 8 1 2 1 21 1396\n"
        "3 954184 0 0 4 8 41 56 10 3 4 0 0 0 1396\n"  # image missing
        "4 broken row\n")
    ds = datasets.load_ava(tmp_path / "AVA.txt", images)
    assert len(ds) == 2 and ds.missing == 1 and ds.bad_rows == 1
    path, dist = ds[0]
    assert path == images / "953619.jpg"
    votes = np.array([0, 1, 5, 17, 38, 36, 15, 6, 5, 1], float)
    np.testing.assert_allclose(dist, votes / votes.sum())
    assert "missing" in ds.summary()


@pytest.mark.parametrize("variant", ["koniq10k_distributions_sets.csv", "koniq10k_scores_and_distributions.csv"])
def test_koniq(tmp_path, variant):
    images = tmp_path / "1024x768"
    _jpeg(images / "a.jpg")
    _jpeg(images / "b.jpg")
    header = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"
    extra = ",set" if "sets" in variant else ""
    rows = ['"a.jpg",0,0,0,0,10,10,5.0,0.0,100' + (",training" if extra else ""),
            '"b.jpg",1,2,3,2,1,9,3.0,1.15,50' + (",test" if extra else ""),
            '"c.jpg",1,2,3,2,1,9,3.0,1.15,50' + (",test" if extra else "")]
    (tmp_path / variant).write_text(header + extra + "\n" + "\n".join(rows) + "\n")
    ds = datasets.load_koniq(tmp_path / variant, tmp_path)
    assert len(ds) == 2 and ds.missing == 1
    a, b = ds[0][1], ds[1][1]
    assert a[9] == pytest.approx(1.0)  # all votes 5 -> bucket 10
    # the mean is the rescaled MOS exactly (1 + (MOS-1) * 9/4), the spread is kept
    assert dist_mean(b) == pytest.approx(1 + (3.0 - 1) * 9 / 4)
    assert dist_std(b) == pytest.approx(1.15 * 9 / 4, rel=0.15)
    assert b.sum() == pytest.approx(1.0)
    if extra:
        assert any("training 1" in n for n in ds.notes)


def test_five_point_split_keeps_mean():
    for votes in ([1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 3], [5, 1, 0, 2, 7]):
        d = datasets.five_point_votes_to_distribution(votes)
        v = np.asarray(votes, float)
        mos = (v * np.arange(1, 6)).sum() / v.sum()
        assert dist_mean(d) == pytest.approx(1 + (mos - 1) * 9 / 4)


def test_livec(tmp_path, monkeypatch):
    from scipy.io import savemat

    names = np.empty((4, 1), dtype=object)
    for i, n in enumerate(["t1.bmp", "10.bmp", "11.bmp", "12.bmp"]):
        names[i, 0] = np.array([n])
    data = tmp_path / "Data"
    data.mkdir()
    savemat(data / "AllImages_release.mat", {"AllImages_release": names})
    savemat(data / "AllMOS_release.mat", {"AllMOS_release": np.array([[50.0, 80.0, 20.0, 60.0]])})
    savemat(data / "AllStdDev_release.mat", {"AllStdDev_release": np.array([[15.0, 10.0, 12.0, 20.0]])})
    _jpeg(tmp_path / "Images" / "trainingImages" / "t1.bmp")
    _jpeg(tmp_path / "Images" / "10.bmp")
    _jpeg(tmp_path / "11.bmp")  # directly under <images>
    ds = datasets.load_livec(data, tmp_path)
    assert [p.name for p in ds.paths] == ["t1.bmp", "10.bmp", "11.bmp"] and ds.missing == 1
    d80 = ds[1][1]
    assert dist_mean(d80) == pytest.approx(1 + 80 * 9 / 100, abs=1e-3)
    assert dist_std(d80) == pytest.approx(10 * 9 / 100, abs=1e-3)
    monkeypatch.setattr(datasets, "LIVEC_TRAINING_IMAGES", 1)  # 7 in the real release
    dropped = datasets.load_livec(data / "AllMOS_release.mat", tmp_path, drop_training_images=True)
    assert [p.name for p in dropped.paths] == ["10.bmp", "11.bmp"]


def test_generic_csv_formats(tmp_path):
    for i in range(4):
        _jpeg(tmp_path / f"{i}.jpg", 40 * i)
    (tmp_path / "means.csv").write_text("path,mean,std\n0.jpg,7.5,1.0\n1.jpg,3\nnope.jpg,5\n2.jpg,abc\n")
    ds = datasets.load_csv(tmp_path / "means.csv")
    assert len(ds) == 2 and ds.missing == 1 and ds.bad_rows == 1
    assert dist_mean(ds[0][1]) == pytest.approx(7.5, abs=1e-3) and dist_std(ds[0][1]) == pytest.approx(1.0, abs=1e-3)
    assert dist_mean(ds[1][1]) == pytest.approx(3.0, abs=1e-3)

    # no header, five-point scale
    (tmp_path / "five.csv").write_text(f"{tmp_path / '0.jpg'},5\n1.jpg,1\n")
    ds = datasets.load_csv(tmp_path / "five.csv", scale=5)
    assert [dist_mean(t) for _, t in ds] == pytest.approx([10.0, 1.0], abs=0.02)

    # vote counts
    (tmp_path / "votes.csv").write_text("3.jpg,0,0,0,0,1,3,0,0,0,0\n")
    ds = datasets.load_csv(tmp_path / "votes.csv")
    np.testing.assert_allclose(ds[0][1], [0, 0, 0, 0, 0.25, 0.75, 0, 0, 0, 0])
    assert dist_mean(ds[0][1]) == pytest.approx(5.75)


def test_load_dataset_dispatch_and_errors(tmp_path):
    with pytest.raises(datasets.DatasetError):
        datasets.load_dataset("imagenet", tmp_path / "x", tmp_path)
    with pytest.raises(datasets.DatasetError):
        datasets.load_ava(tmp_path / "missing.txt", tmp_path)
    (tmp_path / "k.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(datasets.DatasetError):
        datasets.load_koniq(tmp_path / "k.csv", tmp_path)


def _items(n, seed=0):
    rng = np.random.default_rng(seed)
    means = np.clip(rng.normal(5.5, 1.5, n), 1, 10)
    return [(f"img{i}.jpg", datasets.mean_std_to_distribution(m, 1.0)) for i, m in enumerate(means)]


def test_split_deterministic_disjoint_stratified():
    items = _items(400)
    a = datasets.split(items, (0.7, 0.15, 0.15), seed=3)
    b = datasets.split(items, (0.7, 0.15, 0.15), seed=3)
    c = datasets.split(items, (0.7, 0.15, 0.15), seed=4)
    names = lambda part: [p for p, _ in part]
    assert [names(x) for x in a] == [names(x) for x in b]
    assert names(a[2]) != names(c[2])
    assert [len(x) for x in a] == [280, 60, 60]
    all_names = [n for x in a for n in names(x)]
    assert sorted(all_names) == sorted(p for p, _ in items)
    # every mean bucket is spread over the parts in proportion (within one item)
    buckets = lambda part: np.bincount([datasets.mean_bucket(t) for _, t in part], minlength=11)
    total = buckets(items)
    for part, frac in zip(a, (0.7, 0.15, 0.15)):
        assert np.all(np.abs(buckets(part) - total * frac) <= 1.5)


def test_split_tiny_and_two_way():
    items = _items(5)
    tr, te = datasets.split(items, (0.8, 0.2), seed=0)
    assert len(tr) == 4 and len(te) == 1
