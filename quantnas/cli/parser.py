"""The argument parser of the ``quantnas`` command (one subcommand per verb)."""

from __future__ import annotations

import argparse
import math
import typing

from quantnas import __version__
from quantnas.cli import commands as c

#: The ``--help`` description of the command.
DESCRIPTION = "The ``quantnas`` command line: one verb per pipeline stage."


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (``error: ...``, exit status 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _finite(text: str, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        want = "a finite number > 0" if positive else "a finite number >= 0"
        raise argparse.ArgumentTypeError(f"expected {want}, got {text[:40]!r}")
    return value


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return _finite(text, positive=True)


def _nonnegative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return _finite(text, positive=False)


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        help="preset config shipped with quantnas (default: 'default'; see `quantnas config "
        "--list`)",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML config file (repeatable; later files win)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. search.epochs=2 arch.bits=[4,8]",
    )


BITOPS_HELP = (
    "BitOps budget of the final network, e.g. 2.4G (search.target_bitops: the exported "
    "genotype lies within [search.target_band x N, N])"
)
RESTART_HELP = "discard what the run directory (out_dir/name) holds and start over"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="quantnas", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"quantnas {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("search", help="differentiable quantization-aware architecture search")
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.add_argument("--bitops", metavar="N", help=BITOPS_HELP)
    s.set_defaults(func=c.cmd_search)

    s = sub.add_parser("train", help="train a genotype with quantization-aware training")
    s.add_argument(
        "--genotype",
        help="genotype file (JSON or Genotype_SR text) or builtin name (default, paper-example)",
    )
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted training")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.set_defaults(func=c.cmd_train)

    s = sub.add_parser("eval", help="PSNR/SSIM (Y channel) of a model or bicubic on image sets")
    s.add_argument("--model", required=True, help="'bicubic' or a trained checkpoint (best.pt)")
    s.add_argument("--data", action="append", help="HR image folder or embedded:val (repeatable)")
    s.add_argument("--benchmarks", help="YAML file {name: {hr: dir, lr: dir}} or embedded:test")
    s.add_argument("--scale", type=_positive_int, help="upscaling factor (required for bicubic)")
    s.add_argument("--save-images", metavar="DIR", help="write SR images here")
    s.add_argument("--device", default="cpu")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=c.cmd_eval)

    s = sub.add_parser("score", help="PSNR/SSIM of SR images against HR images")
    s.add_argument("--sr", required=True, help="SR image or folder")
    s.add_argument("--hr", required=True, help="HR image or folder (matched by file name)")
    s.add_argument("--scale", type=_positive_int, required=True, help="border crop = scale")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=c.cmd_score)

    s = sub.add_parser("info", help="params, size and BitOps of a genotype")
    s.add_argument("genotype", help="genotype file, text or builtin name")
    s.add_argument(
        "--preset", help="take the structure (channels, scale, cells, ADQ, ...) from a preset"
    )
    s.add_argument("--channels", type=_positive_int, help="c_fixed (default 36 or the preset's)")
    s.add_argument("--scale", type=_positive_int, help="default 4 or the preset's")
    s.add_argument("--body-cells", type=_positive_int, help="default 3 or the preset's")
    s.add_argument("--lr-size", type=_positive_int, default=32, help="LR input side for BitOps")
    s.add_argument("--adq", action="store_true", help="with ADQ (adds BN parameters)")
    s.add_argument("--layers", action="store_true", help="list every conv")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=c.cmd_info)

    s = sub.add_parser("prepare", help="cut HR images into training patches")
    s.add_argument("src", help="folder of HR images (e.g. DIV2K_train_HR)")
    s.add_argument("out", help="output folder")
    s.add_argument("--patch", type=_positive_int, default=200)
    s.add_argument("--stride", type=_positive_int, default=70)
    s.add_argument("--scale", type=_positive_int, default=4)
    s.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable/too large images (listed at the end) instead of failing",
    )
    s.set_defaults(func=c.cmd_prepare)

    s = sub.add_parser(
        "export", help="write the genotype of a run (JSON, text, PNG) or its network (ONNX)"
    )
    s.add_argument("source", help="run dir, genotype file or trained checkpoint")
    s.add_argument(
        "--format",
        choices=("json", "text", "png", "onnx", "onnx-fp32"),
        default="json",
        help="onnx: the trained network with QuantizeLinear/DequantizeLinear; onnx-fp32: "
        "the same network without quantization (both checked in onnxruntime)",
    )
    s.add_argument("--out", help="output file (default: stdout)")
    s.add_argument("--opset", type=int, help="ONNX opset (default 17; 21 for 16-bit layers)")
    s.add_argument(
        "--runtime",
        choices=("ort", "openvino"),
        help="run the ONNX self-check in this runtime only (default: onnxruntime, and "
        "OpenVINO too if installed; the file lists those that pass for upscale)",
    )
    s.add_argument("--body-cells", type=_positive_int, default=1, help="for the PNG label")
    s.set_defaults(func=c.cmd_export)

    s = sub.add_parser("upscale", help="upscale image files with a trained or exported network")
    s.add_argument("model", help="run dir, trained checkpoint (.pt) or exported .onnx file")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    s.add_argument("--out", required=True, help="output folder (NAME_x<scale>.png)")
    s.add_argument(
        "--tile", type=int, default=256, help="LR tile side, 0 = whole image (default 256)"
    )
    s.add_argument(
        "--overlap", type=int, help="LR pixels of context per tile side (default: exact halo)"
    )
    s.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")
    s.add_argument(
        "--runtime",
        help="ort, openvino or torch (default: for an .onnx file the fastest installed runtime "
        "that passed its export self-check; torch for a run dir / checkpoint)",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument(
        "--max-pixels",
        type=_positive_int,
        help="largest input and output image (H*W pixels), checked from the file header "
        "before decoding (default: Pillow's MAX_IMAGE_PIXELS, about 89.5 M)",
    )
    s.set_defaults(func=c.cmd_upscale)

    s = sub.add_parser("config", help="print the resolved config (or --list presets)")
    _config_args(s)
    s.add_argument("--list", action="store_true")
    s.set_defaults(func=c.cmd_config)

    s = sub.add_parser("run", help="the main job: search -> train -> eval -> report")
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.add_argument("--bitops", metavar="N", help=BITOPS_HELP)
    s.set_defaults(func=c.cmd_run)

    s = sub.add_parser(
        "sweep", help="trials (search / random / baselines / uniform) -> results + Pareto front"
    )
    s.add_argument(
        "-v", "--values", type=float, nargs="+", help="hardware penalties (sweep.penalties)"
    )
    s.add_argument("-r", "--repeats", type=_positive_int, help="seeds per penalty (sweep.seeds)")
    s.add_argument("-d", "--name", required=True, help="experiment name (folder under out_dir)")
    s.add_argument("-c", "--config", action="append", default=[], metavar="FILE")
    s.add_argument("--preset")
    s.add_argument(
        "--engine",
        choices=("auto", "local", "ray"),
        default="auto",
        help="ray: Ray tasks; local: one trial after another; auto (default): ray if installed",
    )
    s.add_argument("--address", help="existing Ray cluster (default: start a local Ray)")
    s.add_argument(
        "--cpus-per-trial",
        type=_positive_float,
        default=1,
        help="Ray CPUs per trial = torch threads",
    )
    s.add_argument(
        "--gpus-per-trial", type=_nonnegative_float, default=0, help="Ray GPUs per trial"
    )
    s.add_argument("--max-retries", type=int, default=0, help="retries of a failing trial")
    s.add_argument("--resume", action="store_true", help="rerun only the unfinished trials")
    s.add_argument(
        "--extend",
        action="store_true",
        help="with --resume: allow other trials (penalties, seeds, samples) than the sweep "
        "started with",
    )
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=c.cmd_sweep)

    s = sub.add_parser("pareto", help="PSNR-vs-BitOps front of one or more sweeps' results")
    s.add_argument("results", nargs="+", help="results.jsonl / results.csv files or sweep dirs")
    s.add_argument("--set", help="evaluation set (default: test, else validation)")
    s.add_argument("--out", help="output PNG (default: pareto.png next to the first results)")
    s.set_defaults(func=c.cmd_pareto)
    return p
