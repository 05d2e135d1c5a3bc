"""Alpha evolution: probability of each (op, bit-width) pair per layer over epochs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from quantnas.errors import QuantNASError
from quantnas.plots._common import (
    _LINE_STYLES,
    _grid,
    _new_figure,
    _op_colors,
    _save,
)


def _layer_ops(ops: Mapping[str, Sequence[str]], layer: str) -> Sequence[str]:
    """Op names of ``layer``: keyed by the layer name or by its block type."""
    if layer in ops:
        return ops[layer]
    block = layer.split(".")[0]
    if block in ops:
        return ops[block]
    raise QuantNASError(
        f"alpha history layer {layer!r}: no op names given (expected key {layer!r} or "
        f"{block!r} in ops)"
    )


def plot_alpha_evolution(
    history: Mapping[str, np.ndarray],
    ops: Mapping[str, Sequence[str]],
    bits: Sequence[int],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Plot the probability of every (op, bit-width) pair of every layer over epochs.

    One subplot per layer; colour encodes the op (consistent across subplots), line
    style the bit-width. A shared legend lists ops and bit-widths separately.

    Args:
        history: Layer name (e.g. ``"body.1"``) -> array of shape
            ``(epochs, n_ops, n_bits)`` with the probability of each pair at the end of
            each epoch.
        ops: Op names per layer, keyed by layer name or block type (``"body"``).
        bits: Bit-widths, in the order of the last axis.
        path: Output PNG.
        title: Optional figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        QuantNASError: If ``history`` is empty or a layer's array shape does not match
            its op list and ``bits``.

    """
    if not history:
        raise QuantNASError("alpha history: no layers to plot")
    bits = [int(b) for b in bits]
    if not bits:
        raise QuantNASError("alpha history: bits must list at least one bit-width")
    arrays: dict[str, np.ndarray] = {}
    layer_ops: dict[str, list[str]] = {}
    for layer, values in history.items():
        arr = np.asarray(values, dtype=float)
        names = [str(n) for n in _layer_ops(ops, layer)]
        if arr.ndim == 2 and len(bits) == 1:
            arr = arr[:, :, None]
        expected = f"(epochs, {len(names)}, {len(bits)})"
        if arr.ndim != 3 or arr.shape[1] != len(names) or arr.shape[2] != len(bits):
            raise QuantNASError(
                f"alpha history layer {layer!r}: expected shape {expected} "
                f"(epochs, n_ops, n_bits), got {tuple(arr.shape)}"
            )
        if arr.shape[0] == 0:
            raise QuantNASError(f"alpha history layer {layer!r}: no epochs recorded")
        arrays[layer] = arr
        layer_ops[layer] = names

    all_ops = [n for names in layer_ops.values() for n in names]
    colors = _op_colors(all_ops)
    styles = {b: _LINE_STYLES[i % len(_LINE_STYLES)] for i, b in enumerate(bits)}

    n_rows, n_cols = _grid(len(arrays))
    fig = _new_figure(3.6 * n_cols, 2.7 * n_rows + 1.2)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax, (layer, arr) in zip(axes.flat, arrays.items(), strict=False):
        epochs = np.arange(1, arr.shape[0] + 1)
        for o, op_name in enumerate(layer_ops[layer]):
            for b, bit in enumerate(bits):
                ax.plot(
                    epochs,
                    arr[:, o, b],
                    color=colors[op_name],
                    linestyle=styles[bit],
                    linewidth=1.3,
                    marker="." if arr.shape[0] == 1 else None,
                )
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("probability", fontsize=8)
        ax.set_ylim(bottom=0.0)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(arrays) :]:
        ax.set_visible(False)

    handles = [Line2D([], [], color=colors[n], linewidth=2, label=n) for n in colors]
    handles += [
        Line2D([], [], color="black", linestyle=styles[b], linewidth=1.3, label=f"{b}-bit")
        for b in bits
    ]
    n_legend_cols = min(len(handles), 6)
    legend_rows = math.ceil(len(handles) / n_legend_cols)
    fig.legend(handles=handles, loc="lower center", ncol=n_legend_cols, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    bottom = min(0.45, (0.17 * legend_rows + 0.12) / fig.get_figheight())
    fig.tight_layout(rect=(0, bottom, 1, 0.95 if title else 1))
    return _save(fig, path)
