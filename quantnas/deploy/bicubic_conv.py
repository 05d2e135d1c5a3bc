"""MATLAB bicubic upscaling by an integer factor as fixed convolutions (any image size).

:func:`quantnas.data.bicubic.resize_tensor` multiplies by dense per-axis matrices whose
shape depends on the image size, which a graph with dynamic height and width cannot hold.
For an integer factor ``s`` the same operator is shift-invariant away from the borders:
output sample ``s * i + p`` (phase ``p``) is a fixed 1-D combination of the input samples
``i - P .. i + P``, and MATLAB's border rule mirrors the image symmetrically
(``x[1], x[0] | x[0], x[1], ...``). So the resize is

    symmetric pad by P -> conv along H (s phases) -> conv along W (s phases) -> pixel shuffle

with weights read off one interior row of the dense matrix. It equals ``resize_tensor`` up
to float rounding for every side length ``>= P`` (``P`` = :func:`bicubic_taps` radius, 2 for
the usual factors); shorter sides would need the mirror to wrap more than once.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from quantnas.data.bicubic import resize_matrix
from quantnas.errors import QuantNASError

__all__ = ["bicubic_taps", "bicubic_upscale_conv", "symmetric_pad"]

_PROBE = 64  # length of the probe axis whose interior row gives the phase weights


@lru_cache(maxsize=16)
def _taps(scale: int) -> np.ndarray:
    mat = resize_matrix(_PROBE, _PROBE * scale, float(scale))
    i = _PROBE // 2
    span = 8
    rows = mat[scale * i : scale * (i + 1), i - span : i + span + 1]  # (s, 2*span+1)
    nonzero = np.nonzero(np.abs(rows).sum(axis=0) > 0)[0]
    radius = int(max(span - nonzero.min(), nonzero.max() - span))
    taps = rows[:, span - radius : span + radius + 1].copy()
    taps.setflags(write=False)
    return taps


def bicubic_taps(scale: int) -> np.ndarray:
    """Per-phase 1-D weights of MATLAB bicubic upscaling by ``scale``.

    Returns:
        Read-only float64 array ``(scale, 2P + 1)``: row ``p`` weighs input samples
        ``i - P .. i + P`` for output sample ``scale * i + p``. ``P`` is ``(cols - 1) // 2``.

    Raises:
        QuantNASError: If ``scale`` is not an integer >= 1.

    """
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise QuantNASError(f"bicubic conv: scale must be an integer >= 1, got {scale!r}")
    return _taps(int(scale))


def symmetric_pad(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Pad ``x`` by ``pad`` samples on both ends of ``dim`` with MATLAB's symmetric mirror."""
    if pad == 0:
        return x
    n = x.shape[dim]
    if n < pad:
        raise QuantNASError(f"bicubic conv: side of {n} px is shorter than the mirror pad {pad}")
    left = x.narrow(dim, 0, pad).flip(dim)
    right = x.narrow(dim, n - pad, pad).flip(dim)
    return torch.cat([left, x, right], dim=dim)


def conv_weights(scale: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grouped conv weights ``(C*s, 1, K, 1)`` along H and ``(C*s*s, 1, 1, K)`` along W."""
    taps = torch.from_numpy(np.array(bicubic_taps(scale), dtype=np.float32))  # (s, K)
    k = taps.shape[1]
    w_h = taps.repeat(channels, 1).view(channels * scale, 1, k, 1)
    w_w = taps.repeat(channels * scale, 1).view(channels * scale * scale, 1, 1, k)
    return w_h, w_w


def bicubic_upscale_conv(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB bicubic upscaling of ``(N, C, H, W)`` by an integer ``scale`` with convs.

    This is the formulation the ONNX export writes; it is kept here in PyTorch so it can be
    compared with :func:`~quantnas.data.bicubic.resize_tensor` directly.
    """
    taps = bicubic_taps(scale)
    pad = (taps.shape[1] - 1) // 2
    c = x.shape[1]
    w_h, w_w = (w.to(dtype=x.dtype, device=x.device) for w in conv_weights(scale, c))
    y = symmetric_pad(symmetric_pad(x, pad, 2), pad, 3)
    y = F.conv2d(y, w_h, groups=c)
    y = F.conv2d(y, w_w, groups=c * scale)
    return F.pixel_shuffle(y, scale)
