"""What the config sections are built from: the positive-number marker and the optimiser
sections shared by the search and the training.

A field typed :data:`PosInt` / :data:`PosFloat` must be > 0 (``config.checks`` derives
its list of such keys from these annotations, so a renamed field keeps its check).
:class:`OptimConfig` is the one shape of a network-weight optimiser (``search.optim``,
``train.optim``); :class:`AlphaOptimConfig` the search's architecture-weight optimiser
(``search.alpha_optim``), with the same names for what the two share.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Annotated, Any

__all__ = [
    "POSITIVE_MARK",
    "AlphaOptimConfig",
    "OptimConfig",
    "PosFloat",
    "PosInt",
    "positive_keys",
]

#: The ``Annotated`` metadata marking a number that must be > 0.
POSITIVE_MARK = "positive"
#: An integer key that must be >= 1.
PosInt = Annotated[int, POSITIVE_MARK]
#: A float key that must be > 0.
PosFloat = Annotated[float, POSITIVE_MARK]


@dataclass
class OptimConfig:
    """Adam over a network's weights with a linear warm-up and a cosine decay.

    Attributes:
        lr: Learning rate after the warm-up.
        lr_min: Learning rate the cosine decays to at the last step.
        weight_decay: Adam's L2 weight decay (quantizer step sizes get none).
        grad_clip: Largest gradient norm (0 = no clipping).
        warmup_steps: Steps of the linear learning-rate warm-up.
        step_lr_scale: Learning rate of the LSQ quantizer step sizes, as a share of ``lr``.

    """

    lr: PosFloat = 2e-3
    lr_min: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    warmup_steps: int = 20
    step_lr_scale: float = 0.01


@dataclass
class AlphaOptimConfig:
    """Adam over the search's architecture weights (constant learning rate, no clipping).

    Attributes:
        lr: Learning rate.
        betas: Adam's two decay rates, each in [0, 1).
        weight_decay: Adam's L2 weight decay.

    """

    lr: PosFloat = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0


def _positive(tp: Any) -> bool:
    """Whether an annotation is (an optional) :data:`PosInt` / :data:`PosFloat`."""
    if typing.get_origin(tp) is Annotated:
        return POSITIVE_MARK in tp.__metadata__
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_positive(arg) for arg in typing.get_args(tp))
    return False


def positive_keys(cls: type, prefix: str = "") -> tuple[str, ...]:
    """The dotted keys of ``cls`` (a config dataclass, nested sections included) whose
    annotation marks them positive.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    keys: list[str] = []
    for f in fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and is_dataclass(tp):
            keys += positive_keys(tp, f"{prefix}{f.name}.")
        elif _positive(tp):
            keys.append(f"{prefix}{f.name}")
    return tuple(keys)
