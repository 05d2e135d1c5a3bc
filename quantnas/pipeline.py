"""The main job: search -> train the found genotype with QAT -> evaluate -> report.

Layout of a run directory::

    config.yaml  log.txt  state.json  report.md  report.json  summary.txt
    search/   (checkpoint.pt, best_arch.json, alphas.png, arch.png, metrics.jsonl)
    train/    (checkpoint.pt, best.pt, training.png, metrics.jsonl)
    eval.json  samples/  side_by_side.png

``state.json`` records the finished stages; ``--resume RUN_DIR`` skips them and resumes
the unfinished stage from its own checkpoint. What a skipped stage derived from its
checkpoint (genotypes, alpha history, metric rows, pictures) is rewritten where it
differs, and the evaluation is done again when one of its files (recorded by SHA-256 in
``state.json``) was changed or lost.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from quantnas import genotype as gt
from quantnas.config import Config, dump
from quantnas.errors import QuantNASError, read_user_text
from quantnas.fileio import atomic_write_json, atomic_write_text, remove_stale_tmp
from quantnas.runlog import setup_logging

log = logging.getLogger(__name__)

STAGES = ("search", "train", "eval", "report")


class RunState:
    """Finished stages and their timings, persisted in ``state.json``."""

    def __init__(self, run_dir: Path) -> None:
        import json

        self.path = run_dir / "state.json"
        self.data: dict = {"done": {}, "seconds": {}}
        if self.path.exists():
            try:
                self.data = json.loads(read_user_text(self.path, "run state"))
            except ValueError:
                self.data = None
            ok = isinstance(self.data, dict) and all(
                isinstance(self.data.get(k), dict) for k in ("done", "seconds")
            )
            if not ok:
                raise QuantNASError(
                    f"{self.path} is corrupt (expected a JSON object with 'done' and "
                    "'seconds'); delete it to redo every stage from its checkpoint"
                )

    def done(self, stage: str) -> bool:
        return stage in self.data["done"]

    def finish(self, stage: str, seconds: float, **info) -> None:
        self.data["done"][stage] = info
        self.data["seconds"][stage] = self.data["seconds"].get(stage, 0.0) + seconds
        atomic_write_json(self.path, self.data)

    def add_time(self, stage: str, seconds: float) -> None:
        self.data["seconds"][stage] = self.data["seconds"].get(stage, 0.0) + seconds
        atomic_write_json(self.path, self.data)

    def info(self, stage: str) -> dict:
        return self.data["done"].get(stage, {})


def preflight(cfg: Config) -> None:
    """Fail fast on bad data, an impossible space or too little memory, before computing."""
    from quantnas.budget import check_network_budget, check_samples
    from quantnas.data.roles import training_images, validation_images
    from quantnas.memory import check_memory
    from quantnas.search.setup import build_supernet, search_crop

    check_network_budget(cfg, "search")  # counted from the structure: nothing allocated yet
    check_network_budget(cfg, "train")
    crop = max(cfg.data.lr_crop, search_crop(cfg))
    need = crop * cfg.arch.scale
    imgs = training_images(cfg)
    small = [n for n, a in imgs if min(a.shape[:2]) < need]
    if small:
        raise QuantNASError(
            f"data.train: image {small[0]!r} is smaller than the HR crop {need}x{need} "
            f"(LR crop {crop} x scale {cfg.arch.scale}); lower data.lr_crop / search.lr_crop"
        )
    check_samples(len(imgs) * cfg.data.repeat, limit_gb=cfg.run.max_memory_gb)
    validation_images(cfg)
    net = build_supernet(cfg)
    est = check_memory(
        net,
        batch_size=cfg.search.batch_size,
        lr_crop=search_crop(cfg),
        scale=cfg.arch.scale,
        limit_gb=cfg.run.max_memory_gb,
        device=cfg.device,
    )
    log.info(
        "preflight: %d training images, supernet step needs about %.2f GiB",
        len(imgs),
        est / 1024**3,
    )


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


def _stage(state: RunState, name: str):
    class _Timer:
        def __enter__(self):
            self.t0 = time.time()
            log.info("=== stage %s ===", name)
            return self

        def __exit__(self, *exc):
            if exc[0] is not None:
                state.add_time(name, time.time() - self.t0)
            return False

    return _Timer()


def run_pipeline(cfg: Config, run_dir: Path, *, resume: bool = False) -> dict:
    """Run (or resume) the whole job in ``run_dir``; returns the report dict.

    The process holds the lock of ``run_dir`` (:func:`quantnas.runlock.hold`) meanwhile.
    """
    from quantnas.runlock import holding

    with holding(run_dir, command="run"):
        return _run_pipeline(cfg, Path(run_dir), resume=resume)


def _run_pipeline(cfg: Config, run_dir: Path, *, resume: bool) -> dict:
    from quantnas.report import evaluate_run, write_report
    from quantnas.search.records import refresh_search
    from quantnas.search.searcher import search
    from quantnas.train import train
    from quantnas.train_records import refresh_training

    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(run_dir, recursive=True)  # of a killed run (this process holds the lock)
    setup_logging(run_dir)
    state = RunState(run_dir)
    if not state.done("search"):
        preflight(cfg)  # before the first file of the run: bad data leaves no run behind
    atomic_write_text(run_dir / "config.yaml", dump(cfg))
    if not state.done("search"):
        with _stage(state, "search") as t:
            res = search(cfg, run_dir / "search", resume=resume)
            state.finish("search", time.time() - t.t0, best_epoch=res.best_epoch)
    else:  # what the finished search derives from its checkpoint, rewritten where it differs
        refresh_search(cfg, run_dir / "search")
    geno = gt.load(run_dir / "search" / "best_arch.json")
    log.info("searched genotype: %s", geno)
    if not state.done("train"):
        with _stage(state, "train") as t:
            res = train(cfg, run_dir / "train", geno, resume=resume)
            state.finish(
                "train", time.time() - t.t0, best_epoch=res.best_epoch, best_psnr=res.best_psnr
            )
    else:
        refresh_training(cfg, run_dir / "train", geno)
    if not state.done("eval") or state.info("eval").get("files") != _eval_files(run_dir):
        with _stage(state, "eval") as t:  # (again when one of its files was changed or lost)
            evaluate_run(cfg, run_dir)
            state.finish("eval", time.time() - t.t0, files=_eval_files(run_dir))
    with _stage(state, "report") as t:
        report = write_report(cfg, run_dir, state.data)
        state.finish("report", time.time() - t.t0)
    return report
