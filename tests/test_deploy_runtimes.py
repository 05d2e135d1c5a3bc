"""``upscale --runtime ort|openvino|torch`` and the export's self-check per runtime: every
runtime equals PyTorch within 1/255, tiles equal the whole image, bad input is one line."""

import importlib.util
import sys

import numpy as np
import onnx
import pytest

from quantnas.cli import main
from quantnas.deploy.backends import META_EXACT, load_upscaler
from quantnas.deploy.tiling import upscale_tiled
from quantnas.errors import QuantNASError

pytestmark = pytest.mark.usefixtures("one_thread")

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
RUNTIMES = [
    "ort",
    pytest.param(
        "openvino", marks=pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
    ),
]


@pytest.fixture(scope="module")
def onnx_file(trained_tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("runtimes") / "net.onnx"
    assert main(["export", str(trained_tiny_run), "--format", "onnx", "--out", str(out)]) == 0
    return out


def lr_array(h, w, seed=0):
    return np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)


def test_export_lists_the_exact_runtimes(onnx_file):
    meta = {p.key: p.value for p in onnx.load(onnx_file).metadata_props}
    exact = meta[META_EXACT].split(",")
    assert exact[0] == "ort"
    assert ("openvino" in exact) == HAS_OPENVINO


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_runtime_equals_pytorch_and_tiles_are_exact(trained_tiny_run, onnx_file, runtime):
    torch_model = load_upscaler(trained_tiny_run, runtime="torch")
    lr = lr_array(37, 30)
    want = torch_model(lr)
    for source in (onnx_file, trained_tiny_run):  # the file, or a checkpoint exported in memory
        model = load_upscaler(source, threads=1, runtime=runtime)
        assert model.runtime == runtime
        full = model(lr)
        assert np.abs(full - want).max() <= 1 / 255
        tiled = upscale_tiled(model, lr, 4, tile=16, overlap=model.halo)
        assert np.abs(tiled - full).max() <= 1e-5


def test_default_runtime_is_the_fastest_exact_installed(onnx_file, monkeypatch):
    assert load_upscaler(onnx_file).runtime == ("openvino" if HAS_OPENVINO else "ort")
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed
    assert load_upscaler(onnx_file).runtime == "ort"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--runtime", "tensorrt"], "--runtime: unknown runtime 'tensorrt'; expected one of"),
        (["--runtime", "torch"], "--runtime torch runs a run directory or checkpoint"),
    ],
)
def test_upscale_bad_runtime(onnx_file, tmp_path, capsys, args, message):
    code = main(["upscale", str(onnx_file), str(tmp_path), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and message in err
    assert len(err.strip().splitlines()) == 1


def test_runtime_not_installed_is_one_line(onnx_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    code = main(
        ["upscale", str(onnx_file), str(tmp_path), "--out", str(tmp_path / "o")]
        + ["--runtime", "openvino"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        "error: --runtime openvino: openvino is not installed (pip install 'quantnas[openvino]')"
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_onnx_of_another_network_is_one_line(tmp_path, runtime):
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["lr"], ["sr"])],
        "other",
        [onnx.helper.make_tensor_value_info("lr", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
        [onnx.helper.make_tensor_value_info("sr", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    with pytest.raises(QuantNASError, match="not a quantnas export"):
        load_upscaler(path, runtime=runtime)


def test_openvino_shape_it_cannot_take_is_one_line(onnx_file):
    pytest.importorskip("openvino")
    model = load_upscaler(onnx_file, threads=1, runtime="openvino")
    with pytest.raises(QuantNASError, match="OpenVINO cannot take a 2x0 input"):
        model(np.zeros((1, 3, 2, 0), np.float32))


def test_openvino_computes_output_quant_files_exactly():
    """An ``arch.output_quant`` network (every conv output quantized, residual sums of
    quantized conv outputs) passes OpenVINO's self-check: the conv levels that feed a sum
    are kept as outputs, so OpenVINO's wrong fused sum kernel is not used."""
    pytest.importorskip("openvino")
    import torch

    from quantnas.deploy.export import check_images, check_onnx
    from quantnas.deploy.onnx_export import export_onnx
    from quantnas.deploy.openvino_runtime import pinned_levels
    from quantnas.pipeline.resolve import load_config
    from quantnas.space import genotype as gt
    from quantnas.space.build import build_network

    torch.manual_seed(0)
    arch = load_config(overrides=["arch.c_fixed=12", "arch.output_quant=true"]).arch
    net = build_network(gt.DEFAULT, arch)
    with torch.no_grad():
        net.out_scale.fill_(0.7)
        net.train()(torch.from_numpy(check_images(4, sizes=((24, 20),))[0]))
    net.eval()
    points = []
    model = export_onnx(net, points=points)
    assert len(pinned_levels(model.SerializeToString())) >= 2  # the body's conv sums
    check = check_onnx(model, net, 4, points, threads=1, runtime="openvino")
    assert check.passed, check.describe()
