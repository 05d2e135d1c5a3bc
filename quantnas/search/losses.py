"""Search objectives: sparsity regularizers, their ramp-in schedule, the hardware penalty."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from quantnas.registry import Registry

#: A sparsity regularizer ``f(probs, logits) -> scalar`` over all layers.
Regularizer = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]
#: A ramp ``f(e, remaining, kind) -> weight`` (``e`` epochs after warm-up of ``remaining``).
Ramp = Callable[[int, int, str], float]

#: The sparsity regularizers by ``search.sparse_type`` (see :func:`sparsity`).
SPARSE_TYPES: Registry[Regularizer] = Registry("sparsity regularizer", key="search.sparse_type")
#: Ramp-in schedules of the sparsity regularizer by ``search.sparse_ramp`` (see :func:`ramp`).
SPARSE_RAMPS: Registry[Ramp] = Registry("sparsity ramp", key="search.sparse_ramp")


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
            ``l1_softmax`` (the original's: sum of ``exp(alpha)``, the L1 norm of the
            unnormalised softmax numerators), ``l1_onehot`` (a quantnas variant: sum over
            layers of the L1 distance between the layer's distribution and the one-hot of
            its argmax, ``2 (1 - max p)``), or ``none``.
        probs: Per-layer probabilities.
        logits: Per-layer raw alphas.

    """
    return SPARSE_TYPES.get(kind)(probs, logits)


@SPARSE_TYPES.register("entropy")
def _entropy(probs: Mapping[str, torch.Tensor], logits: Mapping[str, torch.Tensor]):
    return sum(layer_entropy(p) for p in probs.values())


@SPARSE_TYPES.register("l1")
def _l1(probs: Mapping[str, torch.Tensor], logits: Mapping[str, torch.Tensor]):
    return sum(a.abs().sum() for a in logits.values())


@SPARSE_TYPES.register("l1_softmax")
def _l1_softmax(probs: Mapping[str, torch.Tensor], logits: Mapping[str, torch.Tensor]):
    return sum(torch.exp(a).sum() for a in logits.values())


@SPARSE_TYPES.register("l1_onehot")
def _l1_onehot(probs: Mapping[str, torch.Tensor], logits: Mapping[str, torch.Tensor]):
    return sum(2.0 * (1.0 - p.max()) for p in probs.values())


@SPARSE_TYPES.register("none")
def _none(probs: Mapping[str, torch.Tensor], logits: Mapping[str, torch.Tensor]):
    return torch.zeros(())


def ramp(
    epoch: int, *, epochs: int, warm_up: int, shape: str = "original", kind: str = "entropy"
) -> float:
    """Weight of the sparsity regularizer at ``epoch`` (alpha steps start at ``warm_up``).

    With ``r = epochs - warm_up`` remaining epochs, ``e = epoch - warm_up`` and
    ``q = r // 4``:

    * ``original`` (the original code's ``SparseCrit``): only ``entropy`` is ramped, by
      ``e / (r - 1) * log_{r - q + 1}(e - q + 2)`` once ``e >= q`` (0 before), which
      reaches 1 at the last epoch; ``l1`` and ``l1_softmax`` are not ramped (weight 1).
    * ``linear`` (a quantnas variant): every type is ramped, 0 for the first quarter
      (``e < r / 4``), then linear up to 1 at the last epoch.

    Args:
        epoch: Current epoch (0-based).
        epochs: Search epochs.
        warm_up: Epochs before alpha updates start.
        shape: ``original`` or ``linear``.
        kind: The sparsity type (``original`` ramps only ``entropy``).

    """
    return SPARSE_RAMPS.get(shape)(epoch - warm_up, epochs - warm_up, kind)


@SPARSE_RAMPS.register("original")
def _original_ramp(e: int, remaining: int, kind: str) -> float:
    if kind != "entropy":
        return 1.0
    quarter = remaining // 4
    if e < 0 or e < quarter or remaining <= 1:
        return 0.0 if remaining > 1 or e < 0 else 1.0
    base = remaining - quarter + 1
    return e / (remaining - 1) * math.log(e - quarter + 2, base)


@SPARSE_RAMPS.register("linear")
def _linear_ramp(e: int, remaining: int, kind: str) -> float:
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
