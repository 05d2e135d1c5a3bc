"""The ``quantnas`` command line: one verb per pipeline stage.

    quantnas search|train|eval|run|sweep|pareto|info|score|prepare|export|upscale|config [...]

Configs are typed YAML (``--preset NAME``, ``--config FILE``) with ``section.key=value``
overrides. User errors print one line (``error: ...``) and exit with status 2. The parser
is :mod:`quantnas.cli.parser`, the verbs :mod:`quantnas.cli.commands`.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from quantnas.cli.parser import build_parser
from quantnas.config.io import DEFAULT_PRESET
from quantnas.errors import QuantNASError

__all__ = ["DEFAULT_PRESET", "build_parser", "main"]


def _environment_error(e: OSError | MemoryError, args: argparse.Namespace) -> str:
    """One line for a failure of the machine rather than of the input (disk, memory)."""
    run_dir = getattr(args, "run_dir", None)
    resumable = (
        run_dir is not None
        and args.command in ("search", "train", "run")
        and os.path.isdir(run_dir)  # False, not an error, for a name too long for the OS
    )
    hint = f"; fix it, then resume with: quantnas {args.command} --resume {run_dir}"
    if isinstance(e, MemoryError):
        return "out of memory" + (hint if resumable else "; use smaller sizes or batches")
    where = f"{e.filename}: " if e.filename else ""
    what = e.strerror or str(e) or type(e).__name__
    if e.errno == errno.ENOSPC:
        what = "no space left on the device"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        what = f"{what} (expected a folder there, or a path whose parents are folders)"
    return f"{where}{what}" + (hint if resumable else "")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quantnas`` command."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a one-line usage error (status 2)
        return e.code if isinstance(e.code, int) else 2
    from quantnas.device import limit_blas

    limit_blas()  # a run starts here: numpy's BLAS at one thread (not on `import quantnas`)
    if getattr(args, "bitops", None) is not None:  # --bitops 2.4G = search.target_bitops
        args.overrides = [f"search.target_bitops={args.bitops}", *args.overrides]
    try:
        return int(args.func(args) or 0)
    except QuantNASError as e:
        if args.debug:
            raise
        sys.stderr.write(f"error: {e}\n")
        return 2
    except (OSError, MemoryError) as e:
        if args.debug:
            raise
        sys.stderr.write(f"error: {_environment_error(e, args)}\n")
        return 2
    except KeyboardInterrupt:
        run_dir = getattr(args, "run_dir", None)
        if args.command == "sweep":
            hint = "rerun the same quantnas sweep command with --resume"
        elif run_dir is not None and args.command in ("search", "train", "run"):
            hint = f"resume with: quantnas {args.command} --resume {run_dir}"
        else:
            hint = "nothing to resume"
        sys.stderr.write(f"interrupted; {hint}\n")
        return 130
