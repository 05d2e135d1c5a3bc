"""Search spaces as a registry: each space declares its layer counts, channel plan, default
candidate operations, fixed layers and topology builder in one place.

``get_space(arch.space)`` is the only dispatch on a space's name; the rest of quantnas asks
the returned :class:`SearchSpace` (as timm's ``create_model`` asks its registry).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from quantnas.config.types import ArchConfig
from quantnas.errors import QuantNASError
from quantnas.models.basic import BasicSRNet, basic_channels, check_basic_counts
from quantnas.models.rfdn import MIN_LR_SIZE, RFDNSRNet, rfdn_channels, rfdn_counts
from quantnas.quant.conv import QConv2d
from quantnas.registry import Registry
from quantnas.space.genotype import BLOCKS, check_space_name


class SearchSpace:
    """One search space. Subclasses fill in the structure; instances are registered.

    Attributes:
        name: The ``arch.space`` value.
        default_primitives: Candidate operations per block when ``arch.primitives`` leaves
            a block out.
        shares_cell_alphas: Whether the repeated body cells share one set of alphas.
        fixed_bits: Bit-width of the layers outside the search (fusion, attention), or
            ``None`` when the space has none.
        min_lr_side: Smallest LR side the topology can process.

    """

    name: str = ""
    default_primitives: dict[str, list[str]] = {}
    shares_cell_alphas: bool = False
    fixed_bits: int | None = None
    min_lr_side: int = 2

    def counts(self, arch: ArchConfig) -> dict[str, int]:
        """Searchable layers per block (genotype list lengths)."""
        raise NotImplementedError

    def channels(self, arch: ArchConfig, block: str, index: int) -> tuple[int, int]:
        """``(c_in, c_out)`` of a searchable layer."""
        raise NotImplementedError

    def check_counts(self, counts: dict[str, int], arch: ArchConfig) -> None:
        """Raise a one-line error if a genotype's layer counts do not fit the space."""
        raise NotImplementedError

    def build(
        self,
        arch: ArchConfig,
        layer_fn: Callable[..., nn.Module],
        counts: dict[str, int],
        output_quant: bool = False,
    ) -> nn.Module:
        """The topology around a layer function (final network or supernet); ``output_quant``
        (final networks only) adds the output quantizers of ``arch.output_quant``.
        """
        raise NotImplementedError

    def picture_cells(self, arch: ArchConfig) -> int:
        """Cell count to label an architecture picture with."""
        return 1


#: The search spaces by ``arch.space`` name (a genotype's ``space`` names one of them too).
SPACES: Registry[SearchSpace] = Registry("search space", key="arch.space")


def register_space(space: SearchSpace) -> SearchSpace:
    """Register a space instance under its name (also from outside the package: configs
    and genotypes naming it are accepted from then on).

    Raises:
        QuantNASError: The name is registered already or cannot name a space.

    """
    check_space_name(space.name, where="search space name")
    return SPACES.register(space.name, space)


def available_spaces() -> tuple[str, ...]:
    """Names of the registered spaces (sorted)."""
    return tuple(sorted(SPACES))


def get_space(name: str, *, where: str | None = None) -> SearchSpace:
    """The registered space ``name`` (one-line error naming ``where``, by default
    ``arch.space``, otherwise).
    """
    return SPACES.get(name, where=where)


def _network_kwargs(arch: ArchConfig) -> dict:
    """The topology arguments every space takes from ``arch`` in the same way."""
    return {
        "c": arch.c_fixed,
        "scale": arch.scale,
        "adq": not arch.skip_mode,
        "global_skip": arch.global_skip,
        "output_scale": arch.output_scale,
    }


class BasicSpace(SearchSpace):
    """The basic space: head, repeated residual body cells (shared alphas), upsample, tail."""

    name = "basic"
    shares_cell_alphas = True
    default_primitives = {
        "head": ["simple_3x3", "simple_5x5", "growth2_3x3", "simple_3x3_grouped_3"],
        "body": [
            "simple_1x1",
            "simple_3x3",
            "simple_5x5",
            "simple_3x3_grouped_3",
            "decenc_3x3_2",
            "conv_3x1_1x3",
            "dwsep_3x3",
            "simple_3x3_d2",
        ],
        "skip": ["simple_1x1", "simple_3x3", "simple_1x1_grouped_3", "decenc_3x3_2"],
        "upsample": ["simple_3x3", "simple_5x5", "simple_3x3_grouped_3", "growth2_3x3"],
        "tail": ["simple_1x1", "simple_3x3", "simple_5x5", "growth2_3x3"],
    }

    def counts(self, arch: ArchConfig) -> dict[str, int]:
        pattern = arch.arch_pattern or {}  # null: no layer, refused below
        counts = {b: int(pattern.get(b, 0)) for b in BLOCKS}
        check_basic_counts(counts, where="arch.arch_pattern")
        return counts

    def channels(self, arch: ArchConfig, block: str, index: int) -> tuple[int, int]:
        n = self.counts(arch)[block]
        return basic_channels(block, index, n, c=arch.c_fixed, scale=arch.scale)

    def check_counts(self, counts: dict[str, int], arch: ArchConfig) -> None:
        check_basic_counts(counts, where="genotype")

    def build(self, arch, layer_fn, counts, output_quant=False):
        return BasicSRNet(
            layer_fn,
            counts,
            body_cells=arch.body_cells,
            cell_type=arch.cell_type,
            output_quant=output_quant,
            **_network_kwargs(arch),
        )

    def picture_cells(self, arch: ArchConfig) -> int:
        return arch.body_cells


_SIMPLE = ["simple_1x1", "simple_3x3", "simple_5x5"]
_GROWTH = ["growth1_1x1", "growth1_3x3", "growth1_5x5"]
_GROUPED2 = ["simple_1x1_grouped_2", "simple_3x3_grouped_2", "simple_5x5_grouped_2"]


class RFDNSpace(SearchSpace):
    """The RFDN-inspired space: distillation cells (own alphas each) with 8-bit fusion/ESA."""

    name = "rfdn"
    fixed_bits = 8
    min_lr_side = MIN_LR_SIZE
    default_primitives = {
        "body": _SIMPLE + _GROWTH + _GROUPED2,
        "skip": _SIMPLE + _GROWTH + _GROUPED2,
        "upsample": _SIMPLE + _GROWTH + _GROUPED2,
        "tail": _SIMPLE + _GROWTH,
    }

    def counts(self, arch: ArchConfig) -> dict[str, int]:
        return rfdn_counts(arch.body_cells)

    def channels(self, arch: ArchConfig, block: str, index: int) -> tuple[int, int]:
        return rfdn_channels(block, index, c=arch.c_fixed, scale=arch.scale)

    def check_counts(self, counts: dict[str, int], arch: ArchConfig) -> None:
        for block, n in self.counts(arch).items():
            if counts[block] != n:
                raise QuantNASError(
                    f"genotype block {block!r} has {counts[block]} layers; the rfdn space with "
                    f"{arch.body_cells} cells needs {n}"
                )

    def build(self, arch, layer_fn, counts, output_quant=False):
        if output_quant:
            raise QuantNASError("arch.output_quant: the rfdn space has no integer-only form")
        return RFDNSRNet(
            layer_fn,
            fixed=partial(QConv2d, bits=self.fixed_bits),
            n_cells=arch.body_cells,
            **_network_kwargs(arch),
        )


register_space(BasicSpace())
register_space(RFDNSpace())
