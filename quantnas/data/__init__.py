"""Image I/O, MATLAB-compatible bicubic resizing, SR datasets and patch preparation."""

from quantnas.data.bicubic import downscale_uint8, imresize, resize_matrix, resize_tensor
from quantnas.data.datasets import (
    EMBEDDED_TRAIN,
    EMBEDDED_VAL,
    SRTrainDataset,
    SRValDataset,
    embedded_images,
    load_benchmark_sets,
    make_loader,
    resolve_images,
)
from quantnas.data.images import IMAGE_EXTENSIONS, list_images, load_rgb, save_rgb
from quantnas.data.prepare import prepare_patches

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
