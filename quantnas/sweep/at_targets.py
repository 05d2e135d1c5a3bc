"""The comparison at equal BitOps (``sweep.targets``): per target, the search at that
target, random genotypes drawn near it and the baseline whose BitOps it is.

Per target and method the seeds' test PSNRs give a mean and a sample std; the random
draws are reported as the median of their means and as best-of-k: of the first ``k``
draws, the one with the best mean *validation* PSNR (the test split chooses nothing),
with ``k`` the number of stand-alone trainings the search's wall time would buy (mean
search seconds / mean random training seconds, at least 1). The pooled std is the root
mean of the per-method seed variances; the found networks win a target when their mean
beats every other method's by more than it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from quantnas.sweep.pareto import BASELINE_METHODS, as_number, psnr_key

__all__ = ["target_rows", "target_table"]


def _stats(xs: Sequence[float]) -> tuple[float, float, int]:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan, 0
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else math.nan, len(xs)


def _near(r: Mapping[str, Any], target: float, tol: float) -> bool:
    return abs(as_number(r.get("bitops_32")) / target - 1.0) <= tol


def target_rows(
    rows: Sequence[Mapping[str, Any]], set_name: str, *, tolerance: float = 0.05
) -> list[dict]:
    """One comparison per target found in ``rows`` (finished per-seed result rows)."""
    key = psnr_key(set_name)
    values = {as_number(r.get("target")) for r in rows}
    targets = sorted(t for t in values if not math.isnan(t))
    out = []
    for t in targets:
        at = [r for r in rows if as_number(r.get("target")) == t]
        found = [r for r in at if r["method"] == "search"]
        rand = [r for r in at if r["method"] == "random"]
        base = [r for r in rows if r["method"] in BASELINE_METHODS and _near(r, t, tolerance)]
        f_mean, f_std, f_n = _stats([as_number(r.get(key)) for r in found])
        draws: dict[Any, list] = {}
        for r in rand:
            draws.setdefault(r.get("draw"), []).append(r)
        per_draw = []  # (draw, mean test PSNR, mean validation PSNR, test std)
        for d, rs in sorted(draws.items(), key=lambda kv: as_number(kv[0])):
            mean, std, _ = _stats([as_number(r.get(key)) for r in rs])
            val = _stats([as_number(r.get("psnr_validation")) for r in rs])[0]
            per_draw.append((d, mean, val, std))
        search_s = _stats([as_number(r.get("search_s")) for r in found])[0]
        train_s = _stats([as_number(r.get("train_s")) for r in rand])[0]
        k = max(1, round(search_s / train_s)) if train_s > 0 and not math.isnan(search_s) else 1
        k = min(k, len(per_draw)) if per_draw else 0
        chosen = max(per_draw[:k], key=lambda d: d[2]) if k else None
        b_groups: dict[tuple, list] = {}
        for r in base:
            b_groups.setdefault((r["method"], r.get("bits")), []).append(as_number(r.get(key)))
        baselines = [(f"{m}-{b}", *_stats(v)) for (m, b), v in sorted(b_groups.items())]
        variances = [s * s for s in [f_std, *(d[3] for d in per_draw), *(b[2] for b in baselines)]
                     if not math.isnan(s)]
        pooled = math.sqrt(statistics.mean(variances)) if variances else math.nan
        others = {"random best-of-k": chosen[1] if chosen else math.nan,
                  **{name: m for name, m, _, _ in baselines}}
        best_other = max(others.items(), key=lambda kv: -math.inf if math.isnan(kv[1]) else kv[1])
        out.append({
            "target": t,
            "found": (f_mean, f_std, f_n),
            "found_bitops": _stats([as_number(r.get("bitops_32")) for r in found])[0],
            "random_median": statistics.median([d[1] for d in per_draw]) if per_draw else math.nan,
            "random_draws": len(per_draw),
            "random_best": chosen[1] if chosen else math.nan,
            "k": k,
            "baselines": baselines,
            "pooled_std": pooled,
            "best_other": best_other,
            "margin": f_mean - best_other[1],
        })
    return out


def _f(x: float, fmt: str = ".2f") -> str:
    return "-" if math.isnan(x) else format(x, fmt)


def target_table(rows: Sequence[Mapping[str, Any]], set_name: str, *, tolerance: float) -> str:
    """Markdown: the comparison at each target and who wins it."""
    comp = target_rows(rows, set_name, tolerance=tolerance)
    if not comp:
        return ""
    lines = [
        f"| target GBitOps | found (GBitOps) | found PSNR {set_name} | random median | "
        "random best-of-k (k) | baseline PSNR | pooled std | found - best other | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    wins = 0
    for c in comp:
        m, s, n = c["found"]
        base = "; ".join(f"{name} {_f(bm)} +- {_f(bs)} ({bn})" for name, bm, bs, bn in
                         c["baselines"]) or "-"
        won = not math.isnan(c["margin"]) and c["margin"] > c["pooled_std"]
        lost = not math.isnan(c["margin"]) and c["margin"] < -c["pooled_std"]
        wins += won
        verdict = ("found wins" if won else f"{c['best_other'][0]} wins" if lost else
                   "within the pooled std")
        lines.append(
            f"| {c['target'] / 1e9:.3f} | {_f(c['found_bitops'] / 1e9, '.3f')} | "
            f"{_f(m)} +- {_f(s)} ({n}) | {_f(c['random_median'])} ({c['random_draws']} draws) | "
            f"{_f(c['random_best'])} ({c['k']}) | {base} | {_f(c['pooled_std'], '.3f')} | "
            f"{_f(c['margin'], '+.3f')} | {verdict} |"
        )
    lines.append(f"\nThe found networks win {wins} of {len(comp)} targets by more than the "
                 "pooled seed std.")
    return "\n".join(lines)
