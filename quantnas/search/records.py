"""The files a search derives from its state: alpha history, per-epoch, last and best
genotypes (the argmax, repaired into the budget band with ``search.target_bitops``), the
``path`` selection, the alpha and architecture pictures and the metric rows; and the
per-layer decision margins.

:func:`write_search_records` writes them at the end of a search (also of a resumed,
finished one); :func:`refresh_search` rewrites them from a finished search's checkpoint
(no training data is loaded; the ``path`` selector reads the validation images), as
``run --resume`` does for a search stage it skips. :class:`SearchResult` is what a search
produced.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from quantnas.config.types import Config
from quantnas.plots import plot_alpha_evolution, plot_genotype
from quantnas.rundir.files import atomic_write_text, json_text
from quantnas.space import genotype as gt
from quantnas.space.build import picture_cells
from quantnas.space.genotype import Genotype

__all__ = ["SearchResult", "alpha_scalars", "margins", "refresh_search", "write_search_records"]

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """What a search produced."""

    run_dir: Path
    best: Genotype
    last: Genotype
    best_epoch: int
    seconds: float
    #: Mean entropy of the alphas at the last epoch.
    entropy: float | None = None


def alpha_scalars(table: dict) -> dict[str, float]:
    """TensorBoard scalars ``alpha/<layer>/<op>@<bits>b`` of a supernet's layer table."""
    return {
        f"alpha/{k}/{op}@{b}b": v["probs"][o][j]
        for k, v in table.items()
        for o, op in enumerate(v["ops"])
        for j, b in enumerate(v["bits"])
    }


def margins(probs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per layer, ``log(p_best / p_second)`` of its (op, bit) choices (nats; 0 = a tie)."""
    out = {}
    for key, p in probs.items():
        flat = p.detach().flatten().double()
        if flat.numel() < 2:
            out[key] = math.inf
            continue
        top = torch.topk(flat, 2).values
        out[key] = float(torch.log(top[0] / top[1].clamp_min(1e-300)))
    return out


def write_search_records(
    net,
    cfg: Config,
    run_dir: Path,
    *,
    alpha_history: dict,
    history: list,
    best: dict,
    chooser=None,
    val_images: list | None = None,
    device: torch.device | str = "cpu",
) -> gt.Genotype:
    """Write every file derived from a search's state; returns the last genotype.

    JSON files are written only where missing or different; the pictures always.

    Args:
        net: The supernet, its alphas those of the state.
        cfg: The search's config.
        run_dir: The search's run directory.
        alpha_history: Probabilities per layer and epoch.
        history: The per-epoch rows.
        best: The best epoch's record (with its ``genotype`` once there is one).
        chooser: The search's :class:`~quantnas.search.choose.Chooser` (built when None).
        val_images: Validation images (the ``path`` selector scores on them).
        device: Where the ``path`` selector runs the supernet.

    """
    from quantnas.search.choose import Chooser

    chooser = chooser if chooser is not None else Chooser(net, cfg)
    geno = chooser.argmax()
    files = {"alpha_history.json": json_text(alpha_history)}

    def epoch_probs(e: int) -> dict[str, torch.Tensor]:
        return {k: torch.tensor(v[e]) for k, v in alpha_history.items()}

    for e in range(len(history)):
        files[f"genotypes/epoch_{e:03d}.json"] = chooser.argmax(epoch_probs(e)).to_json()
    files["last_arch.json"] = geno.to_json()
    chosen, title = geno, "searched architecture (last epoch)"
    finished = len(history) >= cfg.search.epochs
    if cfg.search.select == "path" and finished and val_images is not None:
        chosen, scored = chooser.select_path(val_images, device)
        files["selection.json"] = json_text(
            [{"genotype": g.to_dict(), "bitops": b, "gain_db": v} for g, b, v in scored]
        )
        files["best_arch.json"] = chosen.to_json()
        title = f"searched architecture (path selection of {len(scored)})"
    elif best.get("genotype"):  # arch.png draws what is exported and trained
        chosen = gt.from_dict(best["genotype"], source=str(run_dir / "checkpoint.pt"))
        files["best_arch.json"] = chosen.to_json()
        title = f"searched architecture (best epoch {int(best['epoch'])})"
    elif finished:  # finished without a best: the last one
        files["best_arch.json"] = geno.to_json()
    if cfg.search.select == "halving" and finished:
        probs = None  # search.halving_draw_epoch: last, the alphas the search ends with
        if cfg.search.halving_draw_epoch == "best" and best.get("genotype"):
            probs = epoch_probs(int(best["epoch"]))
        cands = chooser.candidates(
            cfg.search.select_samples,
            draw=cfg.search.halving_draw,
            first=chosen,
            probs=probs,
            rate=cfg.search.halving_mutation_rate,
        )
        files["candidates.json"] = json_text(
            [{"genotype": g.to_dict(), "bitops": b, "source": src} for g, b, src in cands]
        )
    for name, text in files.items():
        path = run_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8", errors="replace") != text:
            atomic_write_text(path, text)
    table = net.layer_table()
    hist = {k: np.asarray(v) for k, v in alpha_history.items()}
    ops = {k: v["ops"] for k, v in table.items()}
    plot_alpha_evolution(hist, ops, net.bits, run_dir / "alphas.png", title="alpha evolution")
    cells = picture_cells(cfg.arch)
    plot_genotype(chosen.pairs(), run_dir / "arch.png", body_cells=cells, title=title)
    return geno


def refresh_search(cfg: Config, run_dir: Path) -> None:
    """Rewrite what a finished search in ``run_dir`` derives from its checkpoint.

    Raises:
        QuantNASError: The checkpoint is missing, corrupt or of another search space.

    """
    from quantnas.errors import QuantNASError
    from quantnas.rundir.metric_rows import MetricLogger
    from quantnas.search.setup import build_supernet
    from quantnas.training.checkpoint import CHECKPOINT, KIND_SEARCH, load_state, restore_run_state

    net = build_supernet(cfg)
    path = run_dir / CHECKPOINT
    got: dict = {}

    def restore(ck: dict, p: Path) -> None:
        load_state(net, ck["model"], path=p, what="the config's supernet")
        got.update(ck)

    keys = ("model", "alpha_history", "history", "best")
    if not restore_run_state(
        path, kind=KIND_SEARCH, keys=keys, what="search checkpoint", restore=restore
    ):
        raise QuantNASError(f"{path} is missing: the finished search cannot be rewritten")
    MetricLogger(run_dir, tensorboard=False).restore(got["history"])
    val = None
    if cfg.search.select == "path":
        from quantnas.data.roles import validation_images

        val = validation_images(cfg)
    write_search_records(
        net,
        cfg,
        run_dir,
        alpha_history=got["alpha_history"],
        history=got["history"],
        best=got["best"],
        val_images=val,
    )
    log.info("search records in %s rewritten from its checkpoint", run_dir)
