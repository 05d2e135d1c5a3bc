"""The export's self-check: an exported file in a runtime against the PyTorch network.

The check runs the exported file in a runtime (onnxruntime or OpenVINO) on a real photo
(the first embedded validation photo, bicubic-downscaled, at two LR sizes so the symbolic
height and width are exercised) and compares it with the PyTorch network it came from: the
fake-quantized network for ``onnx``, the same network with every conv at full precision for
``onnx-fp32``.

Tolerance. Both sides compute the same operations in float32 but sum convolutions in a
different order, so values agree to about 1e-6 -- except where a quantizer's input lies
within that distance of a rounding boundary: there the two may pick neighbouring levels,
and the difference of one step spreads over that element's receptive field. The check
therefore also reads onnxruntime's integer levels of every activation quantizer (the
QuantizeLinear outputs, exposed as extra outputs of a copy of the graph) and requires:

* every onnxruntime level is a correct rounding of PyTorch's input to that quantizer:
  ``|clamp(x) - level * step| <= step / 2 + 1e-5 (1 + |x|)``;
* with those levels fed to PyTorch's quantizers (ties resolved as onnxruntime resolved
  them), ``max |onnxruntime - pytorch| <= 1e-4`` (:data:`EXACT_TOL`) on the output;
* the written file and the copy with extra outputs agree to 1e-4.

The plain ``max |onnxruntime - pytorch|`` (no levels fed) is printed too, with the number
of ties resolved differently; for the trained test networks it is 0 ties and about 2e-7 on
an AVX-512 CPU, and 1 tie of about 5e5 levels and 0.025 on a Zen 3 CPU (AVX2): which inputs
land on a tie follows the CPU's float rounding.
Anything else is a failure: the file is not written and the error names both numbers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from quantnas.deploy.onnx_emitter import QuantPoint
from quantnas.deploy.onnx_runtimes import onnx_runner
from quantnas.errors import QuantNASError, import_extra
from quantnas.quant.out_quant import OutputQuantizer
from quantnas.quant.quantizers import HWGQ, ImageQuantizer

onnx = import_extra("onnx", "onnx", "ONNX export")

__all__ = ["CHECK_SIZES", "EXACT_TOL", "CheckResult", "check_images", "check_onnx"]

EXACT_TOL = 1e-4
#: How the check's messages name the runtimes.
RUNTIME_NAMES = {"ort": "onnxruntime", "openvino": "openvino"}
#: LR sizes (H, W) of the check image: odd and even, neither square.
CHECK_SIZES = ((48, 64), (37, 29))


@dataclass
class CheckResult:
    """Outcome of comparing onnxruntime with PyTorch.

    Attributes:
        max_abs: Written file vs PyTorch, as they are.
        forced_max: onnxruntime vs PyTorch with onnxruntime's levels fed to PyTorch.
        file_vs_probe: Written file vs its copy with the levels as extra outputs.
        invalid: Levels that are not a rounding of PyTorch's quantizer input.
        ties: Levels where PyTorch itself rounded to a neighbouring level.
        levels: Levels compared.
        sizes: LR sizes of the check images.

    """

    max_abs: float
    forced_max: float
    file_vs_probe: float
    invalid: int
    ties: int
    levels: int
    sizes: tuple[tuple[int, int], ...]
    runtime: str = "ort"

    @property
    def passed(self) -> bool:
        return (
            self.invalid == 0 and self.forced_max <= EXACT_TOL and self.file_vs_probe <= EXACT_TOL
        )

    def describe(self) -> str:
        sizes = ", ".join(f"{h}x{w}" for h, w in self.sizes)
        name = RUNTIME_NAMES.get(self.runtime, self.runtime)
        text = f"max |{name} - pytorch| = {self.max_abs:.3g} (LR {sizes})"
        if self.levels:
            text += (
                f"; {self.ties} of {self.levels} activation levels rounded the other way at a "
                f"tie, {self.invalid} not a rounding of PyTorch's input; with {name}'s "
                f"levels: {self.forced_max:.3g}"
            )
        if self.file_vs_probe > EXACT_TOL:
            text += f"; the file differs from its copy with the levels by {self.file_vs_probe:.3g}"
        return text + f" (tolerance {EXACT_TOL:g})"


def check_images(scale: int, sizes=CHECK_SIZES) -> list[np.ndarray]:
    """LR crops ``(1, 3, h, w)`` in ``[0, 1]`` of a real photo, bicubic-downscaled."""
    from quantnas.data.bicubic import downscale_uint8
    from quantnas.data.sources import embedded_images

    _, photo = embedded_images("val")[0]
    out = []
    for h, w in sizes:
        hr = photo[: h * scale, : w * scale]
        if hr.shape[0] < h * scale or hr.shape[1] < w * scale:
            raise QuantNASError(f"check photo too small for LR {h}x{w} at x{scale}")
        lr = downscale_uint8(np.ascontiguousarray(hr), scale).astype(np.float32) / 255.0
        out.append(lr.transpose(2, 0, 1)[None].copy())
    return out


def probe_outputs(points: list[QuantPoint]) -> list[QuantPoint]:
    """One point per distinct levels tensor (quantizers may share one), in graph order."""
    seen: dict[str, QuantPoint] = {}
    for p in points:
        seen.setdefault(p.output, p)
    return list(seen.values())


def _probe(model: onnx.ModelProto, points: list[QuantPoint]) -> bytes:
    """A copy of ``model`` that also outputs the integer levels of every quantizer."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for p in probe_outputs(points):
        probe.graph.output.append(onnx.helper.make_tensor_value_info(p.output, p.elem_type, None))
    return probe.SerializeToString()


def _grid(quantizer: torch.nn.Module) -> tuple[torch.Tensor, float, float]:
    """Step (float32) and range ``[low, high]`` of a PyTorch activation quantizer."""
    if isinstance(quantizer, ImageQuantizer):
        return torch.tensor(1.0 / (2**quantizer.bits - 1), dtype=torch.float32), 0.0, 1.0
    if isinstance(quantizer, HWGQ):
        return torch.tensor(quantizer.step, dtype=torch.float32), 0.0, quantizer.clip
    if isinstance(quantizer, OutputQuantizer):
        step = quantizer.step.detach().float().clamp_min(1e-8)
        return step, float(step) * quantizer.qn, float(step) * quantizer.qp
    raise QuantNASError(
        f"ONNX self-check: {type(quantizer).__name__} is not an activation quantizer"
    )


class _LevelFeeder:
    """Forward hooks that replace PyTorch's activation levels by onnxruntime's.

    The step and range come from the PyTorch quantizer itself, so an export with a wrong
    step or clip shows up as levels that are no rounding of PyTorch's input.
    """

    def __init__(self, net: torch.nn.Module, points: list[QuantPoint]) -> None:
        self.points = points
        self.levels: dict[str, np.ndarray] = {}
        self.invalid = self.ties = self.count = 0
        modules = dict(net.named_modules())
        self.handles = []
        for p in points:
            if p.module not in modules:
                raise QuantNASError(f"ONNX self-check: no module {p.module!r} in the network")
            self.handles.append(modules[p.module].register_forward_hook(self._hook(p)))

    def _hook(self, p: QuantPoint):
        def hook(module, inputs, output):
            step, low, high = _grid(module)
            x = inputs[0]
            got = self.levels[p.output]
            if tuple(got.shape) != tuple(x.shape):
                self.invalid += x.numel()
                return output
            level = torch.from_numpy(got.astype(np.float32) - p.zero_point)
            forced = level * step
            slack = step / 2 + 1e-5 * (1 + x.abs())
            self.invalid += int(((x.clamp(low, high) - forced).abs() > slack).sum())
            self.ties += int((torch.round(output / step) != level).sum())
            self.count += level.numel()
            return forced

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def check_onnx(
    model: onnx.ModelProto,
    reference: torch.nn.Module,
    scale: int,
    points: list[QuantPoint] | None = None,
    threads: int = 0,
    runtime: str = "ort",
) -> CheckResult:
    """Compare ``runtime`` (``ort`` or ``openvino``) on ``model`` with ``reference`` on the
    check images.

    Args:
        model: The exported model.
        reference: The PyTorch network it should compute.
        scale: Upscaling factor (for the check images).
        points: The activation quantizers of the export (see :func:`export_onnx`).
        threads: Runtime threads (0 = default).
        runtime: Where the model runs.

    """
    points = list(points or [])
    data = model.SerializeToString()
    session = onnx_runner(data, runtime, threads)
    probe = onnx_runner(_probe(model, points), runtime, threads) if points else session
    feeder_net = copy.deepcopy(reference)
    feeder = _LevelFeeder(feeder_net, points)
    max_abs = forced_max = file_vs_probe = 0.0
    sizes = []
    try:
        for lr in check_images(scale):
            ours = session(lr)[0]
            outs = probe(lr)
            ref = reference(torch.from_numpy(lr)).numpy()
            if ours.shape != ref.shape:
                raise QuantNASError(
                    f"ONNX self-check FAILED: output shape {ours.shape} != PyTorch {ref.shape}"
                )
            names = [p.output for p in probe_outputs(points)]
            feeder.levels = dict(zip(names, outs[1:], strict=True))
            forced = feeder_net(torch.from_numpy(lr)).numpy()
            max_abs = max(max_abs, float(np.abs(ours.astype(np.float64) - ref).max()))
            forced_max = max(forced_max, float(np.abs(outs[0].astype(np.float64) - forced).max()))
            file_vs_probe = max(file_vs_probe, float(np.abs(ours - outs[0]).max()))
            sizes.append(tuple(lr.shape[-2:]))
    finally:
        feeder.close()
    return CheckResult(
        max_abs,
        forced_max,
        file_vs_probe,
        feeder.invalid,
        feeder.ties,
        feeder.count,
        tuple(sizes),
        runtime,
    )
