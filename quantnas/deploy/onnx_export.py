"""Export a trained network to ONNX, as fake-quantized QDQ or as full precision.

The exporter walks the module tree (:mod:`~quantnas.deploy.onnx_emitter`: a registry of
converters by module type, and the quantizers' lowering) and writes the operations each
module computes (:mod:`~quantnas.deploy.onnx_converters`):

* ``QConv2d`` (quantized): the input through QuantizeLinear -> DequantizeLinear with the
  quantizer's fixed step (HWGQ) or ``1 / (2^b - 1)`` (image input quantizer), in an 8-bit
  container (``uint8``; 16 bits in ``uint16`` from opset 21). Narrower bit-widths keep the
  8-bit container and clip to their own range first (``Clip(0, step * (2^b - 1))``),
  because ONNX has no sub-8-bit types. Weights are stored as their integer LSQ levels
  (``int8``, or ``uint8`` at zero point 128 with ``weight_dtype="uint8"``; ``int16`` for 16
  bits) followed by DequantizeLinear with the per-output-channel
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

from torch import nn

from quantnas.deploy import (  # noqa: F401 - register the module converters
    onnx_baselines,
    onnx_converters,
)
from quantnas.deploy.formats import WEIGHT_DTYPES
from quantnas.deploy.onnx_emitter import Emitter, QuantPoint
from quantnas.deploy.onnx_graph import INT16_OPSET, MIN_OPSET, Graph, image_value
from quantnas.errors import QuantNASError, import_extra
from quantnas.quant.conv import QConv2d

onnx = import_extra("onnx", "onnx", "ONNX export")

__all__ = [
    "DEFAULT_OPSET",
    "WEIGHT_DTYPES",
    "Emitter",
    "QuantPoint",
    "export_onnx",
    "network_bits",
]

#: Opset written when none is asked for (raised to 21 for networks with 16-bit layers).
DEFAULT_OPSET = 17


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
    weight_dtype: str = "int8",
) -> onnx.ModelProto:
    """Convert a final network (in eval mode) to an ONNX model.

    Args:
        net: A network from :func:`quantnas.space.build.build_network` with trained weights.
        quantized: QDQ fake quantization (True) or full precision everywhere (False).
        opset: Default-domain opset (default :data:`DEFAULT_OPSET`, or 21 when a layer
            has 16 bits).
        metadata: Extra ``metadata_props`` (strings).
        points: If given, filled with the activation quantizers in graph order (for
            :func:`quantnas.deploy.export.check_onnx`).
        weight_dtype: Container of weight levels up to 8 bits, ``int8`` (default) or
            ``uint8`` (levels + 128 with zero point 128: the same values; exact in
            onnxruntime on CPUs without VNNI, see :data:`WEIGHT_DTYPES`).

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
    emitter = Emitter(g, quantized=quantized, names=names, weight_dtype=weight_dtype)
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
