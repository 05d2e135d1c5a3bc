"""The pictures ``quantnas upscale`` reads and writes: colour, alpha, gray, bit depth.

Reading checks the size in the file's header before decoding (the data path's limit,
:func:`~quantnas.data.headers.image_size`); floating-point images follow the data path's
one rule (finite values in ``[0, 1]``, else refused; written as 8-bit PNG).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from quantnas.data.headers import image_size
from quantnas.data.images import float_unit
from quantnas.deploy.backends import share_file
from quantnas.errors import QuantNASError

__all__ = ["Picture", "read_picture", "write_picture"]

_TIFF = (".tif", ".tiff")


@dataclass
class Picture:
    """An image split into what the network sees and what it does not.

    Attributes:
        rgb: ``HxWx3`` float32 in ``[0, 1]`` (gray replicated to three channels).
        alpha: ``HxW`` float32 in ``[0, 1]`` or None.
        gray: The source had one colour channel.
        bits: 8 or 16 (container depth of the source).

    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    gray: bool
    bits: int


def _from_array(arr: np.ndarray, path: Path) -> Picture:
    """Interpret an ``HxW[xC]`` uint8/uint16 array (C = 1 gray, 2 gray+alpha, 3, 4)."""
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype == np.uint8:
        bits, top = 8, 255.0
    elif arr.dtype in (np.uint16, np.dtype(">u2")):
        bits, top = 16, 65535.0
    elif np.issubdtype(arr.dtype, np.floating):  # the float rule: finite, in [0, 1]
        arr, bits, top = float_unit(arr, path), 8, 1.0
    else:
        raise QuantNASError(
            f"{path}: unsupported pixel type {arr.dtype}; expected 8/16-bit or float in [0, 1]"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise QuantNASError(f"{path}: unsupported image shape {arr.shape}")
    data = arr.astype(np.float32) / np.float32(top)
    c = data.shape[2]
    gray = c in (1, 2)
    rgb = np.repeat(data[:, :, :1], 3, axis=2) if gray else data[:, :, :3]
    alpha = data[:, :, -1] if c in (2, 4) else None
    return Picture(np.ascontiguousarray(rgb), alpha, gray, bits)


def _pillow_array(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        mode = img.mode
        if mode in ("P", "PA"):
            has_alpha = mode == "PA" or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "RGB")
        elif mode == "F":  # 32-bit float gray: the float rule, not Pillow's clipping
            return np.asarray(img, dtype=np.float32)
        elif mode == "1":
            img = img.convert("L")
        elif mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
            arr = np.asarray(img)
            if arr.min() < 0 or arr.max() > 65535:
                raise QuantNASError(f"{path}: {mode} pixel values outside 0..65535")
            return arr.astype(np.uint16)
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            img = img.convert("RGB")
        return np.asarray(img)


def read_picture(path: str | Path, max_pixels: int | None = None) -> Picture:
    """Read an image file for upscaling (see :mod:`quantnas.deploy.upscale` for the rules).

    The size in the file's header is checked against ``max_pixels`` before decoding, as
    on the data path (:func:`~quantnas.data.headers.image_size`).

    Args:
        path: Image file.
        max_pixels: Largest accepted ``H * W`` (None or 0: Pillow's ``MAX_IMAGE_PIXELS``).

    Raises:
        QuantNASError: Missing, unreadable, unsupported or too large file (one line naming
            it).

    """
    from quantnas.data.png16 import png_header, read_png16

    path = Path(path)
    if not path.is_file():
        raise QuantNASError(f"{path}: no such file")
    image_size(path, max_pixels)
    try:
        header = png_header(path)
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6) and not header[2]:
            return _from_array(read_png16(path, header[1]), path)
        if path.suffix.lower() in _TIFF:
            import imageio.v3 as iio

            return _from_array(np.asarray(iio.imread(path)), path)
        return _from_array(_pillow_array(path), path)
    except QuantNASError:
        raise
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QuantNASError(f"{path}: cannot read image ({reason})") from e


def _png16(arr: np.ndarray) -> bytes:
    """Encode an ``HxWxC`` uint16 array (C = 1, 2, 3, 4) as a 16-bit PNG."""
    h, w, c = arr.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = arr.astype(">u2").reshape(h, w * c).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def picture_array(pic: Picture) -> np.ndarray:
    """The integer ``HxWxC`` array a picture is written as (``uint8`` or ``uint16`` by its
    depth; gray as one channel, alpha as the last).
    """
    top = 65535.0 if pic.bits == 16 else 255.0
    dtype = np.uint16 if pic.bits == 16 else np.uint8
    colour = pic.rgb.mean(axis=2, keepdims=True) if pic.gray else pic.rgb
    planes = [colour] if pic.alpha is None else [colour, pic.alpha[:, :, None]]
    data = np.concatenate(planes, axis=2)
    return np.round(np.clip(data, 0.0, 1.0) * top).astype(dtype)


def _encode(pic: Picture) -> bytes:
    """PNG bytes of a picture at its bit depth (gray and alpha kept)."""
    arr = picture_array(pic)
    if pic.bits == 16:
        return _png16(arr)
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_picture(path: str | Path, pic: Picture) -> Path:
    """Write a picture as PNG (8 or 16 bit as ``pic.bits``), atomically."""
    from quantnas.rundir.files import atomic_write_bytes

    return share_file(atomic_write_bytes(path, _encode(pic)))
