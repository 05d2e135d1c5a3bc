"""The argument parser of the ``quantnas`` command (one subcommand per verb)."""

from __future__ import annotations

import argparse
import typing

from quantnas import __version__
from quantnas.cli import commands as c
from quantnas.cli.arg_types import (
    NumbersThenRest,
    nonnegative_float,
    positive_float,
    positive_int,
)
from quantnas.cli.help_text import VERBS
from quantnas.cli.listing import add_verbs as add_listing_verbs
from quantnas.data.images import GRAY_MODES
from quantnas.deploy.formats import FORMATS, WEIGHT_DTYPES
from quantnas.deploy.onnx_runtimes import RUNTIMES
from quantnas.engines import ENGINES

#: The ``--help`` description of the command.
DESCRIPTION = "The ``quantnas`` command line: one verb per pipeline stage."


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (``error: ...``, exit status 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


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


DEBUG_HELP = "show tracebacks for errors (before or after the verb)"


def _verb(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """The subparser of verb ``name`` with its summary, description and examples
    (:data:`quantnas.cli.help_text.VERBS`), and ``--debug`` (also accepted after the verb).
    """
    summary, description, examples = VERBS[name]
    p = sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}",
        epilog="examples:\n" + "".join(f"  {line}\n" for line in examples.splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # SUPPRESS: without the flag here, the value parsed before the verb stays
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return p


BITOPS_HELP = (
    "BitOps budget of the final network, e.g. 2.4G (search.target_bitops: the exported "
    "genotype lies within [search.target_band x N, N])"
)
RESTART_HELP = "discard what the run directory (out_dir/name) holds and start over"


def _budget_verb(sub: argparse._SubParsersAction, name: str, func: typing.Callable) -> None:
    """A verb that searches (``search``, ``run``): config, ``--resume``, ``--restart``,
    ``--bitops``.
    """
    s = _verb(sub, name)
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help=f"continue an interrupted {name}")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.add_argument("--bitops", metavar="N", help=BITOPS_HELP)
    s.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="quantnas", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"quantnas {__version__}")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _budget_verb(sub, "search", c.cmd_search)

    s = _verb(sub, "train")
    s.add_argument(
        "--genotype",
        help="genotype file (JSON or Genotype_SR text), builtin name (default, paper-example), "
        "or a run directory / trained checkpoint (its genotype)",
    )
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted training")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.set_defaults(func=c.cmd_train)

    s = _verb(sub, "eval")
    s.add_argument(
        "--model",
        required=True,
        help="'bicubic', a run directory or a trained checkpoint (best.pt / checkpoint.pt)",
    )
    s.add_argument("--data", action="append", help="HR image folder or embedded:val (repeatable)")
    s.add_argument("--benchmarks", help="YAML file {name: {hr: dir, lr: dir}} or embedded:test")
    s.add_argument("--scale", type=positive_int, help="upscaling factor (required for bicubic)")
    s.add_argument("--save-images", metavar="DIR", help="write SR images here")
    s.add_argument("--device", default="cpu")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=c.cmd_eval)

    s = _verb(sub, "score")
    s.add_argument("--sr", required=True, help="SR image or folder")
    s.add_argument("--hr", required=True, help="HR image or folder (matched by file name)")
    s.add_argument("--scale", type=positive_int, required=True, help="border crop = scale")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=c.cmd_score)

    s = _verb(sub, "info")
    s.add_argument(
        "genotype",
        metavar="NETWORK",
        help="run directory, trained checkpoint, or genotype file / text / builtin name",
    )
    s.add_argument(
        "--preset",
        help="take the structure (channels, scale, cells, ADQ, ...) from a preset (default: "
        "'default', as every verb)",
    )
    s.add_argument("--channels", type=positive_int, help="arch.c_fixed (default: the preset's)")
    s.add_argument("--scale", type=positive_int, help="arch.scale (default: the preset's)")
    s.add_argument(
        "--body-cells", type=positive_int, help="arch.body_cells (default: the preset's)"
    )
    s.add_argument("--lr-size", type=positive_int, default=32, help="LR input side for BitOps")
    s.add_argument("--adq", action="store_true", help="with ADQ (adds BN parameters)")
    s.add_argument("--layers", action="store_true", help="list every conv")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=c.cmd_info)

    s = _verb(sub, "prepare")
    s.add_argument("src", help="folder of HR images (e.g. DIV2K_train_HR)")
    s.add_argument("out", help="output folder")
    s.add_argument("--patch", type=positive_int, default=200)
    s.add_argument("--stride", type=positive_int, default=70)
    s.add_argument("--scale", type=positive_int, default=4)
    s.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable/too large images (listed at the end) instead of failing",
    )
    s.add_argument(
        "--gray",
        choices=GRAY_MODES.names(),
        default="replicate",
        help="grayscale images: replicate the channel to RGB (default) or reject them",
    )
    s.set_defaults(func=c.cmd_prepare)

    s = _verb(sub, "export")
    s.add_argument("source", help="run dir, genotype file or trained checkpoint")
    s.add_argument(
        "--format",
        choices=("json", "text", "png", *FORMATS.names()),
        default="json",
        help="onnx: the trained network with QuantizeLinear/DequantizeLinear; onnx-fp32: "
        "the same network without quantization (both checked in onnxruntime)",
    )
    s.add_argument("--out", help="output file (default: stdout)")
    s.add_argument("--opset", type=int, help="ONNX opset (default 17; 21 for 16-bit layers)")
    s.add_argument(
        "--runtime",
        choices=tuple(n for n in RUNTIMES.names() if RUNTIMES.get(n).module),
        help="run the ONNX self-check in this runtime only (default: onnxruntime, and "
        "OpenVINO too if installed; the file lists those that pass for upscale)",
    )
    s.add_argument(
        "--weight-dtype",
        choices=WEIGHT_DTYPES,
        help="container of the weight levels in an onnx file (default int8; uint8 at zero "
        "point 128 is exact in onnxruntime on CPUs without VNNI)",
    )
    s.add_argument("--body-cells", type=positive_int, default=1, help="for the PNG label")
    s.set_defaults(func=c.cmd_export)

    s = _verb(sub, "upscale")
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
        help="ort, openvino or torch (default: the fastest installed runtime that passed the "
        "export self-check; a run dir / checkpoint is exported once, cached beside it)",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument(
        "--max-pixels",
        type=positive_int,
        help="largest input and output image (H*W pixels), checked from the file header "
        "before decoding (default: Pillow's MAX_IMAGE_PIXELS, about 89.5 M)",
    )
    s.set_defaults(func=c.cmd_upscale)

    s = _verb(sub, "config")
    _config_args(s)
    s.add_argument("--list", action="store_true")
    s.set_defaults(func=c.cmd_config)

    _budget_verb(sub, "run", c.cmd_run)

    s = _verb(sub, "sweep")
    s.add_argument(
        "-v",
        "--penalties",
        "--values",
        dest="penalties",
        nargs="+",
        action=NumbersThenRest,
        metavar="P",
        help="hardware penalties (sweep.penalties); the numbers up to the first token that "
        "is not one (key=value overrides may follow)",
    )
    s.add_argument(
        "-r", "--repeats", type=positive_int, metavar="N", help="seeds per penalty (sweep.seeds)"
    )
    s.add_argument("-d", "--name", required=True, help="experiment name (folder under out_dir)")
    s.add_argument("-c", "--config", action="append", default=[], metavar="FILE")
    s.add_argument("--preset")
    s.add_argument(
        "--engine",
        choices=ENGINES.names(),
        default="auto",
        help="ray: Ray tasks; processes: a pool of worker processes here (cpus-per-trial "
        "threads each; on CUDA with --gpus-per-trial > 0); local: one trial after another; "
        "auto (default): ray if installed",
    )
    s.add_argument("--address", help="existing Ray cluster (default: start a local Ray)")
    s.add_argument(
        "--cpus-per-trial",
        type=positive_float,
        default=1,
        help="CPUs per trial = torch threads (ray, processes)",
    )
    s.add_argument(
        "--gpus-per-trial",
        type=nonnegative_float,
        default=0,
        help="GPUs per trial (ray, processes: > 0 runs on CUDA)",
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

    s = _verb(sub, "pareto")
    s.add_argument("results", nargs="+", help="results.jsonl / results.csv files or sweep dirs")
    s.add_argument("--set", help="evaluation set (default: test, else validation)")
    s.add_argument("--out", help="output PNG (default: pareto.png next to the first results)")
    s.set_defaults(func=c.cmd_pareto)
    add_listing_verbs(sub, _verb, p)  # list, completion
    return p
