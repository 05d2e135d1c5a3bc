"""Exports that run on integer kernels: the exact rewrites (shared Q, integer-side clip,
float weights for convs onnxruntime cannot fuse, one DepthToSpace) and ``arch.output_quant``
(every conv a QLinearConv in onnxruntime's optimised graph, equal to the fake-quant net)."""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from quantnas.deploy.backends import ort_session
from quantnas.deploy.export import EXACT_TOL, check_images, check_onnx
from quantnas.deploy.onnx_export import export_onnx
from quantnas.deploy.ort_graph import for_onnxruntime, fusable_convs, integer_convs
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.quant.conv import QConv2d
from quantnas.quant.out_quant import OutputQuantizer
from quantnas.space import genotype as gt
from quantnas.space.build import build_network

pytestmark = pytest.mark.usefixtures("one_thread")


def with_bits(geno, bits):
    return gt.Genotype.from_pairs(
        {b: [(c.op, bits) for c in layers] for b, layers in geno.blocks.items()}
    )


DEFAULT4 = with_bits(gt.DEFAULT, 4)


def tiny_net(geno, *overrides, calibrate=True, seed=0):
    """A c12 network with a non-zero output scale; output quantizers calibrated on a photo."""
    torch.manual_seed(seed)
    arch = load_config(overrides=["arch.c_fixed=12", *overrides]).arch
    net = build_network(geno, arch)
    with torch.no_grad():
        if net.out_scale is not None:
            net.out_scale.fill_(0.7)
        if calibrate:
            net.train()(torch.from_numpy(check_images(arch.scale, sizes=((24, 20),))[0]))
    return net.eval()


def reference_ort(model, x):
    """onnxruntime on the file as written, no graph optimisation (the reference executor)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"lr": x})[0]


# ------------------------------------------------------------------ exact rewrites
@pytest.mark.parametrize("geno,fused", [(gt.DEFAULT, 3), (DEFAULT4, 3)], ids=["8bit", "4bit"])
def test_exact_rewrites_keep_the_output_and_fuse_convs(geno, fused):
    net = tiny_net(geno)
    points = []
    model = export_onnx(net, points=points)
    ops = [n.op_type for n in model.graph.node]
    # one QuantizeLinear per tensor and step: the skip and body convs of a cell share one
    qs = [(n.input[0], n.input[1]) for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert len(qs) == len(set(qs)) == len(points) - net_cells(net)
    assert ops.count("DepthToSpace") == 1  # network output and bicubic skip together
    assert ("Clip" in ops) == (geno is DEFAULT4)
    # the session onnxruntime runs: float weights exactly where a conv cannot fuse
    prepared = for_onnxruntime(model)
    n_conv = sum(1 for m in net.modules() if isinstance(m, QConv2d))
    assert len(fusable_convs(model)) == fused
    convs = [n for n in prepared.graph.node if n.op_type == "Conv"]
    float_w = [n for n in convs if n.input[1].endswith("_float")]
    assert len(float_w) == n_conv - fused
    assert integer_convs(model) == (fused, n_conv + 2)  # + the two bicubic convs
    x = check_images(4, sizes=((23, 31),))[0]
    got = ort_session(model.SerializeToString(), threads=1).run(None, {"lr": x})[0]
    assert np.abs(got - reference_ort(model, x)).max() <= EXACT_TOL
    res = check_onnx(model, net, 4, points, threads=1)
    assert res.passed and res.invalid == 0, res.describe()


def net_cells(net):
    return len(net.body.fn)  # each cell's skip and body quantizers share one Q


def test_integer_side_clip_equals_float_clip():
    """``Q -> Clip(0, 2^b - 1)`` gives the levels of ``Clip(0, step (2^b - 1)) -> Q``."""
    net = tiny_net(DEFAULT4)
    model = export_onnx(net)
    x = np.concatenate([check_images(4, sizes=((23, 31),))[0]] * 2)
    x[1] *= 40.0  # far beyond the 4-bit range: the clip decides
    got = ort_session(model.SerializeToString(), threads=1).run(None, {"lr": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-3  # ties aside (the self-check handles those)


# ------------------------------------------------------------------ arch.output_quant
def test_output_quant_network_structure():
    net = tiny_net(gt.DEFAULT, "arch.output_quant=true", calibrate=False)
    quants = [m for m in net.modules() if isinstance(m, OutputQuantizer)]
    # head, 2 cells x (skip, body, parallel sum, residual), body residual, upsample
    assert len(quants) == 1 + 2 * 4 + 1 + 1
    assert all(m.pending_init for m in quants)
    net.train()(torch.rand(1, 3, 8, 8))
    assert not any(m.pending_init for m in quants)
    state = copy.deepcopy(net.state_dict())
    again = tiny_net(gt.DEFAULT, "arch.output_quant=true", calibrate=False, seed=1)
    again.load_state_dict(state)  # a loaded step is a trained step
    assert not any(m.pending_init for m in again.modules() if isinstance(m, OutputQuantizer))


@pytest.mark.parametrize(
    "geno,overrides",
    [(gt.DEFAULT, []), (DEFAULT4, []), (gt.PAPER_EXAMPLE, ["arch.cell_type=A"])],
    ids=["8bit", "4bit", "paper-cellA"],
)
def test_output_quant_export_is_integer_and_equals_fake_quant(geno, overrides):
    net = tiny_net(geno, "arch.output_quant=true", *overrides)
    points = []
    model = export_onnx(net, points=points)
    n_conv = sum(1 for m in net.modules() if isinstance(m, QConv2d))
    assert integer_convs(model) == (n_conv, n_conv + 2)  # all but the two bicubic convs
    res = check_onnx(model, net, 4, points, threads=1)
    assert res.passed and res.invalid == 0, res.describe()
    assert res.ties <= 1e-3 * res.levels


def test_output_quant_sums_are_qlinearadd(tmp_path):
    net = tiny_net(gt.DEFAULT, "arch.output_quant=true")
    data = for_onnxruntime(export_onnx(net)).SerializeToString()
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node]
    assert ops.count("QLinearAdd") == 2 * 2 + 1  # 2 cells x (parallel sum, residual) + body


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["arch.output_quant=true", "arch.skip_mode=false"], "arch.output_quant"),
        (["arch.output_quant=true", "arch.space=rfdn"], "arch.output_quant"),
    ],
)
def test_output_quant_bad_config(overrides, message):
    with pytest.raises(QuantNASError, match=message):
        load_config(overrides=overrides)
