"""The deployment verbs of the command line (``export --format onnx*``, ``upscale``): their
flags checked, the library called, one summary line printed.
"""

from __future__ import annotations

import argparse
import sys

from quantnas.errors import QuantNASError, import_extra

__all__ = ["export_onnx_command", "upscale_command"]


def _need_onnxruntime() -> None:
    import_extra("onnx", "onnx", "ONNX support")
    import_extra("onnxruntime", "onnx", "ONNX support")


def export_onnx_command(args: argparse.Namespace) -> int:
    """``quantnas export SOURCE --format onnx|onnx-fp32 --out FILE [--opset N]
    [--weight-dtype int8|uint8]``.
    """
    _need_onnxruntime()
    from quantnas.deploy.export import export_model

    if not args.out:
        raise QuantNASError(f"--format {args.format} needs --out FILE.onnx")
    runtime = getattr(args, "runtime", None)
    rep = export_model(
        args.source,
        args.out,
        fmt=args.format,
        opset=args.opset,
        runtime=runtime,
        weight_dtype=getattr(args, "weight_dtype", None) or "int8",
    )
    halo = "unbounded (whole-image statistics)" if rep.halo is None else f"{rep.halo} LR px"
    lines = [
        f"wrote {rep.path} ({args.format}, opset {rep.opset}, {rep.qdq_pairs} activation "
        f"QuantizeLinear/DequantizeLinear pairs, halo {halo})"
    ]
    for name, check in (rep.checks or {"ort": rep.check}).items():
        verdict = "self-check passed" if check.passed else f"{name} is not exact (not used)"
        lines.append(f"{verdict}: {check.describe()}")
    lines.append(
        f"onnxruntime runs {rep.integer_convs[0]} of {rep.integer_convs[1]} convs on integers "
        "(QLinearConv)"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def upscale_command(args: argparse.Namespace) -> int:
    """``quantnas upscale MODEL INPUT... --out DIR [--tile N] [--overlap M] [--runtime R]``.

    A run directory or checkpoint runs, by default, on its cached, self-checked export in
    the fastest installed runtime that computes it exactly (PyTorch without the extra).
    """
    from pathlib import Path

    from quantnas.deploy.backends import load_upscaler
    from quantnas.deploy.onnx_runtimes import check_runtime
    from quantnas.deploy.upscale import upscale_files
    from quantnas.device import set_threads
    from quantnas.rundir.log import setup_logging

    setup_logging()  # the runtime chosen is logged in one line
    check_runtime(args.runtime)  # the runtime's own extra first ([openvino] holds onnx too)
    if Path(args.model).suffix.lower() == ".onnx" or args.runtime in ("ort", "openvino"):
        _need_onnxruntime()
    if args.tile < 0:
        raise QuantNASError(f"--tile must be >= 0 (got {args.tile}); 0 disables tiling")
    if args.overlap is not None and args.overlap < 0:
        raise QuantNASError(f"--overlap must be >= 0 (got {args.overlap})")
    set_threads(args.threads)
    model = load_upscaler(args.model, threads=args.threads, runtime=args.runtime)
    written, errors = upscale_files(
        model,
        args.inputs,
        args.out,
        tile=args.tile,
        overlap=args.overlap,
        progress=not args.no_progress,
        max_pixels=args.max_pixels,
    )
    total = len(written) + len(errors)
    sys.stdout.write(f"upscaled {len(written)} of {total} images x{model.scale} into {args.out}\n")
    return 2 if errors else 0
