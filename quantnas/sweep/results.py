"""Result rows of a sweep: one ``trials/<id>/result.json`` per ended trial (written
atomically, what ``--resume`` reads) and the tables ``results.csv`` / ``results.jsonl``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from quantnas.errors import QuantNASError
from quantnas.rundir.files import atomic_write_json, atomic_write_text

#: Leading columns of the tables; per-set metric columns and timings follow.
FIELDS = (
    "trial_id",
    "method",
    "setting",
    "seed",
    "status",
    "error",
    "penalty",
    "bits",
    "draw",
    "target",
    "source",
    "bitops_32",
    "params",
    "size_kib",
)
TAIL_FIELDS = (
    "best_epoch",
    "last_epoch",
    "stalled",
    "search_entropy",
    "search_s",
    "train_s",
    "eval_s",
    "total_s",
    "config_hash",
    "engine",
    "genotype",
    "trial_dir",
    "finished_at",
)
RESULT = "result.json"


def trial_dir(sweep_dir: Path, trial_id: str) -> Path:
    return sweep_dir / "trials" / trial_id


def read_result(sweep_dir: Path, trial_id: str) -> dict | None:
    """The recorded result of a trial, or None if it never ended."""
    path = trial_dir(sweep_dir, trial_id) / RESULT
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # a torn write cannot happen (atomic), but never trust a bad file


def write_result(sweep_dir: Path, row: dict) -> None:
    atomic_write_json(trial_dir(sweep_dir, row["trial_id"]) / RESULT, row)


def columns(rows: Iterable[dict]) -> list[str]:
    """Table columns: :data:`FIELDS`, then metric columns in first-seen order, then the tail."""
    rows = list(rows)
    extra = []
    for r in rows:
        for k in r:
            if k not in FIELDS and k not in TAIL_FIELDS and k not in extra and k != "genotype_json":
                extra.append(k)
    return [*FIELDS, *extra, *TAIL_FIELDS]


def write_tables(sweep_dir: Path, rows: Sequence[dict]) -> None:
    """``results.csv`` and ``results.jsonl`` (one JSON object per trial)."""
    cols = columns(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    atomic_write_text(sweep_dir / "results.csv", buf.getvalue())
    atomic_write_text(
        sweep_dir / "results.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows)
    )


def _parse(value: str) -> Any:
    if value == "":
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_table(path: str | Path) -> list[dict]:
    """Rows of a ``results.jsonl`` / ``results.csv`` file or of a sweep folder holding one."""
    p = Path(path)
    if p.is_dir():
        for name in ("results.jsonl", "results.csv"):
            if (p / name).is_file():
                return read_table(p / name)
        raise QuantNASError(f"{p}: no results.jsonl or results.csv in this folder")
    if not p.is_file():
        raise QuantNASError(f"results file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".csv":
        rows = [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(io.StringIO(text))]
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise QuantNASError(
                    f"{p}: line {n} is not JSON (expected one row per line)"
                ) from None
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise QuantNASError(f"{p}: row {i + 1} lacks fields (not sweep results)")
        # a failed trial's row has no network, so no BitOps; every other row has both
        needed = ("method",) if r.get("status") == "failed" else ("method", "bitops_32")
        missing = [k for k in needed if k not in r]
        if missing:
            raise QuantNASError(f"{p}: row {i + 1} lacks {missing} (not sweep results)")
    return rows
