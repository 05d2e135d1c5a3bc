"""A job's configuration: resolved from defaults, a preset, YAML files and overrides, then
checked against every module that owns a choice.

Resolution order: dataclass defaults < preset (``--preset NAME``, a YAML shipped in
``quantnas/config/presets``) < ``--config FILE`` < ``section.key=value`` overrides. Unknown keys
and values of the wrong type are errors naming the key. Every run directory stores the
resolved config as ``config.yaml``.

This module sits above the owners of the choices it checks (the search space, the
quantizers, the search, the training losses, the costs): the layers below it use the
dataclasses of :mod:`quantnas.config.types`, read and write them with
:mod:`quantnas.config.io` and check what needs no owner with :mod:`quantnas.config.checks`;
all of them are importable from here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from quantnas.config.checks import check_name, check_ranges, check_rules
from quantnas.config.io import (
    HugeInt,
    YamlAliasError,
    apply_override,
    apply_overrides,
    dump,
    load_yaml,
    merge,
    preset_text,
    presets,
    to_dict,
)
from quantnas.config.types import (
    ArchConfig,
    Config,
    DataConfig,
    RunConfig,
    SearchConfig,
    SweepConfig,
    TrainConfig,
    search_arch,
)
from quantnas.data.images import GRAY_MODES
from quantnas.engines import ENGINES
from quantnas.errors import QuantNASError, read_user_text, shown
from quantnas.models.basic import CELL_TYPES
from quantnas.models.blocks import GLOBAL_SKIPS
from quantnas.quant.mixed import MIX_MODES, NOISE_MIXES
from quantnas.quant.noise import NOISE_KINDS, NOISE_SOURCES
from quantnas.quant.quantizers import check_bits
from quantnas.registry import Registry
from quantnas.search.constraint import (
    DRAW_EPOCHS,
    DRAWS,
    RANDOM_DRAWS,
    RANDOM_WINDOWS,
    SELECTORS,
    WEIGHT_SAMPLINGS,
)
from quantnas.search.losses import SPARSE_RAMPS, SPARSE_TYPES
from quantnas.search.splits import SPLITS
from quantnas.search.supernet import BRANCH_INITS, CONV_INITS, TRANSFORMS
from quantnas.space.build import INPUT_QUANTS, check_space
from quantnas.space.catalog import SPACES
from quantnas.space.cost import PENALTY_COSTS
from quantnas.space.genotype import BLOCKS
from quantnas.training.optim import LOSSES


def choices() -> dict[str, Registry]:
    """``{key: registry}`` of the config keys whose value names a registered object.

    Each registry belongs to the module that owns the concept; what is registered there
    (also from outside the package) is a valid value.
    """
    return {
        "arch.space": SPACES,
        "arch.cell_type": CELL_TYPES,
        "arch.global_skip": GLOBAL_SKIPS,
        "arch.input_quant": INPUT_QUANTS,
        "search.mode": MIX_MODES,
        "search.noise": NOISE_KINDS,
        "search.noise_mix": NOISE_MIXES,
        "search.noise_source": NOISE_SOURCES,
        "search.alpha_transform": TRANSFORMS,
        "search.branch_init": BRANCH_INITS,
        "search.conv_init": CONV_INITS,
        "search.sparse_type": SPARSE_TYPES,
        "search.sparse_ramp": SPARSE_RAMPS,
        "search.penalty_cost": PENALTY_COSTS,
        "search.split": SPLITS,
        "search.select": SELECTORS,
        "search.weight_sampling": WEIGHT_SAMPLINGS,
        "search.halving_engine": ENGINES,
        "search.halving_draw_epoch": DRAW_EPOCHS,
        "search.halving_draw": DRAWS,
        "sweep.random_halving_draw": RANDOM_DRAWS,
        "sweep.random_window": RANDOM_WINDOWS,
        "data.gray": GRAY_MODES,
        "train.loss": LOSSES,
        "train.finetune_loss": LOSSES,
    }


def validate(cfg: Config) -> Config:
    """Check value ranges, choices, the searched space and the rules tying keys together
    (one-line errors naming the key).
    """
    for key, registry in choices().items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in registry:
            raise QuantNASError(
                f"config key {key}: {shown(value)} is not one of {list(registry)}"
                f"{registry.hint(value)}"
            )
    check_ranges(cfg)
    if cfg.name:
        check_name(cfg.name, "config key name")
    check_bits(cfg.arch.bits, where="arch.bits")
    for section in ("arch_pattern", "primitives"):
        for key in getattr(cfg.arch, section) or {}:
            if key not in BLOCKS:
                raise QuantNASError(
                    f"config key arch.{section}.{key[:80]}: unknown block; expected {list(BLOCKS)}"
                )
    check_space(search_arch(cfg))  # ops exist and fit every layer of the searched space
    return check_rules(cfg)


def load_config(
    *,
    preset: str | None = None,
    files: list[str | Path] | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Resolve a config from defaults, a preset, YAML files and overrides."""
    cfg = Config()
    if preset:
        merge(cfg, load_yaml(preset_text(preset)) or {}, source=f"preset {preset}")
    for f in files or []:
        p = Path(f)
        if not p.is_file():
            raise QuantNASError(f"config file {p} does not exist")
        try:
            data = load_yaml(read_user_text(p, "config file")) or {}
        except YamlAliasError as e:
            raise QuantNASError(f"config file {p}: {e}") from None
        except (yaml.YAMLError, RecursionError) as e:
            raise QuantNASError(f"config file {p}: invalid YAML ({e.__class__.__name__})") from None
        merge(cfg, data, source=str(p))
    apply_overrides(cfg, overrides or [])
    return validate(cfg)


def from_dict(data: dict) -> Config:
    """Rebuild a config from :func:`to_dict` output (e.g. a run dir's ``config.yaml``)."""
    return validate(merge(Config(), data, source="saved config"))


__all__ = [
    "ArchConfig",
    "Config",
    "DataConfig",
    "RunConfig",
    "SweepConfig",
    "SearchConfig",
    "TrainConfig",
    "apply_override",
    "apply_overrides",
    "check_ranges",
    "choices",
    "dump",
    "from_dict",
    "HugeInt",
    "YamlAliasError",
    "load_config",
    "load_yaml",
    "merge",
    "presets",
    "to_dict",
    "validate",
]
