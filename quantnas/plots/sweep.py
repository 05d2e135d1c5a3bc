"""A sweep's PSNR-vs-BitOps points, one marker and colour per method, fronts joined
(the front maths lives in :mod:`quantnas.sweep.pareto`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from quantnas.errors import QuantNASError
from quantnas.plots._common import (
    _new_figure,
    _save,
)

METHOD_STYLES: dict[str, tuple[str, str]] = {
    "search": ("*", "tab:red"),
    "uniform": ("X", "tab:orange"),
    "random": ("o", "tab:gray"),
    "espcn": ("s", "tab:blue"),
    "fsrcnn": ("^", "tab:green"),
    "edsr": ("D", "tab:purple"),
}
_SPARE_STYLES = (("v", "tab:brown"), ("P", "tab:pink"), ("h", "tab:olive"), ("<", "tab:cyan"))


def plot_method_fronts(
    xs: Sequence[float],
    ys: Sequence[float],
    methods: Sequence[str],
    path: str | Path,
    *,
    fronts: Mapping[str, Sequence[int]],
    overall: Sequence[int],
    labels: Sequence[str | None] | None = None,
    x_label: str = "BitOps (LR 32x32)",
    y_label: str = "PSNR (dB)",
    title: str | None = None,
    reference: tuple[str, float] | None = None,
) -> Path:
    """Scatter points by method (log x) and join each method's front.

    Args:
        xs: Cost of each point (BitOps, > 0).
        ys: Quality of each point (PSNR).
        methods: Method of each point (one marker and colour per method).
        path: Output PNG.
        fronts: ``{method: indices}`` of each method's non-dominated points, joined by a line.
        overall: Indices of the overall front (ringed in black).
        labels: Optional text next to each point (e.g. the penalty of search points).
        x_label: X axis label.
        y_label: Y axis label.
        title: Figure title.
        reference: Optional ``(name, y)`` horizontal reference line (e.g. bicubic).

    Returns:
        ``path``.

    """
    if not len(xs):
        raise QuantNASError("pareto: no finished trials to plot")
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    fig = _new_figure(8.0, 5.4)
    ax = fig.add_subplot(1, 1, 1)
    order = list(dict.fromkeys(methods))
    spare = iter(_SPARE_STYLES)
    for method in order:
        marker, color = METHOD_STYLES.get(method) or next(spare, ("o", "black"))
        idx = [i for i, m in enumerate(methods) if m == method]
        ax.scatter(
            x[idx],
            y[idx],
            marker=marker,
            color=color,
            s=90 if marker == "*" else 42,
            edgecolors="black",
            linewidths=0.4,
            zorder=3,
            label=method,
        )
        f = list(fronts.get(method, []))
        if len(f) > 1:
            ax.plot(x[f], y[f], color=color, linewidth=1.2, alpha=0.8, zorder=2)
    if len(overall):
        o = list(overall)
        ax.scatter(
            x[o],
            y[o],
            facecolors="none",
            edgecolors="black",
            s=170,
            linewidths=1.0,
            zorder=4,
            label="overall front",
        )
    if labels is not None:
        for i, text in enumerate(labels):
            if text:
                ax.annotate(
                    text,
                    (x[i], y[i]),
                    textcoords="offset points",
                    xytext=(5, 4),
                    fontsize=7,
                    zorder=5,
                )
    if reference is not None:
        ax.axhline(
            reference[1],
            color="gray",
            linestyle=":",
            linewidth=1.0,
            label=f"{reference[0]} {reference[1]:.2f} dB",
        )
    if (x > 0).all():
        ax.set_xscale("log")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)
