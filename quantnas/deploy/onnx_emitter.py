"""The module-to-ONNX emitter: converters looked up by module type, and the lowering of
quantizers to QuantizeLinear / DequantizeLinear (activations in an unsigned 8- or 16-bit
container clipped to their own range on the integer side, weights as integer LSQ levels with
per-channel steps).

Each tensor is quantized once per step: quantizers that read the same tensor with the same
grid share one QuantizeLinear (onnxruntime fuses a conv into QLinearConv only when its
output feeds a single QuantizeLinear). A bit-width below its container's is clipped after
QuantizeLinear, on the integer levels (``Q -> Clip(0, 2^b - 1) -> DQ``): the same levels as
clipping the float first, since the clip is an integer number of steps, and no float op
between a conv and its QuantizeLinear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from quantnas.deploy.formats import WEIGHT_DTYPES
from quantnas.deploy.onnx_graph import INT16_OPSET, Graph
from quantnas.errors import QuantNASError, import_extra
from quantnas.quant.quantizers import HWGQ, LSQ, ImageQuantizer

onnx = import_extra("onnx", "onnx", "ONNX export")

__all__ = ["Converter", "Emitter", "QuantPoint", "converter"]

Converter = Callable[["Emitter", nn.Module, str], str]


@dataclass(frozen=True)
class QuantPoint:
    """One activation quantizer as exported: where its integer levels are in the graph.

    Attributes:
        output: Name of the QuantizeLinear output (the integer levels).
        module: Qualified name of the quantizer module in the network.
        scale: Step (float32 in the graph).
        clip: Upper end of the range (``scale * (2^bits - 1)``).
        elem_type: ONNX element type of the levels (uint8 or uint16).
        zero_point: The level that stands for 0 (128 for the signed output quantizers).

    """

    output: str
    module: str
    scale: float
    clip: float
    elem_type: int
    zero_point: int = 0


_CONVERTERS: dict[type, Converter] = {}


def converter(*types: type) -> Callable[[Converter], Converter]:
    """Register a converter for module types (looked up along the class's MRO)."""

    def deco(fn: Converter) -> Converter:
        for t in types:
            _CONVERTERS[t] = fn
        return fn

    return deco


class Emitter:
    """Converts modules into nodes of a :class:`Graph`.

    Args:
        graph: The graph under construction.
        quantized: False exports every conv at full precision (the ``onnx-fp32`` format).
        names: Module names by ``id`` (for the quantization points' labels).
        weight_dtype: Container of weight levels up to 8 bits: ``int8`` (levels as they
            are, zero point 0) or ``uint8`` (levels + 128, zero point 128; the same values).

    """

    def __init__(
        self,
        graph: Graph,
        *,
        quantized: bool,
        names: dict[int, str] | None = None,
        weight_dtype: str = "int8",
    ) -> None:
        if weight_dtype not in WEIGHT_DTYPES:
            raise QuantNASError(
                f"weight dtype {weight_dtype!r}: expected one of {', '.join(WEIGHT_DTYPES)}"
            )
        self.g = graph
        self.quantized = quantized
        self.weight_dtype = weight_dtype
        self.names = names or {}
        self.points: list[QuantPoint] = []
        #: (input, step, bits, zero point) -> (levels, dequantized) of each emitted quantizer.
        self._shared: dict[tuple, tuple[str, str]] = {}
        #: dequantized value -> (levels, step, zero point name), for folding scalar factors.
        self.dequantized: dict[str, tuple[str, float, str]] = {}

    def __call__(self, module: nn.Module, x: str) -> str:
        for cls in type(module).__mro__:
            fn = _CONVERTERS.get(cls)
            if fn is not None:
                return fn(self, module, x)
        raise QuantNASError(f"ONNX export: no converter for module {type(module).__name__}")

    # ------------------------------------------------------------- quantization
    def _container(self, bits: int, signed: bool) -> tuple[np.dtype, int, int]:
        """Numpy dtype and integer range of the Q/DQ container for ``bits``."""
        if bits <= 8:
            return (np.dtype(np.int8), -128, 127) if signed else (np.dtype(np.uint8), 0, 255)
        if self.g.opset < INT16_OPSET:
            raise QuantNASError(
                f"a {bits}-bit layer needs a 16-bit Q/DQ container, which ONNX has from opset "
                f"{INT16_OPSET}; export with --opset {INT16_OPSET}"
            )
        if signed:
            return np.dtype(np.int16), -32768, 32767
        return np.dtype(np.uint16), 0, 65535

    def qdq(
        self,
        x: str,
        *,
        scale: float,
        bits: int,
        clip: float,
        module: str = "",
        zero_point: int = 0,
    ) -> str:
        """Fake quantization ``(clamp(round(x / scale) + zp, 0, 2^b - 1) - zp) * scale``.

        With ``zero_point`` 0 this is ``round(clamp(x, 0, clip) / scale) * scale``; a
        quantizer with the same input, step and grid as an earlier one shares its nodes.
        """
        g = self.g
        dtype, _, qmax = self._container(bits, signed=False)
        scale = float(np.float32(scale))
        point = dict(module=module, scale=scale, clip=float(clip), zero_point=zero_point)
        elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
        key = (x, scale, bits, zero_point)
        if key in self._shared:
            levels, dq = self._shared[key]
            self.points.append(QuantPoint(levels, elem_type=elem, **point))
            return dq
        s = g.const(np.float32(scale), "act_scale")
        zp = g.const(np.asarray(zero_point, dtype=dtype), f"act_zp_{dtype.name}")
        levels = g.op("QuantizeLinear", [x, s, zp], "q")
        if 2**bits - 1 < qmax:  # narrower than its container: clip the integer levels
            low = g.const(np.asarray(0, dtype=dtype), f"q_min_{dtype.name}")
            high = g.const(np.asarray(2**bits - 1, dtype=dtype), f"q_max_{bits}")
            levels = g.op("Clip", [levels, low, high], "q_clip")
        self.points.append(QuantPoint(levels, elem_type=elem, **point))
        dq = g.op("DequantizeLinear", [levels, s, zp], "dq")
        self._shared[key] = (levels, dq)
        self.dequantized[dq] = (levels, scale, zp)
        return dq

    def scaled(self, x: str, factor: float, hint: str = "branch_scale") -> str:
        """``x * factor``; folded into the step when ``x`` is a DequantizeLinear output (so a
        QLinearAdd or the output can read the levels directly).
        """
        factor = float(factor)
        if factor == 1.0:
            return x
        if x in self.dequantized:
            levels, scale, zp = self.dequantized[x]
            s = self.g.const(np.float32(scale * factor), "act_scale")
            return self.g.op("DequantizeLinear", [levels, s, zp], "dq_scaled")
        return self.g.op("Mul", [x, self.g.const(np.float32(factor), hint)])

    def act_quant(self, quantizer: nn.Module, x: str) -> str:
        """The conv input quantizer (HWGQ or the image quantizer)."""
        if quantizer.full_precision:
            return self.g.op("Relu", [x])
        b, name = quantizer.bits, self.names.get(id(quantizer), "")
        if isinstance(quantizer, ImageQuantizer):
            return self.qdq(x, scale=1.0 / (2**b - 1), bits=b, clip=1.0, module=name)
        if isinstance(quantizer, HWGQ):
            return self.qdq(x, scale=quantizer.step, bits=b, clip=quantizer.clip, module=name)
        raise QuantNASError(f"ONNX export: no converter for quantizer {type(quantizer).__name__}")

    @torch.no_grad()
    def weight(self, lsq: LSQ, w: torch.Tensor) -> str:
        """LSQ weights as integer levels + per-channel DequantizeLinear (float if 32 bits)."""
        g = self.g
        if lsq.full_precision:
            return g.const(w.detach().float().numpy(), "w")
        step = lsq.step.detach().float().clamp_min(1e-8)
        levels = torch.round(torch.clamp(w.detach().float() / step, lsq.qn, lsq.qp))
        dtype, _, _ = self._container(lsq.bits, signed=True)
        offset = 0
        if self.weight_dtype == "uint8" and dtype == np.int8:
            dtype, offset = np.dtype(np.uint8), 128  # same values: (q + 128) - 128
        q = g.const((levels.numpy() + offset).astype(dtype), f"w_{dtype.name}")
        s = g.const(step.flatten().numpy(), "w_scale")
        zp = g.const(np.full(step.numel(), offset, dtype=dtype), "w_zp")
        return g.op("DequantizeLinear", [q, s, zp], "w_dq", axis=0)
