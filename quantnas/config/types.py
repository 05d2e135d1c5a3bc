"""The typed configuration: one dataclass per section, with the library's defaults.

Reading, merging and overrides are :mod:`quantnas.config.io`; value checks are
:mod:`quantnas.config.checks` and :mod:`quantnas.pipeline.resolve`. :func:`search_arch` and
:func:`search_crop` are what the search section resolves to.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from quantnas.config.fields import AlphaOptimConfig, OptimConfig, PosFloat, PosInt

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
        gray: Grayscale images in any role (training, validation, LR, test): ``replicate``
            (the SR convention: the channel copied to RGB, scored on Y) or ``reject``
            (a one-line error naming the file).
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
    gray: str = "replicate"


@dataclass
class SearchConfig:
    """Differentiable search: noise or direct quantization, regularizer, hardware penalty.

    ``c_fixed`` / ``lr_crop`` (null = the same as ``arch.c_fixed`` / ``data.lr_crop``) let
    the supernet be searched narrower and on smaller crops than the final network is
    trained (DARTS practice), which keeps a CPU search short. ``steps_per_epoch`` 0 means
    one pass over the weight split. ``optim`` is the supernet weights' optimiser,
    ``alpha_optim`` the architecture weights'.
    """

    #: Search epochs.
    epochs: PosInt = 4
    #: Epochs of weight steps before alpha steps start, or ``auto``: alpha steps start
    #: after the first epoch whose end finds the supernet ``warm_up_margin`` dB above
    #: bicubic on fixed crops of the alpha split (at the latest after half the epochs).
    warm_up: int | str = 1
    #: dB above bicubic the supernet must reach before ``warm_up: auto`` starts the alpha steps.
    warm_up_margin: float = 0.1
    #: The best epoch (the exported genotype) is the one of lowest validation loss; a later
    #: epoch within this relative tolerance of the best replaces it (0 = strictly lower).
    best_tolerance: float = 0.0
    #: Global batch of a search step (split evenly over the ranks under torchrun).
    batch_size: PosInt = 8
    #: Share of the training images the search uses, in (0, 1] (the original's
    #: ``dataset.search_subsample``); the weight / alpha splits are made from them.
    search_subsample: float = 1.0
    #: Weight / alpha data: ``photos`` (whole images halved) or ``regions`` (tiles of
    #: every image, half to each split; ``split_tile`` pixels a side at least, 0 = twice
    #: the search's HR crop). See :mod:`quantnas.search.splits`.
    split: str = "photos"
    #: Side of the ``regions`` split's tiles in pixels, at least (0 = twice the search's HR crop).
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
    #: Step of the dual ascent on the Lagrange multiplier of ``target_bitops``.
    dual_lr: float = 0.01
    #: The exported genotype is repaired into ``[target_band * target, target]`` BitOps.
    target_band: float = 0.9
    #: How the genotype is chosen: ``argmax`` of the alphas, or ``path`` (the supernet's
    #: PSNR gain over bicubic on fixed validation crops with each of ``select_samples``
    #: genotypes drawn within the budget band, and the repaired argmax, as its one-hot
    #: path; inherited weights; highest wins).
    #: ``halving``: the exported genotype and ``select_samples`` others drawn from the
    #: alphas within the band are trained by successive halving (``quantnas.search.finalists``):
    #: rungs end at epochs ``halving_epochs * halving_eta**r`` of the training, the best
    #: ``1/halving_eta`` by validation PSNR go on, and the winner's training continues to
    #: ``train.epochs`` from its checkpoint.
    select: str = "argmax"
    #: Genotypes drawn within the budget band that ``select: path`` scores.
    select_samples: PosInt = 32
    #: Successive halving keeps the best ``1 / halving_eta`` of the candidates per rung
    #: (>= 2).
    halving_eta: PosInt = 2
    #: Training epochs of the first rung (rung ``r`` ends at ``halving_epochs *
    #: halving_eta**r``, at most ``train.epochs - 1``).
    halving_epochs: PosInt = 1
    #: Candidates of a rung trained at once, each in its own spawned process with
    #: ``threads / halving_workers`` torch threads (1 = one after another in this process,
    #: the original procedure). A candidate trained with another thread count differs by
    #: float rounding, so its scores can differ in the last digits.
    halving_workers: PosInt = 1
    #: Which epoch's alphas the drawn finalists come from: ``last`` (the alphas the search
    #: ends with) or ``best`` (the exported epoch's, the epoch of lowest validation loss,
    #: whose argmax is the exported genotype; the last when no epoch was best).
    halving_draw_epoch: str = "last"
    #: Where the drawn finalists come from: ``alphas`` (the layers' (op, bit) distributions
    #: of ``halving_draw_epoch``, the behaviour so far) or ``mutations`` (the exported
    #: genotype with each layer replaced, with probability ``halving_mutation_rate``, by a
    #: uniformly drawn (op, bit) pair: neighbours of the argmax, local search).
    #: Either way rejected into the budget band and distinct.
    halving_draw: str = "alphas"
    #: ``halving_draw: mutations``: the chance that a layer of the exported genotype is
    #: redrawn uniformly (in ``(0, 1]``; 1 draws uniform genotypes).
    halving_mutation_rate: PosFloat = 0.3
    #: Where the candidates of a rung train when ``halving_workers > 1``: an engine of
    #: ``quantnas.engines`` (``processes``: spawned workers on this machine; ``ray``: Ray
    #: tasks, also with one worker; ``local``: one after another in this process).
    halving_engine: str = "processes"
    #: Address of a Ray cluster for ``halving_engine: ray`` (``ray://...``, ``HOST:PORT``,
    #: ``auto``; null = a new local Ray on ``halving_workers x`` the candidates' threads).
    halving_address: str | None = None
    #: PyTorch's CPU threads during the search (0 = the run's ``threads``). The thread count
    #: changes the float rounding of every step, and the exported genotype settles near ties
    #: of the alphas, so a fixed count here makes the genotype independent of ``threads``
    #: (a quantnas option; the original searches with whatever threads the process has).
    threads: int = 0
    #: What a weight step trains: ``mixture`` (the alpha-weighted supernet, DARTS) or
    #: ``path`` (one uniformly drawn genotype per step, within the budget band if any).
    weight_sampling: str = "mixture"
    #: ``noise`` (search against quantization noise, the paper's method), ``quant`` (direct
    #: quantization with shared weights) or ``fp`` (full precision).
    mode: str = "noise"
    #: Distribution of the quantization noise: ``gaussian`` (the original) or ``uniform``.
    noise: str = "gaussian"
    #: How the bit-width copies of a candidate draw noise: ``original`` (one independent draw per
    #: bit-width, detached copies) or ``shared`` (one draw for all copies; a quantnas variant).
    noise_mix: str = "original"
    #: Where the noise comes from: ``rng`` (fresh draws, the original) or ``table``.
    noise_source: str = "rng"
    #: How alphas become mixing weights: ``softmax``, ``gumbel`` or ``hard_gumbel`` (one sampled
    #: (op, bit) pair per layer and step).
    alpha_transform: str = "softmax"
    #: Gumbel temperature at the start of the alpha steps (gumbel transforms only).
    temp_max: PosFloat = 1.0
    #: Gumbel temperature at the end of the search (gumbel transforms only).
    temp_min: PosFloat = 0.1
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, weight_decay=3e-8))
    alpha_optim: AlphaOptimConfig = field(default_factory=AlphaOptimConfig)
    #: Sparsity regularizer of the alphas: ``entropy``, ``l1``, ``l1_softmax``, ``l1_onehot`` or
    #: ``none``.
    sparse_type: str = "entropy"
    #: Weight of the sparsity regularizer.
    sparse_coef: float = 1e-3
    #: How the regularizer's weight grows over the search: ``original`` or ``linear``.
    sparse_ramp: str = "original"
    #: Weight of the hardware penalty: ``penalty`` x the ``penalty_cost`` relative to its value at
    #: the start of the search (0 = off).
    penalty: float = 0.0
    #: The penalised cost: ``bitops`` (the BitOps the report shows) or ``linear_bits`` (the
    #: original's cost, linear in the bits, searchable layers only).
    penalty_cost: str = "bitops"
    #: LR side at which the budget's BitOps (``target_bitops``) are counted.
    bitops_lr_size: PosInt = 32
    #: Weight steps per epoch (0 = one pass over the weight split).
    steps_per_epoch: int = 0
    #: Channels of the supernet (null = ``arch.c_fixed``): a narrower supernet than the final
    #: network, as in DARTS.
    c_fixed: PosInt | None = None
    #: LR crop of the search batches (null = ``data.lr_crop``).
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

    #: The genotype trained: a file (JSON or ``Genotype_SR(...)`` text), a builtin name
    #: (``default``, ``paper-example``) or the text itself.
    genotype: str = "default"
    #: Training epochs.
    epochs: PosInt = 10
    #: Global batch of a training step (split evenly over the ranks under torchrun).
    batch_size: PosInt = 8
    optim: OptimConfig = field(default_factory=OptimConfig)
    #: Full-precision epochs before quantization-aware training starts.
    warm_up: int = 0
    #: Steps per epoch (0 = one pass over the training crops).
    steps_per_epoch: int = 0
    #: Pixel loss: ``l1``, ``mse``, ``charbonnier`` or a registered one.
    loss: str = "l1"
    #: Last epochs trained with ``finetune_loss`` instead (as RFDN does; 0 = none).
    finetune_epochs: int = 0
    #: The loss of the last ``finetune_epochs`` epochs.
    finetune_loss: str = "mse"
    #: Decay of an exponential moving average of the weights, warmed up as ``min(decay,
    #: (1+n)/(10+n))``; the average is what is validated and saved (0 = off).
    ema: float = 0.0
    #: Share of the epochs after which a training still within ``stall_margin`` of bicubic is
    #: reported as stalled (never stopped or retried).
    stall_check: float = 0.5
    #: dB above bicubic a training's best validation PSNR must exceed not to count as stalled.
    stall_margin: float = 0.05


@dataclass
class RunConfig:
    """The one-command job (search -> train -> eval -> report)."""

    #: Memory a run may use in GiB (0 = 85% of the free memory of the device); larger networks are
    #: refused before they are built.
    max_memory_gb: float = 0.0
    #: Write the super-resolved images of each evaluation set to ``samples/`` in the run directory
    #: (0 = no).
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
    #: Candidates of a ``halving-random`` trial (0 = as many as a halving search races:
    #: ``search.select_samples + 1``).
    random_halving_candidates: int = 0
    #: Candidates of a ``halving-random`` trial: ``uniform`` draws in the target's window, or
    #: ``mutations``: one uniform draw and mutations of it (each layer redrawn with
    #: probability ``search.halving_mutation_rate``), local search without the search.
    random_halving_draw: str = "uniform"
    #: Where the random genotypes at a target lie (``random`` and ``halving-random``):
    #: ``tolerance``, within ``target_tolerance`` of it on both sides (the behaviour so
    #: far), or ``band``, in ``[search.target_band x target, target]``, the band the
    #: search exports into, so that found and random networks compare at one BitOps band.
    random_window: str = "tolerance"


@dataclass
class Config:
    """Root configuration."""

    #: Folder of the run directories: a run writes ``out_dir/name``.
    out_dir: str = "runs"
    #: Run directory inside ``out_dir`` (empty = ``<verb>-<time>``); nested names such as ``exp/a``
    #: are fine, ``..`` and absolute paths are refused.
    name: str = ""
    #: ``cpu``, ``cuda`` or ``cuda:N``.
    device: str = "cpu"
    #: PyTorch's CPU threads (0 = PyTorch's default).
    threads: int = 0
    #: Seed of every random generator (Python, numpy, torch), at most 2**32-1.
    seed: int = 0
    #: Show progress bars with the epoch's and the stage's ETA.
    progress: bool = True
    #: Write TensorBoard scalars (per epoch, and every step's in ``tensorboard/steps``).
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
