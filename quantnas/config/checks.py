"""Config value checks that need nothing but the typed config: number ranges, names inside
``out_dir`` and the rules that tie keys together; one-line errors naming the key.

The choices of a key (taken from the modules that own each concept) and the search space's
checks are :func:`quantnas.pipeline.resolve.validate`, which runs these too.
"""

from __future__ import annotations

import math
import typing
from dataclasses import fields, is_dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from quantnas.config.fields import positive_keys
from quantnas.config.types import Config
from quantnas.errors import QuantNASError, shown

__all__ = [
    "FLOAT_MAX",
    "INT_MAX",
    "POSITIVE",
    "SEED_MAX",
    "SIGNED",
    "check_name",
    "check_ranges",
    "check_rules",
]


#: Numeric keys that must be > 0 (every numeric key must be finite and >= 0 unless listed
#: in :data:`SIGNED`): the fields typed ``PosInt`` / ``PosFloat``
#: (:mod:`quantnas.config.fields`), so a renamed field keeps its check.
POSITIVE: tuple[str, ...] = positive_keys(Config)

#: Numeric keys allowed to be negative (none so far).
SIGNED: tuple[str, ...] = ()

#: The largest integer of any key (int64: torch and numpy take them).
INT_MAX = 2**63 - 1
#: The largest seed (numpy seeds are below 2**32).
SEED_MAX = 2**32 - 1
#: The largest number of any float key: float32's largest (the tensors a learning rate or
#: a penalty multiplies are float32; a larger value overflows there).
FLOAT_MAX = 3.4028234663852886e38


def _shown(value: float) -> str:
    """``value`` for a message (an integer too long to print is shown by its size)."""
    if isinstance(value, int) and abs(value).bit_length() > 128:
        return f"an integer of {abs(value).bit_length()} bits"
    return str(value)


def _numbers(node: Any, prefix: str) -> typing.Iterator[tuple[str, Any]]:
    """``(key, value)`` of every number in a config (dataclasses, lists, dicts)."""
    if is_dataclass(node):
        for f in fields(node):
            sub = getattr(node, f.name)
            yield from _numbers(sub, f"{prefix}{f.name}" + ("." if is_dataclass(sub) else ""))
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, f"{prefix}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{prefix}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix, node


def check_name(name: str, key: str) -> None:
    """Refuse a run or sweep name that would leave ``out_dir`` (one line naming ``key``).

    A name is a relative folder (``exp/a`` is fine) without ``..``, not absolute and not
    ``out_dir`` itself.

    Raises:
        QuantNASError: Naming ``key`` and what was expected.

    """
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    outside = (
        "\0" in name
        or posix.is_absolute()
        or bool(windows.drive or windows.root)
        or ".." in posix.parts
        or ".." in windows.parts
        or not posix.parts
    )
    if outside:
        raise QuantNASError(
            f"{key}: {name[:80]!r} must name a folder inside out_dir (relative, without '..', "
            "not empty or '.', no NUL character)"
        )


def check_ranges(cfg: Config) -> None:
    """Every number finite, >= 0 (> 0 for :data:`POSITIVE`) and within what the code takes:
    integers up to :data:`INT_MAX` (the seed up to :data:`SEED_MAX`), floats up to
    :data:`FLOAT_MAX`; errors naming the key.
    """
    for key, value in _numbers(cfg, ""):
        if isinstance(value, int):
            top = SEED_MAX if key == "seed" else INT_MAX
            if value > top:
                raise QuantNASError(f"config key {key}: must be <= {top} (got {_shown(value)})")
        elif not math.isfinite(value):
            raise QuantNASError(f"config key {key}: must be a finite number (got {value})")
        elif abs(value) > FLOAT_MAX:
            raise QuantNASError(
                f"config key {key}: must be <= {FLOAT_MAX:.4g}, the largest float32 (got {value})"
            )
        if key in POSITIVE and value <= 0:
            low = ">= 1" if isinstance(value, int) else "> 0"
            raise QuantNASError(f"config key {key}: must be {low} (got {value})")
        if value < 0 and key not in SIGNED:
            raise QuantNASError(f"config key {key}: must be >= 0 (got {_shown(value)})")


def check_rules(cfg: Config) -> Config:
    """The rules that tie keys together (shares in (0, 1], warm-ups that leave epochs, the
    integer-only output's needs); one-line errors naming the key.
    """
    betas = cfg.search.alpha_optim.betas
    if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
        raise QuantNASError(
            f"config key search.alpha_optim.betas: expected two numbers in [0, 1) "
            f"(got {shown(betas)})"
        )
    if not 0 < cfg.data.val_holdout < 1:
        raise QuantNASError(
            f"config key data.val_holdout: must be in (0, 1) (got {cfg.data.val_holdout})"
        )
    if not 0 < cfg.search.target_band <= 1:
        raise QuantNASError(
            f"config key search.target_band: a share of the target in (0, 1] "
            f"(got {cfg.search.target_band})"
        )
    if not 0 < cfg.search.search_subsample <= 1:
        raise QuantNASError("config key search.search_subsample: must be in (0, 1]")
    if isinstance(cfg.search.warm_up, str):
        if cfg.search.warm_up != "auto":
            raise QuantNASError(
                f"config key search.warm_up: expected a number of epochs or 'auto' "
                f"(got {shown(cfg.search.warm_up)})"
            )
    elif cfg.search.warm_up > cfg.search.epochs or (
        cfg.search.warm_up == cfg.search.epochs and cfg.search.select != "path"
    ):
        raise QuantNASError(
            f"config key search.warm_up: {cfg.search.warm_up} leaves no epoch for alpha "
            f"updates (search.epochs={cfg.search.epochs})"
        )
    if not 0 < cfg.search.halving_mutation_rate <= 1:
        raise QuantNASError(
            "config key search.halving_mutation_rate: must be in (0, 1] "
            f"(got {shown(cfg.search.halving_mutation_rate)})"
        )
    if cfg.search.halving_eta < 2:
        raise QuantNASError(
            f"config key search.halving_eta: {cfg.search.halving_eta} keeps every candidate; "
            "expected >= 2"
        )
    if cfg.search.branch_init == "zero_last":
        if cfg.arch.global_skip == "none":
            raise QuantNASError(
                "config key search.branch_init: zero_last needs arch.global_skip (without one "
                "the supernet would start at a black image); set search.branch_init=he"
            )
        if cfg.search.output_scale and cfg.arch.output_scale:
            raise QuantNASError(
                "config key search.branch_init: zero_last replaces the output gate; set "
                "search.output_scale=false (a gate at 0 times a conv at 0 has no gradient)"
            )
    if cfg.train.warm_up >= cfg.train.epochs:
        raise QuantNASError(
            f"config key train.warm_up: {cfg.train.warm_up} full-precision epochs leave no QAT "
            f"epoch (train.epochs={cfg.train.epochs})"
        )
    if not 0 < cfg.train.stall_check <= 1:
        raise QuantNASError(
            f"config key train.stall_check: a share of the epochs in (0, 1] "
            f"(got {cfg.train.stall_check})"
        )
    if cfg.arch.output_quant and (cfg.arch.space != "basic" or not cfg.arch.skip_mode):
        raise QuantNASError(
            "config key arch.output_quant: needs arch.space=basic and arch.skip_mode=true "
            "(an integer-only network has no ADQ statistics or ESA)"
        )
    if not 0 <= cfg.train.ema < 1:
        raise QuantNASError(f"config key train.ema: decay must be in [0, 1) (got {cfg.train.ema})")
    if not 0 <= cfg.train.finetune_epochs <= cfg.train.epochs:
        raise QuantNASError(
            f"config key train.finetune_epochs: must be in [0, train.epochs={cfg.train.epochs}] "
            f"(got {cfg.train.finetune_epochs})"
        )
    return cfg
