"""``quantnas upscale``: run a trained or exported network on image files.

Colour handling:

* RGB: upscaled by the network.
* RGBA / gray+alpha / palette with transparency: colour by the network, the alpha channel
  by MATLAB bicubic (clipped to its range); written with alpha.
* grayscale: replicated to RGB, upscaled, and written back as gray (mean of the three
  output channels).
* palette: converted to RGB(A) and written as RGB(A) (an upscaled image has new colours).
* 16-bit (PNG, TIFF): read at full depth, scaled to ``[0, 1]`` by ``1/65535`` and written
  as 16-bit PNG; 8-bit images are written as 8-bit PNG.

Outputs go to ``OUT/<name>_x<scale>.png``. A file that cannot be read or processed prints one
``error:`` line and the remaining files are still processed.
"""

from __future__ import annotations

import io
import logging
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from quantnas.data.images import IMAGE_EXTENSIONS
from quantnas.deploy.runtime import Upscaler, share_file
from quantnas.deploy.tiling import upscale_tiled
from quantnas.errors import QuantNASError

__all__ = ["Picture", "read_picture", "upscale_files", "upscale_picture", "write_picture"]

log = logging.getLogger(__name__)

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
    else:
        raise QuantNASError(f"{path}: unsupported pixel type {arr.dtype}; expected 8/16-bit")
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


def read_picture(path: str | Path) -> Picture:
    """Read an image file for upscaling (see the module docstring for the colour rules).

    Raises:
        QuantNASError: Missing, unreadable or unsupported file (one line naming it).

    """
    from quantnas.data.png16 import png_header, read_png16

    path = Path(path)
    if not path.is_file():
        raise QuantNASError(f"{path}: no such file")
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


def _encode(pic: Picture) -> bytes:
    """PNG bytes of a picture at its bit depth (gray and alpha kept)."""
    top = 65535.0 if pic.bits == 16 else 255.0
    dtype = np.uint16 if pic.bits == 16 else np.uint8
    colour = pic.rgb.mean(axis=2, keepdims=True) if pic.gray else pic.rgb
    planes = [colour] if pic.alpha is None else [colour, pic.alpha[:, :, None]]
    data = np.concatenate(planes, axis=2)
    arr = np.round(np.clip(data, 0.0, 1.0) * top).astype(dtype)
    if pic.bits == 16:
        return _png16(arr)
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_picture(path: str | Path, pic: Picture) -> Path:
    """Write a picture as PNG (8 or 16 bit as ``pic.bits``), atomically."""
    from quantnas.fileio import atomic_write_bytes

    return share_file(atomic_write_bytes(path, _encode(pic)))


def upscale_picture(model: Upscaler, pic: Picture, *, tile: int, overlap: int) -> Picture:
    """Upscale colour with the model (tiled) and alpha with MATLAB bicubic."""
    from quantnas.data.bicubic import imresize

    h, w = pic.rgb.shape[:2]
    if min(h, w) < model.min_side:
        raise QuantNASError(
            f"image is {h}x{w}; the model needs sides of at least {model.min_side} pixels"
        )
    lr = pic.rgb.transpose(2, 0, 1)[None]
    sr = upscale_tiled(model, lr, model.scale, tile=tile, overlap=overlap, min_side=model.min_side)[
        0
    ].transpose(1, 2, 0)
    alpha = None
    if pic.alpha is not None:
        alpha = np.clip(imresize(pic.alpha, model.scale), 0.0, 1.0).astype(np.float32)
    return Picture(np.ascontiguousarray(sr), alpha, pic.gray, pic.bits)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, and the image files directly inside given folders (sorted)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = (f for f in p.iterdir() if f.is_file())
            files.extend(sorted(f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            files.append(p)  # missing files are reported one by one
    return files


def upscale_files(
    model: Upscaler,
    inputs: list[str],
    out_dir: str | Path,
    *,
    tile: int = 256,
    overlap: int | None = None,
    progress: bool = True,
) -> tuple[list[Path], list[str]]:
    """Upscale every input image into ``out_dir``.

    Args:
        model: The network.
        inputs: Image files and folders.
        out_dir: Output folder (created).
        tile: Core tile side in LR pixels; 0 processes each image whole.
        overlap: LR pixels of context around each tile; None = the network's halo (exact
            tiling), or 16 for networks with whole-image statistics.
        progress: Show a progress bar over the images (on a terminal).

    Returns:
        ``(written files, one error line per failed input)``.

    """
    from quantnas.runlog import progress as bar

    files = collect_inputs(inputs)
    if not files:
        raise QuantNASError("no input images (give image files or folders holding images)")
    halo = model.halo
    if overlap is None:
        overlap = halo if halo is not None else 16
    if tile > 0 and halo is None:
        log.warning(
            "this network uses whole-image statistics (ADQ or ESA): tiled output differs from "
            "the untiled result; use --tile 0 for the exact result"
        )
    elif tile > 0 and overlap < halo:
        log.warning(
            "--overlap %d is less than the network's halo of %d LR pixels: tile borders will "
            "differ from the untiled result",
            overlap,
            halo,
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    errors: list[str] = []
    taken: set[str] = set()
    it = bar(files, desc="upscale", enabled=progress)
    for f in it:
        name = f"{f.stem}_x{model.scale}.png"
        try:
            if name in taken:
                raise QuantNASError(f"{f}: another input already wrote {out / name}")
            pic = read_picture(f)
            try:
                sr = upscale_picture(model, pic, tile=tile, overlap=overlap)
            except QuantNASError as e:
                raise QuantNASError(f"{f}: {e}") from None
            written.append(write_picture(out / name, sr))
            taken.add(name)
        except QuantNASError as e:
            line = f"error: {e}"
            errors.append(line)
            it.write(line, file=sys.stderr)
    return written, errors
