"""The config resolved once into what each layer uses: small typed, frozen specs.

A job resolves its config at the top (:func:`job_spec`) and hands each layer the values it
uses: the image readers a :class:`DataSpec`, the memory check a :class:`StageSize` per
stage, the supernet builder a :class:`SupernetSpec`. No layer below the job picks fields
out of the whole :class:`~quantnas.config.types.Config`, and ``auto`` / ``null`` values
that mean "as another key" are resolved here, once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from quantnas.config.types import ArchConfig, Config, search_arch, search_crop

__all__ = [
    "DataSpec",
    "as_data_spec",
    "JobSpec",
    "StageSize",
    "SupernetSpec",
    "data_spec",
    "job_spec",
    "stage_size",
    "supernet_spec",
    "validation_source",
]

#: ``data.val`` meaning "``embedded:val`` on embedded training photos, else ``holdout``".
AUTO = "auto"
#: ``data.val`` meaning "a fixed share of the training images".
HOLDOUT = "holdout"
EMBEDDED = "embedded:"


@dataclass(frozen=True)
class DataSpec:
    """What a job's image readers and datasets use.

    Attributes:
        train: The training source (``data.train``).
        val: The validation source, ``auto`` resolved (:func:`validation_source`).
        val_holdout: Share of the training images held out with ``val=holdout``.
        val_lr: Folder of LR images matching ``val``, or None.
        benchmarks: The test sets (``data.benchmarks``), or None.
        scale: The upscaling factor (``arch.scale``).
        lr_crop: LR side of a training crop.
        repeat: Random crops per training image per epoch.
        val_crop: Centre crop of the validation HR images (0: whole images).
        min_patch_std: Flattest training crop kept.
        num_workers: DataLoader workers.
        max_pixels: Largest image a reader decodes (0: Pillow's limit).
        max_total_pixels: Pixel budget of one folder (0: what fits in memory).
        gray: The grayscale rule (``data.gray``: ``replicate`` or ``reject``).

    """

    train: str
    val: str
    val_holdout: float
    val_lr: str | None
    benchmarks: str | None
    scale: int
    lr_crop: int
    repeat: int
    val_crop: int
    min_patch_std: float
    num_workers: int
    max_pixels: int
    max_total_pixels: int
    gray: str


def validation_source(train: str, val: str) -> str:
    """``data.val`` with ``auto`` resolved: ``embedded:val`` when training on embedded
    photos, else ``holdout``.
    """
    if val != AUTO:
        return val
    return "embedded:val" if train.startswith(EMBEDDED) else HOLDOUT


def data_spec(cfg: Config) -> DataSpec:
    """The :class:`DataSpec` of a config."""
    d = cfg.data
    return DataSpec(
        train=d.train,
        val=validation_source(d.train, d.val),
        val_holdout=d.val_holdout,
        val_lr=d.val_lr,
        benchmarks=d.benchmarks,
        scale=cfg.arch.scale,
        lr_crop=d.lr_crop,
        repeat=d.repeat,
        val_crop=d.val_crop,
        min_patch_std=d.min_patch_std,
        num_workers=d.num_workers,
        max_pixels=d.max_pixels,
        max_total_pixels=d.max_total_pixels,
        gray=d.gray,
    )


def as_data_spec(data: DataSpec | Config) -> DataSpec:
    """``data`` itself, or the :class:`DataSpec` of a config (for callers that hold one)."""
    return data if isinstance(data, DataSpec) else data_spec(data)


@dataclass(frozen=True)
class StageSize:
    """What one step of a stage's network holds, counted before anything is built.

    Attributes:
        stage: ``search`` (the supernet: every candidate) or ``train`` (any genotype: the
            cheapest candidate per layer, a lower bound).
        arch: The network's structure (``search.c_fixed`` resolved for the search).
        lr_crop: LR side of a batch's crops.
        batch: Batch size.
        keys: The config keys that set the size, each with the size it gives at its
            default value: the key whose default lowers the need most is the one an error
            names.

    """

    stage: str
    arch: ArchConfig
    lr_crop: int
    batch: int
    keys: dict[str, StageSize] = field(default_factory=dict, compare=False)


def _size(cfg: Config, stage: str) -> StageSize:
    if stage == "search":
        return StageSize(stage, search_arch(cfg), search_crop(cfg), cfg.search.batch_size)
    return StageSize(stage, cfg.arch, cfg.data.lr_crop, cfg.train.batch_size)


def _size_keys(cfg: Config, stage: str) -> list[str]:
    search = stage == "search"
    keys = ["search.c_fixed" if search and cfg.search.c_fixed is not None else "arch.c_fixed"]
    keys += ["arch.body_cells", "arch.scale"]
    keys += [f"arch.arch_pattern.{b}" for b in cfg.arch.arch_pattern or {}]
    keys.append("search.lr_crop" if search and cfg.search.lr_crop is not None else "data.lr_crop")
    keys.append(f"{stage}.batch_size")
    return keys


def _with_default(cfg: Config, key: str) -> Config:
    """A copy of ``cfg`` with ``key`` at its default value."""
    default = Config()
    section, name = key.split(".", 1)
    new = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section))})
    if name.startswith("arch_pattern."):
        block = name.split(".", 1)[1]
        pattern = dict(new.arch.arch_pattern or {})
        pattern[block] = default.arch.arch_pattern.get(block, 1)
        new.arch.arch_pattern = pattern
    else:
        setattr(getattr(new, section), name, getattr(getattr(default, section), name))
    return new


def stage_size(cfg: Config, stage: str) -> StageSize:
    """The :class:`StageSize` of ``stage`` (``search`` or ``train``) of a config."""
    keys = {k: _size(_with_default(cfg, k), stage) for k in _size_keys(cfg, stage)}
    return dataclasses.replace(_size(cfg, stage), keys=keys)


@dataclass(frozen=True)
class SupernetSpec:
    """What the search's supernet is built from (:func:`quantnas.search.setup.build_supernet`).

    Attributes:
        arch: Its structure (``search.c_fixed`` resolved; the output gate dropped without
            ``search.output_scale``).
        mode: ``search.mode``.
        noise: ``search.noise``.
        noise_mix: ``search.noise_mix``.
        noise_source: ``search.noise_source``.
        transform: ``search.alpha_transform``.
        branch_init: ``search.branch_init``.
        conv_init: ``search.conv_init``.

    """

    arch: ArchConfig
    mode: str
    noise: str
    noise_mix: str
    noise_source: str
    transform: str
    branch_init: str
    conv_init: str


def supernet_spec(cfg: Config, *, final_width: bool = False) -> SupernetSpec:
    """The :class:`SupernetSpec` of a config (at ``arch.c_fixed`` with ``final_width``)."""
    s = cfg.search
    arch = cfg.arch if final_width else search_arch(cfg)
    if not s.output_scale and arch.output_scale:
        arch = dataclasses.replace(arch, output_scale=False)
    return SupernetSpec(
        arch=arch,
        mode=s.mode,
        noise=s.noise,
        noise_mix=s.noise_mix,
        noise_source=s.noise_source,
        transform=s.alpha_transform,
        branch_init=s.branch_init,
        conv_init=s.conv_init,
    )


@dataclass(frozen=True)
class JobSpec:
    """A job's config resolved once, for the checks made before it computes.

    Attributes:
        data: What the image readers use.
        supernet: What the search's supernet is built from.
        search_size: One search step, for the memory check.
        train_size: One training step, for the memory check.
        seed: The run's seed (``seed``).
        device: Where it computes (``device``).
        max_memory_gb: The memory limit (``run.max_memory_gb``; 0: what is free).

    """

    data: DataSpec
    supernet: SupernetSpec
    search_size: StageSize
    train_size: StageSize
    seed: int
    device: str
    max_memory_gb: float


def job_spec(cfg: Config) -> JobSpec:
    """The :class:`JobSpec` of a config."""
    return JobSpec(
        data=data_spec(cfg),
        supernet=supernet_spec(cfg),
        search_size=stage_size(cfg, "search"),
        train_size=stage_size(cfg, "train"),
        seed=cfg.seed,
        device=cfg.device,
        max_memory_gb=cfg.run.max_memory_gb,
    )
