"""Shared figure helpers: Agg figures, atomic PNG writes, colours."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from quantnas.rundir.files import atomic_write_bytes

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
