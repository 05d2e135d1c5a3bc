"""``quantnas export --format onnx|onnx-fp32``: export a trained network and check it.

The self-check (:mod:`~quantnas.deploy.self_check`) runs the written file in onnxruntime
and, if installed, OpenVINO; the runtimes that pass are listed in its metadata.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from quantnas.deploy.formats import FORMATS
from quantnas.deploy.onnx_export import QuantPoint, export_onnx
from quantnas.deploy.onnx_runtimes import (
    META_CHECKED,
    META_EXACT,
    META_FORMAT,
    META_GRAPH_DIGEST,
    META_HALO,
    META_SCALE,
    share_file,
)
from quantnas.deploy.ort_graph import integer_convs
from quantnas.deploy.receptive import lr_halo
from quantnas.deploy.self_check import (
    CHECK_SIZES,
    EXACT_TOL,
    CheckResult,
    check_images,
    check_onnx,
)
from quantnas.errors import QuantNASError, import_extra

onnx = import_extra("onnx", "onnx", "ONNX export")

__all__ = [
    "CHECK_SIZES",
    "EXACT_TOL",
    "FORMATS",
    "CheckResult",
    "CheckedExport",
    "check_images",
    "check_onnx",
    "export_checked",
    "export_model",
    "graph_digest",
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


@dataclass
class CheckedExport:
    """An exported, self-checked model in memory (what :func:`export_model` writes)."""

    model: onnx.ModelProto
    checks: dict[str, CheckResult]
    halo: int | None

    @property
    def exact(self) -> list[str]:
        """The runtimes whose self-check passed."""
        return [r for r, c in self.checks.items() if c.passed]


def graph_digest(model: onnx.ModelProto) -> str:
    """SHA-256 of the serialized graph (nodes, initializers, inputs and outputs): written in
    the file's metadata, so a file whose graph was damaged after writing is recognised.
    """
    return hashlib.sha256(model.graph.SerializeToString()).hexdigest()


def export_checked(
    source: str | Path,
    *,
    fmt: str = "onnx",
    opset: int | None = None,
    threads: int = 0,
    runtime: str | None = None,
    metadata: dict[str, str] | None = None,
    where: str | Path = "the file",
    weight_dtype: str = "int8",
) -> CheckedExport:
    """Export a run directory / trained checkpoint and check it in ``runtime`` (default:
    onnxruntime, which must pass, and OpenVINO if installed, which need not).

    The model's metadata lists the runtimes that passed (:data:`META_EXACT`), the ones
    checked (:data:`META_CHECKED`) and the graph's digest (:data:`META_GRAPH_DIGEST`).

    Args:
        source: Run directory or trained ``.pt`` checkpoint.
        fmt: ``onnx`` or ``onnx-fp32``.
        opset: Default-domain opset (None: the exporter's default).
        threads: Runtime threads of the check (0 = default).
        runtime: Check only this runtime (which must pass).
        metadata: Extra ``metadata_props``.
        where: How a failed check names what was not written.
        weight_dtype: Container of the weight levels, ``int8`` or ``uint8`` (see
            :func:`~quantnas.deploy.onnx_export.export_onnx`).

    Raises:
        QuantNASError: Bad source or format, or a failed check.

    """
    from quantnas.space.build import set_quantized
    from quantnas.training.artifact import find_checkpoint, load_trained

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
            {"quantnas.space.genotype": trained.genotype.to_text()}
            if trained.genotype is not None
            else {"quantnas.network": trained.label}
        ),
        "quantnas.source": ckpt.name,
        **(metadata or {}),
    }
    points: list[QuantPoint] = []
    model = export_onnx(
        net,
        quantized=quantized,
        opset=opset,
        metadata=meta,
        points=points,
        weight_dtype=weight_dtype,
    )
    checks: dict[str, CheckResult] = {}
    for rt in _check_runtimes(runtime):
        must_pass = runtime is not None or rt == "ort"
        try:
            checks[rt] = check_onnx(model, reference, arch.scale, points, threads, rt)
        except QuantNASError as e:
            if must_pass:
                raise
            log.warning("the %s self-check could not run (%s); it is not used", rt, e)
            inf = float("inf")
            checks[rt] = CheckResult(inf, inf, inf, 0, 0, 0, (), rt)
        if not checks[rt].passed and must_pass:
            hint = ""
            if rt == "ort" and quantized and weight_dtype == "int8" and checks[rt].invalid:
                # onnxruntime's u8 x s8 kernel saturates on CPUs without VNNI
                hint = " (on a CPU without VNNI, try --weight-dtype uint8)"
            raise QuantNASError(
                f"ONNX self-check FAILED, {where} not written: {checks[rt].describe()}{hint}"
            )
    model.metadata_props.add(key=META_EXACT, value=",".join(r for r in checks if checks[r].passed))
    model.metadata_props.add(key=META_CHECKED, value=",".join(checks))
    model.metadata_props.add(key=META_GRAPH_DIGEST, value=graph_digest(model))
    return CheckedExport(model, checks, halo)


def export_model(
    source: str | Path,
    out: str | Path,
    *,
    fmt: str = "onnx",
    opset: int | None = None,
    threads: int = 0,
    runtime: str | None = None,
    weight_dtype: str = "int8",
) -> ExportReport:
    """Export a run directory / trained checkpoint to ``out`` and check it in ``runtime``
    (default: onnxruntime, which must pass, and OpenVINO if installed, which need not).
    The runtimes that pass are listed in the file's metadata (``upscale``'s default).

    Raises:
        QuantNASError: Bad source or format, or a failed check (then nothing is written).

    """
    from quantnas.rundir.files import atomic_write_bytes

    done = export_checked(
        source,
        fmt=fmt,
        opset=opset,
        threads=threads,
        runtime=runtime,
        where=out,
        weight_dtype=weight_dtype,
    )
    model, checks = done.model, done.checks
    result = next(iter(checks.values()))
    path = share_file(atomic_write_bytes(out, model.SerializeToString()))
    pairs = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")
    opset_written = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    integer = integer_convs(model, threads)
    return ExportReport(path, opset_written, result, done.halo, pairs, integer, checks)
