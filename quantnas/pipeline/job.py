"""One job: get a network -> train it with QAT -> evaluate it. ``quantnas run`` and every
sweep trial are this job; they differ only in where the network comes from and what is
written around it (the run's report, the trial's result row).

Where the network comes from (:class:`Network`): a search in ``run_dir/search``, a given
genotype (random, uniform, a file) or a hand-designed network's builder. The stages pass
their results in memory (the searched genotype, the trained network, the evaluation); the
images are read once (:class:`~quantnas.data.job_data.JobData`). Files serve to resume:
``state.json`` records the finished stages, and a finished stage is not run again but
read back from its files (what it derives from its checkpoint rewritten where it differs).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from quantnas.config.specs import job_spec
from quantnas.config.types import Config
from quantnas.data.job_data import JobData
from quantnas.errors import QuantNASError, read_user_text
from quantnas.pipeline import report
from quantnas.rundir.files import atomic_write_json
from quantnas.space import genotype as gt

log = logging.getLogger(__name__)

#: The stages of a job, in order (``select`` only with finalists to race, ``report`` only
#: for ``quantnas run``).
STAGES = ("search", "select", "train", "eval", "report")
#: What a sweep trial of quantnas <= 0.x recorded of its finished search (read on resume).
LEGACY_SEARCH_INFO = "search_info.json"


class RunState:
    """Finished stages and their timings, persisted in ``state.json``."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "state.json"
        self.record: dict = {"done": {}, "seconds": {}}
        if self.path.exists():
            try:
                self.record = json.loads(read_user_text(self.path, "run state"))
            except ValueError:
                self.record = None
            ok = isinstance(self.record, dict) and all(
                isinstance(self.record.get(k), dict) for k in ("done", "seconds")
            )
            if not ok:
                raise QuantNASError(
                    f"{self.path} is corrupt (expected a JSON object with 'done' and "
                    "'seconds'); delete it to redo every stage from its checkpoint"
                )

    def done(self, stage: str) -> bool:
        return stage in self.record["done"]

    def finish(self, stage: str, seconds: float, **info: Any) -> None:
        self.record["done"][stage] = info
        self.add_time(stage, seconds)

    def add_time(self, stage: str, seconds: float) -> None:
        self.record["seconds"][stage] = self.record["seconds"].get(stage, 0.0) + seconds
        atomic_write_json(self.path, self.record)

    def info(self, stage: str) -> dict:
        return self.record["done"].get(stage, {})


class _Stage:
    """Times a stage; the time of an interrupted stage is kept in ``state.json`` too."""

    def __init__(self, state: RunState, name: str) -> None:
        self.state, self.name = state, name

    def __enter__(self) -> _Stage:
        self.t0 = time.time()
        log.info("=== stage %s ===", self.name)
        return self

    def __exit__(self, *exc: object) -> bool:
        if exc[0] is not None:
            self.state.add_time(self.name, time.time() - self.t0)
        return False

    def finish(self, **info: Any) -> None:
        self.state.finish(self.name, time.time() - self.t0, **info)


@dataclass
class Network:
    """Where a job's network comes from: ``search`` (nothing given), a ``genotype``, a
    hand-designed network's ``build`` with its ``spec``, or ``candidates`` (``(genotype,
    BitOps, source)``) raced by successive halving (:mod:`quantnas.search.finalists`).
    """

    genotype: gt.Genotype | None = None
    build: Callable[[], nn.Module] | None = None
    spec: dict | None = None
    candidates: list[tuple[gt.Genotype, float, str]] | None = None

    @property
    def searched(self) -> bool:
        return self.genotype is None and self.build is None and self.candidates is None


@dataclass
class Prebuilt:
    """A supernet built for the search by someone else (the preflight), with the RNG
    state right after it was built: the search takes both instead of building its own.
    """

    net: nn.Module
    rng: dict


@dataclass
class JobResult:
    """What a job produced (in memory; its files are in ``run_dir``)."""

    run_dir: Path
    genotype: gt.Genotype | None
    train: Any  # quantnas.training.trainer.TrainResult (None when the training was finished before)
    eval: dict
    search: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def _eval_files(run_dir: Path) -> dict[str, str]:
    """SHA-256 of each file the eval stage wrote (recorded, so a resume sees one changed)."""
    import hashlib

    paths = [run_dir / "eval.json", run_dir / "side_by_side.png"]
    paths += sorted((run_dir / "samples").rglob("*"))
    return {
        p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in paths
        if p.is_file()
    }


class Job:
    """Search (or take) a network, train it and evaluate it in ``run_dir``.

    Args:
        cfg: The job's config.
        run_dir: Its directory (``search/``, ``train/``, ``state.json``, ``eval.json``).
        network: Where the network comes from (a search when not given).
        data: The job's images (read from the config's sources when None).
        resume: Continue an unfinished stage from its checkpoint.
        pictures: The eval stage writes SR samples and ``side_by_side.png``.

    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        *,
        network: Network | None = None,
        data: JobData | None = None,
        resume: bool = False,
        pictures: bool = True,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        #: The config resolved once for the checks before computing and the image readers.
        self.spec = job_spec(cfg)
        self.network = network or Network()
        self.data = data if data is not None else JobData(self.spec.data)
        self.resume, self.pictures = resume, pictures
        self.state = RunState(self.run_dir)
        #: The search's supernet if already built (see :func:`quantnas.pipeline.run.preflight`).
        self.supernet: Prebuilt | None = None

    def stage(self, name: str) -> _Stage:
        return _Stage(self.state, name)

    def genotype(self) -> tuple[gt.Genotype | None, dict]:
        """The network's genotype (searched now, or read back from a finished search) and
        what the search recorded (``best_epoch``, ``entropy``).
        """
        from quantnas.search import searcher
        from quantnas.search.records import refresh_search

        if self.network.candidates is not None:
            return self.selected(self.network.candidates), {}
        if not self.network.searched:
            return self.network.genotype, {}
        legacy = self.run_dir / LEGACY_SEARCH_INFO
        if not self.state.done("search") and legacy.is_file():
            info = json.loads(read_user_text(legacy, "search info"))
            return gt.from_dict(info.pop("genotype"), source=str(legacy)), info
        if self.state.done("search"):  # what it derives from its checkpoint, rewritten
            refresh_search(self.cfg, self.run_dir / "search")
            best = gt.load(self.run_dir / "search" / "best_arch.json")
            return self.after_search(best), self.state.info("search")
        with self.stage("search") as t:
            res = searcher.search(
                self.cfg,
                self.run_dir / "search",
                resume=self.resume,
                data=self.data,
                supernet=self.supernet,
            )
            self.supernet = None  # the search owns it now
            info = {"best_epoch": res.best_epoch, "entropy": res.entropy}
            t.finish(**info)
        return self.after_search(res.best), info

    def after_search(self, geno: gt.Genotype) -> gt.Genotype:
        """The searched genotype, or with ``search.select=halving`` the winner of its
        candidates (``search/candidates.json``).
        """
        if self.cfg.search.select != "halving":
            return geno
        path = self.run_dir / "search" / "candidates.json"
        rows = json.loads(read_user_text(path, "search candidates"))
        cands = [
            (gt.from_dict(r["genotype"], source=str(path)), float(r["bitops"]), r["source"])
            for r in rows
        ]
        return self.selected(cands)

    def selected(self, cands: list[tuple[gt.Genotype, float, str]]) -> gt.Genotype:
        """The winner of successive halving over ``cands`` (raced now, or read back); its
        checkpoints are handed to the training, which continues from them.
        """
        from quantnas.search.finalists import hand_over, successive_halving

        if self.state.done("select"):
            info = self.state.info("select")
            return gt.from_dict(info["winner"], source=str(self.state.path))
        with self.stage("select") as t:
            res = successive_halving(self.cfg, self.run_dir / "select", cands, data=self.data)
            hand_over(res.winner_dir, self.run_dir / "train")
            t.finish(
                winner=res.winner.genotype.to_dict(),
                index=res.winner.index,
                source=res.winner.source,
                candidates=len(cands),
                rungs=[r["epochs"] for r in res.rungs],
            )
        return res.winner.genotype

    def trained(self, geno: gt.Genotype | None) -> tuple[Any, nn.Module | None]:
        """Train the network (or read back a finished training); ``(result, network)``."""
        from quantnas.training import trainer as train
        from quantnas.training.records import refresh_training

        if self.state.done("train"):
            if geno is not None:
                refresh_training(self.cfg, self.run_dir / "train", geno)
            return None, None
        with self.stage("train") as t:
            res = train.train(
                self.cfg,
                self.run_dir / "train",
                geno,
                resume=self.resume or self.state.done("select"),  # the winner goes on
                data=self.data,
                build=self.network.build,
                net_spec=self.network.spec,
            )
            if not res.best_path.exists():
                raise QuantNASError(f"{self.run_dir}: the training saved no best checkpoint")
            t.finish(
                best_epoch=res.best_epoch,
                best_psnr=res.best_psnr,
                stalled=res.stalled,
                last_epoch=res.last_epoch,
            )
        return res, res.network

    def evaluated(self, geno: gt.Genotype | None, net: nn.Module | None) -> dict:
        """Evaluate the network (again when one of the eval files was changed or lost)."""
        if self.state.done("eval") and self.state.info("eval").get("files") == _eval_files(
            self.run_dir
        ):
            return json.loads(read_user_text(self.run_dir / "eval.json", "evaluation"))
        with self.stage("eval") as t:
            ev = report.evaluate_run(
                self.cfg,
                self.run_dir,
                network=net,
                genotype=geno,
                data=self.data,
                pictures=self.pictures,
            )
            t.finish(files=_eval_files(self.run_dir))
        return ev

    def run(self) -> JobResult:
        """Every stage but the report, each skipped when ``state.json`` says it is done."""
        geno, info = self.genotype()
        if geno is not None:
            log.info("genotype: %s", geno)
        res, net = self.trained(geno)
        ev = self.evaluated(geno, net)
        return JobResult(self.run_dir, geno, res, ev, info, self.state.record["seconds"])
