"""16-bit PNG decoding at full depth (Pillow truncates 16-bit colour PNGs to 8 bit)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

__all__ = ["png_header", "read_png16"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(path: Path) -> tuple[int, int, int, int, int] | None:
    """Return ``(bit_depth, colour_type, interlace, width, height)`` of a PNG, else ``None``."""
    with open(path, "rb") as fh:
        head = fh.read(29)
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    return head[24], head[25], head[28], width, height


def _png_idat(data: bytes) -> bytes:
    """Concatenate the IDAT chunks of a PNG byte string."""
    pos, parts = len(_PNG_SIGNATURE), []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        tag = data[pos + 4 : pos + 8]
        if tag == b"IDAT":
            parts.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return b"".join(parts)


def _paeth_or_average_row(ftype: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    """Undo PNG filter 3 (Average) or 4 (Paeth) on one scanline (sequential by nature)."""
    out = bytearray(row)
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = prev[i]
        if ftype == 3:
            out[i] = (out[i] + ((a + b) >> 1)) & 0xFF
            continue
        c = prev[i - bpp] if i >= bpp else 0
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (out[i] + pred) & 0xFF
    return bytes(out)


def _unfilter_row(ftype: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Undo one PNG scanline filter (types 0-4) on ``uint8`` data."""
    if ftype == 0:
        return row
    if ftype == 1:
        return (
            (np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.int64) & 0xFF)
            .astype(np.uint8)
            .ravel()
        )
    if ftype == 2:
        return row + prev  # uint8 arithmetic wraps modulo 256
    if ftype in (3, 4):
        raw = _paeth_or_average_row(ftype, row.tobytes(), prev.tobytes(), bpp)
        return np.frombuffer(raw, dtype=np.uint8)
    raise ValueError(f"bad PNG filter type {ftype}")


def read_png16(path: Path, colour_type: int) -> np.ndarray:
    """Decode a non-interlaced 16-bit PNG at full depth (Pillow truncates it to 8 bit)."""
    data = path.read_bytes()
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    bpp = 2 * channels
    stride = width * bpp
    expected = height * (stride + 1)
    # Bounded: never inflate more than the header's image size (zlib bombs in IDAT).
    raw = np.frombuffer(zlib.decompressobj().decompress(_png_idat(data), expected), dtype=np.uint8)
    if raw.size < expected:
        raise ValueError("truncated PNG image data")
    rows = raw[: height * (stride + 1)].reshape(height, stride + 1)
    out = np.empty((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        prev = out[y] = _unfilter_row(int(rows[y, 0]), rows[y, 1:], prev, bpp)
    return out.view(">u2").reshape(height, width, channels).astype(np.uint16)
