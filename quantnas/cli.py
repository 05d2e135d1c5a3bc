"""The ``quantnas`` command line: one verb per pipeline stage.

    quantnas search|train|eval|run|sweep|pareto|info|score|prepare|export|upscale|config [...]

Configs are typed YAML (``--preset NAME``, ``--config FILE``) with ``section.key=value``
overrides. User errors print one line (``error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import shutil
import sys
import typing
from pathlib import Path

from quantnas import __version__
from quantnas.errors import QuantNASError

log = logging.getLogger("quantnas")

#: Preset applied when ``--preset`` is not given (the quick embedded-data job).
DEFAULT_PRESET = "default"


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


def _load(args: argparse.Namespace, extra: list[str] | None = None):
    from quantnas.config import load_config

    return load_config(
        preset=args.preset or DEFAULT_PRESET,
        files=args.config,
        overrides=list(extra or []) + list(args.overrides),
    )


def _run_dir(args: argparse.Namespace, cfg, stage: str) -> Path:
    """The command's run directory (``--resume`` or a fresh one).

    It is also kept as ``args.run_dir``, which the Ctrl-C hint names.
    """
    from quantnas.loop import run_dir_for

    if args.resume:
        if args.restart:
            raise QuantNASError("--resume and --restart exclude each other; choose one")
        d = Path(args.resume)
        if not d.is_dir():
            raise QuantNASError(f"--resume: run directory {d} does not exist")
        args.run_dir = d
        return d
    d = run_dir_for(cfg, stage)
    args.run_dir = d
    # A folder holding only the log of a run that failed before its first write is reused.
    if d.is_dir() and any(p.name != "log.txt" for p in d.iterdir()):
        if not any((d / m).exists() for m in RUN_MARKERS):
            raise QuantNASError(
                f"{d} exists and is not a quantnas run directory; choose another name=... "
                "or out_dir=..."
            )
        if args.restart and not _written_by_quantnas(d / "config.yaml"):
            raise QuantNASError(
                f"--restart: {d} has no quantnas config.yaml, so it is not deleted; remove it "
                "yourself or choose another name=..."
            )
        if not args.restart:
            raise QuantNASError(
                f"run directory {d} already holds a run (finished or not); continue it with: "
                f"quantnas {args.command} --resume {d} (or pass --restart to discard it, or "
                "choose another name=...)"
            )
        from quantnas import distributed as qdist

        if qdist.is_main():  # under torchrun, one rank deletes
            log.warning("--restart: discarding the run in %s", d)
            shutil.rmtree(d)
    return d


def _written_by_quantnas(config_file: Path) -> bool:
    """Whether ``config_file`` is a config quantnas dumped (guards ``--restart``'s delete)."""
    import yaml

    try:
        data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return False
    return isinstance(data, dict) and {"arch", "data", "search", "train"} <= set(data)


#: What a run directory of search/train/run holds once it has started (any one of them).
RUN_MARKERS = ("config.yaml", "state.json", "checkpoint.pt", "search", "train")


def _resumed_config(args: argparse.Namespace, run_dir: Path):
    """On resume, the run's saved config wins (overrides still apply on top)."""
    import yaml

    from quantnas.config import Config, apply_override, merge, validate
    from quantnas.errors import read_user_text

    saved = run_dir / "config.yaml"
    if not saved.exists():
        return _load(args)
    try:
        data = yaml.safe_load(read_user_text(saved, "saved config"))
    except (yaml.YAMLError, RecursionError) as e:
        raise QuantNASError(
            f"saved config {saved} is corrupt (invalid YAML: {e.__class__.__name__}); restore "
            "it, or delete the run directory and start again"
        ) from None
    cfg = merge(Config(), {} if data is None else data, source=f"saved config {saved}")
    for o in args.overrides:
        apply_override(cfg, o)
    return validate(cfg)


def _setup_rank_logging(run_dir: Path, cfg) -> Path:
    """Log to the console and ``run_dir/log.txt`` (under torchrun: rank 0's run directory).

    Under torchrun the ranks join their process group here and take rank 0's run directory
    (a default name holds a timestamp); ranks other than 0 log warnings to the console
    only and write nothing.
    """
    from quantnas import distributed as qdist
    from quantnas.runlog import setup_logging

    if qdist.init(cfg.device):
        run_dir = qdist.rank0_path(run_dir)
    if qdist.is_main():
        setup_logging(run_dir)
    else:
        setup_logging(None, level=logging.WARNING)
    return run_dir


def _print_json(obj) -> None:
    from quantnas.fileio import json_text

    sys.stdout.write(json_text(obj))


# ---------------------------------------------------------------------- commands
def cmd_search(args: argparse.Namespace) -> int:
    from quantnas.search.searcher import search

    cfg = _load(args)
    run_dir = _run_dir(args, cfg, "search")
    if args.resume:
        cfg = _resumed_config(args, run_dir)
    run_dir = _setup_rank_logging(run_dir, cfg)
    res = search(cfg, run_dir, resume=bool(args.resume))
    log.info("best genotype (epoch %d): %s", res.best_epoch, res.best)
    log.info("written to %s", run_dir / "best_arch.json")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from quantnas import genotype as gt
    from quantnas.train import train

    if args.resume and args.genotype:
        raise QuantNASError(
            f"--genotype cannot be combined with --resume: {args.resume} goes on with the "
            "genotype it was started with (start a new run for another genotype)"
        )
    extra = [f"train.genotype={args.genotype}"] if args.genotype else []
    cfg = _load(args, extra)
    run_dir = _run_dir(args, cfg, "train")
    if args.resume:
        cfg = _resumed_config(args, run_dir)
    run_dir = _setup_rank_logging(run_dir, cfg)
    geno = gt.resolve(cfg.train.genotype)
    res = train(cfg, run_dir, geno, resume=bool(args.resume))
    log.info(
        "best validation PSNR %.2f dB at epoch %d -> %s",
        res.best_psnr,
        res.best_epoch,
        res.best_path,
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from quantnas.data.datasets import SRValDataset, load_benchmark_sets, resolve_images
    from quantnas.evaluate import bicubic_upscaler, evaluate
    from quantnas.runlog import setup_logging

    setup_logging()
    if args.save_images:
        Path(args.save_images).mkdir(parents=True, exist_ok=True)  # fail before computing
    if args.model == "bicubic":
        if args.scale is None:
            raise QuantNASError("--scale is required with --model bicubic")
        model, scale, info = bicubic_upscaler(args.scale), args.scale, {"model": "bicubic"}
    else:
        from quantnas.checkpoint import load_model
        from quantnas.cost import network_cost

        net, geno, arch = load_model(args.model, args.device)
        if args.scale is not None and args.scale != arch.scale:
            raise QuantNASError(f"--scale {args.scale} differs from the model's scale {arch.scale}")
        model, scale = net, arch.scale
        cost = network_cost(net, lr_size=32).summary()
        info = {"model": str(args.model), "genotype": geno.to_text(), **cost}
    sets: dict[str, SRValDataset] = {}
    for d in args.data or []:
        name = Path(d).name if not d.startswith("embedded:") else d
        sets[name] = SRValDataset(resolve_images(d, allow_gray=True), scale=scale)
    if args.benchmarks:
        sets.update(load_benchmark_sets(args.benchmarks, scale=scale))
    if not sets:
        raise QuantNASError("nothing to evaluate: give --data DIR and/or --benchmarks YAML")
    results = {}
    for name, ds in sets.items():
        save = (
            Path(args.save_images) / Path(name).name.replace(":", "_") if args.save_images else None
        )
        results[name] = evaluate(model, ds, device=args.device, save_dir=save)
    if args.json:
        _print_json({**info, "scale": scale, "sets": results})
    else:
        for name, r in results.items():
            sys.stdout.write(
                f"{name}: PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.4f}  "
                f"({len(r['images'])} images)\n"
            )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from quantnas.evaluate import score_paths

    res = score_paths(Path(args.sr), Path(args.hr), scale=args.scale)
    if args.json:
        _print_json(res)
    else:
        for row in res["images"]:
            sys.stdout.write(f"{row['name']}: PSNR {row['psnr']:.2f} dB  SSIM {row['ssim']:.4f}\n")
        sys.stdout.write(f"mean: PSNR {res['psnr']:.2f} dB  SSIM {res['ssim']:.4f}\n")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from quantnas import genotype as gt
    from quantnas.config import ArchConfig, load_config
    from quantnas.cost import network_cost
    from quantnas.space import build_network

    geno = gt.resolve(args.genotype)
    if args.preset:
        arch = load_config(preset=args.preset).arch
    else:
        arch = ArchConfig(space=geno.space, c_fixed=36, scale=4, body_cells=3, global_skip="none")
    for key, value in (
        ("c_fixed", args.channels),
        ("scale", args.scale),
        ("body_cells", args.body_cells),
    ):
        if value is not None:
            setattr(arch, key, value)
    if args.adq:
        arch.skip_mode = False
    rep = network_cost(build_network(geno, arch), lr_size=args.lr_size)
    out = {
        **rep.summary(),
        "genotype": geno.to_text(),
        "channels": arch.c_fixed,
        "scale": arch.scale,
        "body_cells": arch.body_cells,
    }
    if args.json:
        _print_json(out)
        return 0
    h, w = rep.lr_size
    sys.stdout.write(
        f"genotype : {geno.to_text()}\n"
        f"params   : {rep.params:,}\n"
        f"size     : {rep.size_bytes / 1024:.2f} KiB (weights at their bit-widths)\n"
        f"MACs     : {rep.macs:,} (LR {h}x{w})\n"
        f"BitOps   : {rep.bitops:,} = {rep.bitops / 1e9:.3f} GBitOps (LR {h}x{w})\n"
    )
    if args.layers:
        for c in rep.convs:
            sys.stdout.write(
                f"  {c.name:50s} {c.c_in:4d}->{c.c_out:<4d} k={c.kernel} "
                f"g={c.groups} bits={c.bits_w} BitOps={c.bitops:,}\n"
            )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from quantnas.data.prepare import prepare_patches
    from quantnas.runlog import setup_logging

    setup_logging()
    n = prepare_patches(
        args.src,
        args.out,
        patch=args.patch,
        stride=args.stride,
        scale=args.scale,
        skip_bad=args.skip_bad,
    )
    log.info("wrote %d patches to %s", n, args.out)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.format in ("onnx", "onnx-fp32"):
        from quantnas.deploy.commands import export_onnx_command

        return export_onnx_command(args)
    from quantnas import genotype as gt
    from quantnas.plots import plot_genotype

    src = Path(args.source)
    if src.is_dir():
        for name in ("best_arch.json", "genotype.json", "search/best_arch.json"):
            if (src / name).exists():
                src = src / name
                break
        else:
            raise QuantNASError(
                f"{args.source}: no best_arch.json or genotype.json in this run dir"
            )
    if src.suffix == ".pt":
        from quantnas.checkpoint import load_checkpoint

        ck = load_checkpoint(src)
        if "genotype" in ck:
            geno = gt.from_dict(ck["genotype"], source=str(src))
        elif ck.get("kind") == "search":
            raise QuantNASError(f"{src}: export a search from its run directory (best_arch.json)")
        else:
            raise QuantNASError(f"{src}: checkpoint holds no genotype")
    else:
        geno = gt.resolve(str(src))
    if args.format == "json":
        text = geno.to_json()
    elif args.format == "text":
        text = geno.to_text() + "\n"
    else:
        if not args.out:
            raise QuantNASError("--format png needs --out FILE.png")
        plot_genotype(geno.pairs(), args.out, body_cells=args.body_cells)
        return 0
    if args.out:
        from quantnas.fileio import atomic_write_text

        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from quantnas.deploy.commands import upscale_command

    return upscale_command(args)


def cmd_config(args: argparse.Namespace) -> int:
    from quantnas.config import dump, presets

    if args.list:
        sys.stdout.write("\n".join(presets()) + "\n")
        return 0
    sys.stdout.write(dump(_load(args)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from quantnas import distributed as qdist
    from quantnas.pipeline import run_pipeline

    qdist.refuse("run")
    cfg = _load(args)
    run_dir = _run_dir(args, cfg, "run")
    if args.resume:
        cfg = _resumed_config(args, run_dir)
    run_pipeline(cfg, run_dir, resume=bool(args.resume))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from quantnas import distributed as qdist
    from quantnas.sweep.driver import run_sweep

    qdist.refuse("sweep")
    extra = []
    if args.values is not None:
        extra.append(f"sweep.penalties={[float(v) for v in args.values]}")
    if args.repeats is not None:
        extra.append(f"sweep.seeds={args.repeats}")
    cfg = _load(args, extra)
    run_sweep(
        cfg,
        name=args.name,
        engine=args.engine,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_retries=args.max_retries,
        resume=args.resume,
        extend=args.extend,
    )
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from quantnas.sweep.driver import pareto_command

    sys.stdout.write(pareto_command(args.results, set_name=args.set, out=args.out))
    return 0


# ------------------------------------------------------------------------ parser
RESTART_HELP = "discard what the run directory (out_dir/name) holds and start over"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="quantnas", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"quantnas {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("search", help="differentiable quantization-aware architecture search")
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("train", help="train a genotype with quantization-aware training")
    s.add_argument(
        "--genotype",
        help="genotype file (JSON or Genotype_SR text) or builtin name (default, paper-example)",
    )
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted training")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="PSNR/SSIM (Y channel) of a model or bicubic on image sets")
    s.add_argument("--model", required=True, help="'bicubic' or a trained checkpoint (best.pt)")
    s.add_argument("--data", action="append", help="HR image folder or embedded:val (repeatable)")
    s.add_argument("--benchmarks", help="YAML file {name: {hr: dir, lr: dir}} or embedded:test")
    s.add_argument("--scale", type=_positive_int, help="upscaling factor (required for bicubic)")
    s.add_argument("--save-images", metavar="DIR", help="write SR images here")
    s.add_argument("--device", default="cpu")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("score", help="PSNR/SSIM of SR images against HR images")
    s.add_argument("--sr", required=True, help="SR image or folder")
    s.add_argument("--hr", required=True, help="HR image or folder (matched by file name)")
    s.add_argument("--scale", type=_positive_int, required=True, help="border crop = scale")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_score)

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
    s.set_defaults(func=cmd_info)

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
    s.set_defaults(func=cmd_prepare)

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
    s.add_argument("--body-cells", type=_positive_int, default=1, help="for the PNG label")
    s.set_defaults(func=cmd_export)

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
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_upscale)

    s = sub.add_parser("config", help="print the resolved config (or --list presets)")
    _config_args(s)
    s.add_argument("--list", action="store_true")
    s.set_defaults(func=cmd_config)

    s = sub.add_parser("run", help="the main job: search -> train -> eval -> report")
    _config_args(s)
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    s.add_argument("--restart", action="store_true", help=RESTART_HELP)
    s.set_defaults(func=cmd_run)

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
        "--cpus-per-trial", type=float, default=1, help="Ray CPUs per trial = torch threads"
    )
    s.add_argument("--gpus-per-trial", type=float, default=0, help="Ray GPUs per trial")
    s.add_argument("--max-retries", type=int, default=0, help="retries of a failing trial")
    s.add_argument("--resume", action="store_true", help="rerun only the unfinished trials")
    s.add_argument(
        "--extend",
        action="store_true",
        help="with --resume: allow other trials (penalties, seeds, samples) than the sweep "
        "started with",
    )
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("pareto", help="PSNR-vs-BitOps front of one or more sweeps' results")
    s.add_argument("results", nargs="+", help="results.jsonl / results.csv files or sweep dirs")
    s.add_argument("--set", help="evaluation set (default: test, else validation)")
    s.add_argument("--out", help="output PNG (default: pareto.png next to the first results)")
    s.set_defaults(func=cmd_pareto)
    return p


def _environment_error(e: OSError | MemoryError, args: argparse.Namespace) -> str:
    """One line for a failure of the machine rather than of the input (disk, memory)."""
    run_dir = getattr(args, "run_dir", None)
    resumable = (
        run_dir is not None and args.command in ("search", "train", "run") and run_dir.is_dir()
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
