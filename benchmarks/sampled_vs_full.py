"""Sampled (single-path) search against the full supernet search, on the embedded photos.

Runs two searches-only sweeps of the ``sweep-cpu`` preset with the same penalties and seeds
(each trial: a search, then the same short QAT budget for its genotype, its best epoch
chosen on the validation photos, PSNR reported on the test photos that chose nothing):

* **full**: every candidate (op, bit-width) in every step (``alpha_transform=softmax``);
* **sampled**: ``search.alpha_transform=hard_gumbel``, one (op, bit) pair per layer and step.

Prints one JSON line per trial, then a table: per mode and penalty the exported genotype's
BitOps, its test PSNR, the search time, and whether the point is on the Pareto front of
the union of both modes (fewest BitOps, highest test PSNR); then each mode's share of that
front and the area its own front dominates (hypervolume over log10 BitOps, from the
reference point ``(max BitOps, bicubic PSNR)``).

    python benchmarks/sampled_vs_full.py                      # about 10 minutes on 2 cores
    python benchmarks/sampled_vs_full.py --penalties 0 0.01 --seeds 1

Sweeps are resumed from ``--out`` (default ``runs/bench-sampled``), so a rerun only prints.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

MODES = {"full": [], "sampled": ["search.alpha_transform=hard_gumbel"]}


def run_sweep(out: Path, mode: str, penalties: list[float], seeds: int) -> list[dict]:
    """Run (or resume) one mode's sweep; returns its result rows."""
    from quantnas.sweep.results import read_table

    folder = out / mode
    args = [sys.executable, "-m", "quantnas", "sweep", "--preset", "sweep-cpu", "-d", mode]
    args += ["--engine", "local", f"out_dir={out}", "sweep.methods=[search]"]
    args += [f"sweep.penalties=[{','.join(str(p) for p in penalties)}]", f"sweep.seeds={seeds}"]
    args += MODES[mode]
    if (folder / "results.jsonl").exists():
        args += ["--resume", "--extend"]
    subprocess.run(args, check=True)
    return read_table(folder / "results.jsonl")


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``(log10 BitOps, PSNR)`` points, bounded by ``ref`` (max x, min y)."""
    from quantnas.sweep.pareto import pareto_front

    pts = [(math.log10(x), y) for x, y in points if y > ref[1]]
    front = sorted((pts[i] for i in pareto_front(pts)), key=lambda p: p[0])
    area, x_ref = 0.0, math.log10(ref[0])
    for i, (x, y) in enumerate(front):
        x_next = front[i + 1][0] if i + 1 < len(front) else x_ref
        area += max(0.0, x_next - x) * (y - ref[1])
    return area


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-sampled"))
    p.add_argument("--penalties", type=float, nargs="+", default=[0.0, 0.01, 0.05])
    p.add_argument("--seeds", type=int, default=2)
    a = p.parse_args()
    from quantnas.sweep.pareto import pareto_front

    rows = []
    for mode in MODES:
        for r in run_sweep(a.out, mode, a.penalties, a.seeds):
            if r.get("status") == "ok":
                rows.append({"mode": mode, **r})
    pts = [(float(r["bitops_32"]), float(r["psnr_test"])) for r in rows]
    front = set(pareto_front(pts))
    bicubic = min(float(r["bicubic_psnr_test"]) for r in rows)
    ref = (max(x for x, _ in pts) * 1.01, bicubic)
    lines = ["| mode | penalty | seed | GBitOps @32x32 | test PSNR | search s | on front |"]
    lines.append("|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        out = {
            "mode": r["mode"],
            "penalty": r["penalty"],
            "seed": r["seed"],
            "gbitops": float(r["bitops_32"]) / 1e9,
            "psnr_test": float(r["psnr_test"]),
            "psnr_validation": float(r["psnr_validation"]),
            "search_s": float(r["search_s"]),
            "on_front": i in front,
            "genotype": r["genotype"],
        }
        print(json.dumps(out))
        lines.append(
            f"| {r['mode']} | {r['penalty']:g} | {r['seed']} | {out['gbitops']:.3f} | "
            f"{out['psnr_test']:.2f} | {out['search_s']:.0f} | {'yes' if i in front else ''} |"
        )
    print()
    print("\n".join(lines))
    print(f"\ntest bicubic {bicubic:.2f} dB; union front: {len(front)} points")
    for mode in MODES:
        mine = [i for i, r in enumerate(rows) if r["mode"] == mode]
        hv = hypervolume([pts[i] for i in mine], ref)
        search_s = sum(float(rows[i]["search_s"]) for i in mine) / max(1, len(mine))
        print(
            f"{mode:8s} front points {sum(i in front for i in mine)}/{len(front)}, "
            f"hypervolume {hv:.3f} dB*decade, mean search {search_s:.0f} s"
        )


if __name__ == "__main__":
    main()
