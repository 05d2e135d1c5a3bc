"""Quantized convolutions.

* :class:`QConv2d` -- the final network's conv: one bit-width for its weights (LSQ) and
  its input activation (HWGQ, which is also the nonlinearity).
* :class:`MixedQConv2d` -- a supernet candidate conv holding one full-precision weight and
  mixing its bit-widths with weights ``q(b)`` set by the enclosing mixed layer, either by
  direct quantization (``mode="quant"``), by quantization noise (``mode="noise"``) or not
  at all (``mode="fp"``).

Both are bias-free with "same" padding by default and expose their geometry
(``c_in``, ``c_out``, ``kernel_size``, ``groups``) so cost models can count MACs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from quantnas.errors import QuantNASError
from quantnas.quant.fused import activation, draw_noise, mixed_activation, original_noisy_mix
from quantnas.quant.quantizers import HWGQ, LSQ, ImageQuantizer, NoiseQuantizer, check_bits

MIX_MODES = ("quant", "noise", "fp")
#: How noise mode mixes the noisy bit-width copies (see :class:`MixedQConv2d`).
NOISE_MIXES = ("original", "shared")


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class ConvFactory(Protocol):
    """Builds a conv module from keyword-only geometry (used by the operation registry)."""

    def __call__(
        self,
        *,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        groups: int = 1,
    ) -> nn.Module: ...


class QConvBase(nn.Module):
    """Geometry, weight and He initialisation shared by the quantized convs.

    Args:
        c_in: Input channels.
        c_out: Output channels.
        kernel_size: Kernel size (int or (kh, kw)).
        stride: Stride.
        padding: Padding; None means "same" (``dilation * (k - 1) // 2``).
        dilation: Dilation.
        groups: Groups; ``c_in`` and ``c_out`` must be divisible by it.

    """

    def __init__(
        self,
        *,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if c_in % groups or c_out % groups:
            raise QuantNASError(
                f"conv {c_in}->{c_out} channels is not divisible by groups={groups}"
            )
        self.c_in, self.c_out, self.groups = int(c_in), int(c_out), int(groups)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.dilation = _pair(dilation)
        if padding is None:
            padding = tuple(self.dilation[i] * (self.kernel_size[i] - 1) // 2 for i in range(2))
        self.padding = _pair(padding)
        self.weight = nn.Parameter(torch.empty(c_out, c_in // groups, *self.kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) normal initialisation for ReLU-like inputs."""
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")

    def macs_per_pixel(self) -> int:
        """Multiply-accumulates per output pixel: ``C_in * C_out * kh * kw / groups``."""
        kh, kw = self.kernel_size
        return self.c_in * self.c_out * kh * kw // self.groups

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.c_in}, {self.c_out}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}"
        )


class QConv2d(QConvBase):
    """Conv with one bit-width ``bits`` for its weights (LSQ) and input (HWGQ).

    ``quantized = False`` switches to full precision (weights as they are, input through a
    ReLU), e.g. for full-precision warm-up epochs before QAT.
    """

    def __init__(self, *, bits: int, **geometry) -> None:
        super().__init__(**geometry)
        check_bits(bits, where="conv bits")
        self.bits = int(bits)
        self.w_quant = LSQ(self.bits, self.c_out)
        self.a_quant = HWGQ(self.bits)
        self.quantized = True
        #: Fused activation quantizer (False: the plain autograd reference).
        self.fused = True
        self.w_quant.init_from(self.weight)

    @property
    def bits_w(self) -> int:
        return self.bits if self.quantized else 32

    @property
    def bits_a(self) -> int:
        return self.bits if self.quantized else 32

    def reset_steps(self) -> None:
        """Re-initialise the LSQ step from the current weights (e.g. after FP warm-up)."""
        self.w_quant.init_from(self.weight)

    def read_image(self) -> None:
        """Quantize the input as an image in ``[0, 1]`` (:class:`ImageQuantizer`), not HWGQ."""
        self.a_quant = ImageQuantizer(self.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantized:
            return self._conv(torch.relu(x), self.weight)
        a = activation(x, self.a_quant) if self.fused else self.a_quant(x)
        return self._conv(a, self.w_quant(self.weight))

    def extra_repr(self) -> str:
        kind = ", input=image" if isinstance(self.a_quant, ImageQuantizer) else ""
        return f"{super().extra_repr()}, bits={self.bits}{kind}"


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

            * ``original`` (the original code, SPEC section 3):
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

    Args:
        bits: Candidate bit-widths.
        mode: One of ``quant``, ``noise``, ``fp``.
        noise: Noise distribution for ``noise`` mode (``gaussian``: ``eps ~ N(0, 1/4)`` as
            in the original, or ``uniform``: ``U[-1/2, 1/2]``).
        noise_mix: ``original`` or ``shared`` (see above).
        **geometry: See :class:`QConvBase`.

    """

    def __init__(
        self,
        *,
        bits: Sequence[int],
        mode: str = "noise",
        noise: str = "gaussian",
        noise_mix: str = "original",
        **geometry,
    ) -> None:
        super().__init__(**geometry)
        check_bits(list(bits), where="search bits")
        if mode not in MIX_MODES:
            raise QuantNASError(f"search mode {mode!r} unknown; expected one of {MIX_MODES}")
        if noise_mix not in NOISE_MIXES:
            raise QuantNASError(
                f"search.noise_mix {noise_mix!r} unknown; expected one of {NOISE_MIXES}"
            )
        self.bits = [int(b) for b in bits]
        self.mode = mode
        self.noise_mix = noise_mix
        self.w_quant = nn.ModuleList(LSQ(b, self.c_out) for b in self.bits)
        self.a_quant = nn.ModuleList(HWGQ(b) for b in self.bits)
        if noise not in NoiseQuantizer.KINDS:
            raise QuantNASError(
                f"noise kind {noise!r} unknown; expected one of {NoiseQuantizer.KINDS}"
            )
        self.noise_kind = noise
        for lsq in self.w_quant:
            lsq.init_from(self.weight)
        self.bit_weights: torch.Tensor | None = None
        #: Use the memory-lean fused mixtures (False: the plain autograd reference).
        self.fused = True

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
        if self.mode == "fp":
            return self._conv(torch.relu(x), self.weight)
        mix, total = self._mixture()
        if self.mode == "quant":
            w = sum(p / total * self.w_quant[i](self.weight) for i, p in mix)
            if not self.fused:
                return self._conv(sum(p / total * self.a_quant[i](x) for i, p in mix), w)
            return self._conv(mixed_activation(x, self._bit_vector(mix, total), self.a_quant), w)
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
        kw = {"share": share, "bits": self.bits, "kind": self.noise_kind}
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
                eps = draw_noise(v, seed=seed, index=i, kind=self.noise_kind)
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
            if self.noise_kind == "gaussian":
                eps = torch.randn_like(v).mul_(0.5)
            else:
                eps = torch.rand_like(v).sub_(0.5)
        scale = sum(
            p / total * (span / (2 ** self.bits[i] - 1)) for i, p in mix if self.bits[i] < 32
        )
        if isinstance(scale, int):  # only 32-bit candidates: no noise
            return v
        return v + (1 - share) * scale * eps

    def extra_repr(self) -> str:
        extra = f", noise_mix={self.noise_mix}" if self.mode == "noise" else ""
        return f"{super().extra_repr()}, bits={self.bits}, mode={self.mode}{extra}"


def conv_out_size(size: int, *, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a conv along one axis (PyTorch's formula)."""
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1)
