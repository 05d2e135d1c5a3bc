"""Reading and writing RGB images, with actionable errors for bad inputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from quantnas.data.png16 import png_header, read_png16
from quantnas.errors import QuantNASError
from quantnas.registry import Registry
from quantnas.rundir.manifest import record

__all__ = [
    "GRAY_MODES",
    "IMAGE_EXTENSIONS",
    "default_max_pixels",
    "float_unit",
    "list_images",
    "load_rgb",
    "save_rgb",
]

logger = logging.getLogger(__name__)

#: ``data.gray``: what a grayscale image in a training, validation or test folder becomes.
#: ``replicate`` (the SR test-set convention: Set14, B100 and Urban100 hold a few gray
#: images; their channel is copied to RGB and they are scored on Y) or ``reject`` (a
#: one-line error naming the file). The value says whether gray images are accepted.
GRAY_MODES: Registry[bool] = Registry.of(
    "grayscale rule", {"replicate": True, "reject": False}, key="data.gray"
)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def default_max_pixels() -> int:
    """The pixel limit used when none is given: Pillow's ``Image.MAX_IMAGE_PIXELS``."""
    return int(Image.MAX_IMAGE_PIXELS or 0) or 89_478_485


def _check_pixels(path: Path, pixels: int, max_pixels: int, *, claim: str) -> None:
    """Refuse an image whose header claims more than ``max_pixels`` pixels (before decoding)."""
    if pixels > max_pixels:
        raise QuantNASError(
            f"image {path} claims {claim} = {pixels:,} pixels, more than the limit of "
            f"{max_pixels:,} (a decompression bomb?); raise data.max_pixels if it is genuine"
        )


def _read_with_imageio(path: Path, max_pixels: int) -> np.ndarray:
    """Read an image at full bit depth with imageio (used for 16-bit TIFF files).

    The size in the file's header is checked against ``max_pixels`` before decoding.
    """
    import imageio.v3 as iio

    shape = tuple(int(d) for d in iio.improps(path).shape)
    pixels = int(np.prod(shape, dtype=np.int64))
    if len(shape) >= 3 and shape[-1] <= 4:  # channels last: count pixels, not samples
        pixels //= max(1, shape[-1])
    _check_pixels(path, pixels, max_pixels, claim=f"shape {shape}")
    return np.asarray(iio.imread(path))


def _open_pillow(path: Path, max_pixels: int) -> Image.Image:
    """``Image.open`` (header only) with the pixel limit checked before any decoding.

    Pillow's own bomb check (a warning above ``MAX_IMAGE_PIXELS``, an error above twice
    that) is replaced by the check against ``max_pixels`` here, so one limit, with one
    message, rules every path.
    """
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # Image.open only parses the header
        img = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    width, height = img.size
    try:
        _check_pixels(path, width * height, max_pixels, claim=f"{width}x{height}")
    except QuantNASError:
        img.close()
        raise
    return img


def _read_with_pillow(path: Path, max_pixels: int) -> np.ndarray:
    """Read an image with Pillow, converting palette/alpha/other colour modes to RGB."""
    with _open_pillow(path, max_pixels) as img:
        img.load()
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            return np.asarray(img.convert("I"), dtype=np.int64)
        if mode == "F":  # 32-bit float gray: the float rule of _to_uint8, not Pillow's clip
            return np.asarray(img, dtype=np.float32)
        if mode == "LA":
            logger.debug("%s: dropping the alpha channel of an LA image", path)
            return np.asarray(img.convert("L"))
        if mode in _GRAY_MODES:
            return np.asarray(img.convert("L"))
        if mode != "RGB":
            logger.debug("%s: converting mode %s to RGB (alpha dropped)", path, mode)
            if mode in ("P", "PA"):
                img = img.convert("RGBA")
            img = img.convert("RGB")
        return np.asarray(img)


def _read_raw(path: Path, max_pixels: int) -> np.ndarray:
    """Read pixel data: own decoder for 16-bit colour PNGs, Pillow, imageio for TIFF.

    Every path checks the pixel count of the header against ``max_pixels`` first.
    """
    try:
        header = png_header(path)
        if header is not None:
            w, h = header[3], header[4]
            _check_pixels(path, w * h, max_pixels, claim=f"{w}x{h}")
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6) and not header[2]:
            return read_png16(path, header[1])
        return _read_with_pillow(path, max_pixels)
    except QuantNASError:
        raise
    except MemoryError:
        raise QuantNASError(f"image {path}: not enough memory to decode it") from None
    except Exception as exc:  # Pillow/imageio raise OSError, SyntaxError, ValueError, ...
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                return _read_with_imageio(path, max_pixels)
            except QuantNASError:
                raise
            except Exception:  # decoders raise many types; report the Pillow error
                pass
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QuantNASError(f"cannot read image {path}: {reason}") from exc


def float_unit(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` as float32 if its values are finite and in ``[0, 1]`` (the one rule for
    floating-point images), else a :class:`QuantNASError` naming the file.
    """
    arr = np.asarray(arr, dtype=np.float32)
    if not bool(np.isfinite(arr).all()):
        raise QuantNASError(
            f"image {path} holds non-finite pixel values (NaN or Inf); floating-point "
            "images must hold finite values in [0, 1]"
        )
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo < 0.0 or hi > 1.0:
        raise QuantNASError(
            f"image {path} holds floating-point values in [{lo:.4g}, {hi:.4g}]; "
            "floating-point images must hold values in [0, 1] (scaled by 255)"
        )
    return arr


def _to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """Convert 16-bit data to 8 bit with ``round(v / 257)`` and float data in ``[0, 1]``
    with ``round(v * 255)``; pass uint8 through.
    """
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        return np.round(float_unit(arr, path) * 255.0).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 65535:
        logger.debug("%s: scaling 16-bit data to 8 bit", path)
        # round(v / 257) in integers ((v + 128) // 257; 257 is odd, so no ties).
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise QuantNASError(f"image {path} has unsupported pixel type {arr.dtype}; expected 8/16-bit")


def _to_rgb(arr: np.ndarray, path: Path, allow_gray: bool) -> np.ndarray:
    """Turn gray / gray+alpha / RGBA arrays into ``HxWx3``."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 2:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        if not allow_gray:
            raise QuantNASError(
                f"image {path} is grayscale and grayscale images are turned away here "
                "(data.gray=reject, prepare --gray reject); set data.gray=replicate "
                "(prepare --gray replicate) to replicate its channel to RGB"
            )
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 4:
        logger.debug("%s: dropping the alpha channel", path)
        return arr[:, :, :3]
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    raise QuantNASError(f"image {path} has shape {arr.shape}; expected HxW or HxWx3")


def load_rgb(
    path: str | Path,
    *,
    allow_gray: bool = False,
    min_size: int | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Load an image as ``uint8`` RGB.

    Rules:

    * unreadable or corrupt (e.g. truncated) file -> :class:`QuantNASError` naming it;
    * grayscale (Pillow modes ``1``, ``L``, ``LA``, 16-bit ``I;16``, or a one-channel
      array) -> :class:`QuantNASError` ("... is grayscale; quantnas needs RGB images"),
      unless ``allow_gray=True``, which replicates the channel to 3 (alpha dropped);
    * RGBA, palette (``P``/``PA``), CMYK, YCbCr ... -> converted to RGB, alpha dropped
      (logged at debug level);
    * 16-bit data (``I;16``, or 16-bit colour PNGs read at full depth by
      :mod:`quantnas.data.png16`) -> 8 bit by ``round(v / 257)``;
    * floating-point data (e.g. a float32 TIFF): finite values in ``[0, 1]`` -> 8 bit by
      ``round(v * 255)``; NaN, Inf or any value outside ``[0, 1]`` -> :class:`QuantNASError`
      naming the file (:func:`float_unit`);
    * ``min_size`` given and ``min(H, W) < min_size`` -> :class:`QuantNASError` naming
      the file, its size and the needed size;
    * a header claiming more than ``max_pixels`` pixels -> :class:`QuantNASError` before
      any decoding, whichever decoder (own 16-bit PNG, Pillow, imageio) would read it.

    EXIF orientation tags are ignored (pixels are used as stored).

    Args:
        path: Image file.
        allow_gray: Accept grayscale images by replicating them to three channels.
        min_size: Minimum accepted ``min(H, W)``; ``None`` disables the check.
        max_pixels: Largest accepted ``H * W``; ``None`` or 0 = Pillow's
            ``MAX_IMAGE_PIXELS`` (:func:`default_max_pixels`).

    Returns:
        ``uint8`` array of shape ``HxWx3``.

    Raises:
        QuantNASError: For the cases above or a missing file.

    """
    path = Path(path)
    if not path.is_file():
        raise QuantNASError(f"image file {path} does not exist")
    limit = int(max_pixels) if max_pixels else default_max_pixels()
    arr = _to_rgb(_to_uint8(_read_raw(path, limit), path), path, allow_gray)
    h, w = arr.shape[:2]
    if min_size is not None and min(h, w) < min_size:
        raise QuantNASError(
            f"image {path} is {h}x{w} (HxW); images must be at least {min_size} pixels "
            "on the short side"
        )
    return np.ascontiguousarray(arr)


def save_rgb(path: str | Path, arr: np.ndarray) -> Path:
    """Write a ``uint8`` ``HxWx3`` (or ``HxW``) array as PNG, creating parent folders.

    Args:
        path: Destination file; written as PNG whatever its suffix.
        arr: Image data.

    Returns:
        The path written.

    Raises:
        QuantNASError: If ``arr`` is not ``uint8`` ``HxW``/``HxWx3``.

    """
    path = Path(path)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise QuantNASError(
            f"save_rgb({path}): expected a uint8 HxWx3 array, got {arr.dtype} {arr.shape}"
        )
    record(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path, format="PNG")
    return path


def list_images(folder: str | Path) -> list[Path]:
    """List the image files directly inside ``folder`` (not recursive), sorted by name.

    Args:
        folder: Folder to scan; files with a suffix in :data:`IMAGE_EXTENSIONS`
            (case-insensitive) are returned.

    Returns:
        Sorted list of image paths.

    Raises:
        QuantNASError: If the folder does not exist or holds no image.

    """
    folder = Path(folder)
    if not folder.is_dir():
        raise QuantNASError(f"data folder {folder} does not exist")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        exts = "/".join(IMAGE_EXTENSIONS)
        raise QuantNASError(f"no images ({exts}) in {folder}")
    return files
