"""Image sizes read from file headers (nothing decoded), and the pixel budget of a set.

A folder of images is loaded into memory whole (:func:`~quantnas.data.sources.resolve_images`),
so before the first image is decoded the sizes in every file's header are added up and
checked against the set's budget (``data.max_total_pixels``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from quantnas.data.images import _check_pixels, _open_pillow, default_max_pixels
from quantnas.data.png16 import png_header
from quantnas.errors import QuantNASError

__all__ = [
    "BYTES_PER_PIXEL",
    "check_total_pixels",
    "default_total_pixels",
    "image_size",
]

log = logging.getLogger(__name__)

#: Bytes a loaded image costs per pixel (``uint8`` RGB).
BYTES_PER_PIXEL = 3
#: The budget where the available memory is unknown (3 GB of ``uint8`` RGB).
FALLBACK_TOTAL_PIXELS = 1_000_000_000


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int] | None:
    """``(width, height)`` of an image from its header, refused over ``max_pixels``.

    Args:
        path: Image file.
        max_pixels: Largest accepted ``H * W`` (None or 0: :func:`default_max_pixels`).

    Returns:
        The size, or None when no reader understands the header (the full read then
        reports the file).

    Raises:
        QuantNASError: The header claims more than ``max_pixels`` pixels.

    """
    path = Path(path)
    limit = int(max_pixels) if max_pixels else default_max_pixels()
    try:
        header = png_header(path)
    except OSError:
        return None
    if header is not None:
        w, h = header[3], header[4]
        _check_pixels(path, w * h, limit, claim=f"{w}x{h}")
        return w, h
    try:
        with _open_pillow(path, limit) as img:
            return img.size
    except QuantNASError:
        raise
    except Exception:  # noqa: BLE001 - not an image Pillow knows: try imageio for TIFF
        pass
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        import imageio.v3 as iio

        shape = tuple(int(d) for d in iio.improps(path).shape)
    except Exception:  # noqa: BLE001 - decoders raise many types
        return None
    h, w = shape[0], shape[1] if len(shape) > 1 else 1
    _check_pixels(path, h * w, limit, claim=f"shape {shape}")
    return w, h


def default_total_pixels() -> int:
    """The pixel budget of one image set when ``data.max_total_pixels`` is 0.

    As many pixels as fit, at :data:`BYTES_PER_PIXEL` bytes each, in half the memory
    available now (``MemAvailable``); :data:`FALLBACK_TOTAL_PIXELS` where that is unknown.
    """
    from quantnas.memory import available_ram_bytes

    avail = available_ram_bytes()
    if not avail:
        return FALLBACK_TOTAL_PIXELS
    return max(1, int(avail // 2 // BYTES_PER_PIXEL))


def check_total_pixels(
    files: Sequence[Path],
    where: str | Path,
    *,
    max_total_pixels: int | None = None,
    max_pixels: int | None = None,
) -> int:
    """Refuse a set of images whose headers add up to more than the budget (nothing decoded).

    Every header is also checked against the per-image limit ``max_pixels`` here, so a
    decompression bomb anywhere in the folder is refused before the first image is read.

    Args:
        files: The image files of the set.
        where: The folder (for the message).
        max_total_pixels: The budget (None or 0: :func:`default_total_pixels`).
        max_pixels: Per-image limit (see :func:`image_size`).

    Returns:
        The pixels the headers claim (files without a readable header count 0).

    Raises:
        QuantNASError: Naming the folder, the pixels and the budget.

    """
    budget = int(max_total_pixels) if max_total_pixels else default_total_pixels()
    total = 0
    for path in files:
        size = image_size(path, max_pixels)
        total += size[0] * size[1] if size else 0
    if total > budget:
        how = "data.max_total_pixels" if max_total_pixels else "half the available memory"
        raise QuantNASError(
            f"data folder {where}: its {len(files)} images hold {total:,} pixels, more than "
            f"the budget of {budget:,} pixels ({how}, at {BYTES_PER_PIXEL} bytes a pixel); "
            "use fewer or smaller images (e.g. patches from `quantnas prepare`) or raise "
            "data.max_total_pixels"
        )
    log.debug("%s: %d images, %d pixels (budget %d)", where, len(files), total, budget)
    return total
