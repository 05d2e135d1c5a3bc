"""The typed configuration: one dataclass per section, with the library's defaults.

Reading, merging and overrides are :mod:`quantnas.config_io`; value checks are
:mod:`quantnas.config_checks` and :mod:`quantnas.config`. :func:`search_arch` and
:func:`search_crop` are what the search section resolves to.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from quantnas.config_fields import AlphaOptimConfig, OptimConfig, PosFloat, PosInt

__all__ = [
    "AlphaOptimConfig",
    "ArchConfig",
    "Config",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "SearchConfig",
    "SweepConfig",
    "TrainConfig",
    "search_arch",
    "search_crop",
]


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
        arch_pattern: Searchable layers per block (basic space; null for rfdn, whose
            cells are fixed).
        bits: Candidate bit-widths of the search.
        primitives: Candidate operations per block; blocks left out use the defaults.
        output_scale: Multiply the network's output (before the global skip) by a learned
            scalar initialised to 0 (ReZero-style): training starts exactly at the global
            skip (bicubic) and no quantized conv starts with shrunken weights.
        input_quant: How the convs that read the LR image quantize it: ``image`` (uniform
            on ``[0, 1]``, lossless for 8-bit images at 8 bits) or ``hwgq`` (the original:
            HWGQ like every other activation).
        output_quant: Train (QAT) with a signed 8-bit quantizer on every layer output that
            feeds a sum or the pixel shuffle and on every sum (basic space, no ADQ), so the
            exported network runs on integer kernels end to end (``quantnas.quant.out_quant``).

    """

    space: str = "basic"
    c_fixed: PosInt = 12
    scale: PosInt = 4
    body_cells: PosInt = 2
    cell_type: str = "B"
    skip_mode: bool = True
    global_skip: str = "bicubic"
    arch_pattern: dict[str, int] | None = field(
        default_factory=lambda: {"head": 2, "body": 2, "skip": 1, "upsample": 1, "tail": 0}
    )
    bits: list[int] = field(default_factory=lambda: [4, 8])
    primitives: dict[str, list[str]] = field(default_factory=dict)
    output_scale: bool = True
    input_quant: str = "image"
    output_quant: bool = False


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
        max_total_pixels: Pixel budget of one image folder (training, validation, LR),
            which is loaded whole: the sizes in the headers are added up before any image
            is decoded (0 = as many pixels as fit, at 3 bytes each, in half the memory
            available when the folder is read).

    """

    train: str = "embedded:train"
    val: str = "auto"
    val_holdout: float = 0.1
    val_lr: str | None = None
    benchmarks: str | None = None
    lr_crop: PosInt = 24
    repeat: PosInt = 16
    val_crop: int = 0
    min_patch_std: float = 0.0
    num_workers: int = 0
    max_pixels: int = 0
    max_total_pixels: int = 0


@dataclass
class SearchConfig:
    """Differentiable search: noise or direct quantization, regularizer, hardware penalty.

    ``c_fixed`` / ``lr_crop`` (null = the same as ``arch.c_fixed`` / ``data.lr_crop``) let
    the supernet be searched narrower and on smaller crops than the final network is
    trained (DARTS practice), which keeps a CPU search short. ``steps_per_epoch`` 0 means
    one pass over the weight split. ``optim`` is the supernet weights' optimiser,
    ``alpha_optim`` the architecture weights'.
    """

    epochs: PosInt = 4
    #: Epochs of weight steps before alpha steps start, or ``auto``: alpha steps start
    #: after the first epoch whose end finds the supernet ``warm_up_margin`` dB above
    #: bicubic on fixed crops of the alpha split (at the latest after half the epochs).
    warm_up: int | str = 1
    warm_up_margin: float = 0.1
    #: The best epoch (the exported genotype) is the one of lowest validation loss; a later
    #: epoch within this relative tolerance of the best replaces it (0 = strictly lower).
    best_tolerance: float = 0.0
    batch_size: PosInt = 8
    search_subsample: float = 1.0
    #: Weight / alpha data: ``photos`` (whole images halved) or ``regions`` (tiles of
    #: every image, half to each split; ``split_tile`` pixels a side at least, 0 = twice
    #: the search's HR crop). See :mod:`quantnas.search.splits`.
    split: str = "photos"
    split_tile: int = 0
    #: The supernet's learned output scale (``arch.output_scale``): ``true`` keeps it
    #: (a ReZero gate starting at 0 that multiplies every gradient), ``false`` leaves it out.
    output_scale: bool = True
    #: How the supernet's convs start: ``he`` (all He-initialised, the original) or
    #: ``zero_last`` (the last conv of every output-layer candidate at zero, so the
    #: supernet starts at the global skip and that layer learns from the first step; needs
    #: a global skip and no output gate, ``output_scale: false``).
    branch_init: str = "he"
    #: How the supernet's convs are drawn: ``he`` (He-normal, as the final networks) or
    #: ``pytorch`` (PyTorch's default conv init, the original code's; ~2.45x smaller).
    conv_init: str = "he"
    #: Weight steps before the first alpha step run the supernet in full precision (no
    #: quantization noise, no quantizers); the LSQ steps are re-initialised from the
    #: warmed-up weights when the quantizers come back (after every warm-up epoch).
    float_warm_up: bool = False
    #: BitOps of the final network (``arch.c_fixed`` channels, LR ``bitops_lr_size``) the
    #: search must stay within (0 = no budget): a Lagrange multiplier on
    #: ``E[BitOps] / target - 1`` updated by dual ascent (``dual_lr``), and the exported
    #: genotype repaired into ``[target_band * target, target]``.
    target_bitops: float = 0.0
    dual_lr: float = 0.01
    target_band: float = 0.9
    #: How the genotype is chosen: ``argmax`` of the alphas, or ``path`` (the supernet's
    #: PSNR gain over bicubic on fixed validation crops with each of ``select_samples``
    #: genotypes drawn within the budget band, and the repaired argmax, as its one-hot
    #: path; inherited weights; highest wins).
    select: str = "argmax"
    select_samples: PosInt = 32
    #: What a weight step trains: ``mixture`` (the alpha-weighted supernet, DARTS) or
    #: ``path`` (one uniformly drawn genotype per step, within the budget band if any).
    weight_sampling: str = "mixture"
    mode: str = "noise"
    noise: str = "gaussian"
    noise_mix: str = "original"
    #: Where the noise comes from: ``rng`` (fresh draws, the original) or ``table``.
    noise_source: str = "rng"
    alpha_transform: str = "softmax"
    temp_max: PosFloat = 1.0
    temp_min: PosFloat = 0.1
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, weight_decay=3e-8))
    alpha_optim: AlphaOptimConfig = field(default_factory=AlphaOptimConfig)
    sparse_type: str = "entropy"
    sparse_coef: float = 1e-3
    sparse_ramp: str = "original"
    penalty: float = 0.0
    penalty_cost: str = "bitops"
    bitops_lr_size: PosInt = 32
    steps_per_epoch: int = 0
    c_fixed: PosInt | None = None
    lr_crop: PosInt | None = None


@dataclass
class TrainConfig:
    """Training a genotype from scratch with QAT ("augment" in the paper).

    ``stall_check`` / ``stall_margin``: a training whose best validation PSNR is still
    within ``stall_margin`` dB of bicubic after ``stall_check`` of its epochs is reported
    (a warning naming the run; ``stalled`` in sweep results). It is never stopped or
    retried. ``optim`` is the network weights' optimiser (the search's ``search.optim``
    shape); ``epochs``, ``batch_size``, ``steps_per_epoch`` and ``warm_up`` stay per section
    (each stage's own length; ``warm_up`` means full-precision epochs here, weight-only
    epochs in the search).
    """

    genotype: str = "default"
    epochs: PosInt = 10
    batch_size: PosInt = 8
    optim: OptimConfig = field(default_factory=OptimConfig)
    warm_up: int = 0
    steps_per_epoch: int = 0
    loss: str = "l1"
    finetune_epochs: int = 0
    finetune_loss: str = "mse"
    ema: float = 0.0
    stall_check: float = 0.5
    stall_margin: float = 0.05


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
        seeds: Training seeds (``seed``, ``seed + 1``, ...) of every method: per penalty
            (search), per random draw (the same genotype each time) and per baseline.
        random: Number of random genotypes.
        baselines: Baseline networks (``espcn``, ``fsrcnn``, ``edsr``).
        baseline_bits: Bit-widths of the baselines (32 = full precision).
        uniform_bits: Bit-widths of the ``uniform`` retrains.
        uniform_seeds: Retrain the genotypes of this many seeds per penalty.
        pareto_set: Evaluation set the front is drawn on (``test`` = ``data.benchmarks``
            embedded photos); falls back to ``validation`` when the sweep has no such set.
        targets: BitOps budgets (``2.4G`` or ``2.4e9``; final network at 32x32 LR) of
            ``search`` trials (``search.target_bitops``) and of ``random`` trials (draws
            rejection-sampled to within ``target_tolerance`` of each target), beside the
            penalties.
        target_tolerance: Relative BitOps window of the random draws at a target.

    """

    methods: list[str] = field(default_factory=lambda: ["search"])
    penalties: list[float] = field(default_factory=lambda: [0.0])
    seeds: int = 1
    random: int = 8
    baselines: list[str] = field(default_factory=lambda: ["espcn", "fsrcnn", "edsr"])
    baseline_bits: list[int] = field(default_factory=lambda: [4, 8, 32])
    uniform_bits: list[int] = field(default_factory=lambda: [4, 8])
    uniform_seeds: int = 1
    pareto_set: str = "test"
    targets: list[float] = field(default_factory=list)
    target_tolerance: float = 0.05


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


def search_arch(cfg: Config) -> ArchConfig:
    """The space searched: ``arch`` with ``search.c_fixed`` channels when set (not null).

    As in DARTS, the supernet may be narrower than the network trained afterwards: the
    genotype (ops and bit-widths per layer) does not depend on the width.
    """
    if cfg.search.c_fixed is None or cfg.search.c_fixed == cfg.arch.c_fixed:
        return cfg.arch
    return dataclasses.replace(cfg.arch, c_fixed=cfg.search.c_fixed)


def search_crop(cfg: Config) -> int:
    """LR crop of the search batches (``search.lr_crop``, null: ``data.lr_crop``)."""
    return cfg.data.lr_crop if cfg.search.lr_crop is None else cfg.search.lr_crop
