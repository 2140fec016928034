"""The aesthetic model (idealo's NIMA trained on AVA, converted): its network, its config,
its transform and view of the photo, the shipped file, and idealo's published scores
reproduced through ``photocull score --model aesthetic`` (PyTorch and ONNX Runtime)."""
from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, SHARED_DATA, make_photo
from photocull import scoring
from photocull.media.loaders import open_image
from photocull.model import checkpoint, registry
from photocull.model import spec as modelspec
from photocull.model.mobilenet import mobilenet_v1
from photocull.model.spec import ModelConfig, ModelError, to_model_input

AVA5 = SHARED_DATA / "weights" / "ava5"
HDF5 = SHARED_DATA / "weights" / "weights_mobilenet_aesthetic_0.07.hdf5"
needs_ava5 = pytest.mark.skipif(not (AVA5 / "scores.csv").is_file(), reason="../shared/data/weights/ava5 not present")
AESTHETIC_CFG = ModelConfig(backbone="mobilenet_v1", pooling="last", hidden=0, dropout=0.75, families=(),
                            input_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize="nearest")


# -- config and transform -----------------------------------------------------------------
def test_aesthetic_config_round_trips_and_bad_values_are_refused():
    assert ModelConfig.from_dict(AESTHETIC_CFG.to_dict()) == AESTHETIC_CFG
    assert AESTHETIC_CFG.to_dict()["resize"] == "nearest"
    base = AESTHETIC_CFG.to_dict()
    for change, word in (({"resize": "bicubic"}, "resize"), ({"resize": 0}, "resize"), ({"resize": None}, "resize"),
                         ({"pooling": "multilevel"}, "mobilenet_v1"), ({"backbone": "mobilenet_v3"}, "backbone")):
        with pytest.raises(ModelError, match=word):
            ModelConfig.from_dict({**base, **change})


def test_default_model_transform_is_unchanged():
    """The technical model's config and input are what they were before ``resize`` existed."""
    cfg = ModelConfig()
    assert cfg.resize == "bilinear" and "resize" not in cfg.to_dict()  # its files, its ONNX digest unchanged
    ckpt, _ = checkpoint.read_checkpoint(modelspec.default_model_path())
    assert ModelConfig.from_dict(ckpt["config"]).resize == "bilinear"
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (300, 448, 3), dtype=np.uint8))
    old = np.asarray(im.resize((224, 224), Image.Resampling.BILINEAR, reducing_gap=2.0))
    assert np.array_equal(to_model_input(im, cfg), old)
    assert np.array_equal(to_model_input(im, AESTHETIC_CFG), np.asarray(im.resize((224, 224), Image.Resampling.NEAREST)))


def test_views_of_the_photo(tmp_path):
    """One decode feeds both models: the technical model's input is made from the 448 px
    view as before; the aesthetic model's from the DCT-scaled decode itself (NEAREST picks
    its pixels): for a web-size photo, the file's own pixels (as idealo scored them)."""
    web = make_photo(tmp_path / "web.jpg", seed=1, size=(640, 427))
    big = make_photo(tmp_path / "big.jpg", seed=2, size=(2400, 1600))
    tech = ModelConfig()
    for f in (web, big):
        assert np.array_equal(scoring.decode(f, tech).array, to_model_input(open_image(f, scoring.DECODE_SIDE), tech))
    with Image.open(web) as im:
        own = np.asarray(im.convert("RGB").resize((224, 224), Image.Resampling.NEAREST))
    d = scoring.decode(web, AESTHETIC_CFG, (scoring.THUMBNAIL,))
    assert np.array_equal(d.array, own)
    assert max(d.found["thumbnail"].size) == scoring.THUMB_SIDE
    d = scoring.decode(big, AESTHETIC_CFG)
    drafted = open_image(big, scoring.DECODE_SIDE, draft_only=True)
    assert drafted.size == (1200, 800)  # 1/2: the smallest DCT scale keeping 448 px
    assert np.array_equal(d.array, to_model_input(drafted, AESTHETIC_CFG))
    both = scoring.decode(big, (tech, AESTHETIC_CFG))
    assert np.array_equal(both.arrays[0], to_model_input(open_image(big, scoring.DECODE_SIDE), tech))
    assert np.array_equal(both.arrays[1], d.array)
    only = scoring.decode(big, (tech, AESTHETIC_CFG), need=(False, True))
    assert only.arrays[0] is None and np.array_equal(only.arrays[1], d.array)
    assert scoring.decode_side(()) == scoring.DECODE_SIDE


# -- the network ----------------------------------------------------------------------------
def test_mobilenet_v1_pads_every_3x3_conv_symmetrically():
    net = mobilenet_v1()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 27  # stem + 13 x (depthwise, pointwise)
    three = [c for c in convs if c.kernel_size == (3, 3)]
    assert len(three) == 14 and all(c.padding == (1, 1) for c in three)
    assert [c.stride[0] for c in three] == [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert all(c.bias is not None for c in convs)  # batch norms folded in
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    with torch.no_grad():
        x = torch.randn(2, 3, 224, 224)
        assert net.forward_features(x).shape == (2, 1024, 7, 7)
        assert net(x).shape == (2, 1024)
    with pytest.raises(ModelError, match="no ImageNet weights"):
        mobilenet_v1(weights="imagenet")


def test_aesthetic_model_runs_like_any_other(app_paths):
    """LoadedModel, the PyTorch runner and the pooled features (personal learning) work as
    for the default model: a distribution per photo, no severities, 1024 features."""
    from photocull.model.runtime import torch_runner_for
    from photocull.training.personal import feature_blocks

    loaded = registry.resolve("aesthetic", app_paths)
    assert loaded.trained and loaded.backbone_trained and loaded.cfg == AESTHETIC_CFG
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(3)]
    probs, sev, feats = torch_runner_for(loaded, "cpu", threads=1)(arrays)
    assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1, atol=1e-5) and sev is None
    assert feats.shape == (3, 1024) and (feats >= 0).all()  # ReLU6 then the average
    assert feature_blocks(loaded.model.backbone) == [1024]


# -- the shipped file ------------------------------------------------------------------------
def test_shipped_aesthetic_model_and_its_name():
    path = modelspec.aesthetic_model_path()
    ckpt, mid = checkpoint.read_checkpoint(path)
    assert ModelConfig.from_dict(ckpt["config"]) == AESTHETIC_CFG
    assert ckpt["includes_backbone"] is True
    meta = ckpt["meta"]
    assert meta["name"] == "aesthetic" and meta["trained"] is True and "Apache-2.0" in meta["licence"]
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values())
    assert (path.parent / "NOTICE").is_file() and (path.parent / "AESTHETIC_MODEL_CARD.md").is_file()


def test_registry_resolves_aesthetic_and_default_stays_technical(app_paths):
    lazy = registry.resolve_lazy("aesthetic", app_paths)
    assert lazy.name == "aesthetic" and lazy.cfg == AESTHETIC_CFG and "AVA" in lazy.notice
    default = registry.resolve_lazy("default", app_paths)
    assert default.cfg == ModelConfig() and default.path == modelspec.default_model_path()
    assert [e.name for e in registry.list_models(app_paths)][:2] == ["default", "aesthetic"]
    with pytest.raises(ModelError, match="shipped"):
        registry.personal_model_path(app_paths, "Aesthetic")


# -- bad files -------------------------------------------------------------------------------
def _rewritten(tmp_path: Path, name: str, change) -> Path:
    ckpt = torch.load(modelspec.aesthetic_model_path(), map_location="cpu", weights_only=True)
    change(ckpt)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    p = tmp_path / name
    p.write_bytes(buf.getvalue())
    return p


def test_damaged_or_wrong_shape_aesthetic_files_are_refused(tmp_path, capsys):
    from photocull.cli import main

    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(modelspec.aesthetic_model_path().read_bytes()[:3_000_000])
    with pytest.raises(ModelError, match="not a photocull model file"):
        checkpoint.load_model(trunc)

    def narrower(ck):
        ck["state_dict"]["backbone.net.features.13.pw.0.weight"] = torch.zeros(1024, 512, 1, 1)

    def heads_only(ck):
        ck["includes_backbone"] = False
        ck["state_dict"] = {k: v for k, v in ck["state_dict"].items() if k.startswith("heads.")}

    def nine_buckets(ck):
        ck["state_dict"]["heads.score.1.weight"] = ck["state_dict"]["heads.score.1.weight"][:9]

    for name, change, why in (("narrow.pt", narrower, r"features\.13\.pw\.0\.weight has shape \(1024, 512, 1, 1\)"),
                              ("heads.pt", heads_only, "must carry its whole network"),
                              ("nine.pt", nine_buckets, r"heads\.score\.1\.weight has shape \(9, 1024\)")):
        bad = _rewritten(tmp_path, name, change)
        with pytest.raises(ModelError, match=why):
            checkpoint.load_model(bad)
    photo = make_photo(tmp_path / "p.jpg")
    rc = main(["--home", str(tmp_path / "home"), "score", "--model", str(tmp_path / "narrow.pt"), "--format", "csv",
               "--backend", "torch", "-q", "--no-cache", str(photo)])
    err = capsys.readouterr().err
    assert rc != 0 and "do not fit the architecture" in err and "expects (1024, 1024, 1, 1)" in err


# -- the conversion ----------------------------------------------------------------------------
def _converter():
    spec = importlib.util.spec_from_file_location("convert_idealo_nima", REPO / "scripts" / "convert_idealo_nima.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_converter_checks_the_blob_id_first(tmp_path):
    conv = _converter()
    assert conv.git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    fake = tmp_path / "weights.hdf5"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(SystemExit, match="git blob id"):
        conv.convert(fake, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.skipif(not HDF5.is_file() or importlib.util.find_spec("h5py") is None,
                    reason="idealo's HDF5 (../shared/data) or h5py (pip install '.[convert]') not present")
def test_converter_makes_the_shipped_weights(tmp_path):
    out = tmp_path / "aesthetic.pt"
    _converter().convert(HDF5, out)
    mine, _ = checkpoint.read_checkpoint(out)
    shipped, _ = checkpoint.read_checkpoint(modelspec.aesthetic_model_path())
    assert mine["config"] == shipped["config"]
    assert mine["state_dict"].keys() == shipped["state_dict"].keys()
    assert all(torch.equal(v, shipped["state_dict"][k]) for k, v in mine["state_dict"].items())


# -- idealo's published scores, through `photocull score` ------------------------------------------
def _published() -> dict[str, float]:
    with open(AVA5 / "scores.csv", newline="") as f:
        return {r["image_id"]: float(r["idealo_aesthetic_mean"]) for r in csv.DictReader(f)}


def _score(home: Path, backend: str, fmt: str) -> dict[str, float]:
    from photocull.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["--home", str(home), "score", "--model", "aesthetic", "--format", fmt, "--backend", backend,
                   "-q", "--no-cache", str(AVA5)])
    assert rc == 0
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert all(not r["error"] for r in rows)
        return {Path(r["path"]).stem: float(r["mean"]) for r in rows}
    doc = json.loads(out.getvalue())
    assert doc["model"] == "aesthetic"
    return {Path(r["path"]).stem: r["mean"] for r in doc["photos"]}


@pytest.fixture(scope="module")
def torch_means(tmp_path_factory):
    return _score(tmp_path_factory.mktemp("home"), "torch", "csv")


@needs_ava5
def test_ava5_means_reproduce_idealo_in_pytorch(torch_means):
    pub = _published()
    assert torch_means.keys() == pub.keys()
    for k, v in pub.items():
        assert abs(torch_means[k] - v) <= 0.05, (k, torch_means[k], v)


@needs_ava5
@pytest.mark.slow  # one ONNX export (~10-20 s)
def test_ava5_means_in_onnx_runtime_agree(torch_means, tmp_path_factory):
    from photocull.config import AppPaths

    home = tmp_path_factory.mktemp("home-onnx")
    onnx_means = _score(home, "onnx", "json")
    assert list(AppPaths.default(home).onnx_dir.glob("*.onnx")), "scored in PyTorch: the ONNX export failed"
    pub = _published()
    for k, v in pub.items():
        assert abs(onnx_means[k] - v) <= 0.05, (k, onnx_means[k], v)
        assert abs(onnx_means[k] - torch_means[k]) <= 0.01, (k, onnx_means[k], torch_means[k])
