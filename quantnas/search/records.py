"""What a search leaves in its run directory besides checkpoints: the files derived from
its state (alpha history, per-epoch / last / best genotypes, the ``path`` selection,
plots) and the per-layer decision margins.

:func:`write_derived` writes them at the end of a search and again when a finished search
is resumed; only what is missing or differs is rewritten.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from quantnas import genotype as gt
from quantnas.fileio import atomic_write_text, json_text
from quantnas.plots import plot_alpha_evolution, plot_genotype
from quantnas.space import picture_cells

if TYPE_CHECKING:
    from quantnas.search.searcher import Searcher

__all__ = ["margins", "write_derived"]


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


def write_derived(s: Searcher) -> None:
    """Every file derived from the search's state (see the module docstring)."""
    chooser = s.chooser
    geno = chooser.argmax()
    files = {"alpha_history.json": json_text(s.alpha_history)}
    for e in range(len(s.history)):
        probs = {k: torch.tensor(v[e]) for k, v in s.alpha_history.items()}
        files[f"genotypes/epoch_{e:03d}.json"] = chooser.argmax(probs).to_json()
    files["last_arch.json"] = geno.to_json()
    chosen, title = geno, "searched architecture (last epoch)"
    finished = s.epoch >= s.cfg.search.epochs
    if s.cfg.search.select == "path" and finished:
        chosen, scored = chooser.select_path(s.val_images, s.device)
        files["selection.json"] = json_text([
            {"genotype": g.to_dict(), "bitops": b, "gain_db": v} for g, b, v in scored
        ])
        files["best_arch.json"] = chosen.to_json()
        title = f"searched architecture (path selection of {len(scored)})"
    elif s.best.get("genotype"):  # arch.png draws what is exported and trained
        chosen = gt.from_dict(s.best["genotype"], source=str(s.checkpoint_path))
        files["best_arch.json"] = chosen.to_json()
        title = f"searched architecture (best epoch {int(s.best['epoch'])})"
    elif finished:
        files["best_arch.json"] = geno.to_json()
    for name, text in files.items():
        path = s.run_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8", errors="replace") != text:
            atomic_write_text(path, text)
    table = s.net.layer_table()
    hist = {k: np.asarray(v) for k, v in s.alpha_history.items()}
    ops = {k: v["ops"] for k, v in table.items()}
    plot_alpha_evolution(hist, ops, s.net.bits, s.run_dir / "alphas.png", title="alpha evolution")
    cells = picture_cells(s.cfg.arch)
    plot_genotype(chosen.pairs(), s.run_dir / "arch.png", body_cells=cells, title=title)
