"""A small ONNX graph builder: named nodes and initializers, opset-aware helpers.

The exporter (:mod:`quantnas.deploy.onnx_export`) walks the network's modules and calls
these helpers; nothing here knows about quantnas modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quantnas.errors import QuantNASError, import_extra

onnx = import_extra("onnx", "onnx", "ONNX export")
TensorProto = onnx.TensorProto
helper = import_extra("onnx.helper", "onnx", "ONNX export")
numpy_helper = import_extra("onnx.numpy_helper", "onnx", "ONNX export")

__all__ = ["INT16_OPSET", "INT64_MAX", "MIN_OPSET", "Graph", "image_value"]

#: Per-channel (``axis``) QuantizeLinear/DequantizeLinear need opset 13.
MIN_OPSET = 13
#: 16-bit Q/DQ containers (int16/uint16) need opset 21.
INT16_OPSET = 21

#: Slice end meaning "to the end" (ONNX clamps it to the axis length).
INT64_MAX = int(np.iinfo(np.int64).max)


class Graph:
    """Collects nodes and initializers of one graph with unique names.

    Args:
        opset: The default-domain opset the graph targets.

    """

    def __init__(self, opset: int) -> None:
        self.opset = int(opset)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count: dict[str, int] = {}
        self._consts: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        """A fresh value name starting with ``hint``."""
        n = self._count.get(hint, 0)
        self._count[hint] = n + 1
        return f"{hint}_{n}" if n else hint

    def const(self, value, hint: str = "const", dtype=None) -> str:
        """Add an initializer (small ones with the same content are shared)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 16 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(arr, name))
        if key is not None:
            self._consts[key] = name
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, **attrs) -> str:
        """Add one single-output node and return its output name."""
        out = self.name(hint or op_type.lower())
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [out], name=self.name(f"n_{out}"), **attrs)
        )
        return out

    # ---------------------------------------------------------------- helpers
    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def slice(self, x: str, start: int, end: int, axis: int, step: int = 1) -> str:
        """``x[start:end:step]`` along ``axis`` (``end`` may be +-INT64_MAX)."""
        return self.op(
            "Slice",
            [
                x,
                self.ints([start], "starts"),
                self.ints([end], "ends"),
                self.ints([axis], "axes"),
                self.ints([step], "steps"),
            ],
            "slice",
        )

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: int = 1) -> str:
        """A Reduce* node; axes are an input from opset 18 (ReduceSum: from 13)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes, "axes")], keepdims=keepdims)
        return self.op(op_type, [x], axes=list(axes), keepdims=keepdims)

    def shape_dims(self, x: str, start: int, end: int) -> str:
        """``shape(x)[start:end]`` as an int64 vector."""
        return self.slice(self.op("Shape", [x], "shape"), start, end, 0)

    def model(
        self,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        *,
        name: str,
        metadata: dict[str, str],
    ) -> onnx.ModelProto:
        """The finished, checked model."""
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", self.opset)],
            producer_name="quantnas",
        )
        model.ir_version = min(model.ir_version, _ir_version_for(self.opset))
        helper.set_model_props(model, metadata)
        try:
            onnx.checker.check_model(model, full_check=True)
        except onnx.checker.ValidationError as e:  # a bug in the exporter, not user input
            first = str(e).strip().splitlines()[0]
            raise QuantNASError(f"the exported ONNX graph is invalid: {first}") from e
        return model


def _ir_version_for(opset: int) -> int:
    """The IR version that ``onnx`` pairs with ``opset`` (older runtimes reject newer IRs)."""
    best = None
    for _, ir, op, *_ in helper.VERSION_TABLE:
        if op == opset and (best is None or ir < best):
            best = ir
    return best if best is not None else helper.VERSION_TABLE[-1][1]


def image_value(name: str, channels: int, height: str, width: str) -> onnx.ValueInfoProto:
    """A float ``(N, channels, height, width)`` value with symbolic batch and sides."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, height, width])
