"""``quantnas sweep``: plan the trials, run them on an engine, record every result, draw the
front (:mod:`quantnas.sweep.front`).

Layout of ``out_dir/<name>/``::

    sweep.yaml  log.txt  results.csv  results.jsonl  pareto.png  pareto.md  sweep.json
    grid.json  trials/<trial_id>/  (result.json, log.txt, genotype.json, search/, train/)

``grid.json`` records the config and the trials (what ``--resume`` checks and ``--extend``
adds to); ``sweep.json`` is the summary of the last session (engine, wall time, failures).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from quantnas.config.checks import check_name
from quantnas.engines import Engine, Job, ProcessEngine, RayEngine, make_engine
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import Config, dump, to_dict
from quantnas.rundir.files import atomic_write_json, atomic_write_text, remove_stale_tmp
from quantnas.rundir.lock import holding
from quantnas.rundir.log import setup_logging
from quantnas.sweep import pareto as pm
from quantnas.sweep.front import pareto_set, write_pareto
from quantnas.sweep.results import read_result, trial_dir, write_result, write_tables
from quantnas.sweep.runner import run_trial
from quantnas.sweep.trials import (
    Trial,
    base_hash,
    config_hash,
    plan,
    trial_config,
    uniform_plan,
)

log = logging.getLogger(__name__)


def _row(trial: Trial, result: dict | None, error: str | None, **extra) -> dict:
    base = trial.to_dict()
    base.pop("genotype")
    return {
        **base,
        "status": "failed" if error else "ok",
        "error": error,
        **(result or {}),
        **extra,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


class _Sweep:
    """State of one sweep run: its folder, engine and the rows recorded so far."""

    def __init__(self, cfg: Config, sweep_dir: Path, engine: Engine) -> None:
        self.cfg, self.dir, self.engine = cfg, sweep_dir, engine
        self.rows: dict[str, dict] = {}
        self.order: list[str] = []
        self.reused = 0
        gpu = isinstance(engine, RayEngine | ProcessEngine) and engine.gpus > 0
        self.device = "cuda" if gpu else cfg.device
        pooled = isinstance(engine, RayEngine | ProcessEngine)
        self.threads = max(1, int(engine.cpus)) if pooled else cfg.threads

    def _record(self, row: dict) -> None:
        write_result(self.dir, row)
        self.rows[row["trial_id"]] = row
        write_tables(self.dir, [self.rows[k] for k in self.order if k in self.rows])

    def run(self, trials: Sequence[Trial]) -> None:
        """Run the trials that have not finished (reuse finished ones with the same hash)."""
        jobs, meta = [], {}
        for t in trials:
            tid = t.trial_id
            self.order.append(tid)
            h = config_hash(self.cfg, t)
            prev = read_result(self.dir, tid)
            if prev is not None and prev.get("status") == "ok":
                if prev.get("config_hash") != h:
                    raise QuantNASError(
                        f"trial {tid} in {self.dir} finished with another config (hash "
                        f"{prev.get('config_hash')}, now {h}); rerun with the same config or "
                        f"choose another -d name"
                    )
                self.rows[tid] = prev
                self.reused += 1
                log.info("sweep: %s already finished", tid)
                continue
            cfg_data = to_dict(trial_config(self.cfg, t))
            out = str(trial_dir(self.dir, tid))
            kwargs = {"threads": self.threads, "device": self.device}
            jobs.append(Job(tid, run_trial, (t.to_dict(), cfg_data, out), kwargs))
            meta[tid] = (t, h)
        if not jobs:
            return
        log.info("sweep: running %d trials on the %s engine", len(jobs), self.engine.name)
        for key, result, error in self.engine.run(jobs):
            t, h = meta[key]
            row = _row(
                t,
                result,
                error,
                config_hash=h,
                engine=self.engine.name,
                trial_dir=str(Path("trials") / key),
            )
            self._record(row)
            if error:
                log.warning("sweep: %s FAILED: %s", key, error)
            else:
                set_name = pareto_set(self.cfg.sweep.pareto_set, [row], warn=False)
                log.info(
                    "sweep: %s done: %.3f GBitOps, %s PSNR %.2f dB (validation %.2f), %.0f s",
                    key,
                    row["bitops_32"] / 1e9,
                    set_name,
                    row[pm.psnr_key(set_name)],
                    row["psnr_validation"],
                    row["total_s"],
                )

    def found(self, trials: Sequence[Trial]) -> list[tuple[Trial, str]]:
        """``(search trial, genotype JSON)`` of the finished search trials."""
        out = []
        for t in trials:
            row = self.rows.get(t.trial_id)
            if t.method == "search" and row is not None and row.get("status") == "ok":
                out.append((t, row["genotype_json"]))
        return out

    def ordered(self) -> list[dict]:
        return [self.rows[k] for k in self.order if k in self.rows]


GRID = "grid.json"


def _started(sweep_dir: Path) -> bool:
    """Whether ``sweep_dir`` holds a sweep: anything but quantnas's hidden files (its lock,
    its manifest), which a sweep writes before anything else.
    """
    return sweep_dir.is_dir() and any(not p.name.startswith(".") for p in sweep_dir.iterdir())


def _check_grid(
    sweep_dir: Path, trials: list[str], config: str, *, resume: bool, extend: bool
) -> list[str]:
    """Refuse to resume a sweep with another config (always) or another grid of trials
    (unless told to extend it).

    Returns the grid to record: the trials, plus the earlier ones when extending.
    """
    path = sweep_dir / GRID
    if resume and _started(sweep_dir) and not path.is_file():
        raise QuantNASError(
            f"sweep {sweep_dir} has no {GRID} (its record of the config and trials), so what "
            "it ran cannot be checked; restore the file, or start anew with another -d name"
        )
    if not (resume and path.is_file()):
        return sorted(trials)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        old, old_config = sorted(saved["trials"]), str(saved["config_hash"])
    except (ValueError, KeyError, TypeError):
        raise QuantNASError(f"{path} is corrupt; cannot check what the sweep ran") from None
    if old_config != config:
        raise QuantNASError(
            f"sweep {sweep_dir} was started with another config (hash {old_config}, now "
            f"{config}); rerun it with the same config and overrides, or use another -d name"
        )
    if old != sorted(trials) and not extend:
        added = sorted(set(trials) - set(old))
        dropped = sorted(set(old) - set(trials))
        raise QuantNASError(
            f"sweep {sweep_dir} was started with another grid (new trials: "
            f"{', '.join(added) or 'none'}; missing: {', '.join(dropped) or 'none'}); pass "
            "--extend to add trials to it, or use another -d name"
        )
    return sorted(set(old) | set(trials))


def run_sweep(
    cfg: Config,
    *,
    name: str,
    engine: str = "auto",
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_retries: int = 0,
    resume: bool = False,
    extend: bool = False,
) -> list[dict]:
    """Run (or resume) a sweep in ``cfg.out_dir/name``; returns the result rows.

    ``--resume`` refuses a different grid of trials (penalties, seeds, random samples,
    baselines) than the sweep started with unless ``extend``; each existing trial must
    also have been run with the same config (its hash, see :class:`_Sweep`). The sweep
    holds the lock of its folder (:func:`~quantnas.rundir.lock.hold`) while it runs, and each
    trial the lock of its own (:func:`~quantnas.sweep.runner.run_trial`).
    """
    check_name(name, "-d/--name")
    engine_args = {
        "name": engine,
        "address": address,
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
        "max_retries": max_retries,
    }
    sweep_dir = Path(cfg.out_dir) / name
    with holding(sweep_dir, command="sweep"):
        return _run_locked(cfg, sweep_dir, name, engine_args, resume=resume, extend=extend)


def _run_locked(
    cfg: Config, sweep_dir: Path, name: str, engine_args: dict, *, resume: bool, extend: bool
) -> list[dict]:
    """:func:`run_sweep` while it holds the lock of ``sweep_dir``."""
    if _started(sweep_dir) and not resume:
        raise QuantNASError(
            f"sweep directory {sweep_dir} exists; pass --resume to continue it "
            f"or choose another -d name"
        )
    first = plan(cfg)  # validates cfg.sweep before anything is written
    eng = make_engine(**engine_args)
    config = base_hash(cfg)
    ids = [t.trial_id for t in first]
    grid = _check_grid(sweep_dir, ids, config, resume=resume, extend=extend)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(sweep_dir)  # of a killed sweep (its trials clean their own folders)
    atomic_write_json(sweep_dir / GRID, {"config_hash": config, "trials": grid})
    setup_logging(sweep_dir)
    atomic_write_text(sweep_dir / "sweep.yaml", dump(cfg))
    t0 = time.time()
    sw = _Sweep(cfg, sweep_dir, eng)
    try:
        sw.run(first)
        sw.run(uniform_plan(cfg, sw.found(first)))
    finally:
        eng.close()
        setup_logging(sweep_dir)
    rows = sw.ordered()
    write_tables(sweep_dir, rows)
    wall = time.time() - t0
    failed = [r["trial_id"] for r in rows if r["status"] != "ok"]
    atomic_write_json(
        sweep_dir / "sweep.json",
        {
            "engine": eng.name,
            "wall_s": wall,
            "trials": len(rows),
            "reused": sw.reused,
            "failed": failed,
        },
    )
    log.info(
        "sweep: %d trials (%d reused, %d failed) in %.0f s; results in %s",
        len(rows),
        sw.reused,
        len(failed),
        wall,
        sweep_dir / "results.csv",
    )
    if any(r["status"] == "ok" for r in rows):
        set_name = pareto_set(cfg.sweep.pareto_set, [r for r in rows if r["status"] == "ok"])
        md = write_pareto(rows, set_name, sweep_dir / "pareto.png", title=f"sweep {name}",
                          tolerance=cfg.sweep.target_tolerance)
        log.info("sweep: Pareto front on %r\n%s", set_name, md)
    return rows
