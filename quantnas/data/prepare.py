"""Cut HR training images into overlapping square patches (the ``prepare`` verb)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from quantnas.data.images import list_images, load_rgb, save_rgb
from quantnas.errors import QuantNASError

__all__ = ["patch_starts", "prepare_patches"]

logger = logging.getLogger(__name__)


def patch_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets of patches along one axis (BasicSR ``extract_subimages`` rule).

    Offsets are ``0, stride, 2*stride, ...`` while the patch fits, plus one last patch
    flush with the end when the regular grid leaves pixels uncovered.

    Args:
        length: Image size along the axis.
        patch: Patch size.
        stride: Step between patches.

    Returns:
        Sorted offsets; empty if ``length < patch``.

    """
    if length < patch:
        return []
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def _round_down(value: int, scale: int, what: str) -> int:
    rounded = value - value % scale
    if rounded < scale:
        raise QuantNASError(f"prepare: {what} {value} is smaller than the scale {scale}")
    return rounded


def _cut(arr: np.ndarray, patch: int, stride: int) -> list[np.ndarray]:
    h, w = arr.shape[:2]
    return [
        arr[top : top + patch, left : left + patch]
        for top in patch_starts(h, patch, stride)
        for left in patch_starts(w, patch, stride)
    ]


def prepare_patches(
    src: str | Path, out: str | Path, *, patch: int = 200, stride: int = 70, scale: int = 4
) -> int:
    """Cut every image of ``src`` into ``patch x patch`` PNG tiles in ``out``.

    ``patch`` and ``stride`` are rounded down to multiples of ``scale``. Tiles are named
    ``<stem>_s001.png``, ``<stem>_s002.png``, ... in row-major order. Images smaller
    than a patch are skipped with a warning.

    Args:
        src: Folder of HR images (RGB; see :func:`load_rgb`).
        out: Output folder (created).
        patch: Tile size in HR pixels.
        stride: Step between tiles.
        scale: SR scale the tiles are meant for.

    Returns:
        The number of tiles written.

    Raises:
        QuantNASError: Missing/empty source folder, bad image, sizes smaller than the
            scale, or no image large enough for one tile.

    """
    patch = _round_down(int(patch), scale, "patch")
    stride = _round_down(int(stride), scale, "stride")
    files = list_images(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, path in enumerate(files, start=1):
        tiles = _cut(load_rgb(path), patch, stride)
        if not tiles:
            logger.warning("prepare: %s is smaller than %dx%d, skipped", path, patch, patch)
        for k, tile in enumerate(tiles, start=1):
            save_rgb(out / f"{path.stem}_s{k:03d}.png", np.ascontiguousarray(tile))
        total += len(tiles)
        logger.info("prepare: [%d/%d] %s -> %d patches", i, len(files), path.name, len(tiles))
    if total == 0:
        raise QuantNASError(f"prepare: no image in {src} is at least {patch}x{patch} pixels")
    logger.info("prepare: wrote %d patches of %dx%d to %s", total, patch, patch, out)
    return total
