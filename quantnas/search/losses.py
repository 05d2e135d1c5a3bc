"""Search objectives: sparsity regularizers, their ramp-in schedule, the hardware penalty."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from quantnas.errors import QuantNASError

SPARSE_TYPES = ("entropy", "l1", "l1_softmax", "none")


def layer_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of one layer's (op, bit) distribution."""
    flat = p.flatten()
    return -(flat * torch.log(flat.clamp_min(1e-12))).sum()


def mean_entropy(probs: Mapping[str, torch.Tensor]) -> float:
    """Mean per-layer entropy (for logging)."""
    if not probs:
        return 0.0
    with torch.no_grad():
        return float(sum(layer_entropy(p.detach()) for p in probs.values()) / len(probs))


def sparsity(
    kind: str, probs: Mapping[str, torch.Tensor], logits: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Sparsity regularizer over all layers.

    Args:
        kind: ``entropy`` (sum of per-layer entropies), ``l1`` (sum of ``|alpha|``),
            ``l1_softmax`` (sum over layers of the L1 distance between the layer's
            distribution and the one-hot of its argmax, ``2 (1 - max p)``), or ``none``.
        probs: Per-layer probabilities.
        logits: Per-layer raw alphas.

    """
    if kind == "none":
        return torch.zeros(())
    if kind == "entropy":
        return sum(layer_entropy(p) for p in probs.values())
    if kind == "l1":
        return sum(a.abs().sum() for a in logits.values())
    if kind == "l1_softmax":
        return sum(2.0 * (1.0 - p.max()) for p in probs.values())
    raise QuantNASError(f"search.sparse_type {kind!r} unknown; expected one of {SPARSE_TYPES}")


def ramp(epoch: int, *, epochs: int, warm_up: int) -> float:
    """Weight of the sparsity regularizer at ``epoch``.

    Zero during alpha warm-up and the first quarter of the remaining epochs, then growing
    linearly to 1 at the last epoch.
    """
    remaining = epochs - warm_up
    e = epoch - warm_up
    if e < 0 or remaining <= 0:
        return 0.0
    start = remaining / 4
    if e < start:
        return 0.0
    span = (remaining - 1) - start
    return 1.0 if span <= 0 else min(1.0, (e - start) / span)


def temperature(epoch: int, *, epochs: int, warm_up: int, t_max: float, t_min: float) -> float:
    """Gumbel temperature: ``t_max`` until warm-up ends, then linear down to ``t_min``."""
    remaining = epochs - warm_up
    e = epoch - warm_up
    if e <= 0 or remaining <= 1:
        return t_max if e <= 0 else t_min
    return t_max + (t_min - t_max) * min(1.0, e / (remaining - 1))


def hardware_penalty(expected: torch.Tensor, initial: float, coef: float) -> torch.Tensor:
    """``coef * E[BitOps] / E[BitOps at the start of search]``."""
    return coef * expected / initial
