"""benchmarks/rung_sources.py: first-rung scores grouped by candidate source."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "rung_sources", Path(__file__).parents[1] / "benchmarks" / "rung_sources.py"
)
rung_sources = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rung_sources)


def _race(tmp_path: Path, name: str, cands: list[tuple[str, list[float]]], epochs: int = 2) -> Path:
    run = tmp_path / name
    (run / "select").mkdir(parents=True)
    record = {
        "rungs": [{"rung": 0, "epochs": epochs, "scores": {}, "kept": []}],
        "candidates": [
            {"index": i, "source": src, "bitops": None, "scores": scores}
            for i, (src, scores) in enumerate(cands)
        ],
    }
    (run / "select" / "halving.json").write_text(json.dumps(record))
    return run


def test_groups_first_rung_scores_by_label_and_source(tmp_path: Path) -> None:
    a0 = _race(
        tmp_path, "B-s0", [("exported", [29.0, 29.5]), ("alphas", [28.0]), ("alphas", [28.4])]
    )
    a1 = _race(tmp_path, "B-s1", [("exported", [29.2]), ("alphas", [28.6, 28.9])])
    u0 = _race(tmp_path, "rand_s0", [("uniform", [28.5]), ("uniform", [28.7])])
    out = rung_sources.table([a0, a1, u0])
    lines = out.splitlines()
    assert lines[0] == "first rung after 2 training epochs"
    rows = {tuple(c.strip() for c in ln.split("|")[1:3]): ln for ln in lines[4:]}
    # exported: 29.0 and 29.2 -> mean 29.1, std sqrt(0.02) = 0.141
    assert "| 2 | 29.100 +- 0.141 | 29.000 / 29.200 |" in rows[("B", "exported")]
    # alphas: 28.0, 28.4, 28.6 -> mean 28.333; per run 28.2 and 28.6
    assert "| 3 | 28.333 +- 0.306 | 28.200 / 28.600 |" in rows[("B", "alphas")]
    assert "| 2 | 28.600 +- 0.141 | 28.600 |" in rows[("rand", "uniform")]


def test_races_of_other_first_rungs_and_missing_records_are_one_line_errors(tmp_path: Path) -> None:
    a = _race(tmp_path, "a", [("alphas", [28.0])], epochs=1)
    b = _race(tmp_path, "b", [("uniform", [28.0])], epochs=2)
    with pytest.raises(SystemExit, match=r"first rungs differ in epochs: \[1, 2\]"):
        rung_sources.table([a, b])
    with pytest.raises(SystemExit, match="no race record"):
        rung_sources.table([tmp_path / "nowhere"])
    (tmp_path / "bad" / "select").mkdir(parents=True)
    (tmp_path / "bad" / "select" / "halving.json").write_text("{")
    with pytest.raises(SystemExit, match="halving.json: not JSON"):
        rung_sources.table([tmp_path / "bad"])
