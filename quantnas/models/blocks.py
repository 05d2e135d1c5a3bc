"""Building blocks: residual wrappers with optional ADQ, global skips, layer functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from quantnas.registry import Registry

#: What :func:`upscale_input` adds to the network output, by ``arch.global_skip``: a
#: function ``f(lr, scale)`` returning the upscaled LR image, or None for no skip.
GLOBAL_SKIPS: Registry[Callable[[torch.Tensor, int], torch.Tensor | None]] = Registry(
    "global skip", key="arch.global_skip"
)


class LayerFn(Protocol):
    """Returns the module for one searchable layer."""

    def __call__(self, *, block: str, index: int, c_in: int, c_out: int) -> nn.Module: ...


class Residual(nn.Module):
    """``out = fn(x) + x``, or with ADQ ``out = fn(BN(x)) * s + x``.

    ADQ (adaptive deviation modulation) scales the branch by ``s = w * std(x) + c``, a
    learned scalar affine of the per-sample standard deviation of ``x`` (init w=1.5, c=0),
    which keeps BatchNorm usable in SR networks.

    Args:
        fn: The residual branch.
        channels: Channels of ``x`` (for the BatchNorm).
        adq: Enable ADQ.
        branch_scale: Constant factor on the branch (ignored with ADQ).
        out_quant: Quantizer of the sum (``arch.output_quant``), or None.

    """

    def __init__(
        self,
        fn: nn.Module,
        channels: int,
        *,
        adq: bool = False,
        branch_scale: float = 1.0,
        out_quant: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.adq = adq
        self.branch_scale = branch_scale
        self.out_quant = out_quant
        if adq:
            self.bn = nn.BatchNorm2d(channels)
            self.w = nn.Parameter(torch.tensor(1.5))
            self.c = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.adq:
            out = self.fn(x)
            out = x + (out * self.branch_scale if self.branch_scale != 1.0 else out)
        else:
            std = x.flatten(1).std(dim=1).view(-1, 1, 1, 1)
            out = self.fn(self.bn(x)) * (self.w * std + self.c) + x
        return out if self.out_quant is None else self.out_quant(out)


class Sequence(nn.Sequential):
    """A sequence of layers (``nn.Sequential`` with a name that reads well in reprs)."""


class ParallelSum(nn.Module):
    """``sum_i scale_i * branch_i(x)`` (then ``out_quant``, the sum's quantizer, if given)."""

    def __init__(
        self, branches: list[nn.Module], scales: list[float], out_quant: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.scales = scales
        self.out_quant = out_quant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for branch, s in zip(self.branches, self.scales, strict=True):
            y = branch(x)
            y = y * s if s != 1.0 else y
            out = y if out is None else out + y
        return out if self.out_quant is None else self.out_quant(out)


class SkipOutputNet(nn.Module):
    """Base of the SR networks: the learned output scale and the global skip.

    ``global_skip`` (one of :data:`GLOBAL_SKIPS`) adds the upscaled LR image to the
    output; ``output_scale`` first multiplies the output by a learned scalar initialised
    to 0 (only with a global skip), so training starts exactly at the global skip.
    """

    def _init_output(self, *, scale: int, global_skip: str, output_scale: bool) -> None:
        self.scale, self.global_skip = scale, global_skip
        use_scale = output_scale and global_skip != "none"
        self.out_scale = nn.Parameter(torch.zeros(())) if use_scale else None

    def _output(self, lr: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out`` (scaled) plus the global skip of the LR input ``lr``."""
        if self.out_scale is not None:
            out = out * self.out_scale
        skip = upscale_input(lr, self.scale, self.global_skip)
        return out if skip is None else out + skip


def upscale_input(lr: torch.Tensor, scale: int, mode: str) -> torch.Tensor | None:
    """The global skip added to the network output (None for ``mode == "none"``).

    ``bicubic`` is MATLAB-compatible bicubic upscaling (the SR baseline), so a network whose
    residual is zero scores exactly the bicubic PSNR.
    """
    return GLOBAL_SKIPS.get(mode)(lr, scale)


@GLOBAL_SKIPS.register("none")
def _no_skip(lr: torch.Tensor, scale: int) -> None:
    return None


@GLOBAL_SKIPS.register("nearest")
def _nearest(lr: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(lr, scale_factor=scale, mode="nearest")


@GLOBAL_SKIPS.register("bicubic")
def _bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    from quantnas.data.bicubic import resize_tensor

    return resize_tensor(lr, scale)
