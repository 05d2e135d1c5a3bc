"""Minimal reproduction: OpenVINO re-quantizes the sum of two quantized conv outputs
(uint8 levels, zero point 128) with errors of one step at many elements; onnxruntime and the
exact integer arithmetic agree.

    x -> Q/DQ(1/255) -+-> Conv(DQ(int8 w1)) -> Q(s1, 128) -> DQ -+
                      +-> Conv(DQ(int8 w2)) -> Q(s2, 128) -> DQ -+-> Add -> Q(s3, 128) -> DQ -> out

The fused kernel is the first conv with the other conv's levels as a ``sum`` post-op and
both quantizers: ``Convolution <- c1,q1,sum,out`` in OpenVINO's runtime model. Reading one
conv's levels a second time (an extra output, or a one-element Slice of it) keeps the sum
unfused, and the result exact.

Run: python benchmarks/openvino_sum_repro.py   (needs numpy, onnx, onnxruntime, openvino)
"""

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
from onnx import TensorProto as T
from onnx import helper, numpy_helper

C, H, W = 16, 37, 29
rng = np.random.default_rng(0)
w1 = rng.integers(-60, 61, (C, C, 3, 3)).astype(np.int8)
w2 = rng.integers(-60, 61, (C, C, 3, 3)).astype(np.int8)
sw = np.full(C, 0.002, np.float32)
s_x, s1, s2, s3 = (np.float32(v) for v in (1 / 255, 0.079263, 0.063448, 0.091267))
consts = {
    "w1": w1,
    "w2": w2,
    "sw": sw,
    "zw": np.zeros(C, np.int8),
    "sx": s_x,
    "z0": np.uint8(0),
    "s1": s1,
    "s2": s2,
    "s3": s3,
    "z128": np.uint8(128),
}
inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
N = helper.make_node
nodes = [
    N("QuantizeLinear", ["x", "sx", "z0"], ["xq"]),
    N("DequantizeLinear", ["xq", "sx", "z0"], ["xd"]),
    N("DequantizeLinear", ["w1", "sw", "zw"], ["w1d"], axis=0),
    N("DequantizeLinear", ["w2", "sw", "zw"], ["w2d"], axis=0),
    N("Conv", ["xd", "w1d"], ["c1"], pads=[1, 1, 1, 1]),
    N("Conv", ["xd", "w2d"], ["c2"], pads=[1, 1, 1, 1]),
    N("QuantizeLinear", ["c1", "s1", "z128"], ["q1"]),
    N("DequantizeLinear", ["q1", "s1", "z128"], ["d1"]),
    N("QuantizeLinear", ["c2", "s2", "z128"], ["q2"]),
    N("DequantizeLinear", ["q2", "s2", "z128"], ["d2"]),
    N("Add", ["d1", "d2"], ["sum"]),
    N("QuantizeLinear", ["sum", "s3", "z128"], ["q3"]),
    N("DequantizeLinear", ["q3", "s3", "z128"], ["out"]),
]
g = helper.make_graph(
    nodes,
    "add_requant",
    [helper.make_tensor_value_info("x", T.FLOAT, [1, C, H, W])],
    [helper.make_tensor_value_info("out", T.FLOAT, [1, C, H, W])],
    inits,
)
model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
data = model.SerializeToString()

x = (rng.integers(0, 256, (1, C, H, W)) / 255).astype(np.float32)
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
want = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
core = ov.Core()
config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
print(f"openvino {ov.__version__} vs onnxruntime {ort.__version__} (no graph optimisation):")


def compare(label: str, model_bytes: bytes) -> None:
    compiled = core.compile_model(core.read_model(model=model_bytes), "CPU", config)
    got = compiled({"x": x})[0]
    wrong = np.abs(got - want) > 1e-4
    print(
        f"{label}: {int(wrong.sum())} of {wrong.size} outputs differ, max |diff| "
        f"{np.abs(got - want).max():.4g} (one step of the sum's quantizer = {s3:.4g}); "
        f"OpenVINO ran: {layers(compiled)}"
    )


def layers(compiled) -> str:
    """The executed convolutions and what each fused (OpenVINO's runtime model)."""
    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            out.append(f"Convolution <- {info['originalLayersNames'].astype(str)}")
    return "; ".join(out)


compare("as written", data)
# the workaround quantnas uses (quantnas.deploy.openvino_runtime.with_level_taps): a second
# reader of one conv's levels (a one-element Slice, an extra output) keeps the sum unfused
tapped = onnx.ModelProto()
tapped.CopyFrom(model)
tapped.graph.initializer.extend(
    [
        numpy_helper.from_array(np.zeros(4, np.int64), "tap_starts"),
        numpy_helper.from_array(np.ones(4, np.int64), "tap_ends"),
    ]
)
tapped.graph.node.append(N("Slice", ["q2", "tap_starts", "tap_ends"], ["tap"]))
tapped.graph.output.append(helper.make_tensor_value_info("tap", T.UINT8, None))
compare("with a tap on q2", tapped.SerializeToString())
