"""Image panels (e.g. bicubic / SR / HR) with a zoomed crop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Rectangle

from quantnas.errors import QuantNASError
from quantnas.plots._common import (
    _new_figure,
    _save,
)


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
