"""What onnxruntime runs of an exported file, and which of its convs it runs on integers.

onnxruntime turns a conv into QLinearConv (8-bit integer kernel) only as the QDQ node unit
``DQ(x) -> Conv(DQ(w)) -> Q``: 8-bit levels in, the conv's output read by exactly one
QuantizeLinear of the same type (its ``qdq_selectors.cc``). A conv that does not fit (its
output feeds a sum, the pixel shuffle or the network output) stays a float conv, and reads
its weights through a DequantizeLinear it computes at every run, which also keeps
onnxruntime from prepacking them. :func:`for_onnxruntime` therefore gives those convs their
dequantized weights ``levels * step`` as float initializers (the same float32 values
DequantizeLinear computes) in the copy onnxruntime loads; the file keeps the integer
levels. Two onnxruntime graph passes that change values are disabled
(:data:`DISABLED_OPTIMIZERS`): ``WeightBiasQuantization`` rounds the float weights of a conv
between a DequantizeLinear and a QuantizeLinear to int8, and ``DoubleQDQPairsRemover``
merges a requantization ``Q(s1) -> DQ -> Q(s2)`` (an output quantizer read by HWGQ) into
one ``Q(s2)``, which drops the first rounding and the signed range. A conv whose output
reaches a single QuantizeLinear through a MaxPool (which onnxruntime moves the
QuantizeLinear above) keeps its integer weights.
:func:`integer_convs` counts the integer convs of onnxruntime's optimised graph.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from quantnas.errors import import_extra

onnx = import_extra("onnx", "onnx", "ONNX export")
numpy_helper = import_extra("onnx.numpy_helper", "onnx", "ONNX export")

__all__ = ["DISABLED_OPTIMIZERS", "for_onnxruntime", "fusable_convs", "integer_convs"]

#: onnxruntime graph passes that would change the values (see above).
DISABLED_OPTIMIZERS = ["WeightBiasQuantization", "DoubleQDQPairsRemover"]
#: Ops onnxruntime moves a QuantizeLinear above (``QDQPropagationTransformer``).
_Q_PASSES = ("MaxPool",)

#: Level types onnxruntime's QLinearConv takes (activations; weights int8 or uint8).
_EIGHT_BIT = (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)


def _zero_point_type(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> int | None:
    """Element type of a Q/DQ node's zero point (its level type), if it is an initializer."""
    if len(node.input) < 3 or node.input[2] not in inits:
        return None
    return inits[node.input[2]].data_type


def fusable_convs(model: onnx.ModelProto, *, shape_only: bool = False) -> set[str]:
    """Names of the Conv nodes that form onnxruntime's QLinearConv node unit (with
    ``shape_only``: all that are ``DQ -> Conv -> one Q``, whatever their level types).
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    found = set()
    for n in graph.node:
        if n.op_type != "Conv" or len(n.input) < 2:
            continue
        dq_x, dq_w = producer.get(n.input[0]), producer.get(n.input[1])
        after = readers.get(n.output[0], [])
        while len(after) == 1 and after[0].op_type in _Q_PASSES and shape_only:
            after = readers.get(after[0].output[0], [])
        if (
            dq_x is None
            or dq_w is None
            or dq_x.op_type != "DequantizeLinear"
            or dq_w.op_type != "DequantizeLinear"
            or dq_w.input[0] not in inits
            or len(after) != 1
            or after[0].op_type != "QuantizeLinear"
            or n.output[0] in outputs
        ):
            continue
        x_type = _zero_point_type(dq_x, inits)
        if shape_only or (
            x_type in _EIGHT_BIT
            and _zero_point_type(dq_w, inits) in _EIGHT_BIT
            and _zero_point_type(after[0], inits) == x_type
        ):
            found.add(n.name)
    return found


def _dequantized(dq: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray:
    """``(levels - zero_point) * scale`` of a constant DequantizeLinear, in float32."""
    levels = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
    zp = np.zeros((), np.float32)
    if len(dq.input) > 2 and dq.input[2] in inits:
        zp = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float32)
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and levels.ndim > 1:
        shape = [1] * levels.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape) if zp.ndim else zp
    return ((levels - zp) * scale).astype(np.float32)


def for_onnxruntime(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose convs that onnxruntime cannot fuse read float weights (same values)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    fused = fusable_convs(out, shape_only=True)
    folded: dict[str, str] = {}
    for n in graph.node:
        if n.op_type != "Conv" or n.name in fused or len(n.input) < 2:
            continue
        dq = producer.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        if any(i and i not in inits for i in dq.input):
            continue
        if dq.output[0] not in folded:
            name = f"{dq.output[0]}_float"
            graph.initializer.append(numpy_helper.from_array(_dequantized(dq, inits), name))
            folded[dq.output[0]] = name
        n.input[1] = folded[dq.output[0]]
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [n for n in graph.node if n.op_type != "DequantizeLinear" or n.output[0] in used]
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        live = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(live)
    return out


def integer_convs(model: onnx.ModelProto | bytes, threads: int = 1) -> tuple[int, int]:
    """``(integer, all)`` convs of onnxruntime's optimised graph of ``model`` (as run by
    :func:`quantnas.deploy.backends.ort_session`).
    """
    ort = import_extra("onnxruntime", "onnx", "onnxruntime (--runtime ort)")

    data = model if isinstance(model, bytes) else model.SerializeToString()
    proto = for_onnxruntime(onnx.load_from_string(data))
    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(int(threads), 1)
        opts.log_severity_level = 3  # no warning about hardware-specific saved graphs
        opts.optimized_model_filepath = str(Path(d) / "optimized.onnx")
        ort.InferenceSession(
            proto.SerializeToString(),
            opts,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=DISABLED_OPTIMIZERS,
        )
        graph = onnx.load(opts.optimized_model_filepath).graph
    ops = [n.op_type for n in graph.node]
    integer = sum(ops.count(t) for t in ("QLinearConv", "ConvInteger"))
    return integer, integer + sum(1 for t in ops if t in ("Conv", "FusedConv", "NchwcConv"))
