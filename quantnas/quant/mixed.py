"""The supernet's candidate conv: one shared weight, its bit-widths mixed by probability.

:class:`MixedQConv2d` mixes the bit-widths of one full-precision weight with weights
``q(b)`` set by the enclosing mixed layer, either by direct quantization (``quant``), by
quantization noise (``noise``) or not at all (``fp``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from quantnas.quant.conv import QConvBase
from quantnas.quant.fused import mixed_activation, mixed_lsq, original_noisy_mix
from quantnas.quant.noise import NOISE_KINDS, NOISE_SOURCES, draw_noise, noise_like
from quantnas.quant.quantizers import HWGQ, LSQ, ImageQuantizer, check_bits
from quantnas.registry import Registry

__all__ = ["MIX_MODES", "NOISE_MIXES", "MixedQConv2d"]

#: How a candidate mixes its bit-widths, by ``search.mode`` (name -> what it does; see
#: :class:`MixedQConv2d`).
MIX_MODES: Registry[str] = Registry.of(
    "search mode",
    {
        "quant": "mix the LSQ / HWGQ quantized copies",
        "noise": "mix copies with quantization noise",
        "fp": "no quantization",
    },
    key="search.mode",
)
#: How noise mode mixes the noisy bit-width copies, by ``search.noise_mix``.
NOISE_MIXES: Registry[str] = Registry.of(
    "noise mix",
    {
        "original": "one draw per copy, copies detached (the original code)",
        "shared": "one draw shared by all copies, nothing detached",
    },
    key="search.noise_mix",
)


class MixedQConv2d(QConvBase):
    """A supernet candidate conv mixing several bit-widths of one shared weight.

    The enclosing mixed layer hands it, through :meth:`set_bit_weights`, the probabilities
    ``p(o, b)`` of its operation ``o`` at each entry of ``bits`` (their sum ``P`` is the
    operation's probability); unset means uniform with ``P = 1``. Entries equal to 0 are
    skipped. ``q(b) = p(o, b) / P`` are the within-op bit weights.

    Modes:
        quant: ``W_mix = sum_b q(b) LSQ_b(W)``, ``x_mix = sum_b q(b) HWGQ_b(x)``.
        noise: search against quantization noise; no rounding. With ``n = len(bits)``,
            ``f = 1 / (n + 1)`` and ``noisy_b(v) = v + Delta_b eps_b``,
            ``Delta_b = (max v - min v) / (2^b - 1)``, applied to the weight and to the
            ReLU'd input. ``noise_mix`` picks the formula:

            * ``original`` (the original code):
              ``v_mix = f v + sum_b p(o, b) / (P + f) * sg(noisy_b(v))`` with one
              independent ``eps_b`` per bit-width and detached copies, so ``v`` gets
              gradient only through ``f v`` and the alphas through the copies; the weight
              on the clean tensor, ``f + P / (P + f)``, varies with ``P``.
            * ``shared`` (a quantnas variant, not the paper's method):
              ``v_mix = v + (1 - f) (sum_b q(b) Delta_b) eps`` -- one draw shared by all
              copies, nothing detached. Cheaper (one random tensor instead of ``n``), but
              it is a different estimator: the noise of the copies is fully correlated
              (more variance than independent draws) and gradients flow through every
              copy.
        fp: ``W`` and ``relu(x)``, no quantization (e.g. ``bits = [32]``).

    ``quantized = False`` (the search's float warm-up, ``search.float_warm_up``) computes
    the ``fp`` form whatever the mode; :meth:`reset_steps` re-initialises the LSQ steps
    from the weights when the quantizers come back.

    Args:
        bits: Candidate bit-widths.
        mode: One of ``quant``, ``noise``, ``fp``.
        noise: Noise distribution for ``noise`` mode (``gaussian``: ``eps ~ N(0, 1/4)`` as
            in the original, or ``uniform``: ``U[-1/2, 1/2]``).
        noise_mix: ``original`` or ``shared`` (see above).
        noise_source: Where ``eps`` comes from: ``rng`` (fresh draws, the original) or
            ``table`` (windows of a fixed noise table, see :mod:`quantnas.quant.noise`).
        **geometry: See :class:`QConvBase`.

    """

    def __init__(
        self,
        *,
        bits: Sequence[int],
        mode: str = "noise",
        noise: str = "gaussian",
        noise_mix: str = "original",
        noise_source: str = "rng",
        **geometry,
    ) -> None:
        super().__init__(**geometry)
        check_bits(list(bits), where="search bits")
        MIX_MODES.check(mode)
        NOISE_MIXES.check(noise_mix)
        self.bits = [int(b) for b in bits]
        self.mode = mode
        self.noise_mix = noise_mix
        self.w_quant = nn.ModuleList(LSQ(b, self.c_out) for b in self.bits)
        self.a_quant = nn.ModuleList(HWGQ(b) for b in self.bits)
        NOISE_KINDS.check(noise)
        NOISE_SOURCES.check(noise_source)
        self.noise_kind = noise
        self.noise_source = noise_source
        for lsq in self.w_quant:
            lsq.init_from(self.weight)
        self.bit_weights: torch.Tensor | None = None
        #: Use the memory-lean fused mixtures (False: the plain autograd reference).
        self.fused = True
        #: False: full precision whatever the mode (no noise, no quantizers).
        self.quantized = True

    def reset_steps(self) -> None:
        """Re-initialise every bit-width's LSQ step from the current weights.

        Channels whose weights are all zero keep their step (an LSQ step initialised from
        zeros would clamp every later weight of the channel and stop its gradient).
        """
        with torch.no_grad():
            alive = self.weight.detach().flatten(1).abs().amax(dim=1) > 0
            for lsq in self.w_quant:
                old = lsq.step.detach().clone()
                lsq.init_from(self.weight)
                lsq.step.copy_(torch.where(alive.view(-1, 1, 1, 1), lsq.step, old))

    def read_image(self) -> None:
        """Quantize the input as an image in ``[0, 1]`` in ``quant`` mode (not HWGQ).

        ``noise`` mode needs no change: its noise already scales with the input's range.
        """
        self.a_quant = nn.ModuleList(ImageQuantizer(b) for b in self.bits)

    def set_bit_weights(self, p: torch.Tensor | None) -> None:
        """Set the op's bit-width probabilities ``p(o, b)`` for the next forward pass.

        The mixed layer clears them (``None``) after the pass, so a later call without a
        distribution does not silently reuse an old one.
        """
        self.bit_weights = p

    def _mixture(self) -> tuple[list[tuple[int, torch.Tensor | float]], torch.Tensor | float]:
        """The non-zero ``(index, p(o, b))`` pairs and their sum ``P``."""
        p = self.bit_weights
        if p is None:
            n = len(self.bits)
            return [(i, 1.0 / n) for i in range(n)], 1.0
        values = p.detach().tolist()
        return [(i, p[i]) for i in range(len(self.bits)) if values[i] != 0.0], p.sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "fp" or not self.quantized:
            return self._conv(torch.relu(x), self.weight)
        mix, total = self._mixture()
        if self.mode == "quant":
            if not self.fused:
                w = sum(p / total * self.w_quant[i](self.weight) for i, p in mix)
                return self._conv(sum(p / total * self.a_quant[i](x) for i, p in mix), w)
            q = self._bit_vector(mix, total)
            w = mixed_lsq(self.weight, q, self.w_quant)
            return self._conv(mixed_activation(x, q, self.a_quant), w)
        if self.noise_mix == "shared":
            return self._conv(
                self._shared_mix(torch.relu(x), mix, total),
                self._shared_mix(self.weight, mix, total),
            )
        seed = int(torch.randint(0, 2**31 - 1, ()))
        if not self.fused:
            return self._conv(
                self._original_mix(torch.relu(x), mix, total, seed=seed),
                self._original_mix(self.weight, mix, total, seed=seed + 1),
            )
        share = 1.0 / (len(self.bits) + 1)
        c = self._bit_vector(mix, total + share)
        kw = {
            "share": share,
            "bits": self.bits,
            "kind": self.noise_kind,
            "source": self.noise_source,
        }
        a = original_noisy_mix(x, c, relu=True, seed=seed, **kw)
        return self._conv(a, original_noisy_mix(self.weight, c, relu=False, seed=seed + 1, **kw))

    def _bit_vector(self, mix: list[tuple[int, torch.Tensor | float]], norm) -> torch.Tensor:
        """``p(o, b) / norm`` as one vector over ``bits`` (zeros where skipped)."""
        if self.bit_weights is None:
            return torch.full((len(self.bits),), 1.0 / len(self.bits)) / norm
        return self.bit_weights / norm

    def _original_mix(
        self, v: torch.Tensor, mix: list[tuple[int, torch.Tensor | float]], total, *, seed: int
    ) -> torch.Tensor:
        """``f v + sum_b p(o, b) / (P + f) * sg(v + Delta_b eps_b)``, independent draws.

        The straightforward autograd form of :func:`~quantnas.quant.fused.original_noisy_mix`
        (``fused = False``), kept as its reference.
        """
        share = 1.0 / (len(self.bits) + 1)
        out = share * v
        with torch.no_grad():
            span = v.max() - v.min()
        for i, p in mix:
            copy = v.detach()
            if self.bits[i] < 32:
                eps = draw_noise(
                    v, seed=seed, index=i, kind=self.noise_kind, source=self.noise_source
                )
                copy = copy + span / (2 ** self.bits[i] - 1) * eps
            out = out + p / (total + share) * copy
        return out

    def _shared_mix(
        self, v: torch.Tensor, mix: list[tuple[int, torch.Tensor | float]], total
    ) -> torch.Tensor:
        """``v + (1 - f) (sum_b q(b) Delta_b) eps`` with one draw ``eps`` for all copies."""
        share = 1.0 / (len(self.bits) + 1)
        with torch.no_grad():
            span = v.max() - v.min()
            if self.noise_source == "table":
                seed = int(torch.randint(0, 2**31 - 1, ()))
                eps = draw_noise(v, seed=seed, index=0, kind=self.noise_kind, source="table")
            else:
                eps = noise_like(v, self.noise_kind)
        scale = sum(
            p / total * (span / (2 ** self.bits[i] - 1)) for i, p in mix if self.bits[i] < 32
        )
        if isinstance(scale, int):  # only 32-bit candidates: no noise
            return v
        return v + (1 - share) * scale * eps

    def extra_repr(self) -> str:
        extra = (
            f", noise_mix={self.noise_mix}, noise_source={self.noise_source}"
            if self.mode == "noise"
            else ""
        )
        return f"{super().extra_repr()}, bits={self.bits}, mode={self.mode}{extra}"
