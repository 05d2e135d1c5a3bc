"""Run directories: which one a stage writes to, what marks one, and what a resumed run keeps.

``search``, ``train`` and ``run`` write into ``out_dir/<name or stage-timestamp>``. A fresh
run refuses a folder that already holds a run (``--resume`` continues it, ``--restart``
discards it) or that is not a quantnas run directory at all; a resumed run takes its saved
``config.yaml`` (overrides still apply on top).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from quantnas.errors import QuantNASError

__all__ = [
    "RUN_MARKERS",
    "chosen_run_dir",
    "claim_run_dir",
    "resumed_config",
    "start_logging",
    "written_by_quantnas",
]

log = logging.getLogger(__name__)

#: What a run directory of search/train/run holds once it has started (any one of them).
RUN_MARKERS = ("config.yaml", "state.json", "checkpoint.pt", "search", "train")


def chosen_run_dir(cfg, stage: str, *, resume: str | None, restart: bool) -> Path:
    """The run directory of a stage: the ``resume`` folder (which must exist) or a fresh one,
    ``out_dir/<name or stage-timestamp>``.

    Raises:
        QuantNASError: ``resume`` with ``restart``, or a ``resume`` folder that is missing.

    """
    if resume:
        if restart:
            raise QuantNASError("--resume and --restart exclude each other; choose one")
        d = Path(resume)
        if not d.is_dir():
            raise QuantNASError(f"--resume: run directory {d} does not exist")
        return d
    name = cfg.name or f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out_dir) / name


def claim_run_dir(d: Path, *, restart: bool, command: str) -> None:
    """Make sure a fresh run may write to ``d``; with ``restart``, delete the run there.

    A folder holding only the log of a run that failed before its first write is reused.

    Raises:
        QuantNASError: ``d`` holds files but is no quantnas run directory, holds a run and
            ``restart`` is off, or ``restart`` is on but ``d`` has no quantnas config.

    """
    if not (d.is_dir() and any(p.name != "log.txt" for p in d.iterdir())):
        return
    if not any((d / m).exists() for m in RUN_MARKERS):
        raise QuantNASError(
            f"{d} exists and is not a quantnas run directory; choose another name=... "
            "or out_dir=..."
        )
    if restart and not written_by_quantnas(d / "config.yaml"):
        raise QuantNASError(
            f"--restart: {d} has no quantnas config.yaml, so it is not deleted; remove it "
            "yourself or choose another name=..."
        )
    if not restart:
        raise QuantNASError(
            f"run directory {d} already holds a run (finished or not); continue it with: "
            f"quantnas {command} --resume {d} (or pass --restart to discard it, or "
            "choose another name=...)"
        )
    from quantnas import distributed as qdist

    if qdist.is_main():  # under torchrun, one rank deletes
        log.warning("--restart: discarding the run in %s", d)
        shutil.rmtree(d)


def written_by_quantnas(config_file: Path) -> bool:
    """Whether ``config_file`` is a config quantnas dumped (guards ``--restart``'s delete)."""
    import yaml

    try:
        data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return False
    return isinstance(data, dict) and {"arch", "data", "search", "train"} <= set(data)


def resumed_config(run_dir: Path, overrides: list[str]):
    """The saved config of a resumed run with ``overrides`` on top (None if none was saved).

    Raises:
        QuantNASError: The saved config is unreadable, invalid YAML or an invalid config.

    """
    import yaml

    from quantnas.config import Config, apply_override, load_yaml, merge, validate
    from quantnas.errors import read_user_text

    saved = run_dir / "config.yaml"
    if not saved.exists():
        return None
    try:
        data = load_yaml(read_user_text(saved, "saved config"))
    except (yaml.YAMLError, RecursionError) as e:
        raise QuantNASError(
            f"saved config {saved} is corrupt (invalid YAML: {e.__class__.__name__}); restore "
            "it, or delete the run directory and start again"
        ) from None
    cfg = merge(Config(), {} if data is None else data, source=f"saved config {saved}")
    for o in overrides:
        apply_override(cfg, o)
    return validate(cfg)


def start_logging(run_dir: Path, cfg) -> Path:
    """Log to the console and ``run_dir/log.txt`` (under torchrun: rank 0's run directory).

    Under torchrun the ranks join their process group here and take rank 0's run directory
    (a default name holds a timestamp); ranks other than 0 log warnings to the console
    only and write nothing.

    Returns:
        The run directory this rank uses.

    """
    from quantnas import distributed as qdist
    from quantnas.runlog import setup_logging

    if qdist.init(cfg.device):
        run_dir = qdist.rank0_path(run_dir)
    if qdist.is_main():
        setup_logging(run_dir)
    else:
        setup_logging(None, level=logging.WARNING)
    return run_dir
