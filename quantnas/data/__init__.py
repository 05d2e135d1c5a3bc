"""Image I/O, MATLAB-compatible bicubic resizing, SR datasets and patch preparation."""

from quantnas.data.benchmarks import load_benchmark_sets
from quantnas.data.bicubic import downscale_uint8, imresize, resize_matrix, resize_tensor
from quantnas.data.datasets import SRTrainDataset, SRValDataset, make_loader
from quantnas.data.images import IMAGE_EXTENSIONS, list_images, load_rgb, save_rgb
from quantnas.data.prepare import prepare_patches
from quantnas.data.sources import EMBEDDED_TRAIN, EMBEDDED_VAL, embedded_images, resolve_images

__all__ = [
    "EMBEDDED_TRAIN",
    "EMBEDDED_VAL",
    "IMAGE_EXTENSIONS",
    "SRTrainDataset",
    "SRValDataset",
    "downscale_uint8",
    "embedded_images",
    "imresize",
    "list_images",
    "load_benchmark_sets",
    "load_rgb",
    "make_loader",
    "prepare_patches",
    "resize_matrix",
    "resize_tensor",
    "resolve_images",
    "save_rgb",
]
