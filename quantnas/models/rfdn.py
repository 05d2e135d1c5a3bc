"""The RFDN-inspired search space (the 2023 version of the original code).

No head: the LR input repeated along channels to ``c`` channels is the first feature map
and the long skip. Each of the ``n_cells`` distillation cells has 3 searchable distillation
("skip") layers ``c -> c/2``, 4 searchable body layers (3 residual ``c -> c``, the last
``c -> c/2``), a fixed 8-bit 1x1 fusion ``2c -> c`` and a fixed 8-bit ESA attention block
(with ADQ, ``arch.skip_mode=false``, around each cell only).
The cell outputs are fused (fixed 8-bit 1x1 ``4c -> c`` and 3x3 convs), the long skip is
added, then one searchable upsample layer ``c -> 3 s^2`` + PixelShuffle and one searchable
tail layer ``3 -> 3`` at HR with a residual. Every cell has its own layer choices.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from quantnas.errors import QuantNASError
from quantnas.models.blocks import LayerFn, Residual, SkipOutputNet

FixedConv = Callable[..., nn.Module]

BODY_PER_CELL = 4
SKIP_PER_CELL = 3
#: Smallest LR side the ESA block can process (3x3 stride-2 conv then 7x7/3 max-pool).
MIN_LR_SIZE = 15


def rfdn_counts(n_cells: int) -> dict[str, int]:
    """Layers per block of the RFDN space with ``n_cells`` cells."""
    return {
        "head": 0,
        "body": BODY_PER_CELL * n_cells,
        "skip": SKIP_PER_CELL * n_cells,
        "upsample": 1,
        "tail": 1,
    }


def rfdn_channels(block: str, index: int, *, c: int, scale: int) -> tuple[int, int]:
    """``(c_in, c_out)`` of a searchable layer in the RFDN space."""
    if block == "skip":
        return (c, c // 2)
    if block == "body":
        return (c, c // 2 if index % BODY_PER_CELL == BODY_PER_CELL - 1 else c)
    if block == "upsample":
        return (c, 3 * scale * scale)
    if block == "tail":
        return (3, 3)
    raise QuantNASError(f"block {block!r} has no layers in the rfdn space")


class ESA(nn.Module):
    """Enhanced spatial attention (RFDN) with fixed-precision convs; ``f = c / 4``.

    As in the original code's ``ESA``: 1x1 ``c -> f`` (``c1``); 3x3 stride 2 without
    padding (``c2``); 7x7/3 max-pool; three 3x3 ``f -> f`` convs (``c_max``, ``c3``,
    ``c3_``); bilinear upsampling; plus a 1x1 ``f -> f`` (``c_f``) of ``c1``; 1x1 ``f -> c``
    (``c4``); sigmoid mask on ``x``. Seven convs.
    """

    def __init__(self, c: int, fixed: FixedConv) -> None:
        super().__init__()
        f = c // 4
        self.c1 = fixed(c_in=c, c_out=f, kernel_size=1)
        self.c_f = fixed(c_in=f, c_out=f, kernel_size=1)
        self.c_max = fixed(c_in=f, c_out=f, kernel_size=3)
        self.c2 = fixed(c_in=f, c_out=f, kernel_size=3, stride=2, padding=0)
        self.c3 = fixed(c_in=f, c_out=f, kernel_size=3)
        self.c3_ = fixed(c_in=f, c_out=f, kernel_size=3)
        self.c4 = fixed(c_in=f, c_out=c, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.c1(x)
        y = F.max_pool2d(self.c2(c1), kernel_size=7, stride=3)
        y = self.c3_(self.c3(self.c_max(y)))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        mask = torch.sigmoid(self.c4(y + self.c_f(c1)))
        return x * mask


class DistillationCell(nn.Module):
    """One RFDB-like cell (without its outer residual)."""

    def __init__(
        self, layer_fn: LayerFn, cell: int, *, c: int, scale: int, fixed: FixedConv
    ) -> None:
        super().__init__()

        def make(block: str, i: int) -> nn.Module:
            c_in, c_out = rfdn_channels(block, i, c=c, scale=scale)
            return layer_fn(block=block, index=i, c_in=c_in, c_out=c_out)

        self.distill = nn.ModuleList(
            make("skip", cell * SKIP_PER_CELL + i) for i in range(SKIP_PER_CELL)
        )
        self.refine = nn.ModuleList(
            make("body", cell * BODY_PER_CELL + i) for i in range(BODY_PER_CELL)
        )
        self.fuse = fixed(c_in=2 * c, c_out=c, kernel_size=1)
        self.esa = ESA(c, fixed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for i in range(SKIP_PER_CELL):
            parts.append(self.distill[i](x))
            x = x + self.refine[i](x)
        parts.append(self.refine[-1](x))
        return self.esa(self.fuse(torch.cat(parts, dim=1)))


class RFDNSRNet(SkipOutputNet):
    """RFDN-space SR network built from a layer function.

    Args:
        layer_fn: Builds each searchable layer.
        fixed: Factory for the fixed-precision (8-bit) fusion and ESA convs.
        c: Channels (divisible by 12: repeated input, halves and quarters).
        scale: Upscaling factor.
        n_cells: Number of distillation cells.
        adq: ADQ around every cell instead of plain residuals (the tail keeps a plain
            residual, as in the original RFDN space).
        global_skip: See :class:`~quantnas.models.blocks.SkipOutputNet`.
        output_scale: See :class:`~quantnas.models.blocks.SkipOutputNet`.

    """

    def __init__(
        self,
        layer_fn: LayerFn,
        *,
        fixed: FixedConv,
        c: int,
        scale: int,
        n_cells: int,
        adq: bool = False,
        global_skip: str = "none",
        output_scale: bool = False,
    ) -> None:
        super().__init__()
        if c % 12:
            raise QuantNASError(f"rfdn space: c_fixed={c} must be divisible by 12")
        if n_cells < 1:
            raise QuantNASError(f"rfdn space: body_cells must be >= 1 (got {n_cells})")
        self.c = c
        self._init_output(scale=scale, global_skip=global_skip, output_scale=output_scale)
        self.cells = nn.ModuleList(
            Residual(DistillationCell(layer_fn, k, c=c, scale=scale, fixed=fixed), c, adq=adq)
            for k in range(n_cells)
        )
        self.fuse = fixed(c_in=n_cells * c, c_out=c, kernel_size=1)
        self.fuse3 = fixed(c_in=c, c_out=c, kernel_size=3)
        c_in, c_out = rfdn_channels("upsample", 0, c=c, scale=scale)
        self.upsample = nn.Sequential(
            layer_fn(block="upsample", index=0, c_in=c_in, c_out=c_out), nn.PixelShuffle(scale)
        )
        self.tail = Residual(layer_fn(block="tail", index=0, c_in=3, c_out=3), 3)

    def image_layers(self) -> list[nn.Module]:
        """The layers whose input is the (channel-repeated) LR image.

        The first cell's first distillation and refinement layers; none with ADQ, whose
        residuals normalise the input first.
        """
        if self.cells[0].adq:
            return []
        first = self.cells[0].fn
        return [first.distill[0], first.refine[0]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < MIN_LR_SIZE:
            raise QuantNASError(
                f"rfdn space needs LR inputs of at least {MIN_LR_SIZE}x{MIN_LR_SIZE} "
                f"(got {tuple(x.shape[-2:])})"
            )
        x0 = x.repeat(1, self.c // 3, 1, 1)
        h, outs = x0, []
        for cell in self.cells:
            h = cell(h)
            outs.append(h)
        z = self.fuse3(self.fuse(torch.cat(outs, dim=1))) + x0
        return self._output(x, self.tail(self.upsample(z)))
