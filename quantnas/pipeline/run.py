"""The main job: search -> train the found genotype with QAT -> evaluate -> report.

Layout of a run directory::

    config.yaml  log.txt  state.json  report.md  report.json  summary.txt
    search/   (checkpoint.pt, best_arch.json, alphas.png, arch.png, metrics.jsonl)
    train/    (checkpoint.pt, best.pt, training.png, metrics.jsonl)
    eval.json  samples/  side_by_side.png

The stages are a :class:`~quantnas.pipeline.job.Job` (as a sweep trial's are) plus the report.
``state.json`` records the finished stages; ``--resume RUN_DIR`` skips them and resumes
the unfinished stage from its own checkpoint. What a skipped stage derived from its
checkpoint (genotypes, alpha history, metric rows, pictures) is rewritten where it
differs, and the evaluation is done again when one of its files (recorded by SHA-256 in
``state.json``) was changed or lost.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch

from quantnas.config.specs import JobSpec, job_spec
from quantnas.data.job_data import JobData
from quantnas.errors import QuantNASError
from quantnas.pipeline import report
from quantnas.pipeline.job import STAGES, Job, Prebuilt, RunState
from quantnas.pipeline.resolve import Config, dump
from quantnas.rundir.files import atomic_write_text, remove_stale_tmp
from quantnas.rundir.log import setup_logging

__all__ = ["STAGES", "RunState", "preflight", "run_pipeline"]

log = logging.getLogger(__name__)


def preflight(spec: JobSpec | Config, data: JobData | None = None) -> Prebuilt:
    """Fail fast on bad data, an impossible space or too little memory, before computing
    (the images read through ``data``, the job's, so they are read once).

    Args:
        spec: The job's resolved config (:func:`quantnas.config.specs.job_spec`; a config
            is resolved here).
        data: The job's images (read from ``spec.data`` when None).

    Returns:
        The search's supernet: built here, seeded as the search seeds before it builds
        one, and left as built (the memory estimate's forward pass changes no state), so
        the search uses it instead of building its own.

    """
    from quantnas.memory import check_memory
    from quantnas.rng import rng_state, seed_everything
    from quantnas.search.setup import build_supernet
    from quantnas.space.footprint import check_network_budget, check_samples

    if isinstance(spec, Config):
        spec = job_spec(spec)
    limits = {"max_memory_gb": spec.max_memory_gb, "device": spec.device}
    for size in (spec.search_size, spec.train_size):  # counted from the structure
        check_network_budget(size, **limits)
    d, search = spec.data, spec.search_size
    crop = max(d.lr_crop, search.lr_crop)
    need = crop * d.scale
    data = data if data is not None else JobData(d)
    imgs = data.training_images()
    small = [n for n, a in imgs if min(a.shape[:2]) < need]
    if small:
        raise QuantNASError(
            f"data.train: image {small[0]!r} is smaller than the HR crop {need}x{need} "
            f"(LR crop {crop} x scale {d.scale}); lower data.lr_crop / search.lr_crop"
        )
    check_samples(len(imgs) * d.repeat, limit_gb=spec.max_memory_gb)
    data.validation_images()
    seed_everything(spec.seed)  # as the search does right before it builds the supernet
    built = Prebuilt(build_supernet(spec.supernet), rng_state())
    before = copy.deepcopy(built.net.state_dict())
    with torch.random.fork_rng(devices=[]):
        est = check_memory(
            built.net,
            batch_size=search.batch,
            lr_crop=search.lr_crop,
            scale=d.scale,
            limit_gb=spec.max_memory_gb,
            device=spec.device,
        )
    built.net.load_state_dict(before)
    log.info(
        "preflight: %d training images, supernet step needs about %.2f GiB",
        len(imgs),
        est / 1024**3,
    )
    return built


def run_pipeline(
    cfg: Config, run_dir: str | Path, *, resume: bool = False, data: JobData | None = None
) -> dict:
    """Run (or resume) the whole job in ``run_dir`` on ``data`` (the config's sources when
    None); returns the report dict.

    The process holds the lock of ``run_dir`` (:func:`quantnas.rundir.lock.hold`) meanwhile.
    """
    from quantnas.rundir.lock import holding

    with holding(run_dir, command="run"):
        return _run_pipeline(cfg, Path(run_dir), resume=resume, data=data)


def _run_pipeline(cfg: Config, run_dir: Path, *, resume: bool, data: JobData | None) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(run_dir, recursive=True)  # of a killed run (this process holds the lock)
    setup_logging(run_dir)
    job = Job(cfg, run_dir, data=data, resume=resume)
    if not job.state.done("search"):  # before the first file: bad data leaves no run behind
        job.supernet = preflight(job.spec, job.data)
    atomic_write_text(run_dir / "config.yaml", dump(cfg))
    res = job.run()
    with job.stage("report") as t:
        rep = report.write_report(cfg, run_dir, job.state.record, res.eval)
        t.finish()
    return rep
