"""Per-run metric rows: ``metrics.jsonl`` (the one metrics file) and TensorBoard scalars.

:class:`MetricLogger` appends rows (one per epoch) and can be reopened when a run resumes.
Per-step scalars (loss, learning rate) go to TensorBoard only, in ``tensorboard/steps``
(:meth:`MetricLogger.step_scalars`), never into ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quantnas.errors import QuantNASError
from quantnas.rundir.files import _json_default, atomic_write_text
from quantnas.rundir.manifest import record

__all__ = ["MetricLogger", "NullMetrics", "metric_logger"]

logger = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """Convert numpy/torch scalars and paths to plain JSON values."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON: no NaN/Infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    try:
        return _plain(_json_default(value))
    except TypeError:
        return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class MetricLogger:
    """Append metric rows to ``metrics.jsonl`` (and TensorBoard).

    ``metrics.jsonl`` holds one JSON object per row (types are preserved); rows may bring
    new keys at any time.

    Opening a run directory that already has a metrics file keeps the old rows, so a
    resumed run continues them. Use :meth:`truncate_after` to drop rows logged after
    the checkpoint being resumed.

    Args:
        run_dir: Run directory (created if missing).
        tensorboard: Also write scalars with ``torch.utils.tensorboard.SummaryWriter``
            to ``run_dir / "tensorboard"`` if it can be imported; otherwise log one
            info line and continue without it.

    """

    JSONL_NAME = "metrics.jsonl"
    TB_DIR = "tensorboard"
    #: Where the per-step scalars go, below :attr:`TB_DIR` (their own step axis).
    TB_STEPS = "steps"

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        record(self.run_dir, kind="folder")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QuantNASError(f"run directory {self.run_dir} cannot be created ({exc})") from exc
        self.jsonl_path = self.run_dir / self.JSONL_NAME
        record(self.jsonl_path)
        self._rows: list[dict[str, Any]] = self._load_existing()
        if self._rows:
            logger.info("continuing %d existing metric row(s) in %s", len(self._rows), self.run_dir)
        if self.jsonl_path.is_file() and self.jsonl_path.stat().st_size:
            # Drop a partial last line left by an interrupted write (even the first row's).
            self._rewrite_file()
        self._writer: Any = None
        self._writer_cls: Any = None
        self._steps: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info("tensorboard is not installed; metrics go to metrics.jsonl only")
            else:
                self._writer_cls = SummaryWriter
                record(self.run_dir / self.TB_DIR, kind="tree")
                self._writer = SummaryWriter(log_dir=str(self.run_dir / self.TB_DIR))

    # ------------------------------------------------------------------ reading
    def _load_existing(self) -> list[dict[str, Any]]:
        return self._read_jsonl() if self.jsonl_path.is_file() else []

    def _read_jsonl(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        lines = self.jsonl_path.read_text(encoding="utf-8").splitlines()
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if lineno == len(lines):
                    logger.warning(
                        "%s: ignoring a partial last line (interrupted write)", self.jsonl_path
                    )
                    continue
                raise QuantNASError(
                    f"{self.jsonl_path}: line {lineno} is not valid JSON ({exc.msg})"
                ) from exc
            if not isinstance(row, dict):
                raise QuantNASError(f"{self.jsonl_path}: line {lineno} is not a JSON object")
            rows.append(row)
        return rows

    def rows(self) -> list[dict[str, Any]]:
        """Read back all logged rows from ``metrics.jsonl``.

        Returns:
            The rows in logging order, as new dicts.

        """
        return self._load_existing()

    # ------------------------------------------------------------------ writing
    def _rewrite_file(self) -> None:
        jsonl = "".join(json.dumps(row) + "\n" for row in self._rows)
        atomic_write_text(self.jsonl_path, jsonl)

    def log(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Append one row of metrics.

        Values are converted to plain JSON types (numpy/torch scalars become numbers).
        Numeric values are also sent to TensorBoard with step ``row["step"]``, else
        ``row["epoch"]``, else the row's index.

        Args:
            row: Metric name -> value. Keys must be strings.

        Returns:
            The row as stored.

        Raises:
            QuantNASError: If ``row`` is not a mapping with string keys.

        """
        if not isinstance(row, Mapping):
            raise QuantNASError(f"metric row: expected a mapping, got {type(row).__name__}")
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if not isinstance(key, str):
                raise QuantNASError(f"metric row: keys must be strings, got {key!r}")
            clean[key] = _plain(value)

        with self.jsonl_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean) + "\n")
            handle.flush()
        self._rows.append(clean)

        if self._writer is not None:
            step = self._tb_step(clean, len(self._rows) - 1)
            for key, value in clean.items():
                if key in ("step", "epoch") or not _is_number(value):
                    continue
                if isinstance(value, float) and math.isnan(value):
                    continue
                self._writer.add_scalar(key, value, step)
            self._writer.flush()
        return clean

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Send extra scalars to TensorBoard only (e.g. every alpha probability)."""
        if self._writer is None:
            return
        for key, value in values.items():
            self._writer.add_scalar(key, float(value), step)
        self._writer.flush()

    def step_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Send one optimisation step's scalars (e.g. ``step/train_loss``, ``step/lr``) to
        TensorBoard's ``tensorboard/steps``, at global step ``step``.

        The writer opens at the first call with ``purge_step=step``, so a resumed run hides
        the steps an interrupted one logged after its checkpoint. Events are flushed by
        TensorBoard's writer thread and by :meth:`close`, not per call.
        """
        if self._writer is None:  # no TensorBoard, or closed
            return
        if self._steps is None:
            log_dir = self.run_dir / self.TB_DIR / self.TB_STEPS
            self._steps = self._writer_cls(log_dir=str(log_dir), purge_step=int(step))
        for key, value in values.items():
            value = float(value)
            if math.isfinite(value):
                self._steps.add_scalar(key, value, int(step))

    @staticmethod
    def _tb_step(row: Mapping[str, Any], index: int) -> int:
        """TensorBoard step of a row: ``step``, else ``epoch``, else its index."""
        for key in ("step", "epoch"):
            if _is_number(row.get(key)):
                return int(row[key])
        return index

    def truncate_after(self, step_key: str, value: float) -> int:
        """Drop rows with ``row[step_key] > value`` (rows without the key are kept).

        Used when resuming from a checkpoint older than the last logged row. The file is
        rewritten atomically; TensorBoard is reopened with ``purge_step`` so its
        later events are hidden.

        Args:
            step_key: Key to compare, e.g. ``"epoch"`` or ``"step"``.
            value: Last value to keep.

        Returns:
            The number of rows dropped.

        """
        kept = [
            row
            for row in self._rows
            if not (_is_number(row.get(step_key)) and row[step_key] > value)
        ]
        dropped = len(self._rows) - len(kept)
        if dropped:
            self._rows = kept
            self._rewrite_file()
            logger.info("dropped %d metric row(s) with %s > %s", dropped, step_key, value)
            if self._writer is not None and self._writer_cls is not None:
                purge = max((self._tb_step(r, i) for i, r in enumerate(kept)), default=-1) + 1
                self._writer.close()
                self._writer = self._writer_cls(
                    log_dir=str(self.run_dir / self.TB_DIR), purge_step=purge
                )
        return dropped

    def restore(self, rows: list[Mapping[str, Any]]) -> None:
        """Make ``metrics.jsonl`` hold exactly ``rows`` (a run's history from its checkpoint),
        rewriting it only when it differs (a deleted, cut or edited file).
        """
        clean = [{str(k): _plain(v) for k, v in row.items()} for row in rows]
        if clean != self._rows or not self.jsonl_path.is_file():
            self._rows = clean
            self._rewrite_file()

    def close(self) -> None:
        """Flush and close the TensorBoard writers (``metrics.jsonl`` is written per row)."""
        for name in ("_writer", "_steps"):
            writer = getattr(self, name)
            if writer is not None:
                writer.close()
                setattr(self, name, None)

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullMetrics:
    """The metric logger of ranks other than 0: records nothing, writes nothing."""

    def log(self, *args, **kwargs) -> None:
        pass

    def scalars(self, *args, **kwargs) -> None:
        pass

    def step_scalars(self, *args, **kwargs) -> None:
        pass

    def truncate_after(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def metric_logger(run_dir: str | Path, *, tensorboard: bool, main: bool = True):
    """A :class:`MetricLogger` on the main rank (``main``), a silent stand-in elsewhere."""
    return MetricLogger(run_dir, tensorboard=tensorboard) if main else NullMetrics()
