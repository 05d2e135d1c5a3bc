"""The supernet: mixed layers over every (operation, bit-width) pair, with explicit
architecture parameters.

* :class:`Alphas` holds one vector of length ``|ops| x |bits|`` per searchable layer
  (zeros at start) and turns them into probabilities with a swappable transform
  (``softmax``, ``gumbel``, ``hard_gumbel`` with a temperature).
* :class:`MixedLayer` computes ``sum_o P(o) op_o(x)`` with ``P(o) = sum_b p(o, b)``; inside
  op ``o`` every conv mixes its bit-widths from ``p(o, b)`` (see
  :class:`~quantnas.quant.mixed.MixedQConv2d`).
* :class:`Supernet` wires them into the space's topology; ``weights()`` / ``alphas()``
  iterate the two parameter groups and ``export()`` returns the argmax genotype.

How the supernet starts (``search.branch_init``, :data:`BRANCH_INITS`): every candidate
conv He-initialised (``he``, quantnas's original), or the last conv of every candidate of
the output layer (the last upsample layer, whose output the global skip receives) starting
at zero (``zero_last``: zero-gamma, Goyal et al. 2017; Fixup, Zhang et al. 2019; SkipInit,
De & Smith 2020). With ``zero_last`` and a global skip the supernet starts exactly at
bicubic, like the ReZero output gate, but the output layer gets a gradient at the first
step, where a gate's gradient is the product of two near-zeros (README "Why the search
does not earn its cost here"; ``docs/research/probe-gain.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from quantnas.config.types import ArchConfig
from quantnas.errors import QuantNASError
from quantnas.quant.mixed import MixedQConv2d
from quantnas.registry import Registry
from quantnas.space.build import build_topology, layer_counts, primitives
from quantnas.space.catalog import get_space
from quantnas.space.genotype import BLOCKS, Genotype, LayerChoice
from quantnas.space.ops import build_op

#: A transform ``f(logits, temperature, sample) -> probabilities`` of one layer's alphas.
Transform = Callable[[torch.Tensor, float, bool], torch.Tensor]


def _softmax(a: torch.Tensor, temperature: float, sample: bool) -> torch.Tensor:
    return torch.softmax(a, dim=0)


def _gumbel(hard: bool) -> Transform:
    def transform(a: torch.Tensor, temperature: float, sample: bool) -> torch.Tensor:
        if sample:
            return F.gumbel_softmax(a, tau=temperature, hard=hard)
        return torch.softmax(a, dim=0)

    return transform


#: Alpha transforms by ``search.alpha_transform``: ``softmax``; ``gumbel`` /
#: ``hard_gumbel`` (relaxed / straight-through Gumbel-softmax samples when sampling,
#: the softmax otherwise).
TRANSFORMS: Registry[Transform] = Registry.of(
    "alpha transform",
    {"softmax": _softmax, "gumbel": _gumbel(False), "hard_gumbel": _gumbel(True)},
    key="search.alpha_transform",
)


#: How the supernet's candidate convs start, by ``search.branch_init``.
BRANCH_INITS: Registry[str] = Registry.of(
    "branch init",
    {
        "he": "every candidate conv He-initialised (the original)",
        "zero_last": "the last conv of every output-layer candidate starts at zero",
    },
    key="search.branch_init",
)


#: How the supernet's candidate convs are drawn, by ``search.conv_init``.
CONV_INITS: Registry[str] = Registry.of(
    "conv init",
    {
        "he": "He-normal (quantnas's init, also of the final networks)",
        "pytorch": "PyTorch's default conv init (Kaiming-uniform, a = sqrt(5); the original's)",
    },
    key="search.conv_init",
)


def layer_key(block: str, index: int) -> str:
    return f"{block}.{index}"


class Alphas(nn.Module):
    """Architecture parameters, one flat vector per searchable layer.

    Args:
        shapes: ``{layer_key: (n_ops, n_bits)}`` in network order.
        transform: ``softmax``, ``gumbel`` or ``hard_gumbel``.

    """

    def __init__(self, shapes: dict[str, tuple[int, int]], *, transform: str = "softmax") -> None:
        super().__init__()
        self._transform = TRANSFORMS.get(transform)
        self.shapes = dict(shapes)
        self.transform = transform
        self.temperature = 1.0
        self.params = nn.ParameterDict(
            {self._name(k): nn.Parameter(torch.zeros(n * b)) for k, (n, b) in shapes.items()}
        )

    @staticmethod
    def _name(key: str) -> str:
        return key.replace(".", "_")

    def keys(self) -> list[str]:
        return list(self.shapes)

    def logits(self, key: str) -> torch.Tensor:
        return self.params[self._name(key)]

    def probabilities(self, *, sample: bool = False) -> dict[str, torch.Tensor]:
        """Per-layer ``(n_ops, n_bits)`` probabilities.

        With ``sample=True`` and a gumbel transform, draws a (relaxed / straight-through)
        Gumbel-softmax sample at the current temperature; otherwise the softmax.
        """
        out = {}
        for key, shape in self.shapes.items():
            a = self.logits(key)
            out[key] = self._transform(a, self.temperature, sample).view(shape)
        return out


class MixedLayer(nn.Module):
    """All candidates of one searchable layer.

    Attributes:
        key: Layer key ``block.index`` (its alphas; shared by body cells in the basic space).
        op_names: Candidate operation names.
        bits: Candidate bit-widths.
        probs: ``(n_ops, n_bits)`` probabilities, set by the supernet for the duration of
            one forward pass (``None`` outside it).

    """

    def __init__(
        self, key: str, op_names: list[str], bits: list[int], ops: list[nn.Module]
    ) -> None:
        super().__init__()
        self.key, self.op_names, self.bits = key, list(op_names), list(bits)
        self.ops = nn.ModuleList(ops)
        self._convs = [[m for m in op.modules() if isinstance(m, MixedQConv2d)] for op in ops]
        self.probs: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.probs is None:
            raise RuntimeError(f"mixed layer {self.key}: probabilities not set by the supernet")
        p_op = self.probs.sum(dim=1)
        keep = p_op.detach().tolist()
        out = None
        for o, op in enumerate(self.ops):
            if keep[o] == 0.0:
                continue
            for conv in self._convs[o]:
                conv.set_bit_weights(self.probs[o])
            try:
                y = p_op[o] * op(x)
            finally:
                for conv in self._convs[o]:
                    conv.set_bit_weights(None)
            out = y if out is None else out + y
        return out

    def extra_repr(self) -> str:
        return f"key={self.key}, ops={len(self.op_names)}, bits={self.bits}"


class Supernet(nn.Module):
    """The searchable network.

    Args:
        arch: The search space (structure, primitives, bits).
        mode: ``noise`` (search against quantization noise), ``quant`` (direct
            quantization with shared weights) or ``fp``.
        noise: ``gaussian`` or ``uniform`` noise for ``noise`` mode.
        noise_mix: How noise mode mixes its noisy copies: ``original`` (independent,
            detached draws, the original's weights) or ``shared`` (one draw).
        noise_source: Where the noise comes from: ``rng`` (fresh draws, the original) or
            ``table`` (windows of a fixed noise table).
        transform: Alpha transform.
        branch_init: ``he`` or ``zero_last`` (:data:`BRANCH_INITS`; see the module).
        conv_init: ``he`` or ``pytorch`` (:data:`CONV_INITS`): how every candidate conv's
            weights are drawn (about 2.45x smaller with ``pytorch``), before ``branch_init``.

    """

    def __init__(
        self,
        arch: ArchConfig,
        *,
        mode: str = "noise",
        noise: str = "gaussian",
        noise_mix: str = "original",
        noise_source: str = "rng",
        transform: str = "softmax",
        branch_init: str = "he",
        conv_init: str = "he",
    ) -> None:
        super().__init__()
        if mode == "fp" and any(b != 32 for b in arch.bits):
            raise QuantNASError("search.mode=fp needs arch.bits=[32]")
        BRANCH_INITS.check(branch_init)
        CONV_INITS.check(conv_init)
        self.arch = arch
        self.bits = list(arch.bits)
        self.counts = layer_counts(arch)
        conv = partial(
            MixedQConv2d,
            bits=self.bits,
            mode=mode,
            noise=noise,
            noise_mix=noise_mix,
            noise_source=noise_source,
        )
        shared = get_space(arch.space).shares_cell_alphas
        self._layers: list[MixedLayer] = []

        def layer_fn(*, block: str, index: int, c_in: int, c_out: int) -> nn.Module:
            names = primitives(arch, block)
            ops = [
                build_op(
                    n,
                    c_in=c_in,
                    c_out=c_out,
                    c_fixed=arch.c_fixed,
                    conv=conv,
                    where=f"{block}[{index}]",
                )
                for n in names
            ]
            layer = MixedLayer(layer_key(block, index), names, self.bits, ops)
            self._layers.append(layer)
            return layer

        self.net = build_topology(arch, layer_fn, self.counts)
        shapes: dict[str, tuple[int, int]] = {}
        for block in BLOCKS:
            for i in range(self.counts[block]):
                shapes[layer_key(block, i)] = (len(primitives(arch, block)), len(self.bits))
        self.alpha = Alphas(shapes, transform=transform)
        self.shared_cells = shared
        self.branch_init, self.conv_init = branch_init, conv_init
        if conv_init == "pytorch":
            with torch.no_grad():
                for m in self.modules():
                    if isinstance(m, MixedQConv2d):
                        nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
                        m.reset_steps()
        if branch_init == "zero_last":
            with torch.no_grad():
                for conv in self.output_convs():
                    conv.weight.zero_()  # LSQ steps keep their He-derived values

    def output_convs(self) -> list[MixedQConv2d]:
        """The last conv of every candidate of the output layer (the last upsample layer):
        the convs whose output, pixel-shuffled, is the network's residual.
        """
        key = layer_key("upsample", self.counts["upsample"] - 1)
        convs: list[MixedQConv2d] = []
        for layer in self._layers:
            if layer.key == key:
                for op in layer.ops:
                    found = [m for m in op.modules() if isinstance(m, MixedQConv2d)]
                    convs += found[-1:]
        return convs

    def set_quantized(self, quantized: bool) -> None:
        """Switch every candidate conv between its search mode (noise or quantizers) and
        full precision (``search.float_warm_up``); switching back re-initialises the LSQ
        steps from the weights (LSQ's initialisation from a trained float network).
        """
        for m in self.modules():
            if isinstance(m, MixedQConv2d):
                if quantized and not m.quantized:
                    m.reset_steps()
                m.quantized = quantized

    def mixed_layers(self) -> list[MixedLayer]:
        """Every mixed layer instance (several per key when body cells share alphas)."""
        return list(self._layers)

    def weights(self) -> Iterator[nn.Parameter]:
        """Network weights (including LSQ steps and ADQ/BN parameters), not alphas."""
        alpha_ids = {id(p) for p in self.alpha.parameters()}
        return (p for p in self.parameters() if id(p) not in alpha_ids)

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if not n.startswith("alpha."))

    def alphas(self) -> Iterator[nn.Parameter]:
        """Architecture parameters."""
        return iter(self.alpha.parameters())

    def probabilities(self) -> dict[str, torch.Tensor]:
        """Deterministic (softmax) probabilities per layer key."""
        return self.alpha.probabilities(sample=False)

    def forward(
        self,
        x: torch.Tensor,
        *,
        alpha_grad: bool = True,
        probs: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run the supernet under the current (op, bit) distribution.

        Args:
            x: LR batch.
            alpha_grad: False for a weight step: the distribution is detached, so the
                backward pass skips the alpha gradients (and the noise re-draws and per-bit
                products they need), which the weight step would throw away.
            probs: A distribution to run instead of the alphas' (e.g. one genotype's
                one-hot path); it gets no alpha gradient.

        """
        if probs is None:
            probs = self.alpha.probabilities(sample=self.training)
        else:
            probs = {k: p.to(x.device) for k, p in probs.items()}
            alpha_grad = False
        if not alpha_grad:
            probs = {k: p.detach() for k, p in probs.items()}
        for layer in self._layers:
            layer.probs = probs[layer.key]
        try:
            return self.net(x)
        finally:
            for layer in self._layers:
                layer.probs = None

    def export(self, probs: dict[str, torch.Tensor] | None = None) -> Genotype:
        """The genotype of the argmax (op, bit) pair of every layer (of ``probs``, e.g. an
        epoch of the alpha history, else of the current alphas).
        """
        blocks: dict[str, list[LayerChoice]] = {b: [] for b in BLOCKS}
        with torch.no_grad():
            for key, p in (self.probabilities() if probs is None else probs).items():
                block, _ = key.split(".")
                n_bits = p.shape[1]
                flat = int(torch.argmax(p.flatten()))
                op = primitives(self.arch, block)[flat // n_bits]
                blocks[block].append(LayerChoice(op, self.bits[flat % n_bits]))
        return Genotype({b: tuple(v) for b, v in blocks.items()}, space=self.arch.space)

    def layer_table(self) -> dict[str, dict]:
        """``{key: {"ops": [...], "bits": [...], "probs": [[...]]}}`` for logging/plots."""
        probs = self.probabilities()
        return {
            k: {
                "ops": primitives(self.arch, k.split(".")[0]),
                "bits": self.bits,
                "probs": probs[k].detach().tolist(),
            }
            for k in probs
        }
