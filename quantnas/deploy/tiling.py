"""Tiled inference: upscale an LR image in overlapping tiles so memory stays bounded.

Each tile is a ``tile x tile`` core of the LR image plus ``overlap`` LR pixels of real
neighbours on every side (fewer at the image border, where the network pads as it does
untiled). Only the upscaled core is kept. When ``overlap`` is at least the network's halo
(:func:`quantnas.deploy.receptive.lr_halo`), every kept output pixel sees exactly the
input it sees untiled, so the tiled output equals the untiled one up to float rounding
(convolutions of different sizes may sum in a different order).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from quantnas.errors import QuantNASError

__all__ = ["tile_windows", "upscale_tiled"]


def _span(start: int, end: int, overlap: int, length: int, min_side: int) -> tuple[int, int]:
    a, b = max(0, start - overlap), min(length, end + overlap)
    while b - a < min_side and (a > 0 or b < length):  # widen thin border tiles
        a, b = max(0, a - 1), min(length, b + 1)
    return a, b


def tile_windows(
    height: int, width: int, tile: int, overlap: int, min_side: int = 1
) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """The tiles of an image as ``(core, window)`` boxes ``(y0, y1, x0, x1)`` in LR pixels.

    Cores cover the image without overlap; each window is its core grown by ``overlap``
    (clipped to the image, and widened to ``min_side`` where the image allows).
    """
    if tile < 1:
        raise QuantNASError(f"--tile must be >= 1 (got {tile}); 0 disables tiling")
    if overlap < 0:
        raise QuantNASError(f"--overlap must be >= 0 (got {overlap})")
    out = []
    for y0 in range(0, height, tile):
        y1 = min(y0 + tile, height)
        ya, yb = _span(y0, y1, overlap, height, min_side)
        for x0 in range(0, width, tile):
            x1 = min(x0 + tile, width)
            xa, xb = _span(x0, x1, overlap, width, min_side)
            out.append(((y0, y1, x0, x1), (ya, yb, xa, xb)))
    return out


def upscale_tiled(
    model: Callable[[np.ndarray], np.ndarray],
    lr: np.ndarray,
    scale: int,
    *,
    tile: int,
    overlap: int,
    min_side: int = 1,
) -> np.ndarray:
    """Upscale ``lr`` ``(1, C, H, W)`` with ``model`` tile by tile (``tile <= 0``: whole image).

    Returns:
        ``(1, C_out, H * scale, W * scale)`` float32.

    """
    _, _, h, w = lr.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return np.asarray(model(lr), dtype=np.float32)
    s = int(scale)
    out: np.ndarray | None = None
    for (y0, y1, x0, x1), (ya, yb, xa, xb) in tile_windows(h, w, tile, overlap, min_side):
        part = model(np.ascontiguousarray(lr[:, :, ya:yb, xa:xb]))
        if out is None:
            out = np.empty((1, part.shape[1], h * s, w * s), dtype=np.float32)
        out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = part[
            :, :, (y0 - ya) * s : (y1 - ya) * s, (x0 - xa) * s : (x1 - xa) * s
        ]
    assert out is not None
    return out
