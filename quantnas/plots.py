"""Figures written into run directories (PNG, headless).

All figures are drawn on :class:`matplotlib.figure.Figure` objects rendered by the Agg
canvas directly, so no GUI backend or global pyplot state is involved and plotting
works on machines without a display. Files are written atomically.

Functions:
    plot_alpha_evolution: probability of each (op, bit-width) pair per layer over epochs.
    plot_genotype: architecture picture of a genotype (op and bit-width of each layer).
    plot_training_curves: losses and PSNR over epochs.
    plot_side_by_side: image panels (e.g. bicubic / SR / HR) with a zoomed crop.
    plot_method_fronts: a sweep's points, one marker and colour per method, fronts joined.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle

from quantnas.checkpoint import atomic_write_bytes
from quantnas.errors import QuantNASError
from quantnas.sweep.pareto import pareto_front

__all__ = [
    "BIT_COLORS",
    "BLOCK_ORDER",
    "pareto_front",
    "plot_alpha_evolution",
    "plot_genotype",
    "plot_method_fronts",
    "plot_side_by_side",
    "plot_training_curves",
]

logger = logging.getLogger(__name__)

#: Fixed box colour per bit-width in genotype pictures.
BIT_COLORS: dict[int, str] = {
    2: "#d73027",
    3: "#fc8d59",
    4: "#fee08b",
    8: "#91cf60",
    16: "#4575b4",
    32: "#bababa",
}
_OTHER_BIT_COLOR = "#c994c7"

#: Pipeline order of the block types of a genotype.
BLOCK_ORDER: tuple[str, ...] = ("head", "body", "skip", "upsample", "tail")

_LINE_STYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
_DPI = 100


# --------------------------------------------------------------------------- helpers
def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` to PNG and write it atomically to ``path``."""
    dest = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    atomic_write_bytes(dest, buffer.getvalue())
    logger.debug("wrote %s", dest)
    return dest


def _op_colors(names: Sequence[str]) -> dict[str, Any]:
    """Distinct colour per op name (tab10, then tab20, then a continuous map)."""
    from matplotlib import colormaps

    unique = list(dict.fromkeys(names))
    if len(unique) <= 10:
        cmap = colormaps["tab10"]
        return {n: cmap(i) for i, n in enumerate(unique)}
    if len(unique) <= 20:
        cmap = colormaps["tab20"]
        return {n: cmap(i) for i, n in enumerate(unique)}
    cmap = colormaps["turbo"]
    return {n: cmap(i / max(1, len(unique) - 1)) for i, n in enumerate(unique)}


def _bit_color(bits: int) -> str:
    return BIT_COLORS.get(int(bits), _OTHER_BIT_COLOR)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 4) if n > 0 else 1
    rows = max(1, math.ceil(n / cols))
    return rows, cols


# ------------------------------------------------------------------ alpha evolution
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


# ------------------------------------------------------------------------ genotype
def _genotype_layers(block: str, layers: Any) -> list[tuple[str, int]]:
    """Normalise a block's layers to (op, bits) tuples, validating types."""
    if layers is None:
        return []
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise QuantNASError(
            f"genotype block {block!r}: expected a list of (op, bits) pairs, got "
            f"{type(layers).__name__}"
        )
    out: list[tuple[str, int]] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, Mapping) and "op" in layer and "bits" in layer:
            op, nbits = layer["op"], layer["bits"]
        elif isinstance(layer, Sequence) and not isinstance(layer, str) and len(layer) == 2:
            op, nbits = layer
        else:
            raise QuantNASError(
                f"genotype block {block!r} layer {i}: expected (op, bits), got {layer!r}"
            )
        if (
            not isinstance(op, str)
            or isinstance(nbits, bool)
            or not isinstance(nbits, (int, np.integer))
        ):
            raise QuantNASError(
                f"genotype block {block!r} layer {i}: expected (op name, integer bits), "
                f"got {layer!r}"
            )
        out.append((op, int(nbits)))
    return out


def plot_genotype(
    genotype: Mapping[str, Sequence[tuple[str, int]]],
    path: str | Path,
    *,
    body_cells: int = 1,
    title: str | None = None,
) -> Path:
    r"""Draw the architecture of a genotype as a left-to-right pipeline.

    ``LR -> head -> body (with the skip branch drawn in parallel, "xK cells") ->
    upsample -> tail -> SR``. Each layer is a box reading ``"op\nN-bit"`` coloured by
    bit-width (see :data:`BIT_COLORS`); empty or missing blocks show ``"none"``.

    Args:
        genotype: Block type -> list of ``(op, bits)`` pairs (``{"op":..., "bits":...}``
            dicts are accepted too). Keys must be among :data:`BLOCK_ORDER`.
        path: Output PNG.
        body_cells: Number of repeated body cells (shown as a label).
        title: Optional figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        QuantNASError: On unknown block names or malformed layers.

    """
    if not isinstance(genotype, Mapping):
        raise QuantNASError(
            f"genotype: expected a mapping of block -> layers, got {type(genotype).__name__}"
        )
    unknown = [k for k in genotype if k not in BLOCK_ORDER]
    if unknown:
        raise QuantNASError(
            f"genotype: unknown block {unknown[0]!r} (expected one of {', '.join(BLOCK_ORDER)})"
        )
    if isinstance(body_cells, bool) or not isinstance(body_cells, int) or body_cells < 1:
        raise QuantNASError(f"body_cells: expected a positive integer, got {body_cells!r}")
    blocks = {b: _genotype_layers(b, genotype.get(b)) for b in BLOCK_ORDER}

    longest = max((len(op) for layers in blocks.values() for op, _ in layers), default=4)
    box_w, box_h, gap, block_gap = max(1.7, 0.105 * longest + 0.35), 0.9, 0.35, 0.9
    main_y, skip_y = 0.0, -1.9

    def width_of(layers: list[tuple[str, int]]) -> float:
        n = max(1, len(layers))
        return n * box_w + (n - 1) * gap

    fig = _new_figure(1.0, 1.0)  # resized below once the extent is known
    ax = fig.add_subplot(1, 1, 1)
    ax.set_aspect("equal")
    ax.axis("off")

    def draw_box(x: float, y: float, text: str, color: str, *, dashed: bool = False) -> None:
        ax.add_patch(
            FancyBboxPatch(
                (x, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor=color,
                edgecolor="#333333",
                linewidth=1.0,
                linestyle="--" if dashed else "-",
            )
        )
        ax.text(x + box_w / 2, y, text, ha="center", va="center", fontsize=7.5)

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.add_patch(
            FancyArrowPatch(
                (x0, y0),
                (x1, y1),
                arrowstyle="-|>",
                mutation_scale=9,
                color="#333333",
                linewidth=1.0,
                shrinkA=0,
                shrinkB=0,
            )
        )

    def draw_layers(layers: list[tuple[str, int]], x: float, y: float) -> float:
        """Draw a row of layer boxes starting at x; return the right edge."""
        if not layers:
            draw_box(x, y, "none", "white", dashed=True)
            return x + box_w
        for i, (op, nbits) in enumerate(layers):
            if i:
                arrow(x - gap, y, x, y)
            draw_box(x, y, f"{op}\n{nbits}-bit", _bit_color(nbits))
            x += box_w + gap
        return x - gap

    def frame(x0: float, x1: float, y: float, label: str) -> None:
        pad = 0.22
        ax.add_patch(
            Rectangle(
                (x0 - pad, y - box_h / 2 - pad),
                x1 - x0 + 2 * pad,
                box_h + 2 * pad,
                fill=False,
                edgecolor="#777777",
                linestyle=":",
                linewidth=0.9,
            )
        )
        ax.text(
            (x0 + x1) / 2,
            y + box_h / 2 + pad + 0.08,
            label,
            ha="center",
            va="bottom",
            fontsize=8.5,
            fontweight="bold",
        )

    # LR input
    x = 0.0
    ax.text(x + 0.3, main_y, "LR", ha="center", va="center", fontsize=9, fontweight="bold")
    x += 0.6
    # head
    arrow(x, main_y, x + block_gap, main_y)
    x += block_gap
    head_end = draw_layers(blocks["head"], x, main_y)
    frame(x, head_end, main_y, "head")
    x = head_end
    # body + parallel skip
    split_x = x + block_gap * 0.5
    ax.plot([x, split_x], [main_y, main_y], color="#333333", linewidth=1.0)
    body_start = x + block_gap
    section_w = max(width_of(blocks["body"]), width_of(blocks["skip"]))
    body_x = body_start + (section_w - width_of(blocks["body"])) / 2
    skip_x = body_start + (section_w - width_of(blocks["skip"])) / 2
    arrow(split_x, main_y, body_x, main_y)
    body_end = draw_layers(blocks["body"], body_x, main_y)
    ax.plot([split_x, split_x], [main_y, skip_y], color="#333333", linewidth=1.0)
    arrow(split_x, skip_y, skip_x, skip_y)
    skip_end = draw_layers(blocks["skip"], skip_x, skip_y)
    section_end = body_start + section_w
    join_x = section_end + block_gap * 0.5
    arrow(body_end, main_y, join_x - 0.17, main_y)
    ax.plot([skip_end, join_x], [skip_y, skip_y], color="#333333", linewidth=1.0)
    arrow(join_x, skip_y, join_x, main_y - 0.17)
    ax.add_patch(
        FancyBboxPatch(
            (join_x - 0.17, main_y - 0.17),
            0.34,
            0.34,
            boxstyle="circle,pad=0",
            facecolor="white",
            edgecolor="#333333",
        )
    )
    ax.text(join_x, main_y, "+", ha="center", va="center", fontsize=9)
    frame(body_start, section_end, main_y, f"body  x{body_cells} cells")
    ax.text(
        body_start + section_w / 2,
        skip_y - box_h / 2 - 0.3,
        "skip (parallel branch)",
        ha="center",
        va="top",
        fontsize=8.5,
        fontweight="bold",
    )
    x = join_x + 0.17
    # upsample
    arrow(x, main_y, x + block_gap, main_y)
    x += block_gap
    up_end = draw_layers(blocks["upsample"], x, main_y)
    frame(x, up_end, main_y, "upsample")
    x = up_end
    # tail
    arrow(x, main_y, x + block_gap, main_y)
    x += block_gap
    tail_end = draw_layers(blocks["tail"], x, main_y)
    frame(x, tail_end, main_y, "tail")
    x = tail_end
    arrow(x, main_y, x + block_gap, main_y)
    x += block_gap
    ax.text(x + 0.3, main_y, "SR", ha="center", va="center", fontsize=9, fontweight="bold")
    x_max = x + 0.6

    used_bits = sorted({b for layers in blocks.values() for _, b in layers})
    legend_bits = sorted(set(BIT_COLORS) | set(used_bits))
    handles = [
        Patch(facecolor=_bit_color(b), edgecolor="#333333", label=f"{b}-bit") for b in legend_bits
    ]

    y_min, y_max = skip_y - box_h / 2 - 1.0, main_y + box_h / 2 + 0.8
    ax.set_xlim(-0.2, x_max + 0.2)
    ax.set_ylim(y_min - 0.6, y_max)
    width = max(6.0, 0.62 * (x_max + 0.4))
    height = 0.62 * (y_max - y_min + 0.6) + (0.5 if title else 0.2)
    fig.set_size_inches(width, height)
    ax.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        fontsize=7.5,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------ training curves
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


# ------------------------------------------------------------------- side by side
def _gray(img: np.ndarray) -> np.ndarray:
    arr = img.astype(np.float64)
    if arr.ndim == 3:
        if arr.shape[2] >= 3:
            return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        return arr.mean(axis=2)
    return arr


def _auto_crop(img: np.ndarray) -> tuple[int, int, int, int]:
    """Square window (~1/3 of the short side, at most 192) with the most gradient energy."""
    height, width = img.shape[:2]
    size = max(1, min(192, min(height, width) // 3))
    gray = _gray(img)
    energy = np.zeros((height, width), dtype=np.float64)
    energy[:, :-1] += np.diff(gray, axis=1) ** 2
    energy[:-1, :] += np.diff(gray, axis=0) ** 2
    integral = np.zeros((height + 1, width + 1), dtype=np.float64)
    integral[1:, 1:] = energy.cumsum(axis=0).cumsum(axis=1)
    sums = (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), size, size


def plot_side_by_side(
    images: Sequence[tuple[str, np.ndarray]],
    path: str | Path,
    *,
    crop: tuple[int, int, int, int] | None = None,
) -> Path:
    """Show images side by side (top row) with a zoomed crop of each (bottom row).

    Args:
        images: ``(title, image)`` panels, e.g. ``[("Bicubic", a), ("SR 31.2 dB", b),
            ("HR", c)]``; images are uint8 arrays ``HxWxC`` (C = 1 or 3) or ``HxW``, all
            the same size.
        path: Output PNG.
        crop: ``(top, left, height, width)`` of the zoomed window. If None, the window
            (about 1/3 of the short side, at most 192 pixels) with the highest gradient
            energy of the HR panel (title starting with "HR", else the last panel) is
            used.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        QuantNASError: If there are no images, they are not uint8 images of the same
            size, or ``crop`` is outside the image.

    """
    if not images:
        raise QuantNASError("side-by-side: no images given")
    arrays: list[tuple[str, np.ndarray]] = []
    shape: tuple[int, ...] | None = None
    for name, img in images:
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            raise QuantNASError(f"side-by-side image {name!r}: expected uint8, got {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
            raise QuantNASError(
                f"side-by-side image {name!r}: expected HxWx3 or HxW, got shape {arr.shape}"
            )
        if shape is not None and arr.shape[:2] != shape[:2]:
            raise QuantNASError(
                f"side-by-side image {name!r}: size {arr.shape[:2]} differs from "
                f"{shape[:2]} of the first image"
            )
        shape = arr.shape
        arrays.append((str(name), arr))
    height, width = arrays[0][1].shape[:2]

    if crop is None:
        hr = next((a for n, a in arrays if n.strip().lower().startswith("hr")), arrays[-1][1])
        top, left, ch, cw = _auto_crop(hr)
    else:
        if len(crop) != 4:
            raise QuantNASError(f"crop: expected (top, left, height, width), got {crop!r}")
        top, left, ch, cw = (int(v) for v in crop)
        if top < 0 or left < 0 or ch < 1 or cw < 1 or top + ch > height or left + cw > width:
            raise QuantNASError(
                f"crop {tuple(crop)!r}: window must lie inside the {height}x{width} image"
            )

    n = len(arrays)
    panel_w = 3.4
    aspect = height / max(1, width)
    fig = _new_figure(panel_w * n, panel_w * aspect + panel_w * ch / max(1, cw) + 0.8)
    axes = fig.subplots(2, n, squeeze=False)
    for i, (name, arr) in enumerate(arrays):
        cmap = "gray" if arr.ndim == 2 else None
        full_ax, crop_ax = axes[0, i], axes[1, i]
        full_ax.imshow(arr, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        full_ax.add_patch(
            Rectangle((left - 0.5, top - 0.5), cw, ch, fill=False, edgecolor="red", linewidth=1.2)
        )
        full_ax.set_title(name, fontsize=9)
        crop_ax.imshow(
            arr[top : top + ch, left : left + cw],
            cmap=cmap,
            vmin=0,
            vmax=255,
            interpolation="nearest",
        )
        for a in (full_ax, crop_ax):
            a.set_xticks([])
            a.set_yticks([])
        for spine in crop_ax.spines.values():
            spine.set_edgecolor("red")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------- pareto
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
