"""Issue 2/7, item 2: hostile model files are refused with a reason, cheaply, before anything
is built or inflated.  Every file is generated here (tests/reliability_helpers.py)."""
from __future__ import annotations

import io
import pickle
import struct
import zipfile

import pytest
import torch

from photocull.model import checkpoint, nima, registry
from photocull.model import spec as modelspec
from photocull.model.spec import ModelConfig, ModelError
from reliability_helpers import build_hostile_models, deflated_zeros, model_refusal_cost, write_zip


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    marker = d / "payload-ran"
    return d, build_hostile_models(d, marker), marker


CASES = ["hidden-300000.pt", "input-size-20000.pt", "input-size-0.pt", "input-size-text.pt",
         "families-x100000.pt", "dropout-5.pt", "std-zero.pt", "zip-bomb.pt", "reduce-pickle.pt"]


@pytest.mark.parametrize("name", CASES)
def test_hostile_model_file_is_refused_with_its_reason(hostile, name, tmp_path):
    d, expected, marker = hostile
    assert set(expected) == set(CASES)
    with pytest.raises(ModelError) as ei:
        checkpoint.read_checkpoint(d / name)
    msg = str(ei.value)
    assert expected[name] in msg and name in msg
    assert "Traceback" not in msg and len(msg) < 300
    with pytest.raises(ModelError):
        checkpoint.load_model(d / name)
    paths = _paths(tmp_path)
    with pytest.raises(ModelError):
        registry.resolve_lazy(str(d / name), paths)  # what --model FILE does
    with pytest.raises(ModelError):
        registry.import_model(paths, d / name, name="x")
    assert not (paths.models_dir / "x.pt").exists()
    assert not marker.exists(), "the pickle payload ran"


def _paths(tmp_path):
    from photocull.config import AppPaths

    return AppPaths.default(tmp_path / "home")


def test_raw_pickle_with_reduce_is_named_code_not_damage(hostile):
    d, _, marker = hostile
    with pytest.raises(ModelError, match="contains code, refused") as ei:
        checkpoint.read_checkpoint(d / "reduce-pickle.pt")
    assert "system" in str(ei.value) and "damaged" not in str(ei.value)
    assert not marker.exists()


def test_plain_pickle_without_code_is_not_a_model(tmp_path):
    p = tmp_path / "plain.pt"
    p.write_bytes(pickle.dumps({"format": modelspec.CHECKPOINT_FORMAT, "config": {}, "state_dict": {}}))
    with pytest.raises(ModelError, match="not a photocull model") as ei:
        checkpoint.read_checkpoint(p)
    assert "code" not in str(ei.value)


def test_refusing_hostile_model_files_costs_little_memory(hostile):
    """The issue measured 1.7 to 8.3 GB before these were refused; now each is refused from
    the archive's directory or the config, before torch builds or inflates anything."""
    d, _, _ = hostile
    got = model_refusal_cost([d / n for n in CASES])
    assert [r["path"] for r in got] == [str(d / n) for n in CASES], got
    for r in got:
        assert r["outcome"].startswith("ModelError: "), r
        assert r["python_peak_mb"] < 32, r
    assert max(r["rss_growth_mb"] for r in got) < 64, got  # peak RSS over importing torch


def test_zip_bomb_is_refused_without_inflating(hostile, monkeypatch):
    d, _, _ = hostile

    def no_torch_load(*a, **kw):
        raise AssertionError("torch.load must not see a zip bomb")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(ModelError, match="compressed"):
        checkpoint.read_checkpoint(d / "zip-bomb.pt")


def test_deflated_zeros_helper_is_a_real_stream():
    import zlib

    data, crc = deflated_zeros(3)
    out = zlib.decompress(data, -15)
    assert len(out) == 3 << 20 and not any(out) and zlib.crc32(out) == crc


def _shipped_entries():
    with zipfile.ZipFile(modelspec.default_model_path()) as zf:
        return [(i.filename, zipfile.ZIP_STORED, i.CRC, i.file_size, zf.read(i)) for i in zf.infolist()]


def test_archive_declaring_more_than_it_holds_is_refused(tmp_path):
    entries = _shipped_entries()
    # a stored entry that declares 2 GiB: the sizes disagree
    lie = [(n, m, c, (2 << 30) if n.endswith("/data/0") else s, b) for n, m, c, s, b in entries]
    write_zip(tmp_path / "lie.pt", lie)
    with pytest.raises(ModelError, match="inconsistent sizes"):
        checkpoint.read_checkpoint(tmp_path / "lie.pt")
    # a central directory declared far larger than a model's
    good = modelspec.default_model_path().read_bytes()
    at = good.rfind(b"PK\x05\x06")
    big = bytearray(good)
    big[at + 12: at + 16] = struct.pack("<I", 64 << 20)
    (tmp_path / "bigdir.pt").write_bytes(bytes(big))
    with pytest.raises(ModelError, match="directory"):
        checkpoint.read_checkpoint(tmp_path / "bigdir.pt")
    # many entries
    many = entries + [(f"archive/junk/{i}", zipfile.ZIP_STORED, 0, 0, b"") for i in range(checkpoint.MAX_ENTRIES)]
    write_zip(tmp_path / "many.pt", many)
    with pytest.raises(ModelError, match="entries"):
        checkpoint.read_checkpoint(tmp_path / "many.pt")


def test_a_view_declaring_a_huge_shape_is_refused(tmp_path):
    """A stride-0 view stores 1 number and declares 10^8: loading would copy 400 MB."""
    ckpt = torch.load(modelspec.default_model_path(), weights_only=True)
    ckpt["state_dict"]["heads.feat_mean"] = torch.zeros(1).expand(100_000_000)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    assert len(buf.getvalue()) < 1_000_000
    (tmp_path / "view.pt").write_bytes(buf.getvalue())
    with pytest.raises(ModelError, match="numbers"):
        checkpoint.read_checkpoint(tmp_path / "view.pt")


def test_model_file_that_is_not_a_regular_file(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.pt")
    with pytest.raises(ModelError, match="not a regular file"):
        checkpoint.read_checkpoint(tmp_path / "fifo.pt")
    with pytest.raises(ModelError):
        registry.resolve_lazy(str(tmp_path / "fifo.pt"), _paths(tmp_path))


def test_shipped_model_still_reads():
    ckpt, _ = checkpoint.read_checkpoint(modelspec.default_model_path())
    assert ModelConfig.from_dict(ckpt["config"]) == ModelConfig()


@pytest.mark.parametrize("change, field", [
    ({"hidden": 300000}, "hidden"), ({"hidden": -1}, "hidden"), ({"hidden": True}, "hidden"),
    ({"hidden": 2.5}, "hidden"),
    ({"dropout": 5}, "dropout"), ({"dropout": 1}, "dropout"), ({"dropout": -0.1}, "dropout"),
    ({"dropout": float("nan")}, "dropout"), ({"dropout": "0.5"}, "dropout"),
    ({"input_size": 20000}, "input_size"), ({"input_size": 0}, "input_size"), ({"input_size": "224"}, "input_size"),
    ({"input_size": 224.0}, "input_size"),
    ({"families": ["blur"] * 100000}, "families"), ({"families": ["blur", "blur"]}, "families"),
    ({"families": [3]}, "families"), ({"families": ["x" * 100]}, "families"), ({"families": "blur"}, "families"),
    ({"mean": [0.5, 0.5]}, "mean"), ({"mean": [0.5, 0.5, float("inf")]}, "mean"), ({"mean": [1e9, 0, 0]}, "mean"),
    ({"std": [0, 0, 0]}, "std"), ({"std": [0.5, -0.5, 0.5]}, "std"), ({"std": [0.5, 0.5, float("nan")]}, "std"),
    ({"std": ["a", "b", "c"]}, "std"),
    ({"backbone": "resnet9000"}, "backbone"), ({"backbone": ["x"]}, "backbone"), ({"pooling": "max"}, "pooling"),
    ({"backbone": "mobilenet_v2"}, "mobilenet_v2"),  # with the default multilevel_cs pooling
    ({"backbone": "mobilenet_v1"}, "mobilenet_v1"),
    ({"resize": "lanczos"}, "resize"), ({"resize": 1}, "resize"), ({"resize": ["nearest"]}, "resize"),
])
def test_config_out_of_bounds_is_a_model_error(change, field):
    d = {**ModelConfig().to_dict(), **change}
    with pytest.raises(ModelError, match=field):
        ModelConfig.from_dict(d)


def test_config_within_bounds_round_trips():
    for cfg in (ModelConfig(), ModelConfig(input_size=64), ModelConfig(hidden=modelspec.MAX_HIDDEN, dropout=0.0),
                ModelConfig(families=()), ModelConfig(backbone="mobilenet_v2", pooling="last"),
                ModelConfig(backbone="mobilenet_v1", pooling="last", families=(), resize="nearest"),
                ModelConfig(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))):
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelError, match="mapping"):
        ModelConfig.from_dict([1, 2])


def test_nima_refuses_what_spec_does_not_name():
    with pytest.raises(ModelError, match="unknown backbone"):
        nima.Backbone("resnet50", pretrained=False)
    with pytest.raises(ModelError, match="unknown pooling"):
        nima.Backbone("efficientnet_lite0", pooling="max", pretrained=False)
