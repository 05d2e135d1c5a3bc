import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from quantnas.data.images import IMAGE_EXTENSIONS, list_images, load_rgb, save_rgb
from quantnas.errors import QuantNASError


def _rgb(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_row(ftype, raw, prev, bpp):
    """PNG encoder side: filter one scanline (bytes) with the given type."""
    out = bytearray()
    for i, x in enumerate(raw):
        a = raw[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
        out.append((x - pred) % 256)
    return bytes([ftype]) + bytes(out)


def _write_png16(path, arr16, filters=(0,)):
    """Minimal 16-bit PNG writer (RGB or RGBA), cycling through the given row filters."""

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    h, w, ch = arr16.shape
    bpp = 2 * ch
    prev = bytes(w * bpp)
    rows = []
    for y in range(h):
        raw = arr16[y].astype(">u2").tobytes()
        rows.append(_filter_row(filters[y % len(filters)], raw, prev, bpp))
        prev = raw
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[ch], 0, 0, 0)
    idat = zlib.compress(b"".join(rows))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
    path.write_bytes(data + chunk(b"IEND", b""))


def test_roundtrip_rgb(tmp_path):
    img = _rgb()
    path = save_rgb(tmp_path / "a" / "b" / "x.png", img)
    assert path.is_file()
    out = load_rgb(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_truncated_png_names_file(tmp_path):
    good = save_rgb(tmp_path / "good.png", _rgb(40, 40))
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(QuantNASError, match="bad.png"):
        load_rgb(bad)


def test_not_an_image(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    with pytest.raises(QuantNASError, match="cannot read image .*notes.jpg"):
        load_rgb(bad)


def test_missing_file(tmp_path):
    with pytest.raises(QuantNASError, match="does not exist"):
        load_rgb(tmp_path / "nope.png")


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_grayscale_rejected_or_replicated(tmp_path, mode):
    gray = np.arange(30, dtype=np.uint8).reshape(5, 6) * 8
    img = Image.fromarray(gray).convert(mode)
    path = tmp_path / f"g_{mode}.png"
    img.save(path)
    with pytest.raises(QuantNASError, match="is grayscale and .*data.gray=replicate"):
        load_rgb(path, allow_gray=False)
    out = load_rgb(path, allow_gray=True)
    assert out.shape == (5, 6, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    if mode != "1":
        np.testing.assert_array_equal(out[..., 1], gray)


def test_rgba_alpha_dropped(tmp_path):
    rgb = _rgb()
    alpha = np.full(rgb.shape[:2] + (1,), 7, dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(path)
    np.testing.assert_array_equal(load_rgb(path), rgb)


def test_palette_converted(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[:2] = (255, 0, 0)
    rgb[2:] = (0, 0, 255)
    path = tmp_path / "p.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(path)
    np.testing.assert_array_equal(load_rgb(path), rgb)


def test_16bit_rgb_scaled_by_257(tmp_path):
    arr16 = np.array([[[0, 257, 65535], [128, 129, 385]]], dtype=np.uint16)  # 1x2x3
    path = tmp_path / "deep.png"
    _write_png16(path, arr16)
    out = load_rgb(path)
    expected = np.round(arr16 / 257.0).astype(np.uint8)  # 128/257=0.498->0, 385/257=1.498->1
    np.testing.assert_array_equal(out, expected)
    assert out[0, 1].tolist() == [0, 1, 1]


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_png_all_filters(tmp_path, channels):
    arr16 = np.random.default_rng(5).integers(0, 65536, size=(10, 7, channels), dtype=np.uint16)
    path = tmp_path / "filters.png"
    _write_png16(path, arr16, filters=(0, 1, 2, 3, 4))
    # Pillow decodes the same file truncated to the high byte: checks the test writer.
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.asarray(img), (arr16 >> 8).astype(np.uint8))
    expected = np.round(arr16[..., :3] / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(load_rgb(path), expected)


def test_truncated_16bit_png(tmp_path):
    path = tmp_path / "cut16.png"
    arr16 = np.random.default_rng(6).integers(0, 65536, size=(30, 30, 3), dtype=np.uint16)
    _write_png16(path, arr16)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(QuantNASError, match="cut16.png"):
        load_rgb(path)


def test_16bit_gray(tmp_path):
    arr16 = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(arr16).save(path)
    with pytest.raises(QuantNASError, match="grayscale"):
        load_rgb(path)
    out = load_rgb(path, allow_gray=True)
    np.testing.assert_array_equal(out[..., 0], np.round(arr16 / 257.0).astype(np.uint8))


def test_min_size(tmp_path):
    path = save_rgb(tmp_path / "tiny.png", _rgb(8, 12))
    assert load_rgb(path, min_size=8).shape == (8, 12, 3)
    with pytest.raises(QuantNASError, match=r"tiny.png is 8x12.*at least 16"):
        load_rgb(path, min_size=16)


def test_list_images(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    assert ".png" in IMAGE_EXTENSIONS


def test_list_images_errors(tmp_path):
    with pytest.raises(QuantNASError, match="data folder .*missing does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "e").mkdir()
    with pytest.raises(QuantNASError, match=r"no images \(.png/.jpg"):
        list_images(tmp_path / "e")


def test_save_rgb_rejects_float(tmp_path):
    with pytest.raises(QuantNASError, match="uint8"):
        save_rgb(tmp_path / "f.png", np.zeros((2, 2, 3)))
