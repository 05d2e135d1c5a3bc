"""How far an output pixel of a network can see: the halo that makes tiled inference exact.

A network built only from "same"-padded convs, residuals, parallel sums, pixel shuffles
and a bicubic/nearest global skip computes each output pixel from a bounded LR window.
Tiles that carry at least that many LR pixels of real neighbours on every side therefore
reproduce the untiled output. Networks with whole-image operations (ADQ's per-image
standard deviation, RFDN's ESA pooling and resize) have no such bound: :func:`lr_halo`
returns ``None`` for them.
"""

from __future__ import annotations

import math

from torch import nn

from quantnas.deploy.bicubic_conv import bicubic_taps
from quantnas.models.basic import BasicSRNet
from quantnas.models.blocks import ParallelSum, Residual
from quantnas.quant.conv import QConvBase
from quantnas.quant.out_quant import OutputQuantizer
from quantnas.space.baselines import SubPixelNet, _EDSRFeatures, _ResBlock
from quantnas.space.ops import Identity, Zero

__all__ = ["lr_halo"]


class _UnboundedError(Exception):
    """The module depends on the whole image."""


def _radius(m: nn.Module) -> tuple[int, int]:
    """Receptive radius ``(rows, cols)`` of a module at its own resolution."""
    if isinstance(m, QConvBase):
        if m.stride != (1, 1):
            raise _UnboundedError
        return tuple(  # type: ignore[return-value]
            max(m.padding[i], m.dilation[i] * (m.kernel_size[i] - 1) - m.padding[i])
            for i in range(2)
        )
    if isinstance(m, (Identity, Zero, nn.Identity, OutputQuantizer)):
        return (0, 0)
    if isinstance(m, _ResBlock):
        return _radius(m.body)
    if isinstance(m, _EDSRFeatures):
        return _radius(nn.Sequential(m.head, m.body, m.up))
    if isinstance(m, Residual):
        if m.adq:
            raise _UnboundedError
        return _radius(m.fn)
    if isinstance(m, ParallelSum):
        radii = [_radius(b) for b in m.branches]
        return (max(r[0] for r in radii), max(r[1] for r in radii))
    if isinstance(m, nn.Sequential):
        total = (0, 0)
        for child in m:
            if isinstance(child, nn.PixelShuffle):
                raise _UnboundedError  # handled by the caller, which splits LR and HR parts
            r = _radius(child)
            total = (total[0] + r[0], total[1] + r[1])
        return total
    raise _UnboundedError


def _skip_radius(net: nn.Module) -> int:
    mode = getattr(net, "global_skip", "none")
    if mode == "bicubic":
        return (bicubic_taps(net.scale).shape[1] - 1) // 2
    return 0


def lr_halo(net: nn.Module) -> int | None:
    """LR pixels of context each output pixel needs on every side, or None if unbounded.

    Args:
        net: A final network (basic or rfdn topology) or a hand-designed baseline.

    Returns:
        The halo in LR pixels for a basic-space network without ADQ or a baseline; ``None``
        for networks with whole-image operations (ADQ, the rfdn space's ESA).

    """
    if isinstance(net, SubPixelNet):
        r = _radius(net.features)
        return max(r[0], r[1], _skip_radius(net))
    if not isinstance(net, BasicSRNet):
        return None
    try:
        lr = [_radius(net.head), _radius(net.body)]
        ups = [m for m in net.upsample if not isinstance(m, nn.PixelShuffle)]
        lr.append(_radius(nn.Sequential(*ups)))
        hr = _radius(net.tail)
    except _UnboundedError:
        return None
    rows = sum(r[0] for r in lr) + math.ceil(hr[0] / net.scale)
    cols = sum(r[1] for r in lr) + math.ceil(hr[1] / net.scale)
    return max(rows, cols, _skip_radius(net))
