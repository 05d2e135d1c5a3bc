"""The verbs of the ``quantnas`` command: each reads its arguments and calls the library.

Every ``cmd_*`` takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from quantnas.cli import target_dir
from quantnas.cli.info import cmd_info  # noqa: F401 - a verb like the cmd_* below
from quantnas.config.io import DEFAULT_PRESET
from quantnas.errors import QuantNASError

log = logging.getLogger(__name__)


def _load(args: argparse.Namespace, extra: list[str] | None = None):
    from quantnas.pipeline.resolve import load_config

    return load_config(
        preset=args.preset or DEFAULT_PRESET,
        files=args.config,
        overrides=list(extra or []) + list(args.overrides),
    )


@contextlib.contextmanager
def _stage_run(args: argparse.Namespace, stage: str, extra: list[str] | None = None):
    """Hold the run directory of ``search`` / ``train`` / ``run``; yields ``(config, dir)``.

    The run directory (``--resume`` or a fresh one) is also kept as ``args.run_dir``, which
    the Ctrl-C hint names; on resume the run's saved config wins (overrides still apply).
    While the block runs, this process alone writes there and every file it writes is
    listed in the folder's manifest. A network that cannot fit in memory is refused first
    (:func:`quantnas.space.footprint.check_network_budget`).
    """
    from quantnas.space.footprint import check_network_budget

    cfg = _load(args, extra)
    for part in () if args.resume else ("search", "train") if stage == "run" else (stage,):
        check_network_budget(cfg, part)  # counted from the structure, before any file
    run_dir = args.run_dir = target_dir.chosen_run_dir(
        cfg, stage, resume=args.resume, restart=args.restart
    )
    with target_dir.held(run_dir, command=args.command):
        if args.resume:
            saved = target_dir.resumed_config(run_dir, args.overrides)
            cfg = saved if saved is not None else _load(args)
        else:
            target_dir.claim_run_dir(run_dir, restart=args.restart, command=args.command)
        with target_dir.listed(run_dir, fresh=not args.resume):
            yield cfg, run_dir


def _print_json(obj) -> None:
    from quantnas.rundir.files import json_text

    sys.stdout.write(json_text(obj))


# ---------------------------------------------------------------------- commands
def cmd_search(args: argparse.Namespace) -> int:
    from quantnas.search.searcher import search

    with _stage_run(args, "search") as (cfg, run_dir):
        run_dir = target_dir.start_logging(run_dir, cfg)
        res = search(cfg, run_dir, resume=bool(args.resume))
    log.info("best genotype (epoch %d): %s", res.best_epoch, res.best)
    log.info("written to %s", run_dir / "best_arch.json")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from quantnas.training.artifact import genotype_of, is_trained_source
    from quantnas.training.trainer import train

    if args.resume and args.genotype:
        raise QuantNASError(
            f"--genotype cannot be combined with --resume: {args.resume} goes on with the "
            "genotype it was started with (start a new run for another genotype)"
        )
    spec = args.genotype
    if spec and is_trained_source(spec):  # a run dir / checkpoint: its genotype's text
        spec = genotype_of(spec).to_text()
    extra = [f"train.genotype={spec}"] if spec else []
    with _stage_run(args, "train", extra) as (cfg, run_dir):
        run_dir = target_dir.start_logging(run_dir, cfg)
        geno = genotype_of(cfg.train.genotype)
        res = train(cfg, run_dir, geno, resume=bool(args.resume))
    log.info(
        "best validation PSNR %.2f dB at epoch %d -> %s",
        res.best_psnr,
        res.best_epoch,
        res.best_path,
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from quantnas import api
    from quantnas.rundir.log import setup_logging

    setup_logging()
    model: str | api.LoadedModel = "bicubic"
    info: dict = {"model": "bicubic"}
    scale = args.scale
    if args.model != "bicubic":
        from quantnas.space.cost import network_cost

        model = api.load_model(args.model, args.device)
        cost = network_cost(model.network, lr_size=32).summary()
        geno = model.genotype.to_text() if model.genotype is not None else None
        info = {"model": str(args.model), "network": model.label, "genotype": geno, **cost}
        scale = scale or model.arch.scale  # a different --scale is refused by api.evaluate
    results = api.evaluate(
        model,
        data=args.data or [],
        benchmarks=args.benchmarks,
        device=args.device,
        scale=args.scale,
        save_images=args.save_images,
    )
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
    from quantnas.evaluation.score import score_paths

    res = score_paths(Path(args.sr), Path(args.hr), scale=args.scale)
    if args.json:
        _print_json(res)
    else:
        for row in res["images"]:
            sys.stdout.write(f"{row['name']}: PSNR {row['psnr']:.2f} dB  SSIM {row['ssim']:.4f}\n")
        sys.stdout.write(f"mean: PSNR {res['psnr']:.2f} dB  SSIM {res['ssim']:.4f}\n")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from quantnas.data.images import GRAY_MODES
    from quantnas.data.prepare import prepare_patches
    from quantnas.rundir.log import setup_logging

    setup_logging()
    n = prepare_patches(
        args.src,
        args.out,
        patch=args.patch,
        stride=args.stride,
        scale=args.scale,
        skip_bad=args.skip_bad,
        allow_gray=GRAY_MODES.get(args.gray),
    )
    log.info("wrote %d patches to %s", n, args.out)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if getattr(args, "weight_dtype", None) and args.format != "onnx":
        raise QuantNASError(
            f"--weight-dtype applies to --format onnx (integer weight levels), not "
            f"--format {args.format}"
        )
    if args.format in ("onnx", "onnx-fp32"):
        from quantnas.cli.deploy import export_onnx_command

        return export_onnx_command(args)
    from quantnas.plots import plot_genotype
    from quantnas.training.artifact import genotype_of

    geno = genotype_of(args.source)
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
        from quantnas.rundir.files import atomic_write_text

        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from quantnas.cli.deploy import upscale_command

    return upscale_command(args)


def cmd_config(args: argparse.Namespace) -> int:
    from quantnas.config.io import dump, presets  # --list needs no owner of a choice

    if args.list:
        sys.stdout.write("\n".join(presets()) + "\n")
        return 0
    sys.stdout.write(dump(_load(args)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from quantnas.pipeline.run import run_pipeline
    from quantnas.training import distributed as qdist

    qdist.refuse("run")
    with _stage_run(args, "run") as (cfg, run_dir):
        run_pipeline(cfg, run_dir, resume=bool(args.resume))
    return 0


def sweep_config(args: argparse.Namespace):
    """The config of ``quantnas sweep``: ``--penalties`` / ``--repeats`` as
    ``sweep.penalties`` / ``sweep.seeds``, the overrides written right after the
    penalties' numbers before the later ones.
    """
    extra = []
    if args.penalties is not None:
        extra.append(f"sweep.penalties={list(args.penalties)}")
    if args.repeats is not None:
        extra.append(f"sweep.seeds={args.repeats}")
    args.overrides = [*getattr(args, "value_overrides", []), *args.overrides]
    return _load(args, extra)


def cmd_sweep(args: argparse.Namespace) -> int:
    from quantnas.sweep.driver import run_sweep
    from quantnas.training import distributed as qdist

    qdist.refuse("sweep")
    cfg = sweep_config(args)
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
    from quantnas.sweep.front import pareto_command

    sys.stdout.write(pareto_command(args.results, set_name=args.set, out=args.out))
    return 0
