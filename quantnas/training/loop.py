"""The epoch loop the search and the training share: setup, checkpoint, resume, run.

As BasicSR's ``train_pipeline`` drives every model through the same hooks and saves all
optimizers and schedulers in one place, :class:`EpochLoop` owns what both runs do alike:
seeding and device setup, the per-epoch loop with its ``stop_after`` for tests, the
full-state checkpoint (every registered optimizer and scheduler, RNG states, history,
best) written atomically after each epoch, and the exact resume from it. A subclass says
what an epoch is (:meth:`EpochLoop.train_epoch`), what is recorded after it
(:meth:`EpochLoop.end_epoch`) and what its model state is
(:meth:`EpochLoop.extra_state` / :meth:`EpochLoop.load_extra`). From construction to the
end of :meth:`EpochLoop.run` the run holds the lock of its directory
(:func:`quantnas.rundir.lock.hold`), whoever started it: a verb, a sweep trial or a script.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any

from quantnas.config.io import dump
from quantnas.config.types import Config
from quantnas.device import select_device, set_threads
from quantnas.errors import QuantNASError
from quantnas.rng import rng_state, seed_everything, set_rng_state
from quantnas.rundir.files import atomic_save, atomic_write_text, remove_stale_tmp
from quantnas.rundir.lock import Hold, hold
from quantnas.rundir.log import StageClock
from quantnas.rundir.manifest import record
from quantnas.rundir.metric_rows import metric_logger
from quantnas.training import distributed as qdist
from quantnas.training.checkpoint import CHECKPOINT, restore_run_state

log = logging.getLogger(__name__)

__all__ = ["EpochLoop", "check_finite"]


def check_finite(value: float, what: str, *, epoch: int, checkpoint: Path, hint: str) -> None:
    """Stop a run whose loss became NaN or infinite, naming the last good checkpoint.

    Args:
        value: The loss just computed.
        what: Which loss, e.g. ``"training loss"``.
        epoch: The current epoch (0-based).
        checkpoint: The run's checkpoint file (kept as it is: the last finished epoch).
        hint: The settings worth changing, e.g. ``"lower train.optim.lr"``.

    Raises:
        QuantNASError: When ``value`` is not finite.

    """
    if math.isfinite(value):
        return
    kept = (
        f"the last good checkpoint {checkpoint} is kept"
        if checkpoint.exists()
        else "no epoch finished, so no checkpoint or best result was written"
    )
    raise QuantNASError(f"{what} became {value} in epoch {epoch}; run stopped, {kept}; {hint}")


class EpochLoop:
    """A run that goes epoch by epoch in ``run_dir`` and resumes exactly.

    Subclasses set the class attributes, call ``super().__init__`` first (it seeds, so
    everything built afterwards is reproducible), build their network, data and
    optimizers, register every optimizer and scheduler in :attr:`stateful`, and finally
    call :meth:`open_metrics`.

    Attributes:
        kind: The checkpoint ``kind`` (``search`` or ``train``).
        noun: What the run is called in messages (``search``, ``training``).
        hint: The settings worth changing when a loss becomes NaN.
        best_metric: The entry of :attr:`best` that ranks epochs.
        extra_keys: Checkpoint entries :meth:`load_extra` needs besides ``model``.

    """

    kind = ""
    noun = ""
    hint = ""
    best_metric = ""
    extra_keys: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Release the run directory's lock when a subclass's constructor fails."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def guarded(self, *args: Any, **kw: Any) -> None:
            try:
                init(self, *args, **kw)
            except BaseException:
                self.release()
                raise

        cls.__init__ = guarded  # type: ignore[method-assign]

    def __init__(self, cfg: Config, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self._lock: Hold | None = None
        record(self.run_dir, kind="folder")
        self.lock()  # a second process writing this folder is refused here
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if qdist.is_main():
            remove_stale_tmp(self.run_dir, recursive=True)
        set_threads(self.thread_count(cfg))
        self.device = select_device(cfg.device)
        qdist.init(self.device)
        seed_everything(cfg.seed)
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict[str, Any] = {}
        #: Optimizers and schedulers by checkpoint key, saved and restored together.
        self.stateful: dict[str, Any] = {}
        #: The stage's ETA after an epoch of this process (``"ETA 03:12"``), for the bars.
        self.stage_eta = ""

    def thread_count(self, cfg: Config) -> int:
        """PyTorch's CPU threads for this stage (0 = PyTorch's default)."""
        return cfg.threads

    def lock(self) -> None:
        """Hold the lock of :attr:`run_dir` (rank 0; a no-op while it is held).

        Raises:
            QuantNASError: Another process writes the run directory (naming its pid).

        """
        if self._lock is None and qdist.is_main():
            self._lock = hold(self.run_dir, command=self.noun)

    def release(self) -> None:
        """Give back the lock of :attr:`run_dir` (:meth:`run` does when it ends)."""
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None

    def open_metrics(self) -> None:
        """Open the run's metric log (after setup, so a failed setup leaves no files)."""
        self.metrics = metric_logger(
            self.run_dir, tensorboard=self.cfg.tensorboard, main=qdist.is_main()
        )

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    @property
    def epochs(self) -> int:
        """How many epochs the run has."""
        raise NotImplementedError

    def check(self, value: float, what: str, epoch: int) -> None:
        """Stop the run when ``value`` (a loss) is not finite."""
        check_finite(value, what, epoch=epoch, checkpoint=self.checkpoint_path, hint=self.hint)

    # ------------------------------------------------------------------- hooks
    def extra_state(self) -> dict:
        """The checkpoint entries of the subclass (its model, above all)."""
        return {}

    def load_extra(self, ck: dict, path: Path) -> None:
        """Restore what :meth:`extra_state` saved (called first on resume)."""

    def on_start(self) -> None:
        """Write the run's inputs (rank 0, before the first epoch)."""

    def train_epoch(self, epoch: int) -> dict:
        """Run one epoch's optimisation steps; returns the epoch's mean train values."""
        raise NotImplementedError

    def end_epoch(self, epoch: int, train: dict, started: float) -> None:
        """Validate and record an epoch (rank 0 only; ``started`` is its start time)."""

    def after_checkpoint(self) -> None:
        """Write files that go with each checkpoint (rank 0)."""

    def finish(self) -> None:
        """Plots and final files once the loop stops (rank 0, with a history)."""

    def result(self) -> Any:
        """What :meth:`run` returns."""
        raise NotImplementedError

    # ------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        """The full state of the run: enough to continue it exactly."""
        return {
            **self.extra_state(),
            "kind": self.kind,
            "epoch": self.epoch,
            **{key: obj.state_dict() for key, obj in self.stateful.items()},
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
        }

    def resume(self, path: Path | None = None) -> bool:
        """Restore the full state from ``run_dir/checkpoint.pt`` if present."""
        self.lock()
        path = path or self.checkpoint_path
        keys = (*self.extra_keys, "model", *self.stateful, "rng", "epoch", "history", "best")
        what = f"{self.noun} checkpoint"
        if not restore_run_state(path, kind=self.kind, keys=keys, what=what, restore=self._restore):
            return False
        self.metrics.truncate_after("epoch", self.epoch - 1)
        log.info("resumed %s from %s at epoch %d", self.noun, path, self.epoch)
        return True

    def _restore(self, ck: dict, path: Path) -> None:
        epoch = ck["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"'epoch' is {epoch!r}, expected an integer >= 0")
        self.load_extra(ck, path)
        for key, obj in self.stateful.items():
            obj.load_state_dict(ck[key])
        set_rng_state(ck["rng"])
        self.epoch, self.history, self.best = epoch, list(ck["history"]), ck["best"]
        float(self.best[self.best_metric])  # a malformed entry fails here, not later

    # --------------------------------------------------------------------- run
    def run(self, *, stop_after: int | None = None) -> Any:
        """Run from the current epoch to the end (or ``stop_after`` epochs, for tests).

        The lock of the run directory is released when it returns or raises.
        """
        self.lock()
        try:
            return self._run(stop_after)
        finally:
            self.release()

    def _run(self, stop_after: int | None) -> Any:
        main = qdist.is_main()  # under torchrun, rank 0 alone validates and writes
        # rows of epochs the checkpoint does not hold (a run killed between logging an
        # epoch and saving its checkpoint, resumed or not) are done again, so dropped
        self.metrics.truncate_after("epoch", self.epoch - 1)
        if main:
            self.metrics.restore(self.history)  # the metric rows are the checkpoint's history
            atomic_write_text(self.run_dir / "config.yaml", dump(self.cfg))
            self.on_start()
        done, clock = 0, StageClock(self.epochs, self.epoch)
        while self.epoch < self.epochs and (stop_after is None or done < stop_after):
            started = time.time()
            train = self.train_epoch(self.epoch)
            if main:
                with qdist.isolated_rng():
                    self.end_epoch(self.epoch, train, started)
            self.epoch += 1
            done += 1
            if main:
                atomic_save(self.state(), self.checkpoint_path)
                self.after_checkpoint()
            self.stage_eta = clock.text(self.epoch)
            if main and self.epoch < self.epochs:
                done_of = (self.epoch, self.epochs)
                log.info("%s: %d of %d epochs done, %s", self.noun, *done_of, self.stage_eta)
        if main and self.history:
            self.finish()
        self.metrics.close()
        qdist.barrier()
        return self.result()
