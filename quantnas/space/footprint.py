"""Memory budgets of networks, counted before anything is allocated.

Sizes that pass the config's range checks can still describe networks no machine holds
(``arch.c_fixed=99996``, ``arch.body_cells=1000000``, ``arch.arch_pattern.head=100000``).
Before the first real allocation the memory a step needs is counted from the structure
alone: every candidate operation's parameters on PyTorch's ``meta`` device (once per
distinct layer shape), and a lower bound of the activations autograd keeps (one output
per candidate operation and layer). When that exceeds the memory limit the run is refused
with one line naming the key whose size is out of proportion. The precise, measured check
(:func:`quantnas.memory.check_memory`) still runs once the network exists.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import torch

from quantnas.config.specs import StageSize, stage_size
from quantnas.config.types import ArchConfig, Config
from quantnas.errors import QuantNASError
from quantnas.memory import check_samples, human, memory_limit, refuse_over_budget

__all__ = [
    "Estimate",
    "check_info_budget",
    "check_network_budget",
    "check_samples",
    "check_weights_budget",
    "human",
    "memory_limit",
    "network_estimate",
    "refuse_over_budget",
]

log = logging.getLogger(__name__)

#: Bytes of a float32 number.
FLOAT = 4
#: Copies of the weights a training step keeps: weights, gradients, two Adam moments.
WEIGHT_COPIES = 4


@lru_cache(maxsize=4096)
def _op_params(op: str, c_in: int, c_out: int, c_fixed: int) -> int | None:
    """Parameters of one candidate operation, built on the ``meta`` device (no memory);
    None for an operation that does not fit the layer (the space checks report those).
    """
    from quantnas.quant.conv import QConv2d
    from quantnas.space.ops import build_op

    conv = partial(QConv2d, bits=32)
    try:
        with torch.device("meta"):
            mod = build_op(op, c_in=c_in, c_out=c_out, c_fixed=c_fixed, conv=conv)
    except QuantNASError:
        return None
    return sum(p.numel() for p in mod.parameters())


@dataclass
class Estimate:
    """Counted size of a network: parameters and activation elements per LR pixel."""

    params: int
    act_per_pixel: int

    def step_bytes(self, *, batch: int, lr_pixels: int, train: bool = True) -> int:
        """Lower bound of a step's memory at ``batch`` samples of ``lr_pixels`` LR pixels."""
        copies = WEIGHT_COPIES if train else 1
        return FLOAT * (copies * self.params + batch * lr_pixels * self.act_per_pixel)


def _layers(arch: ArchConfig, counts: dict[str, int]) -> Counter:
    """``{(block, c_in, c_out): layers}`` of a network (repeated body cells counted)."""
    from quantnas.space.catalog import get_space

    space = get_space(arch.space)
    plan: Counter = Counter()
    for block, n in counts.items():
        mult = arch.body_cells if block == "body" and space.shares_cell_alphas else 1
        for i in range(n):
            plan[(block, *space.channels(arch, block, i))] += mult
    return plan


def network_estimate(
    arch: ArchConfig,
    ops: Callable[[str, int], list[str]],
    *,
    counts: dict[str, int] | None = None,
    reduce: Callable[[list[int]], int] = sum,
) -> Estimate:
    """Count a network's parameters and saved activations from its structure.

    Args:
        arch: The structure (channels, scale, cells, layer counts).
        ops: ``ops(block, index)``: the candidate operations of a layer (a supernet: all of
            the block's; a final network: the genotype's one).
        counts: Layers per block (default: the space's counts for ``arch``).
        reduce: How a layer's candidates add up (``sum`` for a supernet, ``min`` for a
            lower bound over every genotype).

    """
    from quantnas.space.build import layer_counts

    counts = counts or layer_counts(arch)
    scale2 = arch.scale * arch.scale
    params = acts = 0
    for (block, c_in, c_out), n in _layers(arch, counts).items():
        sizes = [_op_params(op, c_in, c_out, arch.c_fixed) for op in ops(block, 0)]
        sizes = [p for p in sizes if p is not None]
        params += n * reduce(sizes) if sizes else 0
        outputs = 1 if reduce is not sum else len(sizes)
        acts += n * outputs * c_out * (scale2 if block == "tail" else 1)
    return Estimate(params=params, act_per_pixel=acts)


def _supernet_ops(arch: ArchConfig) -> Callable[[str, int], list[str]]:
    from quantnas.space.build import primitives

    return lambda block, _i: primitives(arch, block)


def _stage_bytes(size: StageSize) -> int:
    """Lower bound of a step of ``size.stage`` (``search``: the supernet; ``train``: any
    genotype).
    """
    reduce = sum if size.stage == "search" else min
    est = network_estimate(size.arch, _supernet_ops(size.arch), reduce=reduce)
    return est.step_bytes(batch=size.batch, lr_pixels=size.lr_crop * size.lr_crop)


def blame(keys: list[str], need_without: Callable[[str], int]) -> str:
    """The key whose reset to its default lowers the need most (the first on ties)."""
    return min(keys, key=need_without)


def check_network_budget(
    size: StageSize | Config,
    stage: str | None = None,
    *,
    max_memory_gb: float = 0.0,
    device: str = "cpu",
) -> int:
    """Refuse a ``search`` or ``train`` step whose network cannot fit, before building it.

    Args:
        size: The stage's :class:`~quantnas.config.specs.StageSize` (or a config, with
            ``stage``: its ``run.max_memory_gb`` and ``device`` are then used).
        stage: ``search`` or ``train``, with a config only.
        max_memory_gb: The memory limit (0: what is free where the run computes).
        device: Where the run computes.

    Returns:
        The counted lower bound in bytes.

    Raises:
        QuantNASError: Naming the size key that is out of proportion.

    """
    if isinstance(size, Config):
        cfg = size
        size, max_memory_gb, device = stage_size(cfg, stage), cfg.run.max_memory_gb, cfg.device
    need = _stage_bytes(size)
    limit = memory_limit(max_memory_gb, device=device)
    if limit is not None and need > limit:
        keys = list(size.keys)
        key = blame(keys, lambda k: _stage_bytes(size.keys[k]))
        what = "the supernet of the search" if size.stage == "search" else "the trained network"
        refuse_over_budget(need, limit, key, f"a step of {what}", also=(keys[-1], keys[-2]))
    log.debug("%s: a step needs at least %s", size.stage, human(need))
    return need


def check_info_budget(genotype, arch: ArchConfig, lr_size: int, flags: dict[str, int]) -> None:
    """Refuse ``quantnas info`` sizes whose network or forward pass cannot fit (no allocation).

    Args:
        genotype: The network's genotype.
        arch: Its structure.
        lr_size: LR side of the measuring forward pass.
        flags: ``{flag: default}`` of the size flags, e.g. ``{"--channels": 36}``; the one
            whose default lowers the need most is named.

    """

    def need(a: ArchConfig, lr: int) -> int:
        blocks = {b: sorted({c.op for c in genotype.blocks[b]}) for b in genotype.blocks}
        est = network_estimate(a, lambda b, _i: blocks[b], counts=genotype.counts(), reduce=min)
        maps = 3 + 3 * a.scale * a.scale + a.c_fixed  # input, output, one feature map
        return FLOAT * (est.params + lr * lr * maps)

    fields = {"--channels": "c_fixed", "--body-cells": "body_cells", "--scale": "scale"}

    def without(flag: str) -> int:
        if flag == "--lr-size":
            return need(arch, flags[flag])
        return need(dataclasses.replace(arch, **{fields[flag]: flags[flag]}), lr_size)

    total, limit = need(arch, lr_size), memory_limit()
    if limit is not None and total > limit:
        flag = blame(list(flags), without)
        value = lr_size if flag == "--lr-size" else getattr(arch, fields[flag])
        what = f"the network and its {lr_size}x{lr_size} forward pass"
        refuse_over_budget(total, limit, flag, what, label=f"{flag} {value}")


def check_weights_budget(shapes: dict[str, tuple[int, ...]], arch: ArchConfig, path) -> None:
    """Refuse a checkpoint whose arch describes weights that cannot fit (before building)."""
    numel = 0
    for shape in shapes.values():
        n = 1
        for d in shape:
            n *= int(d)
        numel += n
    limit = memory_limit()
    if limit is not None and FLOAT * numel > limit:
        raise QuantNASError(
            f"checkpoint {path}: its arch (arch.c_fixed={arch.c_fixed}, arch.body_cells="
            f"{arch.body_cells}) describes {numel:,} weights ({human(FLOAT * numel)}), more "
            f"than the {human(limit)} available; refused before building the network"
        )
