"""Where a run computes: the torch device and the number of CPU threads."""

from __future__ import annotations

import torch

from quantnas.errors import QuantNASError

__all__ = ["select_device", "set_threads"]


def select_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; asking for CUDA without it is an error."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise QuantNASError(f"device={name!r} requested but CUDA is not available; use device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise QuantNASError(f"device {name!r} unknown; expected cpu or cuda[:N]") from None


def set_threads(threads: int) -> None:
    """Set PyTorch's intra-op threads (0 = its default) and keep numpy's BLAS at one thread.

    numpy's OpenBLAS threads busy-wait after each call and steal the cores PyTorch's
    OpenMP threads compute on; the data pipeline only needs small products.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
