"""Hardware cost: BitOps, MACs, parameters and model size.

BitOps of a network are ``sum over convs of MACs * b_w * b_a`` with
``MACs = C_in * C_out * k_h * k_w / groups * H_out * W_out`` (a 32-bit conv counts 32 bits;
additions, BN, PixelShuffle, pooling and interpolation are not counted). MACs depend on the
input size, so every figure names its LR input size.

* :func:`network_cost` measures a built network (final or supernet) with forward hooks.
* :class:`SupernetCost` is the search's differentiable cost model: the expected BitOps of the
  supernet under the current (op, bit) distribution, ``sum_layers sum_(o,b) p(o,b) *
  MACs(o) * b^2`` plus the constant BitOps of fixed (non-searchable) layers. At a one-hot
  distribution it equals :func:`network_cost` of the exported network.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from quantnas.quant.conv import QConv2d, QConvBase
from quantnas.quant.mixed import MixedQConv2d
from quantnas.registry import Registry


def _hw(lr_size: int | tuple[int, int]) -> tuple[int, int]:
    return (lr_size, lr_size) if isinstance(lr_size, int) else (int(lr_size[0]), int(lr_size[1]))


@dataclass
class ConvCost:
    """Cost of one conv at a given input size."""

    name: str
    c_in: int
    c_out: int
    kernel: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]
    macs: int
    bits_w: int
    bits_a: int

    @property
    def bitops(self) -> int:
        return self.macs * self.bits_w * self.bits_a


@dataclass
class CostReport:
    """Cost of a network for one LR input size."""

    lr_size: tuple[int, int]
    bitops: int
    macs: int
    params: int
    size_bytes: float
    convs: list[ConvCost] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-friendly summary (without the per-conv table)."""
        d = asdict(self)
        d.pop("convs")
        d["lr_size"] = list(self.lr_size)
        return d


def conv_macs(conv: QConvBase, out_hw: tuple[int, int]) -> int:
    """MACs of ``conv`` producing an ``out_hw`` map."""
    return conv.macs_per_pixel() * out_hw[0] * out_hw[1]


def trace_convs(
    net: nn.Module, lr_size: int | tuple[int, int]
) -> dict[int, tuple[str, QConvBase, int, tuple[int, int]]]:
    """Run one forward pass on zeros and record every quantized conv's MACs.

    Returns:
        ``{id(conv): (name, conv, macs, out_hw)}`` (a conv run twice counts twice).

    """
    records: dict[int, list] = {}
    names = {id(m): n for n, m in net.named_modules()}
    hooks = []

    def hook(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        hw = (int(out.shape[-2]), int(out.shape[-1]))
        rec = records.setdefault(id(mod), [names.get(id(mod), "?"), mod, 0, hw])
        rec[2] += conv_macs(mod, hw)

    for m in net.modules():
        if isinstance(m, QConvBase):
            hooks.append(m.register_forward_hook(hook))
    was_training = net.training
    net.eval()
    try:
        h, w = _hw(lr_size)
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            net(torch.zeros(1, 3, h, w, device=device))
    finally:
        for hk in hooks:
            hk.remove()
        net.train(was_training)
    return {k: tuple(v) for k, v in records.items()}


def count_params(net: nn.Module) -> int:
    """Trainable parameters excluding quantizer step sizes and architecture weights."""
    total = 0
    for name, p in net.named_parameters():
        if name.endswith(".step") or name.startswith("alpha."):
            continue
        total += p.numel()
    return total


def network_cost(net: nn.Module, *, lr_size: int | tuple[int, int] = 32) -> CostReport:
    """BitOps, MACs, params and weight size of a final network at an LR input size.

    Size counts each conv weight at its bit-width and every other parameter at 32 bits.
    """
    convs = []
    for name, conv, macs, hw in trace_convs(net, lr_size).values():
        bits = conv.bits if isinstance(conv, QConv2d) else 32
        convs.append(
            ConvCost(
                name, conv.c_in, conv.c_out, conv.kernel_size, conv.groups, hw, macs, bits, bits
            )
        )
    size_bits = 0.0
    conv_weights = {
        id(m.weight): m.bits if isinstance(m, QConv2d) else 32
        for m in net.modules()
        if isinstance(m, QConvBase)
    }
    for name, p in net.named_parameters():
        if name.endswith(".step") or name.startswith("alpha."):
            continue
        size_bits += p.numel() * conv_weights.get(id(p), 32)
    return CostReport(
        lr_size=_hw(lr_size),
        bitops=sum(c.bitops for c in convs),
        macs=sum(c.macs for c in convs),
        params=count_params(net),
        size_bytes=size_bits / 8,
        convs=convs,
    )


class SupernetCost:
    """Expected BitOps of a supernet under its (op, bit) distribution.

    Built once per supernet by tracing MACs at ``lr_size``; afterwards
    :meth:`expected_bitops` is a cheap differentiable function of the probabilities.

    Args:
        supernet: A :class:`quantnas.search.supernet.Supernet`.
        lr_size: LR input size the MACs are measured at.

    """

    def __init__(self, supernet: nn.Module, *, lr_size: int | tuple[int, int] = 32) -> None:
        self.lr_size = _hw(lr_size)
        records = trace_convs(supernet, lr_size)
        owner: dict[int, tuple[str, int]] = {}
        for layer in supernet.mixed_layers():
            for o, op in enumerate(layer.ops):
                for m in op.modules():
                    if isinstance(m, MixedQConv2d):
                        owner[id(m)] = (layer.key, o)
        n_ops = {layer.key: len(layer.ops) for layer in supernet.mixed_layers()}
        macs: dict[str, list[float]] = defaultdict(list)
        for key, n in n_ops.items():
            macs[key] = [0.0] * n
        fixed = 0
        for cid, (_, conv, m, _) in records.items():
            if cid in owner:
                key, o = owner[cid]
                macs[key][o] += m
            else:
                bits = conv.bits if isinstance(conv, QConv2d) else 32
                fixed += m * bits * bits
        self.bits = torch.tensor([float(b) for b in supernet.bits], dtype=torch.float64)
        self.bit_cost = self.bits * self.bits
        self.macs = {k: torch.tensor(v, dtype=torch.float64) for k, v in macs.items()}
        self.fixed_bitops = float(fixed)

    def layer_bitops(self, key: str, probs: torch.Tensor) -> torch.Tensor:
        """Expected BitOps of one layer key (all its instances) for ``(n_ops, n_bits)`` probs."""
        table = self.macs[key].to(probs.device)[:, None] * self.bit_cost.to(probs.device)[None]
        return (probs.double() * table).sum()

    def expected_bitops(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Differentiable expected BitOps (float64 scalar) of the whole supernet."""
        device = next(iter(probs.values())).device if probs else torch.device("cpu")
        total = torch.tensor(self.fixed_bitops, dtype=torch.float64, device=device)
        for key, p in probs.items():
            total = total + self.layer_bitops(key, p)
        return total

    def expected_linear_bits(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The original code's penalty cost: ``sum p(o, b) * MACs_o * b`` over the searchable
        layers only (linear in the bit-width, fixed layers left out).
        """
        device = next(iter(probs.values())).device if probs else torch.device("cpu")
        total = torch.zeros((), dtype=torch.float64, device=device)
        for key, p in probs.items():
            table = self.macs[key].to(p.device)[:, None] * self.bits.to(p.device)[None]
            total = total + (p.double() * table).sum()
        return total

    def penalty_cost(self, probs: Mapping[str, torch.Tensor], kind: str) -> torch.Tensor:
        """The quantity the hardware penalty normalises and weights (``search.penalty_cost``).

        Args:
            probs: Per-layer ``(n_ops, n_bits)`` probabilities.
            kind: ``bitops`` (``MACs * b_w * b_a`` with the fixed layers, what reports
                show) or ``linear_bits`` (the original's :meth:`expected_linear_bits`).

        """
        return PENALTY_COSTS.get(kind)(self, probs)


#: What the search's hardware penalty measures, by ``search.penalty_cost``: a function
#: ``f(cost, probs) -> scalar`` of the :class:`SupernetCost` and the probabilities.
PENALTY_COSTS: Registry[Callable[[SupernetCost, Mapping[str, torch.Tensor]], torch.Tensor]] = (
    Registry.of(
        "penalty cost",
        {"bitops": SupernetCost.expected_bitops, "linear_bits": SupernetCost.expected_linear_bits},
        key="search.penalty_cost",
    )
)
