"""NIMA model: the ImageNet backbone really is ImageNet-trained, heads, checkpoints."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from photocull.model import nima

from photocull.model import spec as modelspec
from photocull.model import checkpoint
from photocull.model.spec import ModelConfig, ModelError


def _input(arr: np.ndarray, cfg: ModelConfig) -> torch.Tensor:
    return nima.preprocess([modelspec.to_model_input(Image.fromarray(arr), cfg)], cfg)


def test_efficientnet_lite0_recognises_imagenet_classics():
    from skimage import data

    cfg = ModelConfig()
    net = nima.efficientnet_lite0()
    with torch.inference_mode():
        cat = net(_input(data.chelsea(), cfg))
        coffee = net(_input(data.coffee(), cfg))
    assert cat.shape == (1, 1000)
    assert int(cat.argmax()) in range(281, 286), "chelsea should be a cat (ImageNet 281-285)"
    assert int(coffee.argmax()) == 967, "coffee should be espresso (ImageNet 967)"
    # with a clear margin over the runner-up outside the class group
    c = torch.softmax(cat, 1)[0]
    assert float(c[281:286].sum()) > 0.5


@pytest.fixture(scope="module")
def batch(tiny_model):
    rng = np.random.default_rng(0)
    cfg = tiny_model.cfg
    arrs = [rng.integers(0, 256, (cfg.input_size, cfg.input_size, 3), dtype=np.uint8) for _ in range(3)]
    return nima.preprocess(arrs, cfg)


@pytest.fixture(scope="module")
def predicted(tiny_model, batch):
    """The tiny model's (probs, severities, features) on ``batch``, computed once."""
    return nima.predict(tiny_model.model, batch)


def test_preprocess_shape_and_range(tiny_model):
    cfg = tiny_model.cfg
    x = nima.preprocess([np.zeros((224, 224, 3), np.uint8), np.full((224, 224, 3), 255, np.uint8)], cfg)
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32
    assert float(x[0].min()) == pytest.approx(-1.0) and float(x[1].max()) == pytest.approx(1.0)
    arr = modelspec.to_model_input(Image.new("RGB", (640, 200), (10, 20, 30)), cfg)
    assert arr.shape == (224, 224, 3) and arr.dtype == np.uint8


def test_nima_output_is_a_distribution_per_row(predicted):
    probs = predicted[0]
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    # the softmax is over buckets, not over the batch
    assert not np.allclose(probs.sum(0), 1.0, atol=1e-3)


def test_predict_returns_numpy_probs_severities_features(tiny_model, batch, predicted):
    probs, sev, feats = predicted
    assert isinstance(probs, np.ndarray)
    assert sev.shape == (3, len(tiny_model.cfg.families)) and ((sev >= 0) & (sev <= 1)).all()
    assert feats.shape == (3, tiny_model.model.backbone.feature_dim)
    # eval mode: dropout off, so the same picture gives the same answer (also alone)
    with torch.inference_mode():
        again = tiny_model.model(batch[:1])
    np.testing.assert_allclose(again.numpy()[0], probs[0], atol=1e-5)


def test_untrained_model_is_honest(tiny_model):
    assert tiny_model.trained is False
    assert "untrained" in tiny_model.notice
    assert not tiny_model.model.training


def _perturbed_copy(tiny_model, seed=1):
    m = nima.copy_model(tiny_model.model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.heads.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        m.heads.feat_std.mul_(2.0)
    return m.eval()


def test_checkpoint_round_trip_heads_only(tiny_model, batch, predicted, tmp_path):
    m = _perturbed_copy(tiny_model)
    path = tmp_path / "mine.pt"
    mid = checkpoint.save_checkpoint(m, path, meta={"name": "mine", "trained": True, "kind": "taste"})
    ckpt, mid_read = checkpoint.read_checkpoint(path)
    assert mid == mid_read
    assert ckpt["includes_backbone"] is False
    assert all(k.startswith("heads.") for k in ckpt["state_dict"])
    assert path.stat().st_size < 2_000_000  # heads only: the backbone is rebuilt on load

    loaded = checkpoint.load_model(path)
    assert loaded.model_id == mid and loaded.name == "mine" and loaded.trained
    assert "untrained" not in loaded.notice
    assert not loaded.model.training
    with torch.inference_mode():
        before, after = m(batch), loaded.model(batch)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5)
    assert not np.allclose(predicted[0], before.numpy(), atol=1e-4)  # the perturbation mattered

    # same file, same id; different weights, different id
    assert checkpoint.read_checkpoint(path)[1] == mid
    m2 = _perturbed_copy(tiny_model, seed=2)
    assert checkpoint.save_checkpoint(m2, tmp_path / "other.pt", meta={"date": "x"}) != mid


def test_checkpoint_with_backbone_round_trip(tiny_model, batch, tmp_path):
    m = _perturbed_copy(tiny_model)
    path = tmp_path / "full.pt"
    checkpoint.save_checkpoint(m, path, include_backbone=True)
    loaded = checkpoint.load_model(path)
    assert loaded.backbone_trained
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(batch), m(batch), atol=1e-6, rtol=1e-5)


class _Evil:
    """Pickles to a call of os.system: must never run on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_read_checkpoint_refuses_pickle_payload(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": modelspec.CHECKPOINT_FORMAT, "config": {}, "meta": {}, "state_dict": {},
                "x": _Evil(marker)}, path)
    with pytest.raises(ModelError) as ei:
        checkpoint.read_checkpoint(path)
    assert not marker.exists(), "the pickle payload was executed"
    msg = str(ei.value).lower()
    assert "untrusted" in msg or "refused" in msg
    with pytest.raises(ModelError):
        checkpoint.load_model(path)
    assert not marker.exists()


def test_read_checkpoint_refuses_garbage(tmp_path):
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    html = tmp_path / "page.pt"
    html.write_bytes(b"<!DOCTYPE html><html><body>404</body></html>")
    for f in (rnd, html):
        with pytest.raises(ModelError, match="not a photocull model") as ei:
            checkpoint.read_checkpoint(f)
        assert "untrusted" not in str(ei.value)  # damaged is not malicious

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelError):
        checkpoint.read_checkpoint(empty)

    with pytest.raises(ModelError, match="cannot read"):
        checkpoint.read_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("payload", [
    {"format": "something-else/3", "config": {}, "meta": {}, "state_dict": {}},
    {"weights": torch.zeros(3)},
    [1, 2, 3],
    {"format": modelspec.CHECKPOINT_FORMAT, "config": {}, "meta": {}},  # no state_dict
])
def test_read_checkpoint_refuses_wrong_format(tmp_path, payload):
    path = tmp_path / "wrong.pt"
    torch.save(payload, path)
    with pytest.raises(ModelError):
        checkpoint.read_checkpoint(path)


def test_wrong_shaped_state_dict_is_a_model_error(tiny_model, tmp_path):
    path = tmp_path / "ok.pt"
    checkpoint.save_checkpoint(tiny_model.model, path)
    ckpt, _ = checkpoint.read_checkpoint(path)
    key = next(k for k in ckpt["state_dict"] if k.endswith("weight") and ckpt["state_dict"][k].ndim == 2)
    ckpt["state_dict"][key] = torch.zeros(7, 5)
    bad = tmp_path / "bad.pt"
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    bad.write_bytes(buf.getvalue())
    ckpt_bad, _ = checkpoint.read_checkpoint(bad)  # well-formed file...
    with pytest.raises(ModelError, match="do not fit"):  # ...whose weights don't fit
        checkpoint.model_from_checkpoint(ckpt_bad)
    with pytest.raises(ModelError):
        checkpoint.load_model(bad)


def test_unknown_config_field_is_a_model_error():
    with pytest.raises(ModelError, match="unknown"):
        ModelConfig.from_dict({"backbone": "efficientnet_lite0", "wings": 2})
    cfg = ModelConfig(hidden=32)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_mobilenet_v2_without_weights_is_a_model_error(monkeypatch):
    import torchvision

    def no_download(*a, **kw):
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.models, "mobilenet_v2", no_download)
    with pytest.raises(ModelError, match="MobileNetV2"):
        nima.mobilenet_v2()
    with pytest.raises(ModelError):
        nima.NIMA(ModelConfig(backbone="mobilenet_v2", pooling="last"))


def test_backbone_rejects_bad_choices():
    with pytest.raises(ModelError, match="unknown backbone"):
        nima.Backbone("resnet9000")
    with pytest.raises(ModelError):
        nima.Backbone("efficientnet_lite0", pooling="max")
    with pytest.raises(ModelError):
        nima.Backbone("mobilenet_v2", pooling="multilevel")


def test_summarise(predicted):
    m, s = nima.summarise(predicted[0])
    assert m.shape == (3,) and ((m >= 1) & (m <= 10)).all() and (s >= 0).all()


def test_multilevel_cs_extends_multilevel_exactly():
    """Same features as "multilevel" in the same order, then 80 centre-surround ones."""
    g = torch.Generator().manual_seed(0)
    ml = nima.Backbone("efficientnet_lite0", "multilevel", pretrained=False).eval()
    cs = nima.Backbone("efficientnet_lite0", "multilevel_cs", pretrained=False).eval()
    cs.load_state_dict(ml.state_dict())
    assert ModelConfig().pooling == "multilevel_cs"
    assert (ml.feature_dim, cs.feature_dim) == (2144, 2224)
    assert sum(ml.feature_blocks) == 2144 and len(ml.feature_blocks) == 11
    assert cs.feature_blocks == ml.feature_blocks + [16, 24, 40]
    x = torch.randn(2, 3, 96, 96, generator=g)
    with torch.inference_mode():
        a, b = ml(x), cs(x)
    assert b.shape == (2, 2224)
    torch.testing.assert_close(b[:, :2144], a, rtol=0, atol=0)
    assert torch.isfinite(b).all()


def test_centre_surround_statistic_sees_a_sharp_centre():
    h = w = 32
    x = torch.zeros(1, 2, h, w)
    g = torch.Generator().manual_seed(1)
    x[0, 0, h // 4: h - h // 4, w // 4: w - w // 4] = torch.randn(h // 2, w // 2, generator=g)  # busy centre
    x[0, 1] = torch.randn(h, w, generator=g)  # busy everywhere
    cs = nima.Backbone.centre_surround_stat(x)[0]
    assert float(cs[0]) > 3 and abs(float(cs[1])) < 0.5
