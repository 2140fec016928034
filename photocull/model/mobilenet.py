"""MobileNet-v1 (Howard et al. 2017), as Keras 2.1.6 built it, with its batch norms folded.

The network of idealo's NIMA aesthetic model (``scripts/convert_idealo_nima.py`` converts
its Keras weights).  Two details decide whether the converted weights give idealo's scores:

* every 3x3 convolution is preceded by a symmetric zero padding of one pixel, the stride-2
  ones included (Keras 2.1.6's ``conv_pad_N`` layers are ``ZeroPadding2D((1, 1))`` before a
  ``'valid'`` convolution; TF2's ``'same'`` pads stride-2 convolutions on the bottom/right
  only, which moves the scores by up to 0.46);
* the batch norms (eps 1e-3) are folded into the convolutions, so each convolution has a
  bias and is followed by ReLU6 directly.

Model code after torchvision: :func:`_mobilenet_v1` builds, :func:`mobilenet_v1` is the thin
public builder.  No ImageNet weights ship with photocull: a MobileNet-v1 comes whole from a
checkpoint that includes its backbone.
"""
from __future__ import annotations

from torch import nn

from photocull.model.spec import ModelError

# (output channels, stride) of the 13 depthwise-separable blocks (Keras conv_dw_1 .. conv_dw_13)
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
STEM_CHANNELS = 32
FEATURE_DIM = 1024


def _conv_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (bias: its batch norm folded in) + ReLU6; a 3x3 conv pads 1 pixel on every side."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=True),
                         nn.ReLU6(inplace=True))


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv (stride 1 or 2) + ReLU6, then 1x1 pointwise conv + ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = _conv_relu6(cin, cin, 3, stride, groups=cin)
        self.pw = _conv_relu6(cin, cout, 1)


class MobileNetV1(nn.Module):
    """Image -> (B, 1024) global average of the last feature map (Keras ``include_top=False,
    pooling='avg'``); :meth:`forward_features` gives the map itself."""

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        if width_mult != 1.0:
            raise ModelError("mobilenet_v1: only width 1.0 (alpha 1) is built")
        layers: list[nn.Module] = [_conv_relu6(3, STEM_CHANNELS, 3, 2)]
        cin = STEM_CHANNELS
        for cout, stride in _BLOCKS:
            layers.append(DepthwiseSeparable(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.num_features = cin

    def forward_features(self, x):
        return self.features(x)

    def forward(self, x):
        return self.forward_features(x).mean((2, 3))


def _mobilenet_v1(width_mult: float, weights) -> MobileNetV1:
    if weights is not None:
        raise ModelError("mobilenet_v1: photocull ships no ImageNet weights for it; "
                         "its model files carry the whole network (includes_backbone)")
    return MobileNetV1(width_mult).eval()


def mobilenet_v1(*, weights=None) -> MobileNetV1:
    """MobileNet-v1, alpha 1, with randomly initialised weights to be loaded from a checkpoint."""
    return _mobilenet_v1(1.0, weights)


def keras_layer_names() -> list[tuple[str, str]]:
    """(Keras layer name, our module path) for every convolution, in network order: the
    conversion script's map from idealo's HDF5 to this module's state dict."""
    out = [("conv1", "features.0.0")]
    for i in range(1, len(_BLOCKS) + 1):
        out += [(f"conv_dw_{i}", f"features.{i}.dw.0"), (f"conv_pw_{i}", f"features.{i}.pw.0")]
    return out
