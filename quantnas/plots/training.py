"""Training curves: losses and PSNR over epochs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from quantnas.errors import QuantNASError
from quantnas.plots._common import (
    _new_figure,
    _save,
)


def _series(history: Sequence[Mapping[str, float]], key: str) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for row in history:
        value = row.get(key)
        if value is None:
            continue
        try:
            y = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(y):
            xs.append(float(row["epoch"]))
            ys.append(y)
    return xs, ys


def _finish(ax, plotted: bool, *, empty: str, ylabel: str, title: str) -> None:
    """Legend (or an ``empty`` note when nothing was drawn), labels, title and grid."""
    if plotted:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)


def plot_training_curves(
    history: Sequence[Mapping[str, float]],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Plot losses (left) and PSNR (right) against the epoch.

    Args:
        history: Rows with ``epoch`` and any of ``train_loss``, ``val_loss``,
            ``val_psnr``, ``bicubic_psnr``. Missing, None or non-finite values are
            skipped. ``bicubic_psnr`` is drawn as a horizontal dashed line (its last
            value).
        path: Output PNG.
        title: Optional figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        QuantNASError: If ``history`` is empty or a row lacks ``epoch``.

    """
    if not history:
        raise QuantNASError("training history: no rows to plot")
    for i, row in enumerate(history):
        if "epoch" not in row:
            raise QuantNASError(f"training history row {i}: missing key 'epoch'")

    fig = _new_figure(10.0, 4.0)
    ax_loss, ax_psnr = fig.subplots(1, 2)

    plotted = False
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        xs, ys = _series(history, key)
        if xs:
            ax_loss.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
            plotted = True
    _finish(ax_loss, plotted, empty="no loss values", ylabel="loss", title="loss")

    plotted = False
    xs, ys = _series(history, "val_psnr")
    if xs:
        ax_psnr.plot(
            xs,
            ys,
            marker="o" if len(xs) < 30 else None,
            markersize=3,
            color="tab:green",
            label="val PSNR",
        )
        plotted = True
    _, bic = _series(history, "bicubic_psnr")
    if bic:
        ax_psnr.axhline(
            bic[-1],
            color="gray",
            linestyle="--",
            linewidth=1.2,
            label=f"bicubic ({bic[-1]:.2f} dB)",
        )
        plotted = True
    _finish(ax_psnr, plotted, empty="no PSNR values", ylabel="PSNR (dB)", title="PSNR")

    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
