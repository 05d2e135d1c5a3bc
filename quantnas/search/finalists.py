"""Finalists that are trained: successive halving over candidate genotypes
(``search.select: halving``; Li & Talwalkar 2019, Hyperband, ASHA).

Every candidate is trained by the same :class:`~quantnas.training.trainer.Trainer` as ``quantnas
train`` (same config, seed, data order and learning-rate schedule: the schedule of the
full ``train.epochs``), in ``select/cand_NN``. Rung ``r`` trains the candidates still in
the race up to epoch ``halving_epochs * halving_eta**r`` (resuming each from its own
checkpoint) and keeps the best ``ceil(n / halving_eta)`` by best validation PSNR (ties to
the earlier candidate); the last one standing is the winner, whose training the job then
continues to ``train.epochs`` from its checkpoint instead of starting again.

With ``search.halving_workers > 1`` a rung's candidates train at once on the engine
``search.halving_engine`` of :mod:`quantnas.engines` (the sweep's): ``processes`` (spawned
workers on this machine, each with its share of ``threads``) or ``ray`` (Ray tasks; a
cluster at ``search.halving_address``). The workers get the job's data (pickled), read
once for the whole race.

Every rung is recorded in ``select/halving.json`` (written atomically): an interrupted
selection resumes, each candidate from its checkpoint, and a finished rung is not rerun.
Over uniformly drawn candidates this is random search with early stopping, the
comparison a search must win at equal compute.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from quantnas.config.types import Config
from quantnas.data.job_data import JobData
from quantnas.errors import QuantNASError
from quantnas.rundir.files import atomic_write_bytes, atomic_write_json
from quantnas.space import genotype as gt
from quantnas.training.checkpoint import BEST, CHECKPOINT

log = logging.getLogger(__name__)

__all__ = ["Candidate", "HalvingResult", "hand_over", "rung_schedule", "successive_halving"]

#: The record of a selection in its directory.
RECORD = "halving.json"


@dataclass
class Candidate:
    """One genotype in the race and the best validation PSNR after each rung it ran."""

    index: int
    genotype: gt.Genotype
    bitops: float
    source: str
    scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "genotype": self.genotype.to_dict(),
            "bitops": self.bitops,
            "source": self.source,
            "scores": self.scores,
        }


@dataclass
class HalvingResult:
    """The winner, the directory of its training and every rung."""

    winner: Candidate
    winner_dir: Path
    candidates: list[Candidate]
    rungs: list[dict]
    seconds: float


def rung_schedule(n: int, *, eta: int, first: int, total: int) -> list[int]:
    """The epoch each rung trains up to: ``first * eta**r`` (at most ``total - 1``, so the
    winner always has epochs left to continue), until one of ``n`` candidates remains.

    >>> rung_schedule(8, eta=2, first=1, total=20)
    [1, 2, 4]
    """
    if n < 1 or eta < 2 or first < 1:
        raise QuantNASError(
            f"successive halving needs candidates >= 1, search.halving_eta >= 2 and "
            f"search.halving_epochs >= 1 (got {n}, {eta}, {first})"
        )
    out: list[int] = []
    alive = n
    r = 0
    while alive > 1:
        out.append(max(1, min(total - 1, first * eta**r)))
        alive = math.ceil(alive / eta)
        r += 1
    return out


def _score(history: list[dict], epochs: int) -> float:
    """Best QAT validation PSNR of the first ``epochs`` epochs (so a resumed candidate that
    already went further is scored as it stood at the rung).
    """
    vals = [float(r["val_psnr"]) for r in history if r["epoch"] < epochs and r["quantized"]]
    return max(vals) if vals else -math.inf


def _cand_dir(run_dir: Path, i: int) -> Path:
    return run_dir / f"cand_{i:02d}"


def _train_to(
    cfg: Config,
    cand_dir: Path,
    genotype: gt.Genotype,
    epochs: int,
    data: JobData,
    threads: int = 0,
) -> float:
    """Train one candidate up to epoch ``epochs`` (resuming from its checkpoint) and return
    its score at that rung; ``threads > 0`` sets this process's torch threads (a worker).
    """
    from quantnas.training.trainer import Trainer

    if threads > 0:
        from quantnas.device import set_threads

        set_threads(threads)
    trainer = Trainer(cfg, cand_dir, genotype, data=data)
    trainer.resume()
    trainer.run(stop_after=max(0, epochs - trainer.epoch))
    return _score(trainer.history, epochs)


def _train_rung(
    cfg: Config, run_dir: Path, cands: list[Candidate], epochs: int, data: JobData
) -> Iterator[tuple[int, float]]:
    """``(index, score)`` of every candidate of a rung: in this process (one worker, or
    ``search.halving_engine: local``), else as jobs of that engine.
    """
    from quantnas.engines import Job, make_engine, ray_available

    s = cfg.search
    workers = min(s.halving_workers, len(cands))
    name = s.halving_engine
    if name == "auto":  # as the sweep's: Ray when installed or given an address
        name = "ray" if ray_available() or s.halving_address else "processes"
    if name == "local" or (workers <= 1 and name != "ray"):
        for c in cands:
            yield c.index, _train_to(cfg, _cand_dir(run_dir, c.index), c.genotype, epochs, data)
        return
    if name == "ray" and not ray_available():
        raise QuantNASError(
            "config key search.halving_engine: ray needs Ray: pip install 'quantnas[ray]' "
            "(or search.halving_engine=processes)"
        )
    threads = max(1, (cfg.threads or os.cpu_count() or 1) // workers)
    quiet = dataclasses.replace(cfg, progress=False)  # the workers share one terminal
    engine = make_engine(
        name,
        address=s.halving_address,
        cpus_per_trial=threads,
        num_cpus=workers * threads,  # a pool of `workers`, or a new local Ray of that size
    )
    log.info("halving: %d candidates at once (%s), torch threads each: %d", workers, name, threads)
    jobs = [
        Job(
            str(c.index),
            _train_to,
            (quiet, _cand_dir(run_dir.resolve(), c.index), c.genotype, epochs, data, threads),
            {},
        )
        for c in cands
    ]
    try:
        for key, score, error in engine.run(jobs):
            if error is not None:
                cause = (
                    "training process died (out of memory?)"
                    if error.startswith("BrokenProcessPool")
                    else f"training failed ({error})"
                )
                raise QuantNASError(
                    f"{_cand_dir(run_dir, int(key))}: a finalist's {cause}; resume the run, or "
                    "set search.halving_workers=1 to train the finalists one after another"
                )
            yield int(key), score
    finally:
        engine.close()


def successive_halving(
    cfg: Config,
    run_dir: str | Path,
    candidates: list[tuple[gt.Genotype, float, str]],
    *,
    data: JobData | None = None,
) -> HalvingResult:
    """Train ``candidates`` (``(genotype, BitOps, source)``) by successive halving in
    ``run_dir``; resumes what an earlier call left (see the module docstring).

    Raises:
        QuantNASError: No candidates, bad halving settings, or a candidate's training that
            saved no best checkpoint.

    """
    run_dir = Path(run_dir)
    s, t0 = cfg.search, time.time()
    data = data if data is not None else JobData(cfg)  # read once, for every candidate
    cands = [Candidate(i, g, b, src) for i, (g, b, src) in enumerate(candidates)]
    if not cands:
        raise QuantNASError("search.select=halving: no candidate genotypes to train")
    schedule = rung_schedule(
        len(cands), eta=s.halving_eta, first=s.halving_epochs, total=cfg.train.epochs
    )
    alive = [c.index for c in cands]
    rungs: list[dict] = []
    log.info(
        "successive halving: %d candidates, rungs at epochs %s of %d, keep 1/%d per rung",
        len(cands),
        schedule,
        cfg.train.epochs,
        s.halving_eta,
    )
    for r, epochs in enumerate(schedule):
        scores = dict(_train_rung(cfg, run_dir, [cands[i] for i in alive], epochs, data))
        for i in alive:
            cands[i].scores.append(scores[i])
        keep = max(1, math.ceil(len(alive) / s.halving_eta))
        ranked = sorted(alive, key=lambda i: (-scores[i], i))
        rungs.append(
            {
                "rung": r,
                "epochs": epochs,
                "scores": {str(i): scores[i] for i in alive},
                "kept": ranked[:keep],
            }
        )
        log.info(
            "halving rung %d (epoch %d): %s; kept %s",
            r,
            epochs,
            ", ".join(f"#{i} {scores[i]:.3f} dB" for i in ranked),
            ranked[:keep],
        )
        alive = ranked[:keep]
        atomic_write_json(
            run_dir / RECORD,
            {"rungs": rungs, "candidates": [c.to_dict() for c in cands], "alive": alive},
        )
    winner = cands[alive[0]]
    wdir = _cand_dir(run_dir, winner.index)
    if schedule and not (wdir / BEST).exists():  # one candidate: nothing raced, nothing saved
        raise QuantNASError(f"{wdir}: the winning candidate's training saved no best checkpoint")
    return HalvingResult(winner, wdir, cands, rungs, time.time() - t0)


def hand_over(winner_dir: Path, train_dir: Path) -> None:
    """Copy the winner's checkpoints into the job's training directory (atomically, once),
    so the training continues from them. Nothing is copied when the winner has no
    checkpoint (a single candidate, not raced) or the training is already under way.
    """
    src, train_dir = Path(winner_dir), Path(train_dir)
    if not (src / CHECKPOINT).exists() or (train_dir / CHECKPOINT).exists():
        return
    train_dir.mkdir(parents=True, exist_ok=True)
    for name in (BEST, CHECKPOINT):  # the checkpoint last: its presence means "handed over"
        if (src / name).exists():
            atomic_write_bytes(train_dir / name, (src / name).read_bytes())
