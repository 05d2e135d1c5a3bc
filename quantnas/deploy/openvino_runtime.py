"""OpenVINO as a runtime of exported files (the optional ``[openvino]`` extra).

OpenVINO runs the QDQ file's convs on u8 kernels (its low-precision transformations turn
each Q/DQ pair into a FakeQuantize). Two settings keep it exact: static shapes (with
dynamic height and width it computed wrong values, max error 2.9, on a quantized export),
so the model is reshaped and compiled once per input size and the compiled models are kept
(tiles give a few fixed sizes); and ``INFERENCE_PRECISION_HINT = f32``, since on CPUs with
bf16 instructions (AVX512-BF16, AMX) OpenVINO would otherwise compute the float parts in
bfloat16.

One more setting keeps ``arch.output_quant`` files exact: OpenVINO's CPU plugin fuses a
residual sum of two quantized conv outputs into one convolution (the other conv's levels
as a ``sum`` post-op, then the sum's quantizer), and that fused kernel re-quantizes wrongly,
one step off at about a fifth of the elements (``benchmarks/openvino_sum_repro.py``
reproduces it with two convs and an Add). Reading the levels of one of the two convs keeps
the fusion from happening, so :func:`pinned_levels` names the QuantizeLinear outputs of
every conv whose levels reach an Add, and :func:`with_level_taps` gives each a second
reader: a one-element Slice, an extra output that is never returned (a whole tensor as an
output would cost a layout change per run: 0.042 s instead of 0.032 s for the default
genotype at 256x256, 1 thread). The export's self-check runs the model the same way.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from quantnas.errors import QuantNASError

__all__ = [
    "CACHED_SIZES",
    "OpenVinoModel",
    "openvino_available",
    "pinned_levels",
    "with_level_taps",
]

log = logging.getLogger(__name__)

#: Compiled models (one per input shape) kept per file; the least recently used goes first.
CACHED_SIZES = 8


def openvino_available() -> bool:
    """Whether the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _proto(model: str | Path | bytes):
    """The parsed ONNX model, or None (no onnx package, or not ONNX: OpenVINO reports it)."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        return onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    except Exception:  # protobuf's and onnx's own exception types
        return None


def pinned_levels(model) -> list[str]:
    """The QuantizeLinear outputs (integer levels) of convs whose dequantized levels feed an
    Add, which OpenVINO must not fuse into the conv (see above).

    Args:
        model: An ONNX ``ModelProto``, its bytes or its file.

    """
    proto = model if hasattr(model, "graph") else _proto(model)
    if proto is None:
        return []
    nodes = proto.graph.node
    producer = {o: n for n in nodes for o in n.output}
    readers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in proto.graph.output}
    pins = []
    for n in nodes:
        if n.op_type != "QuantizeLinear" or n.output[0] in outputs:
            continue
        src = producer.get(n.input[0])
        if src is None or src.op_type != "Conv":
            continue
        dqs = [r for r in readers.get(n.output[0], []) if r.op_type == "DequantizeLinear"]
        if any(r.op_type == "Add" for d in dqs for r in readers.get(d.output[0], [])):
            pins.append(n.output[0])
    return pins


def with_level_taps(model: str | Path | bytes) -> tuple[str | Path | bytes, int]:
    """``(model, outputs)``: the model with a one-element Slice reading each of
    :func:`pinned_levels` as an extra output (unchanged if there are none), and how many
    outputs the original has.
    """
    proto = _proto(model)
    if proto is None:
        return model, 1
    n_outputs = len(proto.graph.output)
    pins = pinned_levels(proto)
    if not pins:
        return model, n_outputs
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(np.zeros(4, np.int64), "quantnas_tap_starts"),
            numpy_helper.from_array(np.ones(4, np.int64), "quantnas_tap_ends"),
        ]
    )
    for i, name in enumerate(pins):
        out = f"quantnas_tap_{i}"
        g.node.append(
            helper.make_node(
                "Slice", [name, "quantnas_tap_starts", "quantnas_tap_ends"], [out], name=out
            )
        )
        g.output.append(helper.make_tensor_value_info(out, TensorProto.UINT8, None))
    log.debug("OpenVINO: %d conv levels read by a tap (no fused sums)", len(pins))
    return proto.SerializeToString(), n_outputs


class OpenVinoModel:
    """An ONNX model in OpenVINO's CPU plugin, compiled per static input shape.

    Args:
        model: The file or its serialized bytes.
        threads: Inference threads (0 = OpenVINO's default).
        where: How errors name the model.

    """

    def __init__(self, model: str | Path | bytes, threads: int = 0, where: str = "") -> None:
        try:
            import openvino as ov
        except ImportError:
            raise QuantNASError(
                "--runtime openvino: OpenVINO is not installed (pip install 'quantnas[openvino]')"
            ) from None
        self.where = where or (str(model) if not isinstance(model, bytes) else "the model")
        self.core = ov.Core()
        self.config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads > 0:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        model, n_outputs = with_level_taps(model)
        try:
            if isinstance(model, bytes):
                self.model = self.core.read_model(model=model)
            else:
                self.model = self.core.read_model(str(model))
        except Exception as e:  # OpenVINO's own exception types
            raise QuantNASError(f"{self.where}: OpenVINO cannot read it ({_first(e)})") from e
        self.n_outputs = min(n_outputs, len(self.model.outputs))
        self.compiled: OrderedDict[tuple[int, ...], object] = OrderedDict()

    def _compiled_for(self, shape: tuple[int, ...]):
        hit = self.compiled.get(shape)
        if hit is not None:
            self.compiled.move_to_end(shape)
            return hit
        model = self.model.clone()
        try:
            model.reshape({model.inputs[0].any_name: list(shape)})
            compiled = self.core.compile_model(model, "CPU", self.config)
        except Exception as e:  # OpenVINO's own exception types
            size = f"{shape[-2]}x{shape[-1]}" if len(shape) == 4 else "x".join(map(str, shape))
            raise QuantNASError(
                f"{self.where}: OpenVINO cannot take a {size} input ({_first(e)})"
            ) from e
        self.compiled[shape] = compiled
        if len(self.compiled) > CACHED_SIZES:
            self.compiled.popitem(last=False)
        log.debug("OpenVINO: compiled %s for input %s", self.where, shape)
        return compiled

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """All outputs of the model for one input array."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        compiled = self._compiled_for(tuple(int(s) for s in x.shape))
        try:
            result = compiled(x)
        except Exception as e:  # OpenVINO's own exception types
            size = f"{x.shape[-2]}x{x.shape[-1]}"
            raise QuantNASError(f"OpenVINO failed on a {size} input ({_first(e)})") from e
        return [np.asarray(result[i]) for i in range(self.n_outputs)]

    def convs(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """``(u8 / i8, all)`` convolutions OpenVINO executes for an input of ``shape``."""
        compiled = self._compiled_for(tuple(shape))
        integer = total = 0
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
            if kind != "Convolution":
                continue
            total += 1
            prec = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else ""
            integer += prec in ("u8", "i8")
        return integer, total
