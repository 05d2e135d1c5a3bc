"""Where the search's quantization noise comes from: fresh draws, or windows of a noise table.

Noise mode adds ``Delta_b * eps`` to every candidate's input and weight, one ``eps`` per
bit-width copy, and redraws it in the alpha step's backward pass. With fresh draws
(``rng``, the original code's behaviour) drawing the Gaussian numbers is a third of an
RFDN-space search step on a CPU. ``table`` reads each ``eps`` as a window of a fixed table
of i.i.d. samples at an offset given by the draw's seed, as evolution strategies read
their perturbations from a shared noise table (Salimans et al., 2017): a draw costs
nothing (a view), every element of a window is a sample of the right distribution and
the windows of two draws at different offsets hold different samples; but samples are
reused across steps (at other positions), so the draws are not independent across the
whole search. The table is built once per process from a fixed seed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from quantnas.registry import Registry

__all__ = ["NOISE_KINDS", "NOISE_SOURCES", "draw_noise", "noise_like"]

#: A sampler ``f(shape, generator, dtype, device) -> eps`` (generator None: the global one).
Sampler = Callable[..., torch.Tensor]
#: A source ``f(like, seed, index, kind) -> eps`` of the draw ``(seed, index)``.
Source = Callable[[torch.Tensor, int, int, str], torch.Tensor]

#: The distribution of ``eps`` by ``search.noise``: ``gaussian`` ``N(0, 1/4)`` (the original
#: code) or ``uniform`` ``U[-1/2, 1/2]`` (the rounding-error distribution).
NOISE_KINDS: Registry[Sampler] = Registry("noise kind", key="search.noise")
#: Where ``eps`` comes from, by ``search.noise_source`` (see :func:`draw_noise`).
NOISE_SOURCES: Registry[Source] = Registry("noise source", key="search.noise_source")


@NOISE_KINDS.register("gaussian")
def _gaussian(shape, generator, dtype, device) -> torch.Tensor:
    """N(0, 1/4) (the original code)."""
    return torch.randn(shape, generator=generator, dtype=dtype, device=device).mul_(0.5)


@NOISE_KINDS.register("uniform")
def _uniform(shape, generator, dtype, device) -> torch.Tensor:
    """U[-1/2, 1/2] (the rounding-error distribution)."""
    return torch.rand(shape, generator=generator, dtype=dtype, device=device).sub_(0.5)


#: Smallest table (floats); a larger tensor grows it to four times its size.
TABLE_MIN = 1 << 23
_TABLE_SEED = 20240217
_tables: dict[tuple[str, torch.dtype, str], torch.Tensor] = {}
_lock = threading.Lock()


def _sample(
    kind: str,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``N(0, 1/4)`` or ``U[-1/2, 1/2]`` samples from ``generator`` (None: the global one)."""
    return NOISE_KINDS.get(kind)(shape, generator, dtype, device)


def noise_like(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Fresh noise ``eps`` of ``kind`` shaped like ``x``, from torch's global generator."""
    return _sample(kind, tuple(x.shape), generator=None, dtype=x.dtype, device=x.device)


def noise_table(kind: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The process's table of ``kind`` samples, at least ``4 * numel`` long."""
    key = (kind, dtype, str(device))
    table = _tables.get(key)
    if table is None or table.numel() < 4 * numel:
        with _lock:
            table = _tables.get(key)
            if table is None or table.numel() < 4 * numel:
                n = max(TABLE_MIN, 4 * numel)
                g = torch.Generator().manual_seed(_TABLE_SEED)
                table = _sample(kind, (n,), generator=g, dtype=dtype).to(device)
                _tables[key] = table
    return table


def _offset(seed: int, index: int, span: int) -> int:
    """A pseudo-random offset in ``[0, span)`` from ``(seed, index)`` (a multiplicative hash)."""
    h = ((seed * 1009 + index) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 29
    return h % span


def draw_noise(
    like: torch.Tensor, *, seed: int, index: int, kind: str, source: str = "rng"
) -> torch.Tensor:
    """The noise ``eps`` of copy ``index`` for ``seed``, shaped like ``like``.

    The same ``(seed, index)`` gives the same tensor in the forward and the backward pass:
    ``rng`` draws it from a private generator seeded with them, ``table`` reads the window
    of the noise table at the offset they give (a read-only view: do not modify it).

    Args:
        like: Shape, dtype and device of the noise.
        seed: The draw's seed.
        index: The copy (bit-width) it is for.
        kind: ``gaussian`` (``N(0, 1/4)``) or ``uniform`` (``U[-1/2, 1/2]``).
        source: ``rng`` or ``table``.

    """
    return NOISE_SOURCES.get(source)(like, seed, index, kind)


@NOISE_SOURCES.register("rng")
def _from_rng(like: torch.Tensor, seed: int, index: int, kind: str) -> torch.Tensor:
    """Fresh draws of a seeded generator (the original)."""
    g = torch.Generator(device=like.device).manual_seed(seed * 1009 + index)
    return _sample(kind, tuple(like.shape), generator=g, dtype=like.dtype, device=like.device)


@NOISE_SOURCES.register("table")
def _from_table(like: torch.Tensor, seed: int, index: int, kind: str) -> torch.Tensor:
    """A window of a fixed noise table at an offset given by the draw's seed."""
    n = like.numel()
    table = noise_table(kind, n, like.dtype, like.device)
    start = _offset(seed, index, table.numel() - n + 1)
    return table[start : start + n].view(like.shape)
