"""Run directories: which one a stage writes to, what marks one, and what a resumed run keeps.

``search``, ``train`` and ``run`` write into ``out_dir/<name or stage-timestamp>`` (the name
stays inside ``out_dir``: :func:`quantnas.config.checks.check_name`). A fresh run refuses
a folder that already holds a run (``--resume`` continues it, ``--restart`` discards it)
or that is not a quantnas run directory at all; a resumed run takes its saved
``config.yaml`` (overrides still apply on top). One process at a time writes a run
directory (:mod:`quantnas.rundir.lock`), and ``--restart`` removes only what its manifest
lists (:mod:`quantnas.rundir.manifest`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from quantnas.errors import QuantNASError
from quantnas.rundir.lock import LOCK_FILE, holding
from quantnas.rundir.manifest import MANIFEST, read_manifest, remove_written, tracking

__all__ = [
    "RUN_MARKERS",
    "chosen_run_dir",
    "claim_run_dir",
    "held",
    "listed",
    "resumed_config",
    "start_logging",
]

log = logging.getLogger(__name__)

#: What a run directory of search/train/run holds once it has started (any one of them).
RUN_MARKERS = ("config.yaml", "state.json", "checkpoint.pt", "search", "train")
#: What a run directory may hold and still count as empty: the log of a run that failed
#: before its first write, the manifest and the lock.
_EMPTY = {"log.txt", MANIFEST, LOCK_FILE}


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
            what = "is not a folder" if os.path.lexists(d) else "does not exist"
            raise QuantNASError(f"--resume: run directory {d} {what}")
        return d
    name = cfg.name or f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out_dir) / name


def claim_run_dir(d: Path, *, restart: bool, command: str) -> None:
    """Make sure a fresh run may write to ``d``; with ``restart``, remove the run there.

    A folder holding only the log of a run that failed before its first write (besides
    the manifest and the lock) is reused.
    ``restart`` removes what the folder's manifest lists and keeps every other file.

    Raises:
        QuantNASError: ``d`` holds files but is no quantnas run directory, holds a run and
            ``restart`` is off, or ``restart`` is on but ``d`` has no manifest of what
            quantnas wrote there.

    """
    names = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
    written = read_manifest(d)
    if set(names) <= _EMPTY:
        from quantnas.training import distributed as qdist

        if "log.txt" in names and not written and qdist.is_main():  # the new run's log now
            with tracking(d, strict=False) as manifest:
                manifest.add(d / "log.txt")
        return
    if written is None and not any((d / m).exists() for m in RUN_MARKERS):
        raise QuantNASError(
            f"{d} exists and is not a quantnas run directory; choose another name=... "
            "or out_dir=..."
        )
    if not restart:
        raise QuantNASError(
            f"run directory {d} already holds a run (finished or not); continue it with: "
            f"quantnas {command} --resume {d} (or pass --restart to discard it, or "
            "choose another name=...)"
        )
    if written is None:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise QuantNASError(
            f"--restart: {d} has no {MANIFEST} listing what quantnas wrote there, so its files "
            f"({shown}) are not deleted; remove them yourself or choose another name=..."
        )
    from quantnas.training import distributed as qdist

    if qdist.is_main():  # under torchrun, one rank deletes
        kept = [n for n in remove_written(d) if n not in _EMPTY]
        log.warning("--restart: discarded the run in %s", d)
        if kept:
            log.warning("--restart: kept what quantnas did not write: %s", ", ".join(kept))


@contextlib.contextmanager
def held(run_dir: Path, *, command: str) -> Iterator[None]:
    """Hold the lock of ``run_dir`` (rank 0 under torchrun; the others write nothing)."""
    from quantnas.training import distributed as qdist

    with holding(run_dir, command=command) if qdist.is_main() else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def listed(run_dir: Path, *, fresh: bool) -> Iterator[None]:
    """List what the block writes into ``run_dir`` in its manifest (rank 0).

    A fresh run, and a resumed one whose folder has a manifest, refuse to overwrite a
    file the manifest does not list; a resumed run from before manifests starts one.
    """
    from quantnas.training import distributed as qdist

    if not qdist.is_main():
        yield
        return
    strict = fresh or (run_dir / MANIFEST).is_file()
    with tracking(run_dir, strict=strict):
        yield


def resumed_config(run_dir: Path, overrides: list[str]):
    """The saved config of a resumed run with ``overrides`` on top (None if none was saved).

    Raises:
        QuantNASError: The saved config is unreadable, invalid YAML or an invalid config.

    """
    import yaml

    from quantnas.errors import read_user_text
    from quantnas.pipeline.resolve import (
        Config,
        YamlAliasError,
        apply_overrides,
        load_yaml,
        merge,
        validate,
    )

    saved = run_dir / "config.yaml"
    if not saved.exists():
        return None
    try:
        data = load_yaml(read_user_text(saved, "saved config"))
    except YamlAliasError as e:
        raise QuantNASError(f"saved config {saved}: {e}") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise QuantNASError(
            f"saved config {saved} is corrupt (invalid YAML: {e.__class__.__name__}); restore "
            "it, or delete the run directory and start again"
        ) from None
    cfg = merge(Config(), {} if data is None else data, source=f"saved config {saved}")
    return validate(apply_overrides(cfg, overrides))


def start_logging(run_dir: Path, cfg) -> Path:
    """Log to the console and ``run_dir/log.txt`` (under torchrun: rank 0's run directory).

    Under torchrun the ranks join their process group here and take rank 0's run directory
    (a default name holds a timestamp); ranks other than 0 log warnings to the console
    only and write nothing.

    Returns:
        The run directory this rank uses.

    """
    from quantnas.rundir.log import setup_logging
    from quantnas.training import distributed as qdist

    if qdist.init(cfg.device):
        run_dir = qdist.rank0_path(run_dir)
    if qdist.is_main():
        setup_logging(run_dir)
    else:
        setup_logging(None, level=logging.WARNING)
    return run_dir
