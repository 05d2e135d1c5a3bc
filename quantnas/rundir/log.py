"""Logging and progress bars.

* :func:`setup_logging` configures the ``"quantnas"`` logger: a console handler that
  writes through :func:`tqdm.tqdm.write` (so progress bars are not broken) and a file
  handler appending to ``<run_dir>/log.txt``.
* :func:`progress` wraps :class:`tqdm.tqdm` (with an ETA) and hides itself when stderr
  is not a terminal (set ``QUANTNAS_PROGRESS=1`` to force it on, ``0`` to force it off).
* :class:`StageClock` estimates when a stage of several epochs ends (its ETA).

Per-run metric files are :mod:`quantnas.rundir.metric_rows`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from quantnas.errors import QuantNASError
from quantnas.rundir.manifest import record

__all__ = ["BAR_FORMAT", "StageClock", "TqdmHandler", "progress", "setup_logging"]

LOGGER_NAME = "quantnas"
FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
CONSOLE_DATEFMT = "%H:%M:%S"
PROGRESS_ENV = "QUANTNAS_PROGRESS"

_OWN_HANDLER_ATTR = "_quantnas_own_handler"
#: tqdm's bar with the remaining time labelled as an ETA.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}, {rate_fmt}{postfix}]"

T = TypeVar("T")


class TqdmHandler(logging.Handler):
    """Logging handler that writes records with :func:`tqdm.write` to ``sys.stderr``.

    ``sys.stderr`` is looked up at emit time so redirected/captured streams work.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            tqdm.write(msg, file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _LogFileHandler(logging.FileHandler):
    """A log file that never prints logging's own traceback when a write fails.

    On a full disk the run stops at its next checkpoint write with one ``error:`` line;
    the log line that could not be written is dropped.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        return


def setup_logging(
    run_dir: str | Path | None = None,
    *,
    level: int = logging.INFO,
    filename: str = "log.txt",
) -> logging.Logger:
    """Configure the ``"quantnas"`` logger for console and (optionally) a run directory.

    Calling this again replaces the handlers installed by a previous call (they are
    closed), so handlers are never duplicated; handlers added by other code are kept.
    Records still propagate to the root logger (so e.g. pytest's ``caplog`` sees them).

    Args:
        run_dir: If given, also append records to ``run_dir / filename`` (the directory
            is created).
        level: Logging level of the logger and of both handlers.
        filename: Log file name inside ``run_dir``.

    Returns:
        The configured ``"quantnas"`` logger.

    """
    root = logging.getLogger(LOGGER_NAME)
    for handler in list(root.handlers):
        if getattr(handler, _OWN_HANDLER_ATTR, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)

    console = TqdmHandler(level=level)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt=CONSOLE_DATEFMT))
    setattr(console, _OWN_HANDLER_ATTR, True)
    root.addHandler(console)

    if run_dir is not None:
        run_path = Path(run_dir)
        record(run_path, kind="folder")
        try:
            run_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QuantNASError(f"run directory {run_path} cannot be created ({exc})") from exc
        record(run_path / filename)
        file_handler = _LogFileHandler(run_path / filename, mode="a", encoding="utf-8")
        file_handler.setLevel(level)
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        setattr(file_handler, _OWN_HANDLER_ATTR, True)
        root.addHandler(file_handler)
    return root


def _progress_enabled(enabled: bool) -> bool:
    """Decide whether a progress bar should be shown."""
    if not enabled:
        return False
    env = os.environ.get(PROGRESS_ENV, "").strip()
    if env == "1":
        return True
    if env == "0":
        return False
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    enabled: bool = True,
) -> tqdm:
    """Wrap ``iterable`` in a transient tqdm progress bar.

    The bar is disabled when ``enabled`` is False or stderr is not a terminal, unless
    the environment variable ``QUANTNAS_PROGRESS=1`` forces it on
    (``QUANTNAS_PROGRESS=0`` forces it off). A disabled bar still iterates normally.

    Args:
        iterable: Items to iterate.
        desc: Label shown left of the bar.
        total: Number of items if ``len(iterable)`` is not available.
        enabled: Caller's switch (e.g. from a ``--no-progress`` flag).

    Returns:
        A tqdm iterator over ``iterable``.

    """
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        leave=False,
        dynamic_ncols=True,
        bar_format=BAR_FORMAT,
        disable=not _progress_enabled(enabled),
    )


class StageClock:
    """The ETA of a stage of ``total`` epochs from the epochs this process has done.

    Args:
        total: Epochs of the stage.
        done: Epochs already done when the clock starts (a resumed run).
        now: Start time (:func:`time.monotonic` seconds; default: now).

    """

    def __init__(self, total: int, done: int = 0, now: float | None = None) -> None:
        self.total, self.first = int(total), int(done)
        self.started = time.monotonic() if now is None else now

    def eta(self, done: int, now: float | None = None) -> float | None:
        """Seconds until the stage ends after ``done`` epochs (None before the first)."""
        n = done - self.first
        if n <= 0:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, (now - self.started) / n * (self.total - done))

    def text(self, done: int, now: float | None = None) -> str:
        """``"ETA 1:02:03"`` (``"ETA 03:12"`` under an hour), or ``""`` before an epoch."""
        seconds = self.eta(done, now)
        return "" if seconds is None else f"ETA {tqdm.format_interval(seconds)}"
