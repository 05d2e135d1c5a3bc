"""``quantnas export --format onnx|onnx-fp32``: export a trained network and check it.

The self-check (:mod:`~quantnas.deploy.self_check`) runs the written file in onnxruntime
and, if installed, OpenVINO; the runtimes that pass are listed in its metadata.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

from quantnas.deploy.formats import FORMATS
from quantnas.deploy.onnx_export import QuantPoint, export_onnx
from quantnas.deploy.ort_graph import integer_convs
from quantnas.deploy.receptive import lr_halo
from quantnas.deploy.runtime import (
    META_EXACT,
    META_FORMAT,
    META_HALO,
    META_SCALE,
    share_file,
)
from quantnas.deploy.self_check import (
    CHECK_SIZES,
    EXACT_TOL,
    CheckResult,
    check_images,
    check_onnx,
)
from quantnas.errors import QuantNASError

__all__ = [
    "CHECK_SIZES",
    "EXACT_TOL",
    "FORMATS",
    "CheckResult",
    "check_images",
    "check_onnx",
    "export_model",
]

log = logging.getLogger(__name__)

@dataclass
class ExportReport:
    """What :func:`export_model` wrote."""

    path: Path
    opset: int
    check: CheckResult
    halo: int | None
    qdq_pairs: int
    #: ``(integer, all)`` convs of onnxruntime's optimised graph (the bicubic skip's two
    #: fixed convs included).
    integer_convs: tuple[int, int] = (0, 0)
    #: Every runtime's check (the asked one, or onnxruntime and OpenVINO if installed).
    checks: dict[str, CheckResult] | None = None


def _check_runtimes(runtime: str | None) -> list[str]:
    """The asked runtime, or onnxruntime and, if installed, OpenVINO."""
    from quantnas.deploy.onnx_runtimes import check_runtime
    from quantnas.deploy.openvino_runtime import openvino_available

    if runtime is not None:
        check_runtime(runtime)
        if runtime == "torch":
            raise QuantNASError(
                "--runtime torch: the self-check runs an ONNX runtime (ort, openvino)"
            )
        return [runtime]
    return ["ort", "openvino"] if openvino_available() else ["ort"]


def export_model(
    source: str | Path,
    out: str | Path,
    *,
    fmt: str = "onnx",
    opset: int | None = None,
    threads: int = 0,
    runtime: str | None = None,
) -> ExportReport:
    """Export a run directory / trained checkpoint to ``out`` and check it in ``runtime``
    (default: onnxruntime, which must pass, and OpenVINO if installed, which need not).
    The runtimes that pass are listed in the file's metadata (``upscale``'s default).

    Raises:
        QuantNASError: Bad source or format, or a failed check (then nothing is written).

    """
    from quantnas.artifact import find_checkpoint, load_trained
    from quantnas.fileio import atomic_write_bytes
    from quantnas.space import set_quantized

    quantized = FORMATS.get(fmt)
    ckpt = find_checkpoint(source)
    if ckpt.suffix.lower() != ".pt":
        raise QuantNASError(
            f"{ckpt}: ONNX export needs a trained network (a run directory or a .pt checkpoint)"
        )
    trained = load_trained(ckpt)
    net, arch = trained.net, trained.arch
    reference = net
    if not quantized:
        reference = copy.deepcopy(net)
        set_quantized(reference, False)
    halo = lr_halo(net)
    meta = {
        META_SCALE: arch.scale,
        META_HALO: -1 if halo is None else halo,
        META_FORMAT: fmt,
        "quantnas.min_side": trained.min_lr_side,
        **(
            {"quantnas.genotype": trained.genotype.to_text()}
            if trained.genotype is not None
            else {"quantnas.network": trained.label}
        ),
        "quantnas.source": ckpt.name,
    }
    points: list[QuantPoint] = []
    model = export_onnx(net, quantized=quantized, opset=opset, metadata=meta, points=points)
    checks: dict[str, CheckResult] = {}
    for rt in _check_runtimes(runtime):
        checks[rt] = check_onnx(model, reference, arch.scale, points, threads, rt)
        if not checks[rt].passed and (runtime is not None or rt == "ort"):
            raise QuantNASError(
                f"ONNX self-check FAILED, {out} not written: {checks[rt].describe()}"
            )
    model.metadata_props.add(key=META_EXACT, value=",".join(r for r in checks if checks[r].passed))
    result = next(iter(checks.values()))
    path = share_file(atomic_write_bytes(out, model.SerializeToString()))
    pairs = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")
    opset_written = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    integer = integer_convs(model, threads)
    return ExportReport(path, opset_written, result, halo, pairs, integer, checks)
