"""Export a trained network to ONNX, as fake-quantized QDQ or as full precision.

The exporter walks the module tree (a registry of converters by module type) and writes
the operations each module computes:

* ``QConv2d`` (quantized): the input through QuantizeLinear -> DequantizeLinear with the
  quantizer's fixed step (HWGQ) or ``1 / (2^b - 1)`` (image input quantizer), in an 8-bit
  container (``uint8``; 16 bits in ``uint16`` from opset 21). Narrower bit-widths keep the
  8-bit container and clip to their own range first (``Clip(0, step * (2^b - 1))``),
  because ONNX has no sub-8-bit types. Weights are stored as their integer LSQ levels
  (``int8``; ``int16`` for 16 bits) followed by DequantizeLinear with the per-output-channel
  step (``axis=0``), i.e. the constant-folded QuantizeLinear of the fake-quant weights.
* ``QConv2d`` (full precision, or every conv with ``quantized=False``): ReLU, then Conv with
  the float weights.
* residuals, ADQ (BatchNorm with running statistics, per-image standard deviation),
  parallel sums, PixelShuffle (DepthToSpace), the learned output scale, and the global skip:
  MATLAB bicubic as fixed convs (:mod:`quantnas.deploy.bicubic_conv`), nearest as Resize.
* the rfdn space: channel Tile, concatenations, ESA (MaxPool, bilinear Resize, Sigmoid).

Height and width are symbolic. The bicubic skip needs sides of at least 2 LR pixels and the
rfdn space at least 15 (as in PyTorch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from quantnas.deploy.bicubic_conv import bicubic_taps, conv_weights
from quantnas.deploy.onnx_graph import INT16_OPSET, INT64_MAX, MIN_OPSET, Graph, image_value
from quantnas.errors import QuantNASError
from quantnas.models.basic import BasicSRNet
from quantnas.models.blocks import ParallelSum, Residual
from quantnas.models.rfdn import ESA, SKIP_PER_CELL, DistillationCell, RFDNSRNet
from quantnas.ops import Identity, Zero
from quantnas.quant.conv import QConv2d
from quantnas.quant.quantizers import HWGQ, LSQ, ImageQuantizer

__all__ = ["DEFAULT_OPSET", "Emitter", "QuantPoint", "export_onnx", "network_bits"]

#: Opset written when none is asked for (raised to 21 for networks with 16-bit layers).
DEFAULT_OPSET = 17

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

    """

    output: str
    module: str
    scale: float
    clip: float
    elem_type: int


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

    """

    def __init__(
        self, graph: Graph, *, quantized: bool, names: dict[int, str] | None = None
    ) -> None:
        self.g = graph
        self.quantized = quantized
        self.names = names or {}
        self.points: list[QuantPoint] = []

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

    def qdq(self, x: str, *, scale: float, bits: int, clip: float, module: str = "") -> str:
        """Unsigned fake quantization ``round(clamp(x, 0, clip) / scale) * scale``."""
        g = self.g
        dtype, _, qmax = self._container(bits, signed=False)
        if 2**bits - 1 < qmax:  # narrower than its container: clip to its own range
            x = g.op(
                "Clip",
                [x, g.const(np.float32(0.0), "zero_f"), g.const(np.float32(clip), "clip")],
                "clip",
            )
        s = g.const(np.float32(scale), "act_scale")
        zp = g.const(np.zeros((), dtype=dtype), f"act_zp_{dtype.name}")
        q = g.op("QuantizeLinear", [x, s, zp], "q")
        elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
        self.points.append(QuantPoint(q, module, float(np.float32(scale)), float(clip), elem))
        return g.op("DequantizeLinear", [q, s, zp], "dq")

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
        q = g.const(levels.numpy().astype(dtype), f"w_{dtype.name}")
        s = g.const(step.flatten().numpy(), "w_scale")
        zp = g.const(np.zeros(step.numel(), dtype=dtype), "w_zp")
        return g.op("DequantizeLinear", [q, s, zp], "w_dq", axis=0)


# ------------------------------------------------------------------- converters
@converter(QConv2d)
def _qconv(e: Emitter, m: QConv2d, x: str) -> str:
    if e.quantized and m.quantized:
        a, w = e.act_quant(m.a_quant, x), e.weight(m.w_quant, m.weight)
    else:
        a, w = e.g.op("Relu", [x]), e.g.const(m.weight.detach().float().numpy(), "w")
    ph, pw = m.padding
    return e.g.op(
        "Conv",
        [a, w],
        "conv",
        kernel_shape=list(m.kernel_size),
        strides=list(m.stride),
        pads=[ph, pw, ph, pw],
        dilations=list(m.dilation),
        group=m.groups,
    )


@converter(nn.Sequential)
def _sequential(e: Emitter, m: nn.Sequential, x: str) -> str:
    for child in m:
        x = e(child, x)
    return x


@converter(Identity, nn.Identity)
def _identity(e: Emitter, m: nn.Module, x: str) -> str:
    return x


@converter(Zero)
def _zero(e: Emitter, m: Zero, x: str) -> str:
    g = e.g
    shape = g.op(
        "Concat",
        [g.shape_dims(x, 0, 1), g.ints([m.c_out], "c_out"), g.shape_dims(x, 2, 4)],
        "zero_shape",
        axis=0,
    )
    value = onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT, [1], [0.0])
    return g.op("ConstantOfShape", [shape], "zeros", value=value)


@converter(nn.PixelShuffle)
def _pixel_shuffle(e: Emitter, m: nn.PixelShuffle, x: str) -> str:
    return e.g.op("DepthToSpace", [x], "pixel_shuffle", blocksize=m.upscale_factor, mode="CRD")


@converter(nn.BatchNorm2d)
def _batch_norm(e: Emitter, m: nn.BatchNorm2d, x: str) -> str:
    if m.running_mean is None or m.running_var is None:
        raise QuantNASError("ONNX export: BatchNorm without running statistics")
    g = e.g
    c = m.num_features
    gamma = m.weight.detach().float().numpy() if m.affine else np.ones(c, np.float32)
    beta = m.bias.detach().float().numpy() if m.affine else np.zeros(c, np.float32)
    args = [
        x,
        g.const(gamma, "bn_gamma"),
        g.const(beta, "bn_beta"),
        g.const(m.running_mean.detach().float().numpy(), "bn_mean"),
        g.const(m.running_var.detach().float().numpy(), "bn_var"),
    ]
    return g.op("BatchNormalization", args, "bn", epsilon=float(m.eps))


def _scalar(e: Emitter, p: torch.Tensor | float, hint: str) -> str:
    value = p.detach().float().item() if isinstance(p, torch.Tensor) else float(p)
    return e.g.const(np.float32(value), hint)


def _per_image_std(e: Emitter, x: str) -> str:
    """Unbiased standard deviation of each image over (C, H, W), shape ``(N, 1, 1, 1)``."""
    g = e.g
    axes = [1, 2, 3]
    mean = g.reduce("ReduceMean", x, axes)
    d = g.op("Sub", [x, mean])
    ss = g.reduce("ReduceSum", g.op("Mul", [d, d]), axes)
    batch = g.op("Gather", [g.op("Shape", [x]), g.ints([0], "idx0")], axis=0)
    n = g.op("Cast", [g.op("Div", [g.op("Size", [x]), batch])], to=onnx.TensorProto.FLOAT)
    n = g.op("Reshape", [n, g.ints([1, 1, 1, 1], "shape4")])
    var = g.op("Div", [ss, g.op("Sub", [n, g.const(np.float32(1.0), "one_f")])])
    return g.op("Sqrt", [var], "std")


@converter(Residual)
def _residual(e: Emitter, m: Residual, x: str) -> str:
    g = e.g
    if not m.adq:
        out = e(m.fn, x)
        if m.branch_scale != 1.0:
            out = g.op("Mul", [out, _scalar(e, m.branch_scale, "branch_scale")])
        return g.op("Add", [x, out], "residual")
    s = g.op(
        "Add",
        [g.op("Mul", [_per_image_std(e, x), _scalar(e, m.w, "adq_w")]), _scalar(e, m.c, "adq_c")],
        "adq_scale",
    )
    branch = g.op("Mul", [e(m.fn, e(m.bn, x)), s])
    return g.op("Add", [branch, x], "residual")


@converter(ParallelSum)
def _parallel_sum(e: Emitter, m: ParallelSum, x: str) -> str:
    out = None
    for branch, s in zip(m.branches, m.scales, strict=True):
        y = e(branch, x)
        if s != 1.0:
            y = e.g.op("Mul", [y, _scalar(e, s, "branch_scale")])
        out = y if out is None else e.g.op("Add", [out, y])
    return out


def _symmetric_pad(g: Graph, x: str, pad: int, axis: int) -> str:
    left = g.slice(x, pad - 1, -INT64_MAX, axis, -1)  # x[pad-1], ..., x[0]
    right = g.slice(x, -1, -pad - 1, axis, -1)  # x[n-1], ..., x[n-pad]
    return g.op("Concat", [left, x, right], "sym_pad", axis=axis)


def _bicubic(e: Emitter, x: str, scale: int, channels: int = 3) -> str:
    """MATLAB bicubic upscaling as symmetric pad + two grouped convs + DepthToSpace."""
    g = e.g
    pad = (bicubic_taps(scale).shape[1] - 1) // 2
    w_h, w_w = conv_weights(scale, channels)
    y = _symmetric_pad(g, _symmetric_pad(g, x, pad, 2), pad, 3)
    k = w_h.shape[2]
    y = g.op(
        "Conv", [y, g.const(w_h.numpy(), "bicubic_h")], "bicubic_h",
        kernel_shape=[k, 1], group=channels,
    )  # fmt: skip
    y = g.op(
        "Conv", [y, g.const(w_w.numpy(), "bicubic_w")], "bicubic_w",
        kernel_shape=[1, k], group=channels * scale,
    )  # fmt: skip
    return g.op("DepthToSpace", [y], "bicubic", blocksize=scale, mode="CRD")


def _global_skip(e: Emitter, net: nn.Module, lr: str, out: str) -> str:
    g = e.g
    if net.out_scale is not None:
        out = g.op("Mul", [out, _scalar(e, net.out_scale, "out_scale")], "scaled")
    if net.global_skip == "none":
        return out
    if net.global_skip == "bicubic":
        skip = _bicubic(e, lr, net.scale)
    elif net.global_skip == "nearest":
        scales = g.const(np.array([1, 1, net.scale, net.scale], np.float32), "nearest_scales")
        skip = g.op(
            "Resize",
            [lr, "", scales],
            "nearest",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    else:
        raise QuantNASError(f"ONNX export: unknown global skip {net.global_skip!r}")
    return g.op("Add", [out, skip], "sr_sum")


@converter(BasicSRNet)
def _basic(e: Emitter, m: BasicSRNet, x: str) -> str:
    out = e(m.tail, e(m.upsample, e(m.body, e(m.head, x))))
    return _global_skip(e, m, x, out)


@converter(ESA)
def _esa(e: Emitter, m: ESA, x: str) -> str:
    g = e.g
    c1 = e(m.c1, x)
    y = g.op("MaxPool", [e(m.c2, c1)], "esa_pool", kernel_shape=[7, 7], strides=[3, 3])
    y = e(m.c3_, e(m.c3, e(m.c_max, y)))
    sizes = g.op("Concat", [g.shape_dims(y, 0, 2), g.shape_dims(x, 2, 4)], "esa_size", axis=0)
    y = g.op(
        "Resize",
        [y, "", "", sizes],
        "esa_up",
        mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel",
    )
    mask = g.op("Sigmoid", [e(m.c4, g.op("Add", [y, e(m.c_f, c1)]))], "esa_mask")
    return g.op("Mul", [x, mask], "esa")


@converter(DistillationCell)
def _distill_cell(e: Emitter, m: DistillationCell, x: str) -> str:
    g = e.g
    parts = []
    for i in range(SKIP_PER_CELL):
        parts.append(e(m.distill[i], x))
        x = g.op("Add", [x, e(m.refine[i], x)])
    parts.append(e(m.refine[-1], x))
    return e(m.esa, e(m.fuse, g.op("Concat", parts, "distilled", axis=1)))


@converter(RFDNSRNet)
def _rfdn(e: Emitter, m: RFDNSRNet, x: str) -> str:
    g = e.g
    x0 = g.op("Tile", [x, g.ints([1, m.c // 3, 1, 1], "repeats")], "x0")
    h, outs = x0, []
    for cell in m.cells:
        h = e(cell, h)
        outs.append(h)
    z = e(m.fuse3, e(m.fuse, g.op("Concat", outs, "cells", axis=1)))
    z = g.op("Add", [z, x0])
    return _global_skip(e, m, x, e(m.tail, e(m.upsample, z)))


# ---------------------------------------------------------------------- export
def network_bits(net: nn.Module) -> set[int]:
    """Bit-widths used by the network's quantized convs."""
    return {m.bits for m in net.modules() if isinstance(m, QConv2d) and m.quantized}


def resolve_opset(net: nn.Module, opset: int | None, *, quantized: bool) -> int:
    """The opset to write: the asked one (checked) or the default for this network."""
    needs16 = quantized and any(8 < b < 32 for b in network_bits(net))
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return INT16_OPSET if needs16 else DEFAULT_OPSET
    if not MIN_OPSET <= opset <= newest:
        raise QuantNASError(
            f"--opset {opset}: expected {MIN_OPSET}..{newest} (per-channel QuantizeLinear "
            f"needs {MIN_OPSET})"
        )
    return int(opset)


def export_onnx(
    net: nn.Module,
    *,
    quantized: bool = True,
    opset: int | None = None,
    metadata: dict[str, str] | None = None,
    points: list[QuantPoint] | None = None,
) -> onnx.ModelProto:
    """Convert a final network (in eval mode) to an ONNX model.

    Args:
        net: A network from :func:`quantnas.space.build_network` with trained weights.
        quantized: QDQ fake quantization (True) or full precision everywhere (False).
        opset: Default-domain opset (default :data:`DEFAULT_OPSET`, or 21 when a layer
            has 16 bits).
        metadata: Extra ``metadata_props`` (strings).
        points: If given, filled with the activation quantizers in graph order (for
            :func:`quantnas.deploy.export.check_onnx`).

    Returns:
        The checked model with input ``lr`` ``(N, 3, H, W)`` and output ``sr``
        ``(N, 3, H*s, W*s)``; ``N``, ``H`` and ``W`` are symbolic.

    Raises:
        QuantNASError: An unsupported module, opset or bit-width.

    """
    if net.training:
        raise QuantNASError("ONNX export: put the network in eval mode first")
    g = Graph(resolve_opset(net, opset, quantized=quantized))
    names = {id(m): n for n, m in net.named_modules()}
    emitter = Emitter(g, quantized=quantized, names=names)
    out = emitter(net, "lr")
    if points is not None:
        points.extend(emitter.points)
    g.nodes.append(onnx.helper.make_node("Identity", [out], ["sr"], name="n_sr"))
    scale = int(net.scale)
    h_out = "H_out" if scale != 1 else "H"
    return g.model(
        [image_value("lr", 3, "H", "W")],
        [image_value("sr", 3, h_out, "W_out" if scale != 1 else "W")],
        name="quantnas_sr",
        metadata={k: str(v) for k, v in (metadata or {}).items()},
    )
