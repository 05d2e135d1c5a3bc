"""The files a training derives from its state: the trained genotype, the training curves,
the architecture picture and the metric rows; the config it records (:func:`recorded_config`).

:func:`write_training_records` writes the pictures at the end of a training (also of a
resumed, finished one); :func:`refresh_training` rewrites everything from a finished
training's checkpoint alone (no network or data is built), as ``run --resume`` does for a
training stage it skips. :class:`TrainResult` is what a training produced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from quantnas.config.types import Config
from quantnas.errors import QuantNASError
from quantnas.plots import plot_genotype, plot_training_curves
from quantnas.space import genotype as gt
from quantnas.space.build import picture_cells

__all__ = ["TrainResult", "recorded_config", "refresh_training", "write_training_records"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What training produced."""

    run_dir: Path
    best_path: Path
    best_epoch: int
    best_psnr: float
    seconds: float
    #: Validation PSNR of bicubic upscaling (what a network that learned nothing scores).
    bicubic_psnr: float = float("nan")
    #: The best validation PSNR stayed within ``train.stall_margin`` dB of bicubic.
    stalled: bool = False
    #: The last epoch trained.
    last_epoch: int = -1
    #: The trained network with the best checkpoint's state, in eval mode (set by
    #: :func:`train`; None where only the files are at hand).
    network: nn.Module | None = None


def recorded_config(cfg: Config, genotype: gt.Genotype | None) -> Config:
    """``cfg`` with ``train.genotype`` naming the genotype trained, for ``config.yaml``.

    The searched genotype of a ``run`` or of a sweep trial is not the config's
    ``train.genotype`` (``default``); it is recorded as its ``Genotype_SR(...)`` text. A
    config that already names the genotype trained (``quantnas train``) is kept as it is.
    """
    if genotype is None:
        return cfg
    with contextlib.suppress(QuantNASError):  # e.g. a genotype file since moved
        if gt.resolve(cfg.train.genotype) == genotype:
            return cfg
    train = dataclasses.replace(cfg.train, genotype=genotype.to_text())
    return dataclasses.replace(cfg, train=train)


def write_training_records(
    cfg: Config, run_dir: Path, genotype: gt.Genotype | None, history: list
) -> None:
    """Draw ``training.png`` (from ``history``) and ``arch.png`` (of ``genotype``, if any)."""
    plot_training_curves(history, run_dir / "training.png", title="training (QAT)")
    if genotype is not None:
        plot_genotype(
            genotype.pairs(),
            run_dir / "arch.png",
            body_cells=picture_cells(cfg.arch),
            title="trained architecture",
        )


def refresh_training(cfg: Config, run_dir: Path, genotype: gt.Genotype) -> None:
    """Rewrite what a finished training of ``genotype`` in ``run_dir`` derives from its
    checkpoint: ``genotype.json``, ``metrics.jsonl`` and the pictures.

    Raises:
        QuantNASError: The checkpoint is missing, corrupt, or of another genotype.

    """
    from quantnas.errors import QuantNASError
    from quantnas.rundir.metric_rows import MetricLogger
    from quantnas.training.checkpoint import CHECKPOINT, KIND_TRAIN, restore_run_state

    path = run_dir / CHECKPOINT
    got: dict = {}

    def restore(ck: dict, p: Path) -> None:
        if ck["genotype"] != genotype.to_dict():
            raise QuantNASError(f"checkpoint {p} was trained on another genotype/network")
        got.update(ck)

    keys = ("genotype", "history")
    if not restore_run_state(
        path, kind=KIND_TRAIN, keys=keys, what="training checkpoint", restore=restore
    ):
        raise QuantNASError(f"{path} is missing: the finished training cannot be rewritten")
    gt.save(genotype, run_dir / "genotype.json")
    MetricLogger(run_dir, tensorboard=False).restore(got["history"])
    write_training_records(cfg, run_dir, genotype, list(got["history"]))
    log.info("training records in %s rewritten from its checkpoint", run_dir)
