"""How weights are optimised: Adam parameter groups, the learning-rate schedule, the loss."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from quantnas.config.fields import OptimConfig
from quantnas.registry import Registry

__all__ = [
    "LOSSES",
    "ema_update",
    "param_groups",
    "pixel_loss",
    "warmup_cosine",
    "weight_optimizer",
]


def param_groups(
    params: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    weight_decay: float,
    step_lr_scale: float,
) -> list[dict]:
    """Adam parameter groups: quantizer step sizes get ``lr * step_lr_scale`` and no decay.

    Adam normalises gradient magnitudes, so LSQ's step-gradient scaling has no effect under
    it; LSQ steps are orders of magnitude smaller than weights and, at the weights' learning
    rate, one update can jump a step by 10-20x (all weights round to zero, the layer dies).
    A smaller learning rate for steps keeps them stable.
    """
    steps, others = [], []
    for name, p in params:
        (steps if name.endswith(".step") else others).append(p)
    groups = [{"params": others, "lr": lr, "weight_decay": weight_decay}]
    if steps:
        groups.append({"params": steps, "lr": lr * step_lr_scale, "weight_decay": 0.0})
    return groups


def _charbonnier(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((sr - hr).pow(2) + 1e-6).mean()


#: The training losses ``f(sr, hr) -> scalar`` by ``train.loss`` (and
#: ``train.finetune_loss``) name: ``l1`` (the SR default), ``mse`` (the PSNR objective
#: itself; used to fine-tune at the end, as RFDN does) or ``charbonnier``
#: (``sqrt(d^2 + 1e-6)``, a smooth L1).
LOSSES: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry.of(
    "loss", {"l1": F.l1_loss, "mse": F.mse_loss, "charbonnier": _charbonnier}, key="train.loss"
)


def pixel_loss(name: str, *, where: str = "train.loss"):
    """The training loss ``f(sr, hr) -> scalar`` named by ``train.loss`` (see ``LOSSES``)."""
    return LOSSES.get(name, where=where)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup_steps`` then cosine decay to ``min_ratio`` of the base lr.

    The short warm-up keeps Adam from killing ReLUs in the first steps.
    """
    total = max(1, total_steps)
    warm = max(0, min(warmup_steps, total - 1))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def weight_optimizer(
    params: Iterable[tuple[str, nn.Parameter]], optim: OptimConfig, *, total_steps: int
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam over :func:`param_groups` with its :func:`warmup_cosine` schedule.

    The network weights' optimizer of both the search and the training, as an
    :class:`~quantnas.config.fields.OptimConfig` section gives it (``search.optim``,
    ``train.optim``); its ``grad_clip`` is the caller's.
    """
    opt = torch.optim.Adam(
        param_groups(
            params,
            lr=optim.lr,
            weight_decay=optim.weight_decay,
            step_lr_scale=optim.step_lr_scale,
        )
    )
    sched = warmup_cosine(
        opt,
        total_steps=total_steps,
        warmup_steps=optim.warmup_steps,
        min_ratio=optim.lr_min / optim.lr,
    )
    return opt, sched


def ema_update(decay: float):
    """An ``AveragedModel`` update with the decay warmed up as ``min(decay, (1+n)/(10+n))``.

    ``n`` is the number of updates so far; the warm-up keeps the first weights from
    dominating a short run (with a fixed 0.999 they would still weigh 0.999**1500 = 22% after
    1500 steps).
    """

    def update(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return avg + (new - avg) * (1.0 - d)

    return update
