"""``quantnas export --format onnx|onnx-fp32``: export a trained network and check it.

The check runs the exported file in onnxruntime on a real photo (the first embedded
validation photo, bicubic-downscaled, at two LR sizes so the symbolic height and width are
exercised) and compares it with the PyTorch network it came from: the fake-quantized
network for ``onnx``, the same network with every conv at full precision for ``onnx-fp32``.

Tolerance. Both sides compute the same operations in float32 but sum convolutions in a
different order, so values agree to about 1e-6. Where a pre-activation lies within that
distance of a rounding boundary of a quantizer, the two round to neighbouring levels and the
difference of one quantization step spreads over that element's receptive field. The check
therefore passes when

* ``max |onnxruntime - pytorch| <= 1e-4`` (:data:`EXACT_TOL`), or
* at most 1 % of the output values (:data:`FLIP_FRACTION`) differ by more than 1e-4 and
  none by more than 0.05 (:data:`FLIP_TOL`, 13 grey levels of 8 bits): the pattern of a few
  rounding flips, each confined to one receptive field. An exporter error (a wrong scale,
  padding, operation or weight) changes most of the image instead.

Anything else is a failure: the file is not written and the error names both numbers.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from quantnas.deploy.onnx_export import export_onnx
from quantnas.deploy.receptive import lr_halo
from quantnas.deploy.runtime import (
    META_FORMAT,
    META_HALO,
    META_SCALE,
    find_checkpoint,
    ort_session,
    share_file,
)
from quantnas.errors import QuantNASError

__all__ = ["EXACT_TOL", "FLIP_FRACTION", "FLIP_TOL", "CheckResult", "check_onnx", "export_model"]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "onnx-fp32")
EXACT_TOL = 1e-4
FLIP_TOL = 0.05
FLIP_FRACTION = 1e-2
#: LR sizes (H, W) of the check image: odd and even, neither square.
CHECK_SIZES = ((48, 64), (37, 29))


@dataclass
class CheckResult:
    """Outcome of comparing onnxruntime with PyTorch."""

    max_abs: float
    frac_off: float
    sizes: tuple[tuple[int, int], ...]

    @property
    def passed(self) -> bool:
        if self.max_abs <= EXACT_TOL:
            return True
        return self.frac_off <= FLIP_FRACTION and self.max_abs <= FLIP_TOL

    def describe(self) -> str:
        sizes = ", ".join(f"{h}x{w}" for h, w in self.sizes)
        return (
            f"max |onnxruntime - pytorch| = {self.max_abs:.3g}, {100 * self.frac_off:.3f}% of "
            f"values off by > {EXACT_TOL:g} (LR {sizes}; tolerance: max <= {EXACT_TOL:g}, or "
            f"<= {100 * FLIP_FRACTION:g}% off and max <= {FLIP_TOL:g})"
        )


def check_images(scale: int, sizes=CHECK_SIZES) -> list[np.ndarray]:
    """LR crops ``(1, 3, h, w)`` in ``[0, 1]`` of a real photo, bicubic-downscaled."""
    from quantnas.data.bicubic import downscale_uint8
    from quantnas.data.datasets import embedded_images

    _, photo = embedded_images("val")[0]
    out = []
    for h, w in sizes:
        hr = photo[: h * scale, : w * scale]
        if hr.shape[0] < h * scale or hr.shape[1] < w * scale:
            raise QuantNASError(f"check photo too small for LR {h}x{w} at x{scale}")
        lr = downscale_uint8(np.ascontiguousarray(hr), scale).astype(np.float32) / 255.0
        out.append(lr.transpose(2, 0, 1)[None].copy())
    return out


@torch.no_grad()
def check_onnx(
    model_bytes: bytes, reference: torch.nn.Module, scale: int, threads: int = 0
) -> CheckResult:
    """Compare onnxruntime on ``model_bytes`` with ``reference`` on the check images."""
    session = ort_session(model_bytes, threads)
    max_abs, off, total = 0.0, 0, 0
    sizes = []
    for lr in check_images(scale):
        ours = session.run(None, {"lr": lr})[0]
        ref = reference(torch.from_numpy(lr)).numpy()
        if ours.shape != ref.shape:
            raise QuantNASError(
                f"ONNX self-check FAILED: output shape {ours.shape} != PyTorch {ref.shape}"
            )
        d = np.abs(ours.astype(np.float64) - ref)
        max_abs = max(max_abs, float(d.max()))
        off += int((d > EXACT_TOL).sum())
        total += d.size
        sizes.append(tuple(lr.shape[-2:]))
    return CheckResult(max_abs, off / total, tuple(sizes))


@dataclass
class ExportReport:
    """What :func:`export_model` wrote."""

    path: Path
    opset: int
    check: CheckResult
    halo: int | None
    qdq_pairs: int


def export_model(
    source: str | Path,
    out: str | Path,
    *,
    fmt: str = "onnx",
    opset: int | None = None,
    threads: int = 0,
) -> ExportReport:
    """Export a run directory / trained checkpoint to ``out`` and check it in onnxruntime.

    Raises:
        QuantNASError: Bad source or format, or a failed check (then nothing is written).

    """
    from quantnas.checkpoint import atomic_write_bytes
    from quantnas.space import set_quantized
    from quantnas.train import load_model

    if fmt not in FORMATS:
        raise QuantNASError(f"--format {fmt!r}: expected one of {FORMATS}")
    ckpt = find_checkpoint(source)
    if ckpt.suffix.lower() != ".pt":
        raise QuantNASError(
            f"{ckpt}: ONNX export needs a trained network (a run directory or a .pt checkpoint)"
        )
    net, geno, arch = load_model(ckpt)
    quantized = fmt == "onnx"
    reference = net
    if not quantized:
        reference = copy.deepcopy(net)
        set_quantized(reference, False)
    halo = lr_halo(net)
    from quantnas.models.rfdn import MIN_LR_SIZE

    meta = {
        META_SCALE: arch.scale,
        META_HALO: -1 if halo is None else halo,
        META_FORMAT: fmt,
        "quantnas.min_side": MIN_LR_SIZE if arch.space == "rfdn" else 2,
        "quantnas.genotype": geno.to_text(),
        "quantnas.source": ckpt.name,
    }
    model = export_onnx(net, quantized=quantized, opset=opset, metadata=meta)
    data = model.SerializeToString()
    result = check_onnx(data, reference, arch.scale, threads)
    if not result.passed:
        raise QuantNASError(f"ONNX self-check FAILED, {out} not written: {result.describe()}")
    path = share_file(atomic_write_bytes(out, data))
    pairs = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")
    opset_written = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return ExportReport(path, opset_written, result, halo, pairs)
