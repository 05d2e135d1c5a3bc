"""Memory: how much is free where a run computes (the machine's RAM, a GPU's memory),
one-line refusals of what does not fit, and the measured estimate of a search step,
checked before any long computation starts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from quantnas.errors import QuantNASError


def available_ram_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo (None where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def available_bytes(device: str | torch.device = "cpu") -> int | None:
    """Free memory where ``device`` computes: the GPU's for CUDA, else the machine's RAM
    (None where unknown).
    """
    if not str(device).startswith("cuda"):
        return available_ram_bytes()
    if not torch.cuda.is_available():
        return None  # select_device refuses the run with one line
    try:
        free, _total = torch.cuda.mem_get_info(torch.device(device))
    except (RuntimeError, ValueError):  # a device name select_device refuses
        return None
    return int(free)


def memory_limit(limit_gb: float = 0.0, *, device: str | torch.device = "cpu") -> float | None:
    """``limit_gb`` GiB when > 0, else 85% of the free memory of ``device`` (None where
    unknown).
    """
    if limit_gb > 0:
        return limit_gb * 1024**3
    avail = available_bytes(device)
    return 0.85 * avail if avail else None


def human(n: float) -> str:
    """Bytes as GiB / MiB (TiB for the absurd)."""
    if n >= 1024**4:
        return f"{n / 1024**4:.3g} TiB"
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.3g} MiB"


def refuse_over_budget(
    need: float,
    limit: float | None,
    key: str,
    what: str,
    *,
    label: str | None = None,
    also: tuple[str, ...] = (),
) -> None:
    """One line naming ``key`` (``label`` starts it; default ``config key KEY``) when
    ``need`` bytes exceed ``limit``; ``also`` names further keys worth lowering.
    """
    if limit is not None and need > limit:
        whence = "85% of the free memory" + ("" if label else ", or run.max_memory_gb")
        more = [k for k in also if k != key]
        hint = f"lower {key}" + (f" (or {', '.join(more)})" if more else "")
        raise QuantNASError(
            f"{label or f'config key {key}'}: {what} needs at least {human(need)} but only "
            f"{human(limit)} are available ({whence}); {hint}"
        )


def check_samples(n: int, *, limit_gb: float = 0.0) -> None:
    """Refuse an epoch of ``n`` samples whose shuffled order (int64) cannot fit in memory."""
    refuse_over_budget(
        8.0 * n,
        memory_limit(limit_gb),
        "data.repeat",
        f"shuffling an epoch of {n:,} training samples (images x data.repeat)",
    )


def activation_bytes(net: nn.Module, *, lr_crop: int, scale: int) -> int:
    """Bytes of tensors autograd saves in one forward pass of one sample (batch 1).

    Measured with saved-tensor hooks on a real forward at the real crop size, so it covers
    every candidate and bit-width copy the supernet keeps for the backward pass.
    """
    total = 0
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    was = net.training
    net.train()
    x = torch.rand(1, 3, lr_crop, lr_crop)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
        loss = F.l1_loss(out, torch.zeros(1, 3, lr_crop * scale, lr_crop * scale))
    del loss, out
    net.train(was)
    return total


def estimate_step_bytes(net: nn.Module, *, batch_size: int, lr_crop: int, scale: int) -> int:
    """Rough peak memory of a training step: activations x batch + 4 copies of the weights
    (weights, gradients, two Adam moments).
    """
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    return activation_bytes(net, lr_crop=lr_crop, scale=scale) * batch_size + 4 * params


def check_memory(
    net: nn.Module,
    *,
    batch_size: int,
    lr_crop: int,
    scale: int,
    limit_gb: float = 0.0,
    what: str = "search",
    device: str | torch.device = "cpu",
) -> int:
    """Refuse to start when the estimate exceeds the limit (or 85% of the free memory of
    ``device``: the GPU's for CUDA).

    Returns:
        The estimate in bytes.

    """
    need = estimate_step_bytes(net, batch_size=batch_size, lr_crop=lr_crop, scale=scale)
    limit = memory_limit(limit_gb, device=device)
    if limit is not None and need > limit:
        raise QuantNASError(
            f"the {what} needs about {_human(need)} (batch {batch_size}, LR crop "
            f"{lr_crop}) but only {_human(limit)} are available; lower "
            f"{what}.batch_size, {what}.lr_crop or {what}.c_fixed"
        )
    return need


def _human(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.3g} MiB"
