"""The PSNR-vs-BitOps front of sweep results: which evaluation set it is drawn on, the
figure and Markdown table of a sweep, and ``quantnas pareto`` over finished sweeps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from quantnas.errors import QuantNASError
from quantnas.rundir.files import atomic_write_text
from quantnas.sweep import pareto as pm
from quantnas.sweep.at_targets import target_table
from quantnas.sweep.results import read_table

__all__ = ["pareto_command", "pareto_set", "write_pareto"]

log = logging.getLogger(__name__)


def pareto_set(wanted: str, rows: Sequence[dict], *, warn: bool = True) -> str:
    """``wanted`` if the rows have PSNRs on it, else ``validation`` (with a warning, unless
    ``warn`` is False: per-trial log lines leave it to the sweep's one front message).
    """
    key = pm.psnr_key(wanted)
    if any(r.get(key) is not None for r in rows):
        return wanted
    sets = sorted({k[5:] for r in rows for k in r if k.startswith("psnr_")})
    if wanted != "validation" and "validation" in sets:
        if warn:
            log.warning("no results on set %r; the front is drawn on validation", wanted)
        return "validation"
    if not sets:
        raise QuantNASError("no finished trial has PSNR results")
    raise QuantNASError(f"no results on set {wanted!r}; the results have {sets}")


def write_pareto(
    rows: Sequence[dict], set_name: str, out: Path, *, title: str, tolerance: float = 0.05
) -> str:
    """Draw ``out`` (PNG) and write ``out`` with ``.md``; return the Markdown text."""
    from quantnas.plots import plot_method_fronts

    trials = pm.ok_rows(rows, set_name)
    if not trials:
        raise QuantNASError(f"no finished trial with a PSNR on set {set_name!r} to plot")
    ok = pm.aggregate(trials)  # one point per method and setting: the mean over its seeds
    key = pm.psnr_key(set_name)
    labels = []
    for r in ok:
        pen, bits = r.get("penalty"), r.get("bits")
        if r["method"] == "search" and pen is not None:
            labels.append(f"p={float(pen):g}")
        elif r["method"] == "uniform" and pen is not None:
            labels.append(f"{bits}b p={float(pen):g}")
        elif r["method"] in pm.BASELINE_METHODS and bits is not None:
            labels.append(f"{bits}b")
        else:
            labels.append(None)
    bic = [r.get(f"bicubic_psnr_{set_name}") for r in ok if r.get(f"bicubic_psnr_{set_name}")]
    plot_method_fronts(
        [float(r["bitops_32"]) for r in ok],
        [float(r[key]) for r in ok],
        [str(r["method"]) for r in ok],
        out,
        fronts=pm.method_fronts(ok, set_name),
        overall=pm.overall_front(ok, set_name),
        labels=labels,
        y_label=f"PSNR on {set_name!r} (dB, Y)",
        title=title,
        reference=("bicubic", float(bic[0])) if bic else None,
    )
    t = pm.targets(ok, set_name, trials=trials)
    failed = [r for r in rows if r.get("status") not in (None, "ok")]
    md = "\n".join(
        [
            f"# {title}\n",
            f"Front on set `{set_name}` ({len(trials)} finished trials, {len(failed)} failed; "
            f"{len(ok)} points, each the mean +- std over its seeds).\n",
            pm.front_table(ok, set_name),
            f"\n## Every point on set `{set_name}`\n",
            pm.front_table(ok, set_name, every=True),
            "\n## Targets\n",
            pm.targets_text(t),
            "",
        ]
    )
    at = target_table(trials, set_name, tolerance=tolerance)
    if at:
        md += f"\n## At equal BitOps (sweep.targets), set `{set_name}`\n\n{at}\n"
    atomic_write_text(out.with_suffix(".md"), md)
    return md


def pareto_command(paths: Sequence[str], *, set_name: str | None, out: str | None) -> str:
    """``quantnas pareto``: merge results files/folders, draw the front, return Markdown."""
    rows: list[dict] = []
    for p in paths:
        tag = Path(p).name if Path(p).is_dir() else Path(p).parent.name
        for r in read_table(p):
            r = dict(r)
            r["sweep"] = tag
            if len(paths) > 1 and r.get("trial_id"):
                r["trial_id"] = f"{tag}/{r['trial_id']}"
                if r.get("source"):
                    r["source"] = f"{tag}/{r['source']}"
            rows.append(r)
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    if not ok:
        raise QuantNASError("pareto: no finished trials in the given results")
    chosen = set_name or pareto_set("test", ok)
    if not any(r.get(pm.psnr_key(chosen)) is not None for r in ok):
        sets = sorted({k[5:] for r in ok for k in r if k.startswith("psnr_") and r[k] is not None})
        raise QuantNASError(f"--set {chosen!r}: no PSNR on that set; the results have {sets}")
    first = Path(paths[0])
    dest = Path(out) if out else (first if first.is_dir() else first.parent) / "pareto.png"
    if dest.suffix.lower() != ".png":
        raise QuantNASError(f"--out {dest}: expected a .png file name")
    title = "sweep " + " + ".join(dict.fromkeys(r["sweep"] for r in rows))
    return write_pareto(rows, chosen, dest, title=title)
