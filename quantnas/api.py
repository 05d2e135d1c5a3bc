"""The Python API: the CLI's verbs as functions over the same configs and defaults.

Example (the README's "Python API" section, which ``tests/test_api.py`` runs)::

    from quantnas import api

    cfg = api.load_config("tiny", overrides=["threads=1"])  # no preset: the CLI's default
    found = api.search(cfg, "runs/api-search")
    trained = api.train(cfg, "runs/api-train", genotype=found.best)
    scores = api.evaluate(trained.best_path, benchmarks="embedded:test")
    net, genotype, arch = api.load_model(trained.best_path)

``quantnas.load_config``, ``quantnas.load_model`` and ``quantnas.run`` are the same
functions; ``search``, ``train`` and ``evaluate`` are only here, because ``quantnas.search``,
``quantnas.train`` and ``quantnas.evaluate`` are modules.

Each call holds its run directory's lock while it writes, as the verbs do; a run directory
that holds a finished or interrupted run is continued with ``resume=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantnas.config import Config
from quantnas.config import load_config as _load_config

#: The preset the CLI applies when ``--preset`` is not given.
DEFAULT_PRESET = "default"

__all__ = ["DEFAULT_PRESET", "evaluate", "load_config", "load_model", "run", "search", "train"]


def load_config(
    preset: str | None = DEFAULT_PRESET,
    *,
    files: Sequence[str] = (),
    overrides: Sequence[str] = (),
) -> Config:
    """The config the CLI would run with: ``preset`` (the CLI's ``default`` unless given;
    ``None`` = the library defaults) < YAML ``files`` < ``key=value`` ``overrides``.
    """
    return _load_config(preset=preset, files=list(files), overrides=list(overrides))


def search(cfg: Config, run_dir: str | Path, *, resume: bool = False) -> Any:
    """Search in ``run_dir``; returns a :class:`~quantnas.search.searcher.SearchResult`
    (``best`` genotype, ``best_epoch``, ``run_dir``, ...).
    """
    from quantnas.search.searcher import search as _search

    return _search(cfg, Path(run_dir), resume=resume)


def train(cfg: Config, run_dir: str | Path, *, genotype: Any = None, resume: bool = False) -> Any:
    """QAT of ``genotype`` (a :class:`~quantnas.genotype.Genotype`, a genotype file or text,
    a builtin name, a run directory or a trained checkpoint; ``cfg.train.genotype`` when
    None) in ``run_dir``; returns a
    :class:`~quantnas.train.TrainResult` (``best_path``, ``best_psnr``, ...).
    """
    from quantnas.artifact import genotype_of
    from quantnas.train import train as _train

    geno = genotype_of(cfg.train.genotype if genotype is None else genotype)
    return _train(cfg, Path(run_dir), geno, resume=resume)


def evaluate(
    model: str | Path,
    *,
    data: Sequence[str] = (),
    benchmarks: str | None = None,
    device: str = "cpu",
) -> dict[str, dict]:
    """Y-channel PSNR / SSIM (border = scale) of a trained checkpoint on image folders or
    ``embedded:...`` sources (``data``) and benchmark sets; ``{set: {"psnr", "ssim",
    "images"}}``.
    """
    from quantnas.artifact import load_model as _load_model
    from quantnas.evaluate import eval_sets
    from quantnas.evaluate import evaluate as _evaluate

    net, _, arch = _load_model(model, device)
    sets = eval_sets(list(data), benchmarks, scale=arch.scale)
    return {name: _evaluate(net, ds, device=device) for name, ds in sets.items()}


def load_model(path: str | Path, device: str = "cpu") -> tuple:
    """``(network, genotype or None, arch)`` of a run directory or trained checkpoint
    (``best.pt``; a hand-designed baseline has no genotype).
    """
    from quantnas.artifact import load_model as _load_model

    return _load_model(path, device)


def run(cfg: Config, run_dir: str | Path, *, resume: bool = False) -> dict:
    """The main job (search -> train -> eval -> report) in ``run_dir``; the report dict."""
    from quantnas.pipeline import run_pipeline

    return run_pipeline(cfg, Path(run_dir), resume=resume)
