"""The quantized convolution of a final network, and the geometry all quantized convs share.

:class:`QConv2d` has one bit-width for its weights (LSQ) and its input activation (HWGQ,
which is also the nonlinearity); the supernet's candidate conv is
:class:`quantnas.quant.mixed.MixedQConv2d`. Both are bias-free with "same" padding by
default and expose their geometry (``c_in``, ``c_out``, ``kernel_size``, ``groups``) so cost
models can count MACs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from quantnas.errors import QuantNASError
from quantnas.quant.fused import activation
from quantnas.quant.quantizers import HWGQ, LSQ, ImageQuantizer, check_bits


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


#: Builds a conv module from keyword-only geometry (``c_in``, ``c_out``, ``kernel_size``,
#: ``stride``, ``padding``, ``dilation``, ``groups``: the arguments of :class:`QConvBase`);
#: the operation registry assembles every op from one.
ConvFactory = Callable[..., nn.Module]


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


def conv_out_size(size: int, *, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a conv along one axis (PyTorch's formula)."""
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1)
