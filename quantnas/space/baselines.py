"""Fixed hand-designed SR networks, quantized uniformly, as comparison points for the search.

Each baseline is built from the project's :class:`~quantnas.quant.conv.QConv2d`, so it is
quantized exactly like a found network: LSQ weights and HWGQ activations (the HWGQ input
quantizer is also each conv's ReLU) at one bit-width for every conv (4, 8, or 32 = full
precision), and its BitOps come from the same cost model (:func:`quantnas.space.cost.network_cost`).
Like the search space's networks they follow ``arch.global_skip`` / ``arch.output_scale``
(bicubic global skip with a zero-initialised output scale by default) and
``arch.input_quant`` for the conv that reads the LR image, so a comparison measures the
body, not the wrapper.

Differences from the papers (all forced by the shared quantized conv, which is bias-free
and carries a ReLU on its input): tanh (ESPCN) and PReLU (FSRCNN) become ReLU; FSRCNN's
9x9 stride-``s`` deconvolution becomes its sub-pixel equivalent (a 3x3 LR conv to
``3 s^2`` channels + PixelShuffle, whose receptive field covers the 9x9 HR kernel); the
small EDSR uses pre-activation residual blocks (conv(relu(x)) twice) and one sub-pixel
upsampling conv instead of EDSR's staged x2 upsamplers and HR tail conv.

Registry: :data:`BASELINES` maps a name (``sweep.baselines``) to a builder
``(arch, bits) -> nn.Module``; a baseline registered from outside the package
(``BASELINES.register(name, builder)``) joins sweeps and their fronts like these.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from quantnas.config.types import ArchConfig
from quantnas.models.blocks import upscale_input
from quantnas.quant.conv import QConv2d
from quantnas.quant.quantizers import check_bits
from quantnas.registry import Registry


def _conv(c_in: int, c_out: int, k: int, bits: int) -> QConv2d:
    return QConv2d(bits=bits, c_in=c_in, c_out=c_out, kernel_size=k)


class SubPixelNet(nn.Module):
    """``features`` (LR -> ``3 s^2`` channels) -> PixelShuffle [* out_scale] [+ upscaled LR].

    Args:
        features: Body ending in a conv to ``3 * scale**2`` channels.
        first: The conv that reads the LR image (for ``arch.input_quant``).
        arch: Scale, global skip and output scale.

    """

    def __init__(self, features: nn.Module, first: QConv2d, arch: ArchConfig) -> None:
        super().__init__()
        self.features = features
        self.shuffle = nn.PixelShuffle(arch.scale)
        self.scale, self.global_skip = arch.scale, arch.global_skip
        use_scale = arch.output_scale and arch.global_skip != "none"
        self.out_scale = nn.Parameter(torch.zeros(())) if use_scale else None
        self._first = [first]  # not a submodule twice
        if arch.input_quant == "image":
            first.read_image()

    def image_layers(self) -> list[nn.Module]:
        """The conv whose input is the LR image."""
        return [self._first[0]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.features(x))
        if self.out_scale is not None:
            out = out * self.out_scale
        skip = upscale_input(x, self.scale, self.global_skip)
        return out if skip is None else out + skip


def espcn(arch: ArchConfig, bits: int) -> nn.Module:
    """ESPCN (Shi et al. 2016; the original code's ``sr_base``): 5x5 64, 3x3 32, 3x3 to 3s^2."""
    first = _conv(3, 64, 5, bits)
    feats = nn.Sequential(first, _conv(64, 32, 3, bits), _conv(32, 3 * arch.scale**2, 3, bits))
    return SubPixelNet(feats, first, arch)


def fsrcnn(arch: ArchConfig, bits: int, *, d: int = 56, s: int = 12, m: int = 4) -> nn.Module:
    """FSRCNN(d=56, s=12, m=4) (Dong et al. 2016) with a sub-pixel last layer."""
    first = _conv(3, d, 5, bits)
    layers = [first, _conv(d, s, 1, bits)]
    layers += [_conv(s, s, 3, bits) for _ in range(m)]
    layers += [_conv(s, d, 1, bits), _conv(d, 3 * arch.scale**2, 3, bits)]
    return SubPixelNet(nn.Sequential(*layers), first, arch)


class _ResBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` (the ReLUs are the convs' HWGQ inputs)."""

    def __init__(self, c: int, bits: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3, bits), _conv(c, c, 3, bits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _EDSRFeatures(nn.Module):
    def __init__(self, c: int, blocks: int, bits: int, scale: int) -> None:
        super().__init__()
        self.head = _conv(3, c, 3, bits)
        self.body = nn.Sequential(
            *(_ResBlock(c, bits) for _ in range(blocks)), _conv(c, c, 3, bits)
        )
        self.up = _conv(c, 3 * scale**2, 3, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return self.up(h + self.body(h))


def edsr(arch: ArchConfig, bits: int, *, c: int = 32, blocks: int = 4) -> nn.Module:
    """A small EDSR-style net (Lim et al. 2017): 3x3 head, ``blocks`` residual blocks and a
    3x3 conv under a long skip, one sub-pixel upsampling conv; ``c`` channels.
    """
    feats = _EDSRFeatures(c, blocks, bits, arch.scale)
    return SubPixelNet(feats, feats.head, arch)


#: Baseline builders ``(arch, bits) -> nn.Module`` by name.
BASELINES: Registry[Callable[[ArchConfig, int], nn.Module]] = Registry.of(
    "baseline", {"espcn": espcn, "fsrcnn": fsrcnn, "edsr": edsr}, key="sweep.baselines"
)


def build_baseline(name: str, arch: ArchConfig, bits: int) -> nn.Module:
    """Build baseline ``name`` with every conv at ``bits``.

    Raises:
        QuantNASError: Unknown name or unsupported bit-width.

    """
    builder = BASELINES.get(name)
    check_bits(bits, where=f"baseline {name} bits")
    return builder(arch, bits)
