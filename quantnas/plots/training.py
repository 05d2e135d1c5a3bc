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
    if plotted:
        ax_loss.legend(fontsize=8)
    else:
        ax_loss.text(
            0.5, 0.5, "no loss values", ha="center", va="center", transform=ax_loss.transAxes
        )
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("loss", fontsize=10)
    ax_loss.grid(True, alpha=0.3)

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
    if plotted:
        ax_psnr.legend(fontsize=8)
    else:
        ax_psnr.text(
            0.5, 0.5, "no PSNR values", ha="center", va="center", transform=ax_psnr.transAxes
        )
    ax_psnr.set_xlabel("epoch")
    ax_psnr.set_ylabel("PSNR (dB)")
    ax_psnr.set_title("PSNR", fontsize=10)
    ax_psnr.grid(True, alpha=0.3)

    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
