import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from quantnas.errors import QuantNASError
from quantnas.evaluation.metrics import psnr, rgb_to_y, sr_metrics, ssim, to_uint8_image


def _img(h=24, w=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_to_uint8_image_clamps_and_rounds():
    t = torch.tensor([[[-0.5, 0.0, 0.5 / 255, 1.5 / 255, 1.0, 2.0]]])  # 1x1x6
    out = to_uint8_image(t)
    assert out.dtype == np.uint8 and out.shape == (1, 6, 1)
    # 0.5 and 1.5 round half to even, like torch.round / numpy.round.
    assert out[0, :, 0].tolist() == [0, 0, 0, 2, 255, 255]
    assert to_uint8_image(torch.rand(1, 3, 4, 5)).shape == (4, 5, 3)
    with pytest.raises(QuantNASError):
        to_uint8_image(torch.rand(2, 3, 4, 5))


def test_rgb_to_y_range_and_formula():
    white = np.full((2, 2, 3), 255, dtype=np.uint8)
    black = np.zeros((2, 2, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(white), 235.0)
    np.testing.assert_allclose(rgb_to_y(black), 16.0)
    px = np.array([[[10, 200, 30]]], dtype=np.uint8)
    expected = 16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255
    assert rgb_to_y(px)[0, 0] == pytest.approx(expected)
    assert rgb_to_y(px).dtype == np.float64  # not rounded
    assert rgb_to_y(px)[0, 0] != round(expected)


def test_identical_images():
    img = _img()
    assert psnr(img, img, crop_border=4) == math.inf
    assert ssim(img, img, crop_border=4) == pytest.approx(1.0)
    assert sr_metrics(img, img, scale=2) == {"psnr": math.inf, "ssim": pytest.approx(1.0)}


def test_known_mse_on_y():
    hr = np.full((20, 20, 3), 100, dtype=np.uint8)
    sr = hr.copy()
    sr[..., :] = 103  # every channel +3 -> Y differs by 3 * 219 / 255 everywhere
    c = 3 * (65.481 + 128.553 + 24.966) / 255
    expected = 10 * math.log10(255**2 / c**2)
    assert psnr(sr, hr, crop_border=4) == pytest.approx(expected, abs=1e-9)
    # RGB mode: every channel off by exactly 3.
    assert psnr(sr, hr, crop_border=4, y_channel=False) == pytest.approx(
        10 * math.log10(255**2 / 9), abs=1e-9
    )


def test_border_crop_excludes_border():
    hr = _img(30, 30, 1)
    sr = hr.copy()
    sr[:4] = 0
    sr[:, -4:] = 255
    assert psnr(sr, hr, crop_border=4) == math.inf
    assert ssim(sr, hr, crop_border=4) == pytest.approx(1.0)
    assert psnr(sr, hr, crop_border=3) < 20
    # one wrong pixel just inside the crop: MSE = d^2 / 22^2 on Y.
    sr = hr.copy()
    sr[4, 4] = hr[4, 4] ^ 0xFF
    d = rgb_to_y(sr[4:5, 4:5])[0, 0] - rgb_to_y(hr[4:5, 4:5])[0, 0]
    assert psnr(sr, hr, crop_border=4) == pytest.approx(10 * math.log10(255**2 * 22**2 / d**2))


def test_ssim_matches_skimage():
    # skimage with gaussian_weights, sigma 1.5 uses an 11x11 window (truncate 3.5) and
    # discards a 5-pixel margin of the SSIM map before averaging, which is exactly
    # 'valid' filtering, so the two agree to rounding error.
    rng = np.random.default_rng(2)
    hr = _img(40, 44, 3)
    sr = np.clip(hr.astype(int) + rng.integers(-20, 21, size=hr.shape), 0, 255).astype(np.uint8)
    ours = ssim(sr, hr, crop_border=4)
    y_sr, y_hr = rgb_to_y(sr)[4:-4, 4:-4], rgb_to_y(hr)[4:-4, 4:-4]
    ref = structural_similarity(
        y_sr,
        y_hr,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert 0.3 < ours < 0.99
    assert ours == pytest.approx(ref, abs=1e-6)


def test_ssim_rgb_is_channel_mean():
    rng = np.random.default_rng(3)
    hr = _img(30, 30, 4)
    sr = np.clip(hr.astype(int) + rng.integers(-30, 31, size=hr.shape), 0, 255).astype(np.uint8)
    per = [
        structural_similarity(
            sr[2:-2, 2:-2, c].astype(float),
            hr[2:-2, 2:-2, c].astype(float),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        for c in range(3)
    ]
    assert ssim(sr, hr, crop_border=2, y_channel=False) == pytest.approx(np.mean(per), abs=1e-6)


def test_errors():
    with pytest.raises(QuantNASError, match="differs from HR shape"):
        psnr(_img(10, 10), _img(10, 12), crop_border=0)
    with pytest.raises(QuantNASError, match="smaller than 11x11"):
        ssim(_img(16, 16), _img(16, 16, 1), crop_border=4)
    with pytest.raises(QuantNASError, match="HxWx3"):
        rgb_to_y(np.zeros((4, 4)))
