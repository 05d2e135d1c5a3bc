"""What each module of a final network computes, as ONNX nodes: convs, residuals and ADQ,
parallel sums, output quantizers, PixelShuffle, BatchNorm, the output scale and global skips
(MATLAB bicubic as fixed convs, nearest as Resize), and the rfdn space's cells and ESA.

A basic-space network with a bicubic skip and no tail ends in one DepthToSpace for the
network's output and the skip together: ``D2S(a) * s + D2S(b) = D2S(a * s + b)`` element by
element, so the sum is the same and the last conv feeds no DepthToSpace of its own.

Importing this module registers the converters with :func:`~quantnas.deploy.onnx_emitter.converter`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from quantnas.deploy.bicubic_conv import bicubic_taps, conv_weights
from quantnas.deploy.onnx_emitter import Emitter, converter
from quantnas.deploy.onnx_graph import INT64_MAX, Graph
from quantnas.errors import QuantNASError, import_extra
from quantnas.models.basic import BasicSRNet
from quantnas.models.blocks import ParallelSum, Residual
from quantnas.models.rfdn import ESA, SKIP_PER_CELL, DistillationCell, RFDNSRNet
from quantnas.quant.conv import QConv2d
from quantnas.quant.out_quant import OutputQuantizer
from quantnas.space.ops import Identity, Zero

onnx = import_extra("onnx", "onnx", "ONNX export")


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


@converter(OutputQuantizer)
def _output_quant(e: Emitter, m: OutputQuantizer, x: str) -> str:
    if not (e.quantized and m.enabled):
        return x
    step = float(m.step.detach().float().clamp_min(1e-8))
    return e.qdq(
        x,
        scale=step,
        bits=m.bits,
        clip=step * m.qp,
        module=e.names.get(id(m), ""),
        zero_point=m.zero_point,
    )


def _sum_quant(e: Emitter, m: nn.Module, x: str) -> str:
    return x if m.out_quant is None else e(m.out_quant, x)


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
        out = e.scaled(e(m.fn, x), m.branch_scale)
        return _sum_quant(e, m, g.op("Add", [x, out], "residual"))
    s = g.op(
        "Add",
        [g.op("Mul", [_per_image_std(e, x), _scalar(e, m.w, "adq_w")]), _scalar(e, m.c, "adq_c")],
        "adq_scale",
    )
    branch = g.op("Mul", [e(m.fn, e(m.bn, x)), s])
    return _sum_quant(e, m, g.op("Add", [branch, x], "residual"))


@converter(ParallelSum)
def _parallel_sum(e: Emitter, m: ParallelSum, x: str) -> str:
    out = None
    for branch, s in zip(m.branches, m.scales, strict=True):
        y = e.scaled(e(branch, x), s)
        out = y if out is None else e.g.op("Add", [out, y])
    return _sum_quant(e, m, out)


def _symmetric_pad(g: Graph, x: str, pad: int, axis: int) -> str:
    left = g.slice(x, pad - 1, -INT64_MAX, axis, -1)  # x[pad-1], ..., x[0]
    right = g.slice(x, -1, -pad - 1, axis, -1)  # x[n-1], ..., x[n-pad]
    return g.op("Concat", [left, x, right], "sym_pad", axis=axis)


def _bicubic(e: Emitter, x: str, scale: int, channels: int = 3, d2s: bool = True) -> str:
    """MATLAB bicubic upscaling as symmetric pad + two grouped convs + DepthToSpace (or,
    with ``d2s=False``, the ``channels * scale^2`` LR maps DepthToSpace would rearrange).
    """
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
    if not d2s:
        return y
    return g.op("DepthToSpace", [y], "bicubic", blocksize=scale, mode="CRD")


def _global_skip(e: Emitter, net: nn.Module, lr: str, out: str) -> str:
    g = e.g
    if net.out_scale is not None:
        out = e.scaled(out, float(net.out_scale.detach()), "out_scale")
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
    features = e(m.body, e(m.head, x))
    *lr_part, shuffle = list(m.upsample)
    one_d2s = (
        isinstance(shuffle, nn.PixelShuffle)
        and isinstance(m.tail, nn.Identity)
        and m.global_skip == "bicubic"
    )
    if not one_d2s:
        return _global_skip(e, m, x, e(m.tail, e(m.upsample, features)))
    for layer in lr_part:
        features = e(layer, features)
    if m.out_scale is not None:
        features = e.scaled(features, float(m.out_scale.detach()), "out_scale")
    total = e.g.op("Add", [features, _bicubic(e, x, m.scale, d2s=False)], "sr_sum")
    return _pixel_shuffle(e, shuffle, total)


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
