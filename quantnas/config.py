"""Typed configuration: dataclass defaults, YAML presets/files and ``key=value`` overrides.

Resolution order: dataclass defaults < preset (``--preset NAME``, a YAML shipped in
``quantnas/configs``) < ``--config FILE`` < ``section.key=value`` overrides. Unknown keys
and values of the wrong type are errors naming the key. Every run directory stores the
resolved config as ``config.yaml``.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from quantnas.cost import PENALTY_COSTS
from quantnas.errors import QuantNASError, read_user_text
from quantnas.quant.mixed import MIX_MODES, NOISE_MIXES
from quantnas.quant.quantizers import NoiseQuantizer
from quantnas.search.losses import SPARSE_RAMPS, SPARSE_TYPES

BLOCK_NAMES = ("head", "body", "skip", "upsample", "tail")


@dataclass
class ArchConfig:
    """Search space and network structure.

    Attributes:
        space: ``basic`` or ``rfdn``.
        c_fixed: Channels of the feature maps.
        scale: Upscaling factor.
        body_cells: Repeated body cells (basic: shared architecture; rfdn: own alphas).
        cell_type: ``A`` (body path x0.2) or ``B`` (basic space).
        skip_mode: True = plain residuals; False = ADQ around every residual.
        global_skip: ``none``, ``nearest`` or ``bicubic`` upscaled LR added to the output.
        arch_pattern: Searchable layers per block (basic space; rfdn is fixed per cell).
        bits: Candidate bit-widths of the search.
        primitives: Candidate operations per block; blocks left out use the defaults.
        output_scale: Multiply the network's output (before the global skip) by a learned
            scalar initialised to 0 (ReZero-style): training starts exactly at the global
            skip (bicubic) and no quantized conv starts with shrunken weights.
        input_quant: How the convs that read the LR image quantize it: ``image`` (uniform
            on ``[0, 1]``, lossless for 8-bit images at 8 bits) or ``hwgq`` (the original:
            HWGQ like every other activation).

    """

    space: str = "basic"
    c_fixed: int = 12
    scale: int = 4
    body_cells: int = 2
    cell_type: str = "B"
    skip_mode: bool = True
    global_skip: str = "bicubic"
    arch_pattern: dict[str, int] = field(
        default_factory=lambda: {"head": 2, "body": 2, "skip": 1, "upsample": 1, "tail": 0}
    )
    bits: list[int] = field(default_factory=lambda: [4, 8])
    primitives: dict[str, list[str]] = field(default_factory=dict)
    output_scale: bool = True
    input_quant: str = "image"


@dataclass
class DataConfig:
    """Training/validation data.

    Attributes:
        train: ``embedded:train`` (or ``embedded:NAME,...``) or a folder of HR images or
            patches.
        val: Validation images, which choose the search's best epoch and the training's
            best checkpoint: ``auto`` (``embedded:val`` when training on embedded photos,
            else ``holdout``), ``holdout`` (a fixed ``val_holdout`` share of the training
            images, taken out of training and logged), ``embedded:...`` or a folder.
        val_holdout: Share of the training images held out with ``val=holdout``.
        val_lr: Optional folder of LR images matching ``val``.
        benchmarks: Optional YAML file ``{name: {hr: dir, lr: dir}}`` or ``embedded:test``
            (reported as set ``test``), evaluated at the end; test data, reported only.
        lr_crop: LR patch size of training crops (HR = lr_crop * scale).
        repeat: Random crops per training image per epoch.
        val_crop: Centre-crop validation HR images to at most this size (0 = full image).
        min_patch_std: Redraw training crops flatter than this standard deviation (0-1
            scale; 0 = keep every crop).
        num_workers: DataLoader workers.
        max_pixels: Largest image (H*W pixels) any reader decodes; checked from the file's
            header before decoding (0 = Pillow's ``MAX_IMAGE_PIXELS``, about 89.5 M).

    """

    train: str = "embedded:train"
    val: str = "auto"
    val_holdout: float = 0.1
    val_lr: str | None = None
    benchmarks: str | None = None
    lr_crop: int = 24
    repeat: int = 16
    val_crop: int = 0
    min_patch_std: float = 0.0
    num_workers: int = 0
    max_pixels: int = 0


@dataclass
class SearchConfig:
    """Differentiable search (SPEC sections 3, 5, 6).

    ``c_fixed`` / ``lr_crop`` (0 = use ``arch.c_fixed`` / ``data.lr_crop``) let the supernet
    be searched narrower and on smaller crops than the final network is trained (DARTS
    practice), which keeps a CPU search short. ``steps_per_epoch`` 0 means one pass over
    the weight split.
    """

    epochs: int = 4
    warm_up: int = 1
    batch_size: int = 8
    search_subsample: float = 1.0
    mode: str = "noise"
    noise: str = "gaussian"
    noise_mix: str = "original"
    alpha_transform: str = "softmax"
    temp_max: float = 1.0
    temp_min: float = 0.1
    w_lr: float = 1e-3
    w_lr_min: float = 1e-5
    w_weight_decay: float = 3e-8
    w_grad_clip: float = 5.0
    lr_warmup_steps: int = 20
    alpha_lr: float = 3e-4
    alpha_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    alpha_weight_decay: float = 0.0
    sparse_type: str = "entropy"
    sparse_coef: float = 1e-3
    sparse_ramp: str = "original"
    penalty: float = 0.0
    penalty_cost: str = "bitops"
    bitops_lr_size: int = 32
    steps_per_epoch: int = 0
    c_fixed: int = 0
    lr_crop: int = 0
    step_lr_scale: float = 0.01


@dataclass
class TrainConfig:
    """Training a genotype from scratch with QAT ("augment" in the paper)."""

    genotype: str = "default"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3
    lr_min: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    lr_warmup_steps: int = 20
    warm_up: int = 0
    steps_per_epoch: int = 0
    step_lr_scale: float = 0.01
    loss: str = "l1"
    finetune_epochs: int = 0
    finetune_loss: str = "mse"
    ema: float = 0.0


@dataclass
class RunConfig:
    """The one-command job (search -> train -> eval -> report)."""

    max_memory_gb: float = 0.0
    sample_images: int = 1


@dataclass
class SweepConfig:
    """Which trials ``quantnas sweep`` runs; every trial trains with ``train`` and ``data``.

    Attributes:
        methods: Any of ``search`` (search at each penalty, then train), ``random``
            (random genotypes of the space), ``baseline`` (fixed networks quantized
            uniformly) and ``uniform`` (found genotypes retrained at one bit-width).
        penalties: Hardware-penalty values of the ``search`` trials.
        seeds: Seeds per penalty (``seed``, ``seed + 1``, ...).
        random: Number of random genotypes.
        baselines: Baseline networks (``espcn``, ``fsrcnn``, ``edsr``).
        baseline_bits: Bit-widths of the baselines (32 = full precision).
        baseline_seeds: Seeds per baseline and bit-width.
        uniform_bits: Bit-widths of the ``uniform`` retrains.
        uniform_seeds: Retrain the genotypes of this many seeds per penalty.
        pareto_set: Evaluation set the front is drawn on (``test`` = ``data.benchmarks``
            embedded photos); falls back to ``validation`` when the sweep has no such set.

    """

    methods: list[str] = field(default_factory=lambda: ["search"])
    penalties: list[float] = field(default_factory=lambda: [0.0])
    seeds: int = 1
    random: int = 8
    baselines: list[str] = field(default_factory=lambda: ["espcn", "fsrcnn", "edsr"])
    baseline_bits: list[int] = field(default_factory=lambda: [4, 8, 32])
    baseline_seeds: int = 1
    uniform_bits: list[int] = field(default_factory=lambda: [4, 8])
    uniform_seeds: int = 1
    pareto_set: str = "test"


@dataclass
class Config:
    """Root configuration."""

    out_dir: str = "runs"
    name: str = ""
    device: str = "cpu"
    threads: int = 0
    seed: int = 0
    progress: bool = True
    tensorboard: bool = True
    arch: ArchConfig = field(default_factory=ArchConfig)
    data: DataConfig = field(default_factory=DataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)


CHOICES: dict[str, tuple[str, ...]] = {
    "arch.cell_type": ("A", "B"),
    "arch.global_skip": ("none", "nearest", "bicubic"),
    "arch.input_quant": ("image", "hwgq"),
    "search.mode": MIX_MODES,
    "search.noise": NoiseQuantizer.KINDS,
    "search.noise_mix": NOISE_MIXES,
    "search.alpha_transform": ("softmax", "gumbel", "hard_gumbel"),
    "search.sparse_type": SPARSE_TYPES,
    "search.sparse_ramp": SPARSE_RAMPS,
    "search.penalty_cost": PENALTY_COSTS,
    "train.loss": ("l1", "mse", "charbonnier"),
    "train.finetune_loss": ("l1", "mse", "charbonnier"),
}


#: Numeric keys that must be > 0 (every numeric key must be finite and >= 0 unless listed
#: in :data:`SIGNED`).
POSITIVE: tuple[str, ...] = (
    "arch.c_fixed",
    "arch.scale",
    "arch.body_cells",
    "data.lr_crop",
    "data.repeat",
    "search.epochs",
    "search.batch_size",
    "search.temp_max",
    "search.temp_min",
    "search.w_lr",
    "search.w_grad_clip",
    "search.bitops_lr_size",
    "train.epochs",
    "train.batch_size",
    "train.lr",
)

#: Numeric keys allowed to be negative (none so far).
SIGNED: tuple[str, ...] = ()


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


def check_ranges(cfg: Config) -> None:
    """Every number finite and >= 0 (> 0 for :data:`POSITIVE`), errors naming the key."""
    for key, value in _numbers(cfg, ""):
        if not math.isfinite(value):
            raise QuantNASError(f"config key {key}: must be a finite number (got {value})")
        if key in POSITIVE and value <= 0:
            low = ">= 1" if isinstance(value, int) else "> 0"
            raise QuantNASError(f"config key {key}: must be {low} (got {value})")
        if value < 0 and key not in SIGNED:
            raise QuantNASError(f"config key {key}: must be >= 0 (got {value})")


def presets() -> list[str]:
    """Names of the presets shipped in the package."""
    root = resources.files("quantnas") / "configs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _preset_text(name: str) -> str:
    path = resources.files("quantnas") / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise QuantNASError(f"preset {name!r} unknown; expected one of {presets()}")
    return path.read_text(encoding="utf-8")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except QuantNASError:
                continue
        raise QuantNASError(f"config key {key}: expected {tp}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise QuantNASError(f"config key {key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise QuantNASError(f"config key {key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise QuantNASError(f"config key {key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise QuantNASError(f"config key {key}: expected a string, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise QuantNASError(f"config key {key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise QuantNASError(f"config key {key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    raise QuantNASError(f"config key {key}: unsupported type {tp}")


def _unknown(key: str, options: list[str]) -> QuantNASError:
    close = difflib.get_close_matches(key.split(".")[-1], options, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return QuantNASError(f"unknown config key {key!r}{hint}")


def merge(cfg: Any, data: dict, *, prefix: str = "", source: str = "config") -> Any:
    """Merge a nested mapping into a dataclass config (in place) with type checks."""
    if not isinstance(data, dict):
        raise QuantNASError(f"{source}: {prefix or 'top level'} must be a mapping")
    types_ = _field_types(type(cfg))
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in types_:
            raise _unknown(full, list(types_))
        current = getattr(cfg, key)
        if is_dataclass(current):
            merge(current, value, prefix=f"{full}.", source=source)
        elif isinstance(current, dict) and isinstance(value, dict):
            current.update(_coerce(value, types_[key], full))
        else:
            setattr(cfg, key, _coerce(value, types_[key], full))
    return cfg


def apply_override(cfg: Config, override: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML)."""
    if "=" not in override:
        raise QuantNASError(f"override {override!r} must look like key=value, e.g. search.epochs=2")
    key, raw = override.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw
    node: dict = {}
    cursor = node
    parts = key.split(".")
    for p in parts[:-1]:
        cursor[p] = {}
        cursor = cursor[p]
    cursor[parts[-1]] = value
    merge(cfg, node, source="override")


def validate(cfg: Config) -> Config:
    """Check value ranges and choices (one-line errors naming the key)."""
    from quantnas.spaces import available_spaces

    if cfg.arch.space not in available_spaces():
        raise QuantNASError(
            f"config key arch.space: {cfg.arch.space!r} is not one of {list(available_spaces())}"
        )
    for key, options in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in options:
            raise QuantNASError(f"config key {key}: {value!r} is not one of {list(options)}")
    check_ranges(cfg)
    from quantnas.quant.quantizers import check_bits

    check_bits(cfg.arch.bits, where="arch.bits")
    positive = {
        "arch.c_fixed": cfg.arch.c_fixed,
        "arch.scale": cfg.arch.scale,
        "arch.body_cells": cfg.arch.body_cells,
        "data.lr_crop": cfg.data.lr_crop,
        "data.repeat": cfg.data.repeat,
        "search.batch_size": cfg.search.batch_size,
        "train.batch_size": cfg.train.batch_size,
    }
    for key, value in positive.items():
        if value < 1:
            raise QuantNASError(f"config key {key}: must be >= 1 (got {value})")
    for key in cfg.arch.arch_pattern:
        if key not in BLOCK_NAMES:
            raise QuantNASError(
                f"config key arch.arch_pattern.{key}: unknown block; expected {list(BLOCK_NAMES)}"
            )
    for key in cfg.arch.primitives:
        if key not in BLOCK_NAMES:
            raise QuantNASError(
                f"config key arch.primitives.{key}: unknown block; expected {list(BLOCK_NAMES)}"
            )
    if not all(0 <= b < 1 for b in cfg.search.alpha_betas) or len(cfg.search.alpha_betas) != 2:
        raise QuantNASError(
            f"config key search.alpha_betas: expected two numbers in [0, 1) "
            f"(got {cfg.search.alpha_betas})"
        )
    if not 0 < cfg.data.val_holdout < 1:
        raise QuantNASError(
            f"config key data.val_holdout: must be in (0, 1) (got {cfg.data.val_holdout})"
        )
    if not 0 < cfg.search.search_subsample <= 1:
        raise QuantNASError("config key search.search_subsample: must be in (0, 1]")
    if cfg.search.warm_up >= cfg.search.epochs and cfg.search.epochs > 0:
        raise QuantNASError(
            f"config key search.warm_up: {cfg.search.warm_up} leaves no epoch for alpha "
            f"updates (search.epochs={cfg.search.epochs})"
        )
    if cfg.train.warm_up >= cfg.train.epochs:
        raise QuantNASError(
            f"config key train.warm_up: {cfg.train.warm_up} full-precision epochs leave no QAT "
            f"epoch (train.epochs={cfg.train.epochs})"
        )
    if not 0 <= cfg.train.ema < 1:
        raise QuantNASError(f"config key train.ema: decay must be in [0, 1) (got {cfg.train.ema})")
    if not 0 <= cfg.train.finetune_epochs <= cfg.train.epochs:
        raise QuantNASError(
            f"config key train.finetune_epochs: must be in [0, train.epochs={cfg.train.epochs}] "
            f"(got {cfg.train.finetune_epochs})"
        )
    return cfg


def load_config(
    *,
    preset: str | None = None,
    files: list[str | Path] | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Resolve a config from defaults, a preset, YAML files and overrides."""
    cfg = Config()
    if preset:
        merge(cfg, yaml.safe_load(_preset_text(preset)) or {}, source=f"preset {preset}")
    for f in files or []:
        p = Path(f)
        if not p.is_file():
            raise QuantNASError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(read_user_text(p, "config file")) or {}
        except (yaml.YAMLError, RecursionError) as e:
            raise QuantNASError(f"config file {p}: invalid YAML ({e.__class__.__name__})") from None
        merge(cfg, data, source=str(p))
    for o in overrides or []:
        apply_override(cfg, o)
    return validate(cfg)


def to_dict(cfg: Config) -> dict:
    return asdict(cfg)


def dump(cfg: Config) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


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
    "dump",
    "from_dict",
    "load_config",
    "presets",
    "to_dict",
]
