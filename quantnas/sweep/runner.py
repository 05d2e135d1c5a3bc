"""One trial: get the network of a method, train it with QAT, evaluate it on every set.

:func:`run_trial` takes and returns plain data (it runs in Ray workers). A trial directory
holds ``search/`` (search trials), ``genotype.json``, ``train/`` (checkpoints, curves) and
``log.txt``; an interrupted trial resumes its search and its training from their
checkpoints.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from quantnas import genotype as gt
from quantnas.checkpoint import load_checkpoint, load_state
from quantnas.config import from_dict
from quantnas.cost import network_cost
from quantnas.errors import QuantNASError
from quantnas.fileio import atomic_write_json, remove_stale_tmp
from quantnas.runlog import setup_logging
from quantnas.sweep.trials import Trial

log = logging.getLogger(__name__)

SEARCH_INFO = "search_info.json"


def _search(cfg, trial_dir: Path) -> tuple[gt.Genotype, dict]:
    """Search (or reuse a finished search) and return the genotype and its info."""
    from quantnas.checkpoint import CHECKPOINT
    from quantnas.search.searcher import Searcher

    info_path = trial_dir / SEARCH_INFO
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        return gt.from_dict(info["genotype"], source=str(info_path)), info
    t0 = time.time()
    searcher = Searcher(cfg, trial_dir / "search")
    if (trial_dir / "search" / CHECKPOINT).exists():
        searcher.resume()
    res = searcher.run()
    last = searcher.history[-1] if searcher.history else {}
    info = {
        "genotype": res.best.to_dict(),
        "best_epoch": res.best_epoch,
        "entropy": last.get("entropy"),
        "seconds": time.time() - t0,
    }
    atomic_write_json(info_path, info)
    return res.best, info


def _network(trial: dict, cfg, trial_dir: Path):
    """``(builder or None, genotype or None, net_spec or None, search info)`` of a trial.

    Nothing is built here: the :class:`~quantnas.train.Trainer` builds the network after
    seeding, as the ``train`` verb does, so a trial trains exactly like ``quantnas train``
    with the same genotype, seed and budget.
    """
    from quantnas.baselines import build_baseline
    from quantnas.search.choose import random_near
    from quantnas.space import random_genotype

    method, info = trial["method"], {}
    if method == "search":
        geno, info = _search(cfg, trial_dir)
    elif method == "random" and trial.get("target") is not None:
        t = Trial.from_dict(trial)
        geno = random_near(cfg.arch, int(t.draw_base or 0), target=float(t.target),
                           tolerance=cfg.sweep.target_tolerance, index=int(t.draw or 0))
    elif method == "random":
        geno = random_genotype(cfg.arch, Trial.from_dict(trial).draw_seed)
    elif method == "uniform":
        geno = gt.loads(trial["genotype"], source=trial["source"]).at_bits(int(trial["bits"]))
    else:
        bits = int(trial["bits"])
        return (
            lambda: build_baseline(method, cfg.arch, bits),
            None,
            {"baseline": method, "bits": bits},
            info,
        )
    gt.save(geno, trial_dir / "genotype.json")
    return None, geno, None, info


def _evaluate(net: torch.nn.Module, cfg, device: torch.device) -> dict:
    """PSNR/SSIM (and bicubic PSNR) of ``net`` on the validation and benchmark sets."""
    from quantnas.evaluate import bicubic_upscaler, evaluate
    from quantnas.report import eval_sets

    out = {}
    for name, ds in eval_sets(cfg).items():
        res = evaluate(net, ds, device=device)
        bic = evaluate(bicubic_upscaler(ds.scale), ds)
        out[f"psnr_{name}"] = res["psnr"]
        out[f"ssim_{name}"] = res["ssim"]
        out[f"bicubic_psnr_{name}"] = bic["psnr"]
        log.info(
            "%s: PSNR %.2f dB (bicubic %.2f), SSIM %.4f",
            name,
            res["psnr"],
            bic["psnr"],
            res["ssim"],
        )
    return out


def run_trial(
    trial: dict, cfg_data: dict, trial_dir: str, threads: int = 0, device: str = "cpu"
) -> dict:
    """Run one trial end to end and return its result row (without the bookkeeping keys).

    Args:
        trial: :meth:`quantnas.sweep.trials.Trial.to_dict`.
        cfg_data: The trial's config as a dict (:func:`quantnas.config.to_dict`).
        trial_dir: Output directory of the trial.
        threads: Torch intra-op threads (the engine's CPUs per trial; 0 = torch default).
        device: ``cpu`` or ``cuda``.

    Returns:
        ``genotype``, ``bitops_32``, ``params``, ``size_kib``, ``psnr_<set>``,
        ``ssim_<set>``, ``bicubic_psnr_<set>``, ``best_epoch``, ``last_epoch``,
        ``stalled`` (see :meth:`quantnas.train.Trainer.stalled`), ``search_entropy`` and
        ``search_s`` / ``train_s`` / ``eval_s`` / ``total_s``.

    Raises:
        QuantNASError: Another process writes ``trial_dir`` (its lock names the pid).

    """
    from quantnas.runlock import holding

    with holding(trial_dir, command=f"sweep trial {trial['trial_id']}"):
        return _run_trial(trial, cfg_data, Path(trial_dir), threads, device)


def _run_trial(trial: dict, cfg_data: dict, out: Path, threads: int, device: str) -> dict:
    """:func:`run_trial` while it holds the lock of the trial directory ``out``."""
    from quantnas.space import set_quantized
    from quantnas.train import Trainer

    t0 = time.time()
    cfg = from_dict(cfg_data)
    cfg.threads, cfg.device = int(threads), device
    remove_stale_tmp(out, recursive=True)  # of a killed attempt (this process holds the lock)
    setup_logging(out)
    log.info(
        "trial %s (%s, %s, seed %s)",
        trial["trial_id"],
        trial["method"],
        trial["setting"],
        trial["seed"],
    )
    build, geno, spec, info = _network(trial, cfg, out)
    t_train = time.time()
    trainer = Trainer(cfg, out / "train", geno, build=build, net_spec=spec)
    if (out / "train" / "checkpoint.pt").exists():
        trainer.resume()
    res = trainer.run()
    train_s = time.time() - t_train
    if not res.best_path.exists():
        raise QuantNASError(f"trial {trial['trial_id']}: training saved no best checkpoint")
    ck = load_checkpoint(res.best_path)
    net = trainer.net
    set_quantized(net, True)
    load_state(net, ck["model"], path=res.best_path, what="the trial's network")
    net.eval()
    t_eval = time.time()
    metrics = _evaluate(net, cfg, trainer.device)
    cost = network_cost(net, lr_size=32)
    return {
        "genotype": geno.to_text() if geno is not None else "",
        "genotype_json": geno.to_json() if geno is not None else None,
        "bitops_32": cost.bitops,
        "params": cost.params,
        "size_kib": cost.size_bytes / 1024,
        **metrics,
        "best_epoch": res.best_epoch,
        "last_epoch": len(trainer.history) - 1,
        "stalled": res.stalled,
        "search_entropy": info.get("entropy"),
        "search_s": info.get("seconds", 0.0),
        "train_s": train_s,
        "eval_s": time.time() - t_eval,
        "total_s": time.time() - t0,
    }
