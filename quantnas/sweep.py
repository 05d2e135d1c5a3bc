"""Penalty sweeps (the original ``batch_exp.py``): for each hardware-penalty value and each
repeat (seed), search -> train -> eval; then one results table and a PSNR-vs-BitOps Pareto
plot over all runs.

Layout: ``out_dir/<name>/p<penalty>_s<seed>/`` (a full ``quantnas run`` directory each),
plus ``results.csv``, ``results.json`` and ``pareto.png`` in ``out_dir/<name>``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from pathlib import Path

from quantnas.checkpoint import atomic_write_json, atomic_write_text
from quantnas.config import Config, from_dict, to_dict
from quantnas.errors import QuantNASError
from quantnas.plots import pareto_front, plot_pareto
from quantnas.runlog import setup_logging

log = logging.getLogger("quantnas")

FIELDS = (
    "penalty",
    "seed",
    "bitops_32",
    "bitops_256",
    "params",
    "psnr",
    "ssim",
    "bicubic_psnr",
    "search_s",
    "train_s",
    "pareto",
    "genotype",
    "run_dir",
    "config_hash",
)

#: The sweep's record of its config and grid (checked by ``--resume``).
MANIFEST = "sweep.json"


def config_hash(cfg: Config | dict, *, drop: tuple[str, ...] = ()) -> str:
    """A short hash of a resolved config, ignoring where it runs (``out_dir``, ``name``).

    Args:
        cfg: The config (or its :func:`to_dict` form).
        drop: Further dotted keys to ignore (e.g. ``search.penalty`` for a sweep's base).

    Returns:
        12 hex digits of the SHA-256 of the canonical JSON.

    """
    data = json.loads(json.dumps(cfg if isinstance(cfg, dict) else to_dict(cfg)))
    for key in ("out_dir", "name", *drop):
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _trial_hash(run_dir: Path) -> str | None:
    """The config hash of a trial directory's saved ``config.yaml`` (None without one)."""
    import yaml

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return None
    try:
        return config_hash(yaml.safe_load(saved.read_text(encoding="utf-8")))
    except (ValueError, yaml.YAMLError, AttributeError):
        return "unreadable"


def check_resume(
    sweep_dir: Path, base: dict, trials: dict[str, dict], *, resume: bool, extend: bool
) -> None:
    """Refuse to mix trials of different configs or grids in one sweep directory.

    Records ``sweep.json`` (the base config's hash and the trial names). On ``--resume``
    the base hash must match; the grid must match unless ``extend``; every existing trial
    directory's saved config must hash like the config it would be run with now.

    Raises:
        QuantNASError: On any mismatch, naming the sweep directory and what differs.

    """
    base_hash = config_hash(base, drop=("search.penalty", "seed"))
    path = sweep_dir / MANIFEST
    grid = sorted(trials)
    if resume and path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            old_hash, old_grid = str(old["config_hash"]), sorted(old["trials"])
        except (ValueError, KeyError, TypeError):
            raise QuantNASError(f"{path} is corrupt; cannot check what the sweep ran") from None
        if old_hash != base_hash:
            raise QuantNASError(
                f"sweep {sweep_dir} was started with another config (hash {old_hash}, now "
                f"{base_hash}); rerun it with the same config and overrides, or use another "
                "-d name"
            )
        if old_grid != grid and not extend:
            raise QuantNASError(
                f"sweep {sweep_dir} was started with trials {', '.join(old_grid)}, not "
                f"{', '.join(grid)}; pass --extend to add trials to it, or use another -d name"
            )
        grid = sorted(set(grid) | set(old_grid))
    for name, trial in trials.items():
        found = _trial_hash(sweep_dir / name)
        if found is not None and found != config_hash(trial):
            raise QuantNASError(
                f"sweep trial {sweep_dir / name} was run with another config (hash {found}, "
                f"now {config_hash(trial)}); use another -d name"
            )
    atomic_write_json(path, {"config_hash": base_hash, "trials": grid})


def run_name(penalty: float, seed: int) -> str:
    return f"p{penalty:g}_s{seed}"


def _row(report: dict, set_name: str) -> dict:
    s = report["sets"][set_name]
    return {
        "penalty": report["penalty"],
        "seed": report["seed"],
        "bitops_32": report["bitops_32"],
        "bitops_256": report["bitops_256"],
        "params": report["params"],
        "psnr": s["psnr"],
        "ssim": s["ssim"],
        "bicubic_psnr": s["bicubic_psnr"],
        "search_s": report["seconds"].get("search", 0.0),
        "train_s": report["seconds"].get("train", 0.0),
        "genotype": report["genotype_text"],
        "run_dir": report["run_dir"],
        "config_hash": _trial_hash(Path(report["run_dir"])) or "",
    }


def collect(sweep_dir: Path, *, set_name: str = "validation") -> list[dict]:
    """Gather the finished runs of a sweep into rows and mark the Pareto-optimal ones."""
    rows = []
    for rep in sorted(sweep_dir.glob("*/report.json")):
        rows.append(_row(json.loads(rep.read_text(encoding="utf-8")), set_name))
    front = set(pareto_front([(r["bitops_32"], r["psnr"]) for r in rows]))
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    return rows


def write_results(sweep_dir: Path, rows: list[dict]) -> None:
    """``results.csv``, ``results.json`` and ``pareto.png``."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(sweep_dir / "results.csv", buf.getvalue())
    atomic_write_json(sweep_dir / "results.json", rows)
    if rows:
        plot_pareto(
            rows,
            sweep_dir / "pareto.png",
            x_key="bitops_32",
            y_key="psnr",
            label_key="penalty",
            x_label="BitOps (LR 32x32)",
            y_label="validation PSNR (dB, Y)",
            title="QuantNAS penalty sweep",
        )


def run_sweep(
    cfg: Config,
    *,
    penalties: list[float],
    repeats: int,
    name: str,
    resume: bool = False,
    extend: bool = False,
) -> list[dict]:
    """Run every (penalty, seed) pair, reusing finished runs when ``resume``.

    ``resume`` refuses a sweep directory started with another config, or (unless
    ``extend``) with other penalty values / repeats; see :func:`check_resume`.
    """
    from quantnas.pipeline import run_pipeline

    if repeats < 1:
        raise QuantNASError(f"-r/--repeats must be >= 1 (got {repeats})")
    if any(not math.isfinite(p) or p < 0 for p in penalties):
        raise QuantNASError(f"-v/--values: penalties must be finite numbers >= 0 (got {penalties})")
    sweep_dir = Path(cfg.out_dir) / name
    if sweep_dir.exists() and any(sweep_dir.iterdir()) and not resume:
        raise QuantNASError(
            f"sweep directory {sweep_dir} exists; pass --resume to continue it "
            f"or choose another -d name"
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(sweep_dir)
    base = to_dict(cfg)
    trials: dict[str, Config] = {}
    for penalty in penalties:
        for r in range(repeats):
            run_cfg = from_dict(base)
            run_cfg.search.penalty, run_cfg.seed = float(penalty), cfg.seed + r
            run_cfg.out_dir, run_cfg.name = str(sweep_dir), run_name(penalty, cfg.seed + r)
            trials[run_cfg.name] = run_cfg
    check_resume(
        sweep_dir, base, {k: to_dict(c) for k, c in trials.items()}, resume=resume, extend=extend
    )
    for run_cfg in trials.values():
        run_dir = sweep_dir / run_cfg.name
        if (run_dir / "report.json").exists():
            log.info("sweep: %s already finished", run_dir.name)
            continue
        log.info("sweep: running %s", run_dir.name)
        run_pipeline(run_cfg, run_dir, resume=run_dir.exists())
        setup_logging(sweep_dir)
    rows = collect(sweep_dir)
    write_results(sweep_dir, rows)
    log.info("sweep: %d runs, results in %s", len(rows), sweep_dir / "results.csv")
    for r in rows:
        log.info(
            "  penalty %-8g seed %-3d BitOps %10.4g  PSNR %.2f dB%s",
            r["penalty"],
            r["seed"],
            r["bitops_32"],
            r["psnr"],
            "  (Pareto)" if r["pareto"] else "",
        )
    return rows
