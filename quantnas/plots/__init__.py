"""Figures written into run directories (PNG, headless), one module per figure family.

All figures are drawn on :class:`matplotlib.figure.Figure` objects rendered by the Agg
canvas directly, so no GUI backend or global pyplot state is involved and plotting
works on machines without a display. Files are written atomically.

Modules:
    alphas: ``plot_alpha_evolution``, probability of each (op, bit-width) pair per layer.
    genotype: ``plot_genotype``, architecture picture of a genotype.
    training: ``plot_training_curves``, losses and PSNR over epochs.
    images: ``plot_side_by_side``, image panels (bicubic / SR / HR) with a zoomed crop.
    sweep: ``plot_method_fronts``, a sweep's points per method with their fronts.

Drawing only: which points form a front is :mod:`quantnas.sweep.pareto`.
"""

from quantnas.plots._common import BIT_COLORS, BLOCK_ORDER
from quantnas.plots.alphas import plot_alpha_evolution
from quantnas.plots.genotype import plot_genotype
from quantnas.plots.images import _auto_crop, plot_side_by_side
from quantnas.plots.sweep import METHOD_STYLES, plot_method_fronts
from quantnas.plots.training import plot_training_curves

__all__ = [
    "BIT_COLORS",
    "BLOCK_ORDER",
    "METHOD_STYLES",
    "_auto_crop",
    "plot_alpha_evolution",
    "plot_genotype",
    "plot_method_fronts",
    "plot_side_by_side",
    "plot_training_curves",
]
