"""Where a run computes: the torch device, the number of CPU threads, the allocator."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Iterator

import torch

from quantnas.errors import QuantNASError

__all__ = [
    "BLAS_ENV",
    "kept_threads",
    "limit_blas",
    "select_device",
    "set_threads",
    "tune_allocator",
]

log = logging.getLogger(__name__)

#: Set to ``0`` to leave glibc's allocator settings alone (see :func:`tune_allocator`).
MALLOC_ENV = "QUANTNAS_MALLOC"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: The variable OpenBLAS reads when it loads; :func:`limit_blas` sets it for child processes.
BLAS_ENV = "OPENBLAS_NUM_THREADS"
_tuned = False


def select_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; asking for CUDA without it is an error."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise QuantNASError(f"device={name!r} requested but CUDA is not available; use device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise QuantNASError(f"device {name!r} unknown; expected cpu or cuda[:N]") from None


def limit_blas() -> None:
    """Keep numpy's BLAS at one thread, in this process and in the ones it starts.

    numpy's OpenBLAS worker threads busy-wait after every call and starve PyTorch's OpenMP
    threads on small machines (the training data pipeline ran 17x slower on 2 cores);
    quantnas only uses BLAS for small per-image products. This process is limited at once
    (threadpoolctl); ``OPENBLAS_NUM_THREADS=1`` (unless set) reaches the processes started
    later (DataLoader or Ray workers), whose OpenBLAS reads it when it loads. Called where
    a run starts (the CLI's ``main``, :func:`set_threads`), never on import.
    """
    os.environ.setdefault(BLAS_ENV, "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def set_threads(threads: int) -> None:
    """Set PyTorch's intra-op threads (0 = its default), keep numpy's BLAS at one thread
    (:func:`limit_blas`) and tune the allocator (:func:`tune_allocator`).
    """
    tune_allocator()
    if threads > 0:
        torch.set_num_threads(threads)
    limit_blas()


@contextlib.contextmanager
def kept_threads() -> Iterator[None]:
    """Restore PyTorch's intra-op thread count on exit (a stage that sets its own count,
    such as ``search.threads``, leaves the next stage the count it found).
    """
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tune_allocator() -> bool:
    """Keep freed tensor memory in the process instead of returning it to the OS (glibc).

    glibc serves blocks above its mmap threshold (128 KB at first, raised as blocks are
    freed) with fresh ``mmap`` pages and returns freed heap tops above 2x that to the OS,
    so an activation-sized tensor allocated in every step page-faults its memory anew:
    on a 2-core CPU that made a QAT step's elementwise passes several times slower than
    their arithmetic. Raising both thresholds (8 MB for mmap, 1 GB for trimming) keeps
    that memory for reuse; larger blocks still come from ``mmap``, which keeps the peak RSS
    of a large search where it is untuned (64 MB raised it by 0.4 GB on the RFDN search at
    batch 16). Once per process; Linux only; ``QUANTNAS_MALLOC=0`` turns it off.

    Returns:
        Whether the allocator was tuned by this call.

    """
    global _tuned
    if _tuned or os.environ.get(MALLOC_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 8 << 20)
    ok = bool(ok) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    _tuned = ok
    log.debug("glibc allocator thresholds raised: %s", ok)
    return ok
