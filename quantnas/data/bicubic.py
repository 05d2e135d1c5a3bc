"""MATLAB-compatible bicubic resizing (``imresize(..., 'bicubic')``).

The resize is separable: along each axis the output is a fixed linear combination of the
input samples, so each axis is described by a dense weight matrix of shape
``(out_len, in_len)`` (see :func:`resize_matrix`). An image is resized with two matrix
products, ``A_h @ img @ A_w.T``, which is fast on both numpy arrays and torch tensors.

The weights follow MATLAB's ``imresize`` (and BasicSR's ``matlab_functions.imresize``):

* cubic kernel with ``a = -0.5``;
* output sample ``x`` (1-based) maps to input position ``u = x / scale + 0.5 * (1 - 1 / scale)``;
* when downscaling (``scale < 1``) the kernel is widened by ``1 / scale`` (antialiasing);
* each row of weights is normalised to sum to one;
* taps outside the image are mirrored symmetrically (``..., 2, 1, 1, 2, ..., n, n, n-1, ...``).

One difference to MATLAB on ``uint8`` input: MATLAB rounds to ``uint8`` after each axis,
while :func:`downscale_uint8` keeps the intermediate in float64 and rounds once at the end
(as BasicSR does). The two differ by at most one grey level on a few pixels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from quantnas.errors import QuantNASError

__all__ = ["cubic", "downscale_uint8", "imresize", "resize_matrix", "resize_tensor"]

_KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Evaluate the bicubic kernel with ``a = -0.5`` (MATLAB's ``cubic``).

    Args:
        x: Distances to the kernel centre.

    Returns:
        Kernel values, same shape as ``x``.

    """
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    near = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return near + far


def _mirror(indices: np.ndarray, in_len: int) -> np.ndarray:
    """Map 1-based indices into ``[1, in_len]`` with MATLAB's symmetric padding."""
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    return aux[np.mod(indices - 1, aux.size)]


@lru_cache(maxsize=256)
def _cached_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    width = _KERNEL_WIDTH / scale if scale < 1 else _KERNEL_WIDTH
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    if scale < 1:
        weights = scale * cubic(distance * scale)
    else:
        weights = cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    columns = _mirror(indices.astype(np.int64), in_len) - 1
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(matrix, (rows, columns.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Return the MATLAB bicubic weight matrix for one axis.

    Args:
        in_len: Number of input samples along the axis.
        out_len: Number of output samples along the axis.
        scale: Scale factor (``out / in`` nominally; ``< 1`` downscales with antialiasing).

    Returns:
        Read-only float64 array of shape ``(out_len, in_len)``; each row sums to one.
        Results are cached by ``(in_len, out_len, scale)``.

    Raises:
        QuantNASError: If a length or the scale is not positive.

    """
    if in_len < 1 or out_len < 1:
        raise QuantNASError(f"bicubic resize: lengths must be >= 1, got {in_len} -> {out_len}")
    if not scale > 0:
        raise QuantNASError(f"bicubic resize: scale must be > 0, got {scale}")
    return _cached_matrix(int(in_len), int(out_len), float(scale))


def _out_len(in_len: int, scale: float) -> int:
    if not scale > 0:
        raise QuantNASError(f"bicubic resize: scale must be > 0, got {scale}")
    return int(math.ceil(in_len * scale))


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize an image like MATLAB ``imresize(img, scale, 'bicubic')``.

    Args:
        img: ``HxW`` or ``HxWxC`` array of any numeric type and range.
        scale: Scale factor; the output size is ``ceil(in * scale)`` per axis.

    Returns:
        The resized image as float64, not clipped or rounded.

    Raises:
        QuantNASError: If the array is not 2-D or 3-D or the scale is not positive.

    """
    if img.ndim not in (2, 3):
        raise QuantNASError(f"imresize: expected an HxW or HxWxC array, got shape {img.shape}")
    h, w = img.shape[:2]
    mat_h = resize_matrix(h, _out_len(h, scale), scale)
    mat_w = resize_matrix(w, _out_len(w, scale), scale)
    data = np.asarray(img, dtype=np.float64)
    out = np.tensordot(mat_h, data, axes=(1, 0))  # (oh, W[, C])
    out = np.tensordot(mat_w, out, axes=(1, 1))  # (ow, oh[, C])
    return np.ascontiguousarray(np.swapaxes(out, 0, 1))


def downscale_uint8(hr: np.ndarray, scale: int) -> np.ndarray:
    """Make a bicubic LR image from a ``uint8`` HR image (the ``LRbicxN`` convention).

    Args:
        hr: ``uint8`` array of shape ``HxWx3`` (``HxW`` also accepted), with ``H`` and
            ``W`` multiples of ``scale``.
        scale: Integer downscaling factor.

    Returns:
        ``uint8`` array of shape ``(H / scale, W / scale[, 3])``, rounded and clipped.

    Raises:
        QuantNASError: If the HR size is not a multiple of ``scale`` or the input is not
            ``uint8``.

    """
    if hr.dtype != np.uint8:
        raise QuantNASError(f"downscale_uint8: expected a uint8 image, got dtype {hr.dtype}")
    if int(scale) != scale or scale < 1:
        raise QuantNASError(f"downscale_uint8: scale must be a positive integer, got {scale}")
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise QuantNASError(
            f"downscale_uint8: HR size {h}x{w} is not a multiple of the scale {scale}"
        )
    mat_h = resize_matrix(h, h // scale, 1.0 / scale)
    mat_w = resize_matrix(w, w // scale, 1.0 / scale)
    data = hr.astype(np.float64)
    out = np.tensordot(mat_h, data, axes=(1, 0))
    out = np.swapaxes(np.tensordot(mat_w, out, axes=(1, 1)), 0, 1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize_tensor(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Resize an ``(N, C, H, W)`` float tensor with MATLAB bicubic weights.

    Uses the same matrices as :func:`imresize`; values are not clamped. Differentiable
    with respect to ``x``.

    Args:
        x: Float tensor of shape ``(N, C, H, W)``.
        scale: Scale factor; output size is ``ceil(in * scale)`` per axis.

    Returns:
        Tensor of shape ``(N, C, ceil(H * scale), ceil(W * scale))`` on ``x``'s device and
        dtype.

    Raises:
        QuantNASError: If ``x`` is not a 4-D floating-point tensor.

    """
    if x.ndim != 4 or not torch.is_floating_point(x):
        raise QuantNASError(
            f"resize_tensor: expected a float (N, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}"
        )
    h, w = x.shape[-2:]
    mat_h = resize_matrix(h, _out_len(h, scale), scale)
    mat_w = resize_matrix(w, _out_len(w, scale), scale)
    th = torch.from_numpy(np.array(mat_h)).to(device=x.device, dtype=x.dtype)
    tw = torch.from_numpy(np.array(mat_w)).to(device=x.device, dtype=x.dtype)
    return torch.matmul(torch.matmul(th, x), tw.transpose(0, 1))
