"""The search space as data: layer counts, candidate operations, bit-widths; and the final
network built from a genotype in that space.
"""

from __future__ import annotations

import random
from functools import partial

import torch
from torch import nn

from quantnas.config.types import ArchConfig
from quantnas.errors import QuantNASError
from quantnas.quant.conv import QConv2d, QConvBase
from quantnas.quant.out_quant import OutputQuantizer
from quantnas.registry import Registry
from quantnas.space.catalog import available_spaces, get_space
from quantnas.space.genotype import Genotype
from quantnas.space.ops import build_op, check_op

#: How the convs that read the LR image quantize it, by ``arch.input_quant``.
INPUT_QUANTS: Registry[str] = Registry.of(
    "input quantizer",
    {
        "image": "ImageQuantizer: the LR image's own 8-bit grid",
        "hwgq": "HWGQ like every activation",
    },
    key="arch.input_quant",
)

#: Default candidate operations per block type and space (declared by each space).
DEFAULT_PRIMITIVES: dict[str, dict[str, list[str]]] = {
    name: get_space(name).default_primitives for name in available_spaces()
}


def layer_counts(arch: ArchConfig) -> dict[str, int]:
    """Searchable layers per block (genotype list lengths) for this space."""
    return get_space(arch.space).counts(arch)


def layer_channels(arch: ArchConfig, block: str, index: int) -> tuple[int, int]:
    """``(c_in, c_out)`` of a searchable layer."""
    return get_space(arch.space).channels(arch, block, index)


def primitives(arch: ArchConfig, block: str) -> list[str]:
    """Candidate operations of a block (config, else the space's defaults)."""
    ops = arch.primitives.get(block) or get_space(arch.space).default_primitives.get(block, [])
    return list(ops)


def check_space(arch: ArchConfig) -> None:
    """Validate a search space before any compute: ops exist and fit every layer's channels.

    Called once, when a config is loaded (the bit-widths are checked there too). Every
    candidate is built on PyTorch's ``meta`` device: shapes only, no memory, no init cost.

    Raises:
        QuantNASError: naming the block, layer and operation at fault.

    """
    counts = layer_counts(arch)
    for block, n in counts.items():
        ops = primitives(arch, block)
        if n and not ops:
            raise QuantNASError(f"arch.primitives.{block}: no candidate operations")
        for op in ops:
            check_op(op, where=f"arch.primitives.{block}")
        shapes: dict[tuple[int, int], int] = {}  # each distinct layer shape built once
        for i in range(n):
            shapes.setdefault(layer_channels(arch, block, i), i)
        for (c_in, c_out), i in shapes.items():
            for op in ops:
                with torch.device("meta"):
                    build_op(
                        op,
                        c_in=c_in,
                        c_out=c_out,
                        c_fixed=arch.c_fixed,
                        conv=partial(QConv2d, bits=32),
                        where=f"arch.primitives.{block} layer {block}[{i}]",
                    )


def check_genotype(genotype: Genotype, arch: ArchConfig) -> None:
    """Check that a genotype's space is registered and is ``arch.space``, and that the
    genotype has the layer counts of the space.
    """
    get_space(genotype.space, where="genotype space")
    if genotype.space != arch.space:
        raise QuantNASError(
            f"genotype is for the {genotype.space!r} space but arch.space is {arch.space!r}"
        )
    get_space(arch.space).check_counts(genotype.counts(), arch)


def random_genotype(arch: ArchConfig, seed: int) -> Genotype:
    """A genotype drawn uniformly from the space: each layer's operation from its block's
    candidates and its bit-width from ``arch.bits`` (the original ``random_sampler.py``).

    Args:
        arch: The space (layer counts, candidate operations, bit-widths).
        seed: Seed of the draw (same seed, same genotype).

    """
    rng = random.Random(seed)
    blocks = {
        block: [(rng.choice(primitives(arch, block)), rng.choice(arch.bits)) for _ in range(n)]
        for block, n in layer_counts(arch).items()
    }
    return Genotype.from_pairs(blocks, space=arch.space)


def _final_layer_fn(genotype: Genotype, arch: ArchConfig):
    def layer_fn(*, block: str, index: int, c_in: int, c_out: int) -> nn.Module:
        choice = genotype.blocks[block][index]
        return build_op(
            choice.op,
            c_in=c_in,
            c_out=c_out,
            c_fixed=arch.c_fixed,
            conv=partial(QConv2d, bits=choice.bits),
            where=f"{block}[{index}]",
        )

    return layer_fn


def build_topology(
    arch: ArchConfig, layer_fn, counts: dict[str, int] | None = None, *, final: bool = False
) -> nn.Module:
    """Build the space's topology around a layer function (final net or supernet); the
    output quantizers of ``arch.output_quant`` are part of ``final`` networks only.
    """
    output_quant = final and arch.output_quant
    net = get_space(arch.space).build(arch, layer_fn, counts or layer_counts(arch), output_quant)
    if arch.input_quant == "image":
        mark_image_inputs(net)
    return net


def mark_image_inputs(net: nn.Module) -> list[QConvBase]:
    """Switch the convs that read the LR image to :class:`ImageQuantizer` inputs.

    The topology names its layers that receive the image (``image_layers()``); in each of
    them (each candidate operation of a supernet layer) the first conv reads it.

    Returns:
        The switched convs.

    """
    switched: list[QConvBase] = []
    for layer in net.image_layers():
        ops = layer.ops if isinstance(getattr(layer, "ops", None), nn.ModuleList) else [layer]
        for op in ops:
            first = next((m for m in op.modules() if isinstance(m, QConvBase)), None)
            if first is not None:
                first.read_image()
                switched.append(first)
    return switched


def build_network(genotype: Genotype, arch: ArchConfig) -> nn.Module:
    """The final mixed-precision network of a genotype.

    Args:
        genotype: Layer choices.
        arch: Structure (channels, scale, cells, ADQ, ...). Layer counts come from the
            genotype (basic space) or the number of cells (rfdn).

    """
    check_genotype(genotype, arch)
    return build_topology(
        arch, _final_layer_fn(genotype, arch), counts=genotype.counts(), final=True
    )


def picture_cells(arch: ArchConfig) -> int:
    """Cell count to label an architecture picture with (rfdn genotypes list every cell)."""
    return get_space(arch.space).picture_cells(arch)


def set_quantized(net: nn.Module, quantized: bool) -> None:
    """Switch every :class:`QConv2d` (and output quantizer) between quantized and full
    precision; switching on re-initialises their steps.
    """
    for m in net.modules():
        if isinstance(m, QConv2d):
            if quantized and not m.quantized:
                m.reset_steps()
            m.quantized = quantized
        elif isinstance(m, OutputQuantizer):
            if quantized and not m.enabled:
                m.rearm()
            m.enabled = quantized
