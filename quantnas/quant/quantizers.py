"""Quantizers behind one interface: ``Quantizer.forward(x) -> x_hat``.

* :class:`LSQ` -- learned step size quantization of weights (per output channel, signed).
* :class:`HWGQ` -- half-wave Gaussian quantization of activations (unsigned, fixed steps);
  it is also the network's nonlinearity. At 32 bits it is a plain ReLU.
* :class:`NoiseQuantizer` -- pseudo-quantization noise used during the search "against
  noise": ``x + Delta_b * eps`` with ``Delta_b = (max(x) - min(x)) / (2^b - 1)``.

All of them pass values through unchanged (or ReLU for activations) at 32 bits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from quantnas.errors import QuantNASError
from quantnas.quant.noise import NOISE_KINDS, noise_like

#: Bit-widths a conv can use. 32 means full precision (no quantization).
SUPPORTED_BITS: tuple[int, ...] = (2, 3, 4, 8, 16, 32)

#: HWGQ step per bit-width (optimal uniform quantizer of a half-Gaussian, from HWGQ-Net).
#: (HWGQ-Net also gives 1 bit, 1.0576462792297525, which no conv here can use.)
HWGQ_STEPS: dict[int, float] = {
    2: 0.6356366866203315,
    3: 0.3720645813370479,
    4: 0.21305606790772952,
    8: 0.020300567823662602,
    16: 9.714825915156693e-05,
}

FULL_PRECISION = 32


def check_bits(bits: int | Iterable[int], *, where: str = "bits") -> None:
    """Raise a one-line error if a bit-width is not supported.

    Args:
        bits: One bit-width or several.
        where: Name of the config key / layer for the message.

    """
    values = list(bits) if isinstance(bits, (list, tuple, set)) else [bits]
    if not values:
        raise QuantNASError(f"{where}: empty list of bit-widths; expected some of {SUPPORTED_BITS}")
    for b in values:
        if isinstance(b, bool) or not isinstance(b, int) or b not in SUPPORTED_BITS:
            raise QuantNASError(
                f"{where}: unsupported bit-width {b!r}; expected one of {list(SUPPORTED_BITS)}"
            )


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient (identity backward)."""
    return (x.round() - x).detach() + x


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Return ``x`` unchanged in the forward pass, with its gradient multiplied by ``scale``."""
    y = x * scale
    return (x - y).detach() + y


class Quantizer(nn.Module):
    """Common interface: a module mapping a tensor to its (fake-)quantized version.

    Attributes:
        bits: The bit-width; 32 means full precision.

    """

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = int(bits)

    @property
    def full_precision(self) -> bool:
        return self.bits >= FULL_PRECISION

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class LSQ(Quantizer):
    """Learned step size quantizer for conv weights, one step per output channel.

    Levels are the signed integers ``[-2^(b-1), 2^(b-1) - 1]`` times the step ``s``.
    The step is initialised to ``2 * mean(|w|) / sqrt(Qp)`` per channel and its gradient is
    scaled by ``1 / sqrt(Qp * numel(w))`` (Esser et al., 2020).

    Args:
        bits: Bit-width (32 = pass-through).
        channels: Number of output channels (size of the step vector).

    """

    def __init__(self, bits: int, channels: int) -> None:
        super().__init__(bits)
        if not self.full_precision:
            self.qn = -(2 ** (self.bits - 1))
            self.qp = 2 ** (self.bits - 1) - 1
        else:
            self.qn, self.qp = 0, 1
        self.step = nn.Parameter(torch.ones(channels, 1, 1, 1))

    @torch.no_grad()
    def init_from(self, weight: torch.Tensor) -> None:
        """Initialise the step from a weight tensor ``(C_out, C_in/g, kh, kw)``."""
        mean_abs = weight.detach().abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)
        self.step.copy_((2.0 * mean_abs / math.sqrt(self.qp)).clamp_min(1e-8))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.full_precision:
            return weight
        step = scale_grad(self.step, 1.0 / math.sqrt(self.qp * weight.numel())).clamp_min(1e-8)
        q = torch.clamp(weight / step, self.qn, self.qp)
        return round_ste(q) * step


class HWGQ(Quantizer):
    """Half-wave Gaussian activation quantizer: ``round(clamp(x, 0, s(2^b-1)) / s) * s``.

    The rounding uses a straight-through estimator; the clamp passes gradients only inside
    the range. At 32 bits it is a ReLU.
    """

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        if not self.full_precision and self.bits not in HWGQ_STEPS:
            raise QuantNASError(f"HWGQ has no step for {bits} bits; expected one of {HWGQ_STEPS}")
        self.step = HWGQ_STEPS.get(self.bits, 0.0)

    @property
    def clip(self) -> float:
        return self.step * (2**self.bits - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return self.value(x)
        if self.full_precision:
            return torch.relu(x)
        y = torch.clamp(x, 0.0, self.clip)
        return round_ste(y / self.step) * self.step

    @torch.no_grad()
    def value(self, x: torch.Tensor) -> torch.Tensor:
        """The forward value without building a graph (a new tensor)."""
        if self.full_precision:
            return torch.relu(x)
        return x.clamp(0.0, self.clip).div_(self.step).round_().mul_(self.step)

    @torch.no_grad()
    def pass_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Where the straight-through gradient passes: ``x > 0`` (ReLU) or ``0 <= x <= clip``."""
        if self.full_precision:
            return x > 0
        return (x >= 0) & (x <= self.clip)

    @torch.no_grad()
    def value_and_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`value` and :meth:`pass_mask` in fewer passes over ``x``.

        The mask is ``clamp(x) == x``: the same as ``0 <= x <= clip`` (both false for NaN).
        """
        if self.full_precision:
            return torch.relu(x), x > 0
        y = x.clamp(0.0, self.clip)
        mask = y == x
        return y.div_(self.step).round_().mul_(self.step), mask


class ImageQuantizer(Quantizer):
    """Uniform quantizer of an input with the known range ``[0, 1]`` (the LR image).

    ``round(clamp(x, 0, 1) * (2^b - 1)) / (2^b - 1)`` with a straight-through estimator. HWGQ's
    steps are fitted to half-Gaussian activations of unit variance: on an image in
    ``[0, 1]`` its 8-bit grid has only 50 levels and its 4-bit grid 6, while this grid keeps
    every level of an 8-bit image and 16 at 4 bits. Used for the convs that read the image
    (``arch.input_quant: image``); at 32 bits it is a ReLU like HWGQ.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return self.value(x)
        if self.full_precision:
            return torch.relu(x)
        n = 2**self.bits - 1
        return round_ste(torch.clamp(x, 0.0, 1.0) * n) / n

    @torch.no_grad()
    def value(self, x: torch.Tensor) -> torch.Tensor:
        """The forward value without building a graph (a new tensor)."""
        if self.full_precision:
            return torch.relu(x)
        n = 2**self.bits - 1
        return x.clamp(0.0, 1.0).mul_(n).round_().div_(n)

    @torch.no_grad()
    def pass_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Where the straight-through gradient passes: ``x > 0`` (ReLU) or ``0 <= x <= 1``."""
        if self.full_precision:
            return x > 0
        return (x >= 0) & (x <= 1.0)

    @torch.no_grad()
    def value_and_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`value` and :meth:`pass_mask` in fewer passes (mask: ``clamp(x) == x``)."""
        if self.full_precision:
            return torch.relu(x), x > 0
        n = 2**self.bits - 1
        y = x.clamp(0.0, 1.0)
        mask = y == x
        return y.mul_(n).round_().div_(n), mask


class NoiseQuantizer(Quantizer):
    """Pseudo-quantization noise: ``x + Delta_b * eps`` with ``Delta_b = range(x) / (2^b - 1)``.

    Args:
        bits: Bit-width the noise imitates (32 = no noise).
        kind: ``"gaussian"`` (``eps ~ N(0, 1/4)``, the original code) or ``"uniform"``
            (``eps ~ U[-1/2, 1/2]``, the rounding-error distribution).
        detach: If True the whole noisy copy is detached (the original code's behaviour:
            gradients reach ``x`` only through the full-precision share of the mixture).
            If False (default) only the noise term is detached, so gradients flow through
            every copy.

    """

    KINDS = NOISE_KINDS

    def __init__(self, bits: int, *, kind: str = "gaussian", detach: bool = False) -> None:
        super().__init__(bits)
        self.KINDS.check(kind, where="noise quantizer")
        self.kind = kind
        self.detach = detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.full_precision:
            return x
        with torch.no_grad():
            delta = (x.max() - x.min()) / (2**self.bits - 1)
            noise = delta * noise_like(x, self.kind)
        noisy = x + noise
        return noisy.detach() if self.detach else noisy

    def extra_repr(self) -> str:
        return f"bits={self.bits}, kind={self.kind}, detach={self.detach}"
