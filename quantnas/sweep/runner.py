"""One trial: get the network of a method, train it with QAT, evaluate it on every set.

:func:`run_trial` takes and returns plain data (it runs in Ray workers). A trial directory
holds ``search/`` (search trials), ``genotype.json``, ``train/`` (checkpoints, curves),
``state.json`` and ``eval.json`` (the job's, see :mod:`quantnas.pipeline.job`) and
``log.txt``; an interrupted trial resumes its search and its training from their
checkpoints.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from quantnas.pipeline.job import Job, Network
from quantnas.pipeline.resolve import from_dict
from quantnas.rundir.files import remove_stale_tmp
from quantnas.rundir.log import setup_logging
from quantnas.space import genotype as gt
from quantnas.sweep.trials import Trial, random_window

log = logging.getLogger(__name__)


def _network(trial: dict, cfg, trial_dir: Path) -> Network:
    """Where a trial's network comes from (a search:
    :class:`~quantnas.pipeline.job.Network` ``()``).

    Nothing is built here: the :class:`~quantnas.training.trainer.Trainer` builds the network after
    seeding, as the ``train`` verb does, so a trial trains exactly like ``quantnas train``
    with the same genotype, seed and budget.
    """
    from quantnas.search.choose import random_draws_near, random_mutations_near, random_near
    from quantnas.space.baselines import build_baseline
    from quantnas.space.build import random_genotype

    method = trial["method"]
    if method == "search":
        return Network()
    if method == "halving-random":
        t = Trial.from_dict(trial)
        n = cfg.sweep.random_halving_candidates or cfg.search.select_samples + 1
        centre, tol = random_window(cfg, float(t.target))
        if cfg.sweep.random_halving_draw == "mutations":
            genos = random_mutations_near(
                cfg.arch,
                int(t.draw_base or 0),
                target=centre,
                tolerance=tol,
                n=n,
                rate=cfg.search.halving_mutation_rate,
            )
            sources = ["uniform"] + ["mutations"] * (len(genos) - 1)
            pairs = zip(genos, sources, strict=True)
            return Network(candidates=[(g, math.nan, src) for g, src in pairs])
        genos = random_draws_near(
            cfg.arch, int(t.draw_base or 0), target=centre, tolerance=tol, n=n
        )
        cands = [(g, math.nan, "uniform") for g in genos]
        return Network(candidates=cands)
    if method == "random" and trial.get("target") is not None:
        t = Trial.from_dict(trial)
        centre, tol = random_window(cfg, float(t.target))
        geno = random_near(
            cfg.arch,
            int(t.draw_base or 0),
            target=centre,
            tolerance=tol,
            index=int(t.draw or 0),
        )
    elif method == "random":
        geno = random_genotype(cfg.arch, Trial.from_dict(trial).draw_seed)
    elif method == "uniform":
        geno = gt.loads(trial["genotype"], source=trial["source"]).at_bits(int(trial["bits"]))
    else:
        bits = int(trial["bits"])
        return Network(
            build=lambda: build_baseline(method, cfg.arch, bits),
            spec={"baseline": method, "bits": bits},
        )
    gt.save(geno, trial_dir / "genotype.json")
    return Network(genotype=geno)


def _metrics(ev: dict) -> dict:
    """The result row's quality and cost columns of a job's evaluation."""
    out = {}
    for name, res in ev["sets"].items():
        out[f"psnr_{name}"] = res["psnr"]
        out[f"ssim_{name}"] = res["ssim"]
        out[f"bicubic_psnr_{name}"] = res["bicubic_psnr"]
    cost = ev["cost"]["32"]
    return {
        "bitops_32": cost["bitops"],
        "params": cost["params"],
        "size_kib": cost["size_bytes"] / 1024,
        **out,
    }


def run_trial(
    trial: dict, cfg_data: dict, trial_dir: str, threads: int = 0, device: str = "cpu"
) -> dict:
    """Run one trial end to end and return its result row (without the bookkeeping keys).

    Args:
        trial: :meth:`quantnas.sweep.trials.Trial.to_dict`.
        cfg_data: The trial's config as a dict (:func:`quantnas.pipeline.resolve.to_dict`).
        trial_dir: Output directory of the trial.
        threads: Torch intra-op threads (the engine's CPUs per trial; 0 = torch default).
        device: ``cpu`` or ``cuda``.

    Returns:
        ``genotype``, ``bitops_32``, ``params``, ``size_kib``, ``psnr_<set>``,
        ``ssim_<set>``, ``bicubic_psnr_<set>``, ``best_epoch``, ``last_epoch``,
        ``stalled`` (see :meth:`quantnas.training.trainer.Trainer.stalled`), ``search_entropy`` and
        ``search_s`` / ``train_s`` / ``eval_s`` / ``total_s``.

    Raises:
        QuantNASError: Another process writes ``trial_dir`` (its lock names the pid).

    """
    from quantnas.rundir.lock import holding

    with holding(trial_dir, command=f"sweep trial {trial['trial_id']}"):
        return _run_trial(trial, cfg_data, Path(trial_dir), threads, device)


def _run_trial(trial: dict, cfg_data: dict, out: Path, threads: int, device: str) -> dict:
    """:func:`run_trial` while it holds the lock of the trial directory ``out``: the trial
    is a :class:`~quantnas.pipeline.job.Job` (as ``quantnas run`` is), without pictures.
    """
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
    job = Job(cfg, out, network=_network(trial, cfg, out), resume=True, pictures=False)
    res = job.run()
    geno, secs = res.genotype, res.seconds
    if geno is not None and trial["method"] in ("search", "halving-random"):
        gt.save(geno, out / "genotype.json")
    train = job.state.info("train")  # what the training stage recorded (also when resumed)
    return {
        "genotype": geno.to_text() if geno is not None else "",
        "genotype_json": geno.to_json() if geno is not None else None,
        **_metrics(res.eval),
        "best_epoch": train["best_epoch"],
        "last_epoch": train["last_epoch"],
        "stalled": train["stalled"],
        "search_entropy": res.search.get("entropy"),
        "search_s": secs.get("search", 0.0),
        "select_s": secs.get("select", 0.0),
        "train_s": secs.get("train", 0.0),
        "eval_s": secs.get("eval", 0.0),
        "total_s": time.time() - t0,
    }

