"""Personal fine-tuning on synthetic features, guard rails, saving, dataset training, CLI."""
from __future__ import annotations

import argparse
import copy

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from photocull.training import personal
from photocull.training import network
from photocull.training import metrics
from photocull.training.heads import drive
from photocull.model import nima
from photocull.model import spec as modelspec
from photocull.model import checkpoint
from photocull import cli
from photocull.config import AppPaths
from photocull.cli import learn
from photocull.model.losses import dist_mean


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny workloads: one thread avoids thread hand-offs on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def base():
    """An ImageNet backbone with an untrained head (what ships before training)."""
    return nima.untrained_model(seed=0)


@pytest.fixture(scope="module")
def trained_base():
    """A base that looks trained: fitted normalisation, non-trivial score/severity heads."""
    loaded = nima.untrained_model(seed=1)
    m = loaded.model
    d = m.backbone.feature_dim
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        m.heads.feat_mean.copy_(torch.randn(d, generator=g))
        m.heads.feat_std.copy_(torch.rand(d, generator=g) + 0.5)
    return nima.LoadedModel(m, "fake-trained", "fake", trained=True, meta={"kind": "quality"})


def synthetic(n, d, seed=0, noise=0.3):
    """Features where the taste is a known function of a few of them, and 1..5 stars.

    Like real pooled features, they are strongly correlated (a few factors plus noise),
    and the taste is a mix of a low-level block and last-layer channels.
    """
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(12, d))  # the same feature space for every call
    z = rng.normal(size=(n, 12))
    x = (z @ mix + 0.5 * rng.normal(size=(n, d))).astype(np.float32) * 2 + 1
    latent = x[:, -16:-8].sum(1) - x[:, :4].sum(1)
    latent = (latent - latent.mean()) / latent.std() + noise * rng.normal(size=n)
    stars = 1 + np.searchsorted(np.quantile(latent, [0.1, 0.3, 0.7, 0.9]), latent)
    return x, stars, latent


def _drive(gen):
    rows = []
    return rows, drive(gen, rows.append)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_ratings_to_targets_ordered():
    t = personal.ratings_to_targets([1, 2, 3, 4, 5])
    assert t.shape == (5, 10) and np.allclose(t.sum(1), 1)
    assert np.all(np.diff(dist_mean(t)) > 1)
    assert dist_mean(personal.ratings_to_targets([7], scale=10))[0] == pytest.approx(7, abs=1e-3)
    with pytest.raises(personal.TrainingError):
        personal.ratings_to_targets([0, 6])


def test_score_metrics_perfect_and_constant():
    t = personal.ratings_to_targets([1, 2, 3, 4, 5, 3])
    m = metrics.score_metrics(t, t)
    assert m["emd"] == pytest.approx(0, abs=1e-9) and m["srcc"] == pytest.approx(1) and m["accuracy"] == 1
    flat = np.full_like(t, 0.1)
    assert np.isnan(metrics.score_metrics(flat, t)["srcc"])


def test_personal_beats_generic_and_base_unchanged(base):
    d = base.model.backbone.feature_dim
    x, stars, _ = synthetic(300, d)
    before_state = _state(base.model)
    tr, te = np.arange(100), np.arange(100, 300)
    rows, res = _drive(personal.fine_tune(x[tr], personal.ratings_to_targets(stars[tr]), base, seed=0))
    assert isinstance(res, personal.FineTuneResult)
    assert rows and {"epoch", "epochs", "train_loss", "val_loss", "val_srcc", "val_plcc", "val_emd"} <= set(rows[0])
    assert res.n_train + res.n_val == 100 and res.n_val == 20
    assert res.init == "fresh" and res.renormalised  # untrained base: fresh head, own normalisation
    assert res.model.heads.severity is None  # a random severity head is not carried over

    with torch.no_grad():
        p_personal = res.model.heads(torch.from_numpy(x[te]))[0].numpy()
        p_generic = base.model.heads(torch.from_numpy(x[te]))[0].numpy()
    s_personal = spearmanr(dist_mean(p_personal), stars[te])[0]
    s_generic = spearmanr(dist_mean(p_generic), stars[te])[0]
    assert s_personal > 0.6 and s_personal > s_generic + 0.3, (s_personal, s_generic)
    assert res.after["srcc"] > res.before["srcc"] + 0.2
    # the base model object is untouched
    after_state = _state(base.model)
    assert before_state.keys() == after_state.keys()
    assert all(torch.equal(before_state[k], after_state[k]) for k in before_state)
    assert res.model is not base.model and res.model.backbone is not base.model.backbone


def test_trained_base_keeps_normalisation_and_severity(trained_base):
    m = trained_base.model
    d = m.backbone.feature_dim
    x, stars, _ = synthetic(60, d, seed=2)
    before = _state(m)
    res = drive(personal.fine_tune(x, personal.ratings_to_targets(stars), trained_base, seed=1, init="base"))
    assert res.init == "base" and not res.renormalised
    with torch.no_grad():
        f = torch.from_numpy(x)
        sev_new = res.model.heads(f)[1]
        sev_old = m.heads(f)[1]
    # block balancing rescales the weights with the normalisation: same severities
    torch.testing.assert_close(sev_new, sev_old, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in _state(m).items())


def test_auto_init_tries_both_starts_on_a_trained_base(trained_base):
    """'auto' trains from the base head and from a fresh one and keeps the better on held-out ratings."""
    x, stars, _ = synthetic(60, trained_base.model.backbone.feature_dim, seed=3)
    rows, res = _drive(personal.fine_tune(x, personal.ratings_to_targets(stars), trained_base, seed=1))
    select = [r["epoch"] for r in rows if r["phase"] == "select"]
    # two selection runs: the epoch counter starts again
    assert sum(1 for a, b in zip(select, select[1:]) if b < a) == 1
    assert res.init in ("base", "fresh") and not res.renormalised


def test_block_balancing_preserves_outputs(trained_base):
    heads = copy.deepcopy(trained_base.model.heads).eval()
    blocks = personal.feature_blocks(trained_base.model.backbone)
    assert sum(blocks) == trained_base.model.backbone.feature_dim and blocks[0] == 1280
    # "multilevel_cs" (the default): the 11 "multilevel" blocks, then one centre-surround block per early stage
    assert trained_base.model.cfg.pooling == "multilevel_cs"
    assert len(blocks) == 14 and blocks[-3:] == [16, 24, 40] and sum(blocks) == 2224
    f = torch.randn(8, sum(blocks))
    with torch.no_grad():
        p0, s0 = heads(f)
        personal._balance_blocks(heads, blocks)
        p1, s1 = heads(f)
    torch.testing.assert_close(p0, p1, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(s0, s1, rtol=1e-4, atol=1e-6)


def test_guard_rails(base):
    d = base.model.backbone.feature_dim
    x, stars, _ = synthetic(40, d)
    with pytest.raises(personal.TrainingError, match="at least 20"):
        next(personal.fine_tune(x[:10], personal.ratings_to_targets(stars[:10]), base))
    with pytest.raises(personal.TrainingError, match="same"):
        next(personal.fine_tune(x, personal.ratings_to_targets(np.full(40, 4)), base))
    with pytest.raises(personal.TrainingError, match="dimensions"):
        next(personal.fine_tune(x[:, :100], personal.ratings_to_targets(stars), base))


def test_cancel_stops_within_an_epoch(base):
    d = base.model.backbone.feature_dim
    x, stars, _ = synthetic(200, d)
    flag = {"stop": False}
    gen = personal.fine_tune(x, personal.ratings_to_targets(stars), base, batch_size=16,
                             cancelled=lambda: flag["stop"])
    first = next(gen)
    assert first["epoch"] == 1
    flag["stop"] = True
    with pytest.raises(StopIteration) as stop:
        next(gen)  # not one more epoch
    assert stop.value.value is None


def test_saved_personal_model_loads_and_scores(base, tmp_path):
    from photocull.scoring import score_all

    d = base.model.backbone.feature_dim
    x, stars, _ = synthetic(40, d)
    res = drive(personal.fine_tune(x, personal.ratings_to_targets(stars), base))
    path, mid = personal.save_personal_model(res, "Anna's portraits", tmp_path, base_id=base.model_id)
    assert path.name == "anna-s-portraits.pt"
    with pytest.raises(personal.TrainingError, match="exists"):
        personal.save_personal_model(res, "Anna's portraits", tmp_path)
    loaded = checkpoint.load_model(path)
    assert loaded.trained and loaded.name == "Anna's portraits" and loaded.model_id == mid
    assert loaded.meta["kind"] == "personal taste" and loaded.meta["n_ratings"] == 40
    assert loaded.meta["base_model"] == base.model_id and "metrics_after" in loaded.meta
    with torch.no_grad():
        f = torch.from_numpy(x[:5])
        torch.testing.assert_close(loaded.model.heads(f)[0], res.model.heads(f)[0])
    img = tmp_path / "a.jpg"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(img)
    (r,) = score_all([img], loaded, batch_size=1, workers=1)
    assert r.ok and r.probs.sum() == pytest.approx(1, abs=1e-5) and r.why == ""


def _normalisation_fitted(model):
    return not torch.all(model.heads.feat_std == 1)


def _photos(folder, n):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        a = (rng.random((40, 56, 3)) * (40 + 25 * i)).astype(np.uint8)
        p = folder / f"p{i}.jpg"
        Image.fromarray(a).save(p)
        paths.append(p)
    return paths


def test_train_on_dataset_and_evaluate(tmp_path):
    paths = _photos(tmp_path, 6)
    targets = personal.ratings_to_targets([1, 2, 3, 4, 5, 3])
    items = list(zip(paths, targets))
    small = modelspec.ModelConfig(input_size=64)  # small and random: this tests the plumbing, fast
    rows, res = _drive(network.train_on_dataset(items[:4], small, val_items=items[4:], epochs=2, batch_size=2,
                                                 yield_every=1, unfreeze="last", pretrained=False))
    assert res is not None and res.backbone_trained and len(res.history) == 2
    assert {"phase", "epoch", "train_loss", "val_loss", "val_srcc"} <= set(res.history[-1])
    assert [r["phase"] for r in rows][:2] == ["normalise", "train"]
    assert res.model.heads.severity is None and res.model.cfg.families == ()
    assert _normalisation_fitted(res.model)

    base = nima.LoadedModel(res.model, "b", "b", trained=True)
    before = _state(base.model)
    res2 = drive(network.train_on_dataset(items, base=base, epochs=1, batch_size=3))
    assert not res2.backbone_trained and res2.model is not base.model
    assert all(torch.equal(before[k], v) for k, v in _state(base.model).items())
    m = network.evaluate(res.model, items + [(tmp_path / "missing.jpg", targets[0])], batch_size=4)
    assert m["n"] == 6 and m["failed"] == 1
    assert {"emd", "accuracy", "srcc", "plcc", "srcc_std", "plcc_std"} <= set(m)


def test_learn_cli_end_to_end(tmp_path, capsys):
    photos = _photos(tmp_path, 8)
    csv = tmp_path / "ratings.csv"
    ratings = ["1", "2", "pick", "4", "reject", "2", "3", "5"]
    csv.write_text("path,rating\n" + "".join(f"{p.name},{r}\n" for p, r in zip(photos, ratings)) + "gone.jpg,3\n")

    home = tmp_path / "home"
    assert cli.main(["--home", str(home), "learn", str(csv), "--name", "My taste", "--min-ratings", "5"]) == 0
    out = capsys.readouterr().out
    assert "default  (aesthetic, the default order)" in out and "personal" in out and "1 unreadable" in out
    assert "reading the aesthetic model's features too" in out
    assert "too few to tell" in out and "not suggested" in out  # the window's verdict, in words
    saved = tmp_path / "home" / "data" / "models" / "my-taste.pt"
    assert checkpoint.load_model(saved).meta["n_ratings"] == 8
    assert checkpoint.load_model(saved).cfg.extra_features == 1024  # the aesthetic network's pooled features
    parser = argparse.ArgumentParser()
    learn.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["learn", str(csv), "--name", "My taste", "--min-ratings", "5"])
    assert args.func(args, AppPaths.default(home).ensure()) == 1  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err

    args = parser.parse_args(["learn", str(csv), "--name", "x"])  # 8 < 20 ratings
    assert args.func(args, AppPaths.default(home).ensure()) == 1 and "at least 20" in capsys.readouterr().err

    for cmd in (["train", "--dataset", "csv", "--labels", "l.csv"], ["evaluate", "--dataset", "ava", "--labels", "a"]):
        ns = parser.parse_args(cmd)
        assert ns.func in (learn.cmd_train, learn.cmd_evaluate)


def test_fine_tune_images_guard_rails_and_run(tmp_path):
    paths = _photos(tmp_path, 6)
    small = nima.LoadedModel(nima.NIMA(modelspec.ModelConfig(input_size=64), pretrained=False), "s", "s", trained=False)
    with pytest.raises(personal.TrainingError, match="at least 20"):
        next(network.fine_tune_images(paths, [1, 2, 3, 4, 5, 3], small))
    res = drive(network.fine_tune_images(paths, [1, 2, 3, 4, 5, 3], small, epochs=1, batch_size=4,
                                                 min_ratings=4))
    assert res.backbone_trained and res.history[-1]["phase"] == "val"


# ----------------------------------------------------- a head reading a second network's features

def test_extra_features_carry_a_taste_the_base_features_miss(trained_base, tmp_path):
    """The taste lives in the second network's features only: the head that reads them
    learns it, the one on the base's features alone cannot; the saved model gives the
    same distributions once loaded, and its base part is the base's untouched layout."""
    d = trained_base.model.backbone.feature_dim
    rng = np.random.default_rng(3)
    n, e = 240, 64
    x = rng.normal(size=(n, d)).astype(np.float32)  # nothing about the taste here
    extra, stars, _ = synthetic(n, e, seed=4)
    tr, te = np.arange(160), np.arange(160, n)
    targets = personal.ratings_to_targets(stars[tr])
    alone = drive(personal.fine_tune(x[tr], targets, trained_base, seed=0))
    both = drive(personal.fine_tune(x[tr], targets, trained_base, seed=0, extra=extra[tr], extra_from="aes-id"))
    heads = both.model.heads
    assert both.model.cfg.extra_features == e and heads.extra is not None and alone.model.heads.extra is None
    with torch.no_grad():
        p_alone = alone.model.heads(torch.from_numpy(x[te]))[0].numpy()
        p_both = nima.with_extra(heads.extra, heads(torch.from_numpy(x[te]))[0].numpy(), extra[te])
    s_alone = spearmanr(dist_mean(p_alone), stars[te])[0]
    s_both = spearmanr(dist_mean(p_both), stars[te])[0]
    assert s_both > 0.5 and s_both > s_alone + 0.3, (s_alone, s_both)
    # the held-out figures the dialog shows are those of the head reading both
    assert both.after["srcc"] > 0.4 and both.meta("mine")["extra_features_from"] == "aes-id"
    assert "extra_features_from" not in alone.meta("mine")

    path, mid = personal.save_personal_model(both, "two networks", tmp_path)
    loaded = checkpoint.load_model(path)
    assert loaded.cfg.extra_features == e and loaded.meta["extra_features_from"] == "aes-id"
    lh = loaded.model.heads
    with torch.no_grad():
        again = nima.with_extra(lh.extra, lh(torch.from_numpy(x[te]))[0].numpy(), extra[te])
    np.testing.assert_allclose(again, p_both, atol=1e-6)
    # a model without a second network keeps the config it always had (its file, its id)
    assert "extra_features" not in alone.model.cfg.to_dict()


def test_with_extra_is_one_softmax_over_summed_logits():
    head = nima.ExtraHead(5)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        head.linear.weight.copy_(torch.randn(10, 5, generator=g))
        head.feat_mean.copy_(torch.randn(5, generator=g))
    logits = torch.randn(3, 10, generator=g)
    feats = torch.randn(3, 5, generator=g)
    with torch.no_grad():
        want = torch.softmax(logits + head(feats), dim=1).numpy()
    got = nima.with_extra(head, torch.softmax(logits, dim=1).numpy(), feats.numpy())
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_extra_features_refused_when_malformed(trained_base):
    d = trained_base.model.backbone.feature_dim
    x, stars, _ = synthetic(40, d)
    t = personal.ratings_to_targets(stars)
    with pytest.raises(personal.TrainingError, match="extra features"):
        next(personal.fine_tune(x, t, trained_base, extra=np.zeros((39, 8))))
    bad = np.zeros((40, 8), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(personal.TrainingError, match="NaN"):
        next(personal.fine_tune(x, t, trained_base, extra=bad))


def test_held_out_before_is_the_second_networks_score_when_asked(trained_base):
    """With compare_with (the aesthetic model's own head), "before" on the held-out ratings is
    that model's agreement: a second network whose head follows the taste scores high there."""
    d = trained_base.model.backbone.feature_dim
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, d)).astype(np.float32)
    extra, stars, latent = synthetic(120, 32, seed=6, noise=0.1)
    t = personal.ratings_to_targets(stars)
    # a "second network" head whose mean follows the taste: logits rising with latent on high buckets
    w = np.linalg.lstsq(extra, latent, rcond=None)[0]
    W = np.outer(np.linspace(-1, 1, 10), w)
    res = drive(personal.fine_tune(x, t, trained_base, extra=extra, extra_from="a", compare_with=(W, np.zeros(10))))
    plain = drive(personal.fine_tune(x, t, trained_base, extra=extra, extra_from="a"))
    assert res.compared_with_extra and not plain.compared_with_extra
    assert res.before["srcc"] > 0.7 and res.before["srcc"] > plain.before["srcc"] + 0.4
    assert personal.score_layer(trained_base.model)[0].shape == (10, d)
