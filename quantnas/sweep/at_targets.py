"""The comparison at equal BitOps (``sweep.targets``): per target, the search at that
target, random genotypes drawn near it and the baseline whose BitOps it is.

Per target and method the seeds' test PSNRs give a mean and a sample std; the random
draws are reported as the median of their means and as best-of-k: of the first ``k``
draws, the one with the best mean *validation* PSNR (the test split chooses nothing),
with ``k`` the number of stand-alone trainings the search's wall time would buy (mean
search seconds / mean random training seconds, at least 1). The pooled std is the root
mean of the per-method seed variances; the found networks win a target when their mean
beats every other method's by more than it.

Rows merged from several sweeps (``quantnas pareto A B``; each row's ``sweep`` names its
folder) are not pooled across sweeps: a method that more than one sweep ran becomes one
arm per sweep, labelled ``method (sweep)``, so two found arms (say finalists drawn from
the alphas in one sweep and mutations in another) each get their own line, compared
against every arm that is not a found one. Random draws of several sweeps stay separate
draws (their seeds are never averaged together); the median and best-of-k run over all.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quantnas.sweep.pareto import BASELINE_METHODS, as_number, psnr_key

__all__ = ["target_rows", "target_table"]

Rows = Sequence[Mapping[str, Any]]


def _stats(xs: Sequence[float]) -> tuple[float, float, int]:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan, 0
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else math.nan, len(xs)


def _near(r: Mapping[str, Any], target: float, tol: float) -> bool:
    return abs(as_number(r.get("bitops_32")) / target - 1.0) <= tol


def _arms(
    rows: Rows, name_of: Callable[[Mapping[str, Any]], str]
) -> dict[str, list[Mapping[str, Any]]]:
    """Rows grouped by arm: ``name_of(row)``, with ``(sweep)`` added where that name comes
    from more than one sweep (in the order the rows come).
    """
    sweeps: dict[str, dict[Any, None]] = {}
    for r in rows:
        sweeps.setdefault(name_of(r), {})[r.get("sweep")] = None
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        name = name_of(r)
        label = f"{name} ({r.get('sweep')})" if len(sweeps[name]) > 1 else name
        out.setdefault(label, []).append(r)
    return out


def target_rows(rows: Rows, set_name: str, *, tolerance: float = 0.05) -> list[dict]:
    """One comparison per target found in ``rows`` (finished per-seed result rows) and per
    found arm at that target (one unless the rows merge sweeps that each searched).
    """
    key = psnr_key(set_name)
    values = {as_number(r.get("target")) for r in rows}
    targets = sorted(t for t in values if not math.isnan(t))
    out = []
    for t in targets:
        at = [r for r in rows if as_number(r.get("target")) == t]
        found_arms = _arms([r for r in at if r["method"] == "search"], lambda r: "found")
        halving = _arms([r for r in at if r["method"] == "halving-random"],
                        lambda r: "halving-random")
        h_arms = [(label, *_stats([as_number(r.get(key)) for r in rs]),
                   _stats([as_number(r.get("total_s")) for r in rs])[0])
                  for label, rs in halving.items()]
        draws: dict[Any, list] = {}
        for r in at:
            if r["method"] == "random":
                draws.setdefault((str(r.get("sweep")), as_number(r.get("draw"))), []).append(r)
        per_draw = []  # (draw, mean test PSNR, mean validation PSNR, test std)
        for d, rs in sorted(draws.items()):
            mean, std, _ = _stats([as_number(r.get(key)) for r in rs])
            val = _stats([as_number(r.get("psnr_validation")) for r in rs])[0]
            per_draw.append((d, mean, val, std))
        train_s = _stats([as_number(r.get("train_s")) for rs in draws.values() for r in rs])[0]
        base = _arms([r for r in rows if r["method"] in BASELINE_METHODS and
                      _near(r, t, tolerance)], lambda r: f"{r['method']}-{r.get('bits')}")
        baselines = [(name, *_stats([as_number(r.get(key)) for r in rs]))
                     for name, rs in sorted(base.items())]
        for label, found in (found_arms or {"found": []}).items():
            f_mean, f_std, f_n = _stats([as_number(r.get(key)) for r in found])
            search_s = _stats([as_number(r.get("search_s")) for r in found])[0]
            k = (max(1, round(search_s / train_s))
                 if train_s > 0 and not math.isnan(search_s) else 1)
            k = min(k, len(per_draw)) if per_draw else 0
            chosen = max(per_draw[:k], key=lambda d: d[2]) if k else None
            variances = [s * s for s in [f_std, *(h[2] for h in h_arms),
                                         *(d[3] for d in per_draw), *(b[2] for b in baselines)]
                         if not math.isnan(s)]
            pooled = math.sqrt(statistics.mean(variances)) if variances else math.nan
            others = {"random best-of-k": chosen[1] if chosen else math.nan,
                      **{h[0]: h[1] for h in h_arms},
                      **{name: m for name, m, _, _ in baselines}}
            best_other = max(others.items(),
                             key=lambda kv: -math.inf if math.isnan(kv[1]) else kv[1])
            out.append({
                "target": t,
                "arm": label,
                "found": (f_mean, f_std, f_n),
                "found_bitops": _stats([as_number(r.get("bitops_32")) for r in found])[0],
                "random_median": (statistics.median([d[1] for d in per_draw])
                                  if per_draw else math.nan),
                "random_draws": len(per_draw),
                "random_best": chosen[1] if chosen else math.nan,
                "halving_random": [h[:4] for h in h_arms],
                "found_s": _stats([as_number(r.get("total_s")) for r in found])[0],
                "halving_random_s": [h[4] for h in h_arms],
                "k": k,
                "baselines": baselines,
                "pooled_std": pooled,
                "best_other": best_other,
                "margin": f_mean - best_other[1],
            })
    return out


def _f(x: float, fmt: str = ".2f") -> str:
    return "-" if math.isnan(x) else format(x, fmt)


def _cell(arms: Sequence[tuple[str, float, float, int]], plain: str) -> str:
    """``mean +- std (n)`` per arm, named unless it is the only one and called ``plain``."""
    if not arms:
        return "-"
    if len(arms) == 1 and arms[0][0] == plain:
        return f"{_f(arms[0][1])} +- {_f(arms[0][2])} ({arms[0][3]})"
    return "; ".join(f"{name} {_f(m)} +- {_f(s)} ({n})" for name, m, s, n in arms)


def target_table(rows: Rows, set_name: str, *, tolerance: float) -> str:
    """Markdown: the comparison at each target and who wins it (a line per found arm)."""
    comp = target_rows(rows, set_name, tolerance=tolerance)
    if not comp:
        return ""
    several = any(c["arm"] != "found" for c in comp)
    lines = [
        f"| target GBitOps | {'found arm | ' if several else ''}found (GBitOps) | "
        f"found PSNR {set_name} | random median | "
        "random best-of-k (k) | halving-random PSNR | s per trial (found / halving-random) | "
        "baseline PSNR | pooled std | found - best other | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if several else ""),
    ]
    wins: dict[str, int] = {}
    for c in comp:
        m, s, n = c["found"]
        won = not math.isnan(c["margin"]) and c["margin"] > c["pooled_std"]
        lost = not math.isnan(c["margin"]) and c["margin"] < -c["pooled_std"]
        wins[c["arm"]] = wins.get(c["arm"], 0) + won
        verdict = ("found wins" if won else f"{c['best_other'][0]} wins" if lost else
                   "within the pooled std")
        seconds = ", ".join(_f(x, ".0f") for x in c["halving_random_s"]) or "-"
        lines.append(
            f"| {c['target'] / 1e9:.3f} | {c['arm'] + ' | ' if several else ''}"
            f"{_f(c['found_bitops'] / 1e9, '.3f')} | "
            f"{_f(m)} +- {_f(s)} ({n}) | {_f(c['random_median'])} ({c['random_draws']} draws) | "
            f"{_f(c['random_best'])} ({c['k']}) | "
            f"{_cell(c['halving_random'], 'halving-random')} | "
            f"{_f(c['found_s'], '.0f')} / {seconds} | "
            f"{_cell(c['baselines'], '')} | {_f(c['pooled_std'], '.3f')} | "
            f"{_f(c['margin'], '+.3f')} | {verdict} |"
        )
    targets = len({c["target"] for c in comp})
    for arm, won in wins.items():
        who = "The found networks win" if not several else f"The found arm {arm!r} wins"
        lines.append(f"\n{who} {won} of {targets} targets by more than the pooled seed std.")
    return "\n".join(lines)
