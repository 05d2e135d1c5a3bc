import math

import numpy as np
import pytest
import torch

from quantnas.data.bicubic import (
    downscale_uint8,
    imresize,
    resize_matrix,
    resize_tensor,
)
from quantnas.errors import QuantNASError


def _ref_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_reflect(k: int, n: int) -> int:
    """1-based symmetric (edge-repeating) reflection, done step by step."""
    while k < 1 or k > n:
        k = 1 - k if k < 1 else 2 * n + 1 - k
    return k


def _ref_resize_1d(line: list[float], out_len: int, scale: float) -> list[float]:
    """Slow MATLAB imresize along one axis, written from the formulas."""
    n = len(line)
    width = 4.0 / scale if scale < 1 else 4.0
    out = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for j in range(math.ceil(width) + 2):
            idx = left + j
            d = u - idx
            w = scale * _ref_cubic(d * scale) if scale < 1 else _ref_cubic(d)
            taps.append((idx, w))
        total = sum(w for _, w in taps)
        out.append(sum(w / total * line[_ref_reflect(i, n) - 1] for i, w in taps))
    return out


def _ref_imresize(img: np.ndarray, out_h: int, out_w: int, scale: float) -> np.ndarray:
    rows = np.array([_ref_resize_1d(list(img[:, c]), out_h, scale) for c in range(img.shape[1])]).T
    return np.array([_ref_resize_1d(list(r), out_w, scale) for r in rows])


def test_reflect_reference_matches_matlab_pattern():
    # MATLAB pads [1 2 3] symmetrically as ... 2 1 | 1 2 3 | 3 2 ...
    assert [_ref_reflect(k, 3) for k in range(-1, 6)] == [2, 1, 1, 2, 3, 3, 2]


@pytest.mark.parametrize(
    ("in_len", "out_len", "scale"),
    [(16, 4, 0.25), (13, 4, 0.25), (7, 28, 4.0), (9, 18, 2.0), (12, 4, 1 / 3), (1, 4, 4.0)],
)
def test_rows_sum_to_one(in_len, out_len, scale):
    m = resize_matrix(in_len, out_len, scale)
    assert m.shape == (out_len, in_len)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)


def test_matrix_is_cached_and_read_only():
    a = resize_matrix(20, 5, 0.25)
    assert a is resize_matrix(20, 5, 0.25)
    with pytest.raises(ValueError):
        a[0, 0] = 1.0


def test_known_upscale_weights_by_hand():
    # x2 upscale of 3 samples: output 1 sits at u=0.75; taps at -2..3 mirrored onto 1..3.
    m = resize_matrix(3, 6, 2.0)
    w = {d: _ref_cubic(d) for d in (2.75, 1.75, 0.75, -0.25, -1.25, -2.25)}
    assert m[0, 0] == pytest.approx(w[0.75] + w[-0.25])  # indices 0->1 and 1
    assert m[0, 1] == pytest.approx(w[1.75] + w[-1.25])  # indices -1->2 and 2
    assert m[0, 2] == pytest.approx(w[2.75] + w[-2.25])  # both zero weight


def test_constant_image_stays_constant():
    img = np.full((23, 17, 3), 123.25)
    for scale in (0.25, 0.5, 2.0, 4.0, 1 / 3):
        out = imresize(img, scale)
        np.testing.assert_allclose(out, 123.25, atol=1e-9)


@pytest.mark.parametrize(("h", "w"), [(16, 12), (15, 13)])
def test_downscale_matches_loop_reference(h, w):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(h, w))
    out = imresize(img, 0.25)
    oh, ow = math.ceil(h / 4), math.ceil(w / 4)
    assert out.shape == (oh, ow)
    np.testing.assert_allclose(out, _ref_imresize(img, oh, ow, 0.25), atol=1e-9)


def test_upscale_matches_loop_reference_odd_size():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, size=(5, 7))
    out = imresize(img, 3.0)
    assert out.shape == (15, 21)
    np.testing.assert_allclose(out, _ref_imresize(img, 15, 21, 3.0), atol=1e-12)


def test_upscaled_ramp_interior_is_linear():
    ramp = np.tile(np.arange(12, dtype=np.float64) * 3.0 + 5.0, (6, 1))
    out = imresize(ramp, 4.0)
    # Output column x sits at u = x/4 + 0.5*(1 - 1/4) (1-based), value 5 + 3*(u - 1).
    x = np.arange(1, out.shape[1] + 1)
    expected = 5.0 + 3.0 * (x / 4 + 0.375 - 1)
    interior = slice(8, -8)  # away from the mirrored border
    np.testing.assert_allclose(out[:, interior], np.tile(expected, (24, 1))[:, interior])


def test_rgb_is_per_channel():
    rng = np.random.default_rng(2)
    img = rng.uniform(0, 255, size=(12, 8, 3))
    out = imresize(img, 0.5)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], imresize(img[..., c], 0.5))


def test_downscale_uint8_rounds_and_checks_size():
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    lr = downscale_uint8(hr, 4)
    assert lr.dtype == np.uint8 and lr.shape == (4, 5, 3)
    ref = np.clip(np.round(imresize(hr, 0.25)), 0, 255)
    np.testing.assert_array_equal(lr, ref)
    with pytest.raises(QuantNASError, match="multiple of the scale 4"):
        downscale_uint8(hr[:15], 4)


def test_torch_path_agrees_with_numpy():
    rng = np.random.default_rng(4)
    img = rng.uniform(0, 1, size=(2, 3, 9, 11))
    t = torch.from_numpy(img)
    for scale in (0.25, 4.0):
        out_t = resize_tensor(t, scale).numpy()
        for n in range(2):
            ref = imresize(img[n].transpose(1, 2, 0), scale).transpose(2, 0, 1)
            np.testing.assert_allclose(out_t[n], ref, atol=1e-12)
    out32 = resize_tensor(t.float(), 4.0)
    assert out32.dtype == torch.float32 and out32.shape == (2, 3, 36, 44)


def test_resize_tensor_is_differentiable_and_not_clamped():
    x = torch.zeros(1, 1, 4, 4)
    x[..., 1, 1] = 1.0
    x.requires_grad_(True)
    y = resize_tensor(x, 4.0)
    assert y.min() < 0  # bicubic overshoot stays visible
    y.sum().backward()
    assert x.grad is not None


def test_bad_inputs_raise():
    with pytest.raises(QuantNASError):
        imresize(np.zeros((2, 2, 2, 2)), 2.0)
    with pytest.raises(QuantNASError):
        resize_tensor(torch.zeros(3, 4, 4), 2.0)
    with pytest.raises(QuantNASError):
        resize_matrix(4, 2, 0.0)
