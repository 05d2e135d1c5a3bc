"""Pareto maths of sweep results: fronts (min BitOps, max PSNR), per-method fronts, the
issue's dominance counts and the Markdown table of the overall front.

Rows are result rows of :mod:`quantnas.sweep.results` (``method``, ``bitops_32``,
``psnr_<set>``, ...). Only rows with ``status == "ok"`` take part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from quantnas.space.baselines import BASELINES

#: Methods whose points are architectures found by the search.
FOUND = "search"
#: Fixed baseline networks: the method names of the baseline registry (``name in``).
BASELINE_METHODS = BASELINES
#: BitOps factor within which a found point counts as "matched" to a baseline.
MATCH_FACTOR = 1.5


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Return the indices of the non-dominated points (min x, max y), sorted by x.

    Point ``j`` dominates ``i`` if ``x_j <= x_i`` and ``y_j >= y_i`` with at least one
    strict inequality. Exact duplicates do not dominate each other, so all copies of a
    non-dominated point are returned (ties in x are ordered by index). Points with a
    NaN coordinate are ignored.

    Args:
        points: ``(x, y)`` pairs, e.g. ``(bitops, psnr)``.

    Returns:
        Indices into ``points``.

    """
    if len(points) == 0:
        return []
    arr = np.asarray(points, dtype=np.float64).reshape(len(points), 2)
    valid = ~np.isnan(arr).any(axis=1)
    x, y = arr[:, 0], arr[:, 1]
    le_x = x[None, :] <= x[:, None]  # [i, j]: x_j <= x_i
    ge_y = y[None, :] >= y[:, None]
    strict = (x[None, :] < x[:, None]) | (y[None, :] > y[:, None])
    dominated = (le_x & ge_y & strict & valid[None, :]).any(axis=1)
    front = [i for i in range(len(points)) if valid[i] and not dominated[i]]
    return sorted(front, key=lambda i: (x[i], i))


def psnr_key(set_name: str) -> str:
    return f"psnr_{set_name}"


#: Numeric columns averaged over the seeds of a point by :func:`aggregate`.
_MEAN_PREFIXES = ("psnr_", "ssim_", "bicubic_psnr_")


def aggregate(rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """One point per ``(sweep, method, setting)``: the mean over its seeds.

    Every ``psnr_*`` / ``ssim_*`` column and ``bitops_32`` / ``params`` become their
    mean over the seeds, with ``<column>_std`` (sample std; NaN for one seed) beside them;
    ``n`` is the number of seeds, ``seed`` lists them and ``stalled`` counts stalled
    trainings. A search point averages the genotypes its seeds found (their BitOps may
    differ: ``bitops_32_std``).
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r.get("sweep"), r["method"], _setting(r)), []).append(r)
    out = []
    for members in groups.values():
        agg = dict(members[0])
        keys = ["bitops_32", "params"] + [
            k for k in members[0] if k.startswith(_MEAN_PREFIXES) and not k.endswith("_std")
        ]
        for k in keys:
            vals = np.array([as_number(m.get(k)) for m in members], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            agg[k] = float(vals.mean()) if len(vals) else float("nan")
            agg[f"{k}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        agg["n"] = len(members)
        agg["seed"] = ",".join(str(m.get("seed", "")) for m in members)
        agg["stalled"] = sum(str(m.get("stalled")).lower() in ("true", "1") for m in members)
        out.append(agg)
    return out


def as_number(value: Any) -> float:
    """``float(value)``, NaN where it is none (a missing or textual table cell)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def ok_rows(rows: Sequence[Mapping[str, Any]], set_name: str) -> list[Mapping[str, Any]]:
    """Finished rows that have a BitOps figure and a PSNR on ``set_name``."""
    key = psnr_key(set_name)
    return [
        r
        for r in rows
        if r.get("status", "ok") == "ok"
        and not np.isnan(as_number(r.get("bitops_32")))
        and not np.isnan(as_number(r.get(key)))
    ]


def points(rows: Sequence[Mapping[str, Any]], set_name: str) -> list[tuple[float, float]]:
    key = psnr_key(set_name)
    return [(as_number(r["bitops_32"]), as_number(r[key])) for r in rows]


def overall_front(rows: Sequence[Mapping[str, Any]], set_name: str) -> list[int]:
    """Indices (into ``rows``) of the overall front, by BitOps."""
    return pareto_front(points(rows, set_name))


def method_fronts(rows: Sequence[Mapping[str, Any]], set_name: str) -> dict[str, list[int]]:
    """``{method: indices into rows of that method's own non-dominated points}``."""
    out: dict[str, list[int]] = {}
    for method in dict.fromkeys(str(r["method"]) for r in rows):
        idx = [i for i, r in enumerate(rows) if r["method"] == method]
        sub = pareto_front(points([rows[i] for i in idx], set_name))
        out[method] = [idx[j] for j in sub]
    return out


def _covered(target: tuple[float, float], by: Sequence[tuple[float, float]], lo: float) -> bool:
    """Some point of ``by`` with BitOps in ``[lo, target BitOps]`` has PSNR >= target's."""
    return any(lo <= x <= target[0] and y >= target[1] for x, y in by)


def targets(
    rows: Sequence[Mapping[str, Any]],
    set_name: str,
    *,
    trials: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The issue's counts on ``set_name`` (rows as returned by :func:`ok_rows`).

    * ``random``: random points for which some found point has <= BitOps and >= PSNR.
    * ``baselines``: quantized (4/8-bit) baseline points for which some found point within
      a factor :data:`MATCH_FACTOR` of its BitOps has >= PSNR; ``unmatched`` counts
      baselines with no found point in that BitOps range at all.
    * ``uniform``: uniform retrains whose mixed-precision source has <= BitOps and >= PSNR
      (``dominated``), that dominate their source (``beats_mixed``), or neither.
    """
    key = psnr_key(set_name)
    found = [(as_number(r["bitops_32"]), as_number(r[key])) for r in rows if r["method"] == FOUND]
    rnd = [(as_number(r["bitops_32"]), as_number(r[key])) for r in rows if r["method"] == "random"]
    out: dict[str, Any] = {
        "set": set_name,
        "found": len(found),
        "random": {"total": len(rnd), "dominated": sum(_covered(p, found, 0.0) for p in rnd)},
    }
    base = [
        r for r in rows if r["method"] in BASELINE_METHODS and as_number(r.get("bits")) in (4, 8)
    ]
    matched = wins = 0
    for r in base:
        b, p = as_number(r["bitops_32"]), as_number(r[key])
        near = [(x, y) for x, y in found if b / MATCH_FACTOR <= x <= b * MATCH_FACTOR]
        if near:
            matched += 1
            wins += any(y >= p for _, y in near)
    out["baselines"] = {
        "total": len(base),
        "matched": matched,
        "found_better": wins,
        "unmatched": len(base) - matched,
    }
    pairs = rows if trials is None else trials
    by_id = {r.get("trial_id"): r for r in pairs}
    dom = beat = other = 0
    for r in pairs:
        if r["method"] != "uniform" or r.get("source") not in by_id:
            continue
        src = by_id[r["source"]]
        sb, sp = as_number(src["bitops_32"]), as_number(src[key])
        ub, up = as_number(r["bitops_32"]), as_number(r[key])
        if sb <= ub and sp >= up:
            dom += 1
        elif ub <= sb and up >= sp:
            beat += 1
        else:
            other += 1
    out["uniform"] = {
        "total": dom + beat + other,
        "dominated": dom,
        "beats_mixed": beat,
        "trade_off": other,
    }
    return out


def _setting(r: Mapping[str, Any]) -> str:
    return str(r.get("setting") or "-")


def _pm(r: Mapping[str, Any], key: str, fmt: str) -> str:
    """``mean +- std`` of an aggregated column (just the value when it has no std)."""
    std = r.get(f"{key}_std")
    value = format(as_number(r.get(key)), fmt)
    if std is None or np.isnan(as_number(std)):
        return value
    return f"{value} +- {format(as_number(std), fmt)}"


def front_table(
    rows: Sequence[Mapping[str, Any]], set_name: str, *, every: bool = False
) -> str:
    """Markdown table of the overall front on ``set_name`` (by BitOps).

    Rows from :func:`aggregate` show ``mean +- std`` over their seeds; ``every`` lists
    all points, front or not (the front is marked).
    """
    key = psnr_key(set_name)
    ssim = f"ssim_{set_name}"
    merged = len({r.get("sweep") for r in rows}) > 1
    val = set_name != "validation"  # a second validation column only beside another set
    head = ["method", "setting", "seeds", "GBitOps @32x32", "params", f"PSNR {set_name}",
            f"SSIM {set_name}", *(["PSNR validation"] if val else []), "stalled",
            *(["front"] if every else [])]
    head = ["sweep", *head] if merged else head
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    front = overall_front(rows, set_name)
    order = front
    if every:
        order = sorted(range(len(rows)), key=lambda i: as_number(rows[i]["bitops_32"]))
    for i in order:
        r = rows[i]
        lines.append(
            f"| {str(r.get('sweep')) + ' | ' if merged else ''}"
            f"{r['method']} | {_setting(r)} | {r.get('seed', '')} | "
            f"{as_number(r['bitops_32']) / 1e9:.3f} | {int(as_number(r.get('params')))} | "
            f"{_pm(r, key, '.2f')} | {_pm(r, ssim, '.4f')} | "
            + (f"{_pm(r, 'psnr_validation', '.2f')} | " if val else "")
            + f"{r.get('stalled', '')} |"
            + ((" yes |" if i in front else " |") if every else "")
        )
    return "\n".join(lines)


def targets_text(t: Mapping[str, Any]) -> str:
    """The target counts as Markdown bullet points (a comparison with nothing to compare,
    such as no random points or no uniform retrains, is left out).
    """
    r, b, u = t["random"], t["baselines"], t["uniform"]
    lines = []
    if t["found"] and r["total"]:
        lines.append(
            f"- found ({t['found']} points) vs random: {r['dominated']} of {r['total']} random "
            f"points have a found point with <= BitOps and >= PSNR"
        )
    if t["found"] and b["total"]:
        lines.append(
            f"- found vs uniformly quantized baselines (4/8-bit) at matched BitOps "
            f"(x{MATCH_FACTOR}): found >= baseline PSNR for {b['found_better']} of "
            f"{b['matched']} matched baselines ({b['unmatched']} of {b['total']} have no "
            f"found point in range)"
        )
    if u["total"]:
        lines.append(
            f"- mixed precision vs the same genotype retrained uniformly: mixed has <= BitOps "
            f"and >= PSNR in {u['dominated']} of {u['total']} pairs, the uniform copy "
            f"dominates in {u['beats_mixed']}, trade-off in {u['trade_off']}"
        )
    return "\n".join(lines) if lines else "- no comparison applies to these results"
