"""PSNR / SSIM following the SR benchmark conventions (MATLAB / BasicSR).

Conventions (as in BasicSR and SR papers): the SR output is clamped to ``[0, 1]``, scaled by 255 and
rounded to 8 bits; metrics are computed on the BT.601 luma ``Y`` (MATLAB ``rgb2ycbcr``,
range ``[16, 235]``, not rounded) after cropping ``scale`` pixels from every border;
PSNR peak is 255; SSIM uses an 11x11 Gaussian window (sigma 1.5) with 'valid'
filtering.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import correlate1d

from quantnas.errors import QuantNASError

__all__ = ["psnr", "rgb_to_y", "sr_metrics", "ssim", "to_uint8_image"]

_WIN = 11
_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """Convert a ``CxHxW`` (or ``1xCxHxW``) float tensor in ``[0, 1]`` to ``uint8`` HWC.

    Args:
        t: Image tensor; values are clamped to ``[0, 1]``, multiplied by 255 and rounded.

    Returns:
        ``uint8`` array ``HxWxC``.

    Raises:
        QuantNASError: For other shapes.

    """
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise QuantNASError(f"to_uint8_image: expected CxHxW or 1xCxHxW, got {tuple(t.shape)}")
    arr = t.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image on the 0-255 scale (MATLAB ``rgb2ycbcr``), not rounded.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with ``R, G, B`` in ``[0, 255]``.

    Args:
        img: ``HxWx3`` RGB, ``uint8`` or float in ``[0, 255]``.

    Returns:
        float64 ``HxW`` array in ``[16, 235]``.

    Raises:
        QuantNASError: If ``img`` is not ``HxWx3``.

    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise QuantNASError(f"rgb_to_y: expected an HxWx3 RGB image, got shape {img.shape}")
    rgb = img.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _prepare(
    sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, crop borders, optionally convert to Y; returns float64 arrays."""
    if sr.shape != hr.shape:
        raise QuantNASError(f"metric: SR shape {sr.shape} differs from HR shape {hr.shape}")
    if crop_border < 0:
        raise QuantNASError(f"metric: crop_border must be >= 0, got {crop_border}")
    if crop_border:
        sr = sr[crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[crop_border:-crop_border, crop_border:-crop_border]
    if sr.size == 0:
        raise QuantNASError(f"metric: image {hr.shape} is empty after cropping {crop_border}")
    if y_channel:
        return rgb_to_y(sr), rgb_to_y(hr)
    return sr.astype(np.float64), hr.astype(np.float64)


def psnr(sr: np.ndarray, hr: np.ndarray, *, crop_border: int, y_channel: bool = True) -> float:
    """Peak signal-to-noise ratio with peak 255.

    Args:
        sr: Super-resolved image, ``uint8`` ``HxWx3``.
        hr: Ground truth, same shape.
        crop_border: Pixels removed from every border before comparing.
        y_channel: Compare the BT.601 Y channel (else all RGB channels).

    Returns:
        PSNR in dB; ``inf`` for identical images.

    Raises:
        QuantNASError: On shape mismatch or too-small images.

    """
    a, b = _prepare(sr, hr, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def _gaussian_window() -> np.ndarray:
    x = np.arange(_WIN, dtype=np.float64) - (_WIN - 1) / 2
    g = np.exp(-(x**2) / (2 * _SIGMA**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian filtering keeping only fully covered ('valid') pixels."""
    g = _gaussian_window()
    out = correlate1d(correlate1d(img, g, axis=0, mode="nearest"), g, axis=1, mode="nearest")
    half = _WIN // 2
    return out[half:-half, half:-half]


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = _filter_valid(a), _filter_valid(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    var1 = _filter_valid(a * a) - mu1_sq
    var2 = _filter_valid(b * b) - mu2_sq
    cov = _filter_valid(a * b) - mu12
    num = (2 * mu12 + _C1) * (2 * cov + _C2)
    den = (mu1_sq + mu2_sq + _C1) * (var1 + var2 + _C2)
    return float(np.mean(num / den))


def ssim(sr: np.ndarray, hr: np.ndarray, *, crop_border: int, y_channel: bool = True) -> float:
    """Structural similarity as in MATLAB / BasicSR.

    11x11 Gaussian window (sigma 1.5), 'valid' filtering, ``C1 = (0.01*255)^2``,
    ``C2 = (0.03*255)^2``, computed in float64; in RGB mode (``y_channel=False``) the mean
    over channels. The arguments are those of :func:`psnr`.

    Returns:
        Mean SSIM (1.0 for identical images).

    Raises:
        QuantNASError: On shape mismatch or images smaller than 11x11 after cropping.

    """
    a, b = _prepare(sr, hr, crop_border, y_channel)
    if min(a.shape[:2]) < _WIN:
        raise QuantNASError(f"ssim: image {a.shape[:2]} after cropping is smaller than 11x11")
    if a.ndim == 2:
        return _ssim_2d(a, b)
    return float(np.mean([_ssim_2d(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def sr_metrics(sr: np.ndarray, hr: np.ndarray, *, scale: int) -> dict[str, float]:
    """PSNR and SSIM on Y with a border of ``scale`` pixels cropped.

    Args:
        sr: Super-resolved image, ``uint8`` ``HxWx3``.
        hr: Ground truth, same shape.
        scale: SR scale (the border crop).

    Returns:
        ``{"psnr": dB, "ssim": value}``.

    """
    return {
        "psnr": psnr(sr, hr, crop_border=scale),
        "ssim": ssim(sr, hr, crop_border=scale),
    }
