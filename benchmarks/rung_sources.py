"""Do the alphas draw better candidates than uniform draws? First-rung scores by source.

Every race of trained finalists (``search.select: halving``, and the sweep's
``halving-random``) writes ``select/halving.json``: each candidate's source (``exported``:
the repaired argmax; ``alphas``: drawn from the alphas within the budget band;
``mutations``: the exported genotype with some layers redrawn, ``search.halving_draw:
mutations``; ``uniform``: drawn uniformly within the band) and its validation PSNR at every
rung it reached. All candidates reach the first rung, after the same training epochs, so the
first-rung score compares the sources at equal compute with no selection in between.

Usage::

    python benchmarks/rung_sources.py runs/B-s0 runs/B-s1 runs/B-s2 \\
        runs/cmp/trials/halving-random_t2.28G_s0 ...

Each argument is a run directory (or a ``halving.json``); a label per directory is
``--label`` (default: its name without the ``-sN`` / ``_sN`` seed suffix).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path


def read_race(path: Path) -> dict:
    """The race record of a run directory (``select/halving.json``) or of the file itself."""
    if path.is_dir():
        path = path / "select" / "halving.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no race record (expected select/halving.json of a halving run)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def first_rung(record: dict) -> tuple[int, list[tuple[str, float]]]:
    """(epochs of the first rung, [(source, first-rung validation PSNR)] per candidate)."""
    epochs = int(record["rungs"][0]["epochs"])
    return epochs, [(c["source"], float(c["scores"][0])) for c in record["candidates"]]


def _label(path: Path) -> str:
    name = path.name if path.is_dir() else path.parent.parent.name
    return re.sub(r"[-_]s\d+$", "", name)


def table(paths: list[Path], labels: list[str] | None = None) -> str:
    """Markdown table: per (label, source), the candidates' first-rung PSNR."""
    groups: dict[tuple[str, str], list[float]] = {}
    per_run: dict[tuple[str, str], list[float]] = {}
    epochs_seen = set()
    for i, path in enumerate(paths):
        label = labels[i] if labels else _label(path)
        epochs, rows = first_rung(read_race(path))
        epochs_seen.add(epochs)
        by_source: dict[str, list[float]] = {}
        for source, score in rows:
            groups.setdefault((label, source), []).append(score)
            by_source.setdefault(source, []).append(score)
        for source, scores in by_source.items():
            per_run.setdefault((label, source), []).append(statistics.mean(scores))
    if len(epochs_seen) > 1:
        raise SystemExit(f"the races' first rungs differ in epochs: {sorted(epochs_seen)}")
    lines = [
        f"first rung after {epochs_seen.pop()} training epochs",
        "",
        "| runs | source | candidates | first-rung val PSNR mean +- std | per-run means |",
        "|---|---|---|---|---|",
    ]
    for (label, source), scores in groups.items():
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        runs = " / ".join(f"{m:.3f}" for m in per_run[(label, source)])
        lines.append(
            f"| {label} | {source} | {len(scores)} | "
            f"{statistics.mean(scores):.3f} +- {std:.3f} | {runs} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories or halving.json files")
    ap.add_argument("--label", nargs="*", help="one label per run (default: from the names)")
    args = ap.parse_args(argv)
    if args.label and len(args.label) != len(args.runs):
        raise SystemExit(f"--label: expected {len(args.runs)} labels, got {len(args.label)}")
    sys.stdout.write(table(args.runs, args.label) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
