"""Architecture picture of a genotype (op and bit-width of each layer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle

from quantnas.errors import QuantNASError
from quantnas.plots._common import (
    BIT_COLORS,
    BLOCK_ORDER,
    _bit_color,
    _new_figure,
    _save,
)


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
