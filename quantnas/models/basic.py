"""The basic QuantNAS search space / network topology.

::

    LR -> head -> [K cells, long skip] -> upsample (conv to 3*s^2, PixelShuffle)
       -> tail at HR with a residual (may be empty) [-> + upscaled LR, optional]

A cell computes ``x + skip(x) + body(x)`` (type B) or ``x + skip(x) + 0.2 body(x)``
(type A); with ADQ every residual (cells, whole body, tail) becomes
``F(BN(x)) * s + x``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from quantnas.errors import QuantNASError
from quantnas.models.blocks import LayerFn, ParallelSum, Residual, Sequence, SkipOutputNet
from quantnas.quant.out_quant import OutputQuantizer
from quantnas.registry import Registry

#: Cell types (``arch.cell_type``): ``A`` scales the body path by 0.2, ``B`` does not.
CELL_TYPES: Registry[str] = Registry.of(
    "cell type",
    {"A": "x + skip(x) + 0.2 body(x)", "B": "x + skip(x) + body(x)"},
    key="arch.cell_type",
)


def basic_channels(block: str, index: int, count: int, *, c: int, scale: int) -> tuple[int, int]:
    """``(c_in, c_out)`` of layer ``index`` of ``block`` (``count`` layers), basic space."""
    if block == "head":
        return (3 if index == 0 else c, c)
    if block in ("body", "skip"):
        return (c, c)
    if block == "upsample":
        return (c, 3 * scale * scale if index == count - 1 else c)
    if block == "tail":
        if count == 1:
            return (3, 3)
        return (3 if index == 0 else c, 3 if index == count - 1 else c)
    raise QuantNASError(f"unknown block {block!r}")


def check_basic_counts(counts: Mapping[str, int], *, where: str = "arch_pattern") -> None:
    """Every block but the tail needs at least one layer."""
    for block in ("head", "body", "skip", "upsample"):
        if counts.get(block, 0) < 1:
            raise QuantNASError(
                f"{where}: block {block!r} needs at least one layer in the basic space "
                f"(got {counts.get(block, 0)})"
            )
    if counts.get("tail", 0) < 0:
        raise QuantNASError(f"{where}: tail layer count must be >= 0")


class BasicSRNet(SkipOutputNet):
    """Basic-space SR network built from a layer function.

    Args:
        layer_fn: Builds each searchable layer.
        counts: Layers per block (head, body, skip, upsample, tail).
        c: Channels (``c_fixed``).
        scale: Upscaling factor.
        body_cells: Number of repeated body cells (architecture shared, weights not).
        cell_type: ``"A"`` (body path scaled by 0.2) or ``"B"``.
        adq: ADQ on every residual (``skip_mode: false`` in the original config).
        global_skip: See :class:`~quantnas.models.blocks.SkipOutputNet`.
        output_scale: See :class:`~quantnas.models.blocks.SkipOutputNet`.
        output_quant: A signed 8-bit quantizer (:class:`OutputQuantizer`) on every layer
            output that feeds a sum or the pixel shuffle, and on every sum
            (``arch.output_quant``): the network computes with integers end to end.

    """

    def __init__(
        self,
        layer_fn: LayerFn,
        counts: Mapping[str, int],
        *,
        c: int,
        scale: int,
        body_cells: int,
        cell_type: str = "B",
        adq: bool = False,
        global_skip: str = "none",
        output_scale: bool = False,
        output_quant: bool = False,
    ) -> None:
        super().__init__()
        check_basic_counts(counts, where="network")
        CELL_TYPES.check(cell_type)
        if body_cells < 1:
            raise QuantNASError(f"body_cells must be >= 1 (got {body_cells})")
        self._init_output(scale=scale, global_skip=global_skip, output_scale=output_scale)

        def oq() -> OutputQuantizer | None:
            return OutputQuantizer() if output_quant else None

        def layers(block: str) -> Sequence:
            n = counts.get(block, 0)
            mods = []
            for i in range(n):
                c_in, c_out = basic_channels(block, i, n, c=c, scale=scale)
                mods.append(layer_fn(block=block, index=i, c_in=c_in, c_out=c_out))
            if output_quant and n:
                mods.append(OutputQuantizer())
            return Sequence(*mods)

        self.head = layers("head")
        body_scale = 0.2 if cell_type == "A" else 1.0
        cells = [
            Residual(
                ParallelSum([layers("skip"), layers("body")], [1.0, body_scale], oq()),
                c,
                adq=adq,
                out_quant=oq(),
            )
            for _ in range(body_cells)
        ]
        self.body = Residual(Sequence(*cells), c, adq=adq, out_quant=oq())
        self.upsample = Sequence(*layers("upsample"), nn.PixelShuffle(scale))
        tail = layers("tail")
        self.tail = Residual(tail, 3, adq=adq, out_quant=oq()) if len(tail) else nn.Identity()

    def image_layers(self) -> list[nn.Module]:
        """The layers whose input is the LR image: the first head layer."""
        return [self.head[0]] if len(self.head) else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._output(x, self.tail(self.upsample(self.body(self.head(x)))))
