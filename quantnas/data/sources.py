"""Where images come from: the embedded photos (train / val / test splits, bundled with
scikit-image and matplotlib, usable offline) or a folder of image files.

Images are held in memory as ``(name, uint8 HxWx3 array)`` pairs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from quantnas.data.headers import check_total_pixels
from quantnas.data.images import list_images, load_rgb
from quantnas.errors import QuantNASError

__all__ = [
    "EMBEDDED_ALL",
    "EMBEDDED_PREFIX",
    "EMBEDDED_TEST",
    "EMBEDDED_TRAIN",
    "EMBEDDED_VAL",
    "NamedImage",
    "embedded_images",
    "embedded_names",
    "resolve_images",
]

logger = logging.getLogger(__name__)

NamedImage = tuple[str, np.ndarray]

EMBEDDED_TRAIN: tuple[str, ...] = (
    "rocket",
    "stereo_motorcycle",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
)
# Three of the five natural photos are held out (a portrait, a still life and fur close-up,
# the last one hard to super-resolve); training keeps two natural photos and the three
# scientific images.
EMBEDDED_VAL: tuple[str, ...] = ("astronaut", "coffee", "chelsea")
# The test split: photos that neither training nor validation uses, only ever reported
# (e.g. the Pareto fronts of ``quantnas sweep``). ``grace_hopper`` is the public-domain
# portrait shipped in matplotlib's ``mpl-data/sample_data``; ``camera`` (CC0), ``coins``
# (Brooklyn Museum, no known copyright restrictions) and ``brick`` (CC0 texture photo) are
# grayscale photos in scikit-image's data folder, replicated to RGB.
EMBEDDED_TEST: tuple[str, ...] = ("grace_hopper", "camera", "coins", "brick")
EMBEDDED_ALL: tuple[str, ...] = EMBEDDED_TRAIN + EMBEDDED_VAL + EMBEDDED_TEST
_EMBEDDED = {"train": EMBEDDED_TRAIN, "val": EMBEDDED_VAL, "test": EMBEDDED_TEST}
EMBEDDED_PREFIX = "embedded:"


def _as_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert a scikit-image sample (gray, RGB or RGBA, any dtype) to ``uint8`` RGB."""
    if arr.dtype != np.uint8:
        from skimage.util import img_as_ubyte

        arr = img_as_ubyte(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def embedded_names(spec: str) -> tuple[str, ...]:
    """The photo names of an embedded split (``train``/``val``) or a comma-separated list.

    Raises:
        QuantNASError: For an unknown split or photo name.

    """
    if spec in _EMBEDDED:
        return _EMBEDDED[spec]
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in EMBEDDED_ALL]
    if not names or unknown:
        raise QuantNASError(
            f"unknown embedded split {(unknown[0] if unknown else spec)!r}; expected 'train', "
            f"'val', 'test' or a comma-separated list of {', '.join(EMBEDDED_ALL)}"
        )
    return names


def _matplotlib_sample(name: str) -> np.ndarray:
    """A photo from matplotlib's bundled ``sample_data`` folder (no download)."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data(f"{name}.jpg", asfileobj=False)) as img:
        return np.asarray(img.convert("RGB"))


#: Embedded photos that come from matplotlib rather than ``skimage.data``.
_MATPLOTLIB_PHOTOS = ("grace_hopper",)


def embedded_images(split: str) -> list[NamedImage]:
    """Load the photos bundled with scikit-image / matplotlib (no download needed).

    Args:
        split: ``"train"`` (:data:`EMBEDDED_TRAIN`), ``"val"`` (:data:`EMBEDDED_VAL`),
            ``"test"`` (:data:`EMBEDDED_TEST`) or a comma-separated list of names from
            :data:`EMBEDDED_ALL`, e.g. ``"coffee,rocket"``.

    Returns:
        List of ``(name, uint8 HxWx3)``; ``stereo_motorcycle`` uses the left image;
        grayscale photos are replicated to RGB.

    Raises:
        QuantNASError: For an unknown split or photo name.

    """
    names = embedded_names(split)
    import skimage.data

    out: list[NamedImage] = []
    for name in names:
        if name in _MATPLOTLIB_PHOTOS:
            data = _matplotlib_sample(name)
        else:
            data = getattr(skimage.data, name)()
        if isinstance(data, tuple):
            data = data[0]
        out.append((name, _as_rgb_uint8(np.asarray(data))))
    return out


def resolve_images(
    source: str | Path,
    *,
    min_size: int | None = None,
    allow_gray: bool = False,
    max_pixels: int | None = None,
    max_total_pixels: int | None = None,
) -> list[NamedImage]:
    """Load the images named by a data source.

    Folder images are all loaded eagerly into memory: fine for patch folders and
    benchmark sets, not meant for huge raw collections (cut those with ``prepare``).

    Args:
        source: ``"embedded:train"``, ``"embedded:val"`` or a folder of images.
        min_size: Minimum short side of each image (see :func:`load_rgb`).
        allow_gray: Replicate grayscale images to RGB instead of rejecting them.
        max_pixels: Pixel limit per image file (see :func:`load_rgb`; ``data.max_pixels``).
        max_total_pixels: Pixel budget of the whole folder, checked from the file headers
            before any image is decoded (``data.max_total_pixels``; None or 0: half the
            available memory, see :func:`~quantnas.data.headers.check_total_pixels`).

    Returns:
        List of ``(file stem or embedded name, uint8 HxWx3)``, sorted by file name.

    Raises:
        QuantNASError: Unknown embedded split, missing/empty folder, bad image.

    """
    text = str(source)
    if text.startswith(EMBEDDED_PREFIX):
        images = embedded_images(text[len(EMBEDDED_PREFIX) :])
        if min_size is not None:
            for name, arr in images:
                if min(arr.shape[:2]) < min_size:
                    raise QuantNASError(
                        f"embedded image {name} is {arr.shape[0]}x{arr.shape[1]}; "
                        f"need at least {min_size}"
                    )
        return images
    files = list_images(text)
    check_total_pixels(files, text, max_total_pixels=max_total_pixels, max_pixels=max_pixels)
    logger.info("loading %d images from %s", len(files), text)
    return [
        (p.stem, load_rgb(p, allow_gray=allow_gray, min_size=min_size, max_pixels=max_pixels))
        for p in files
    ]
