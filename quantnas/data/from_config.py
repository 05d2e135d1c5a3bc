"""The datasets and loaders a config describes (training crops, validation set), each from
the job's :class:`~quantnas.config.specs.DataSpec` (or a config, resolved into one).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from quantnas.config.specs import DataSpec, as_data_spec
from quantnas.config.types import Config
from quantnas.data.datasets import SRTrainDataset, SRValDataset, make_loader, resolve_images
from quantnas.data.roles import reader_limits, training_images, validation_images
from quantnas.errors import QuantNASError

__all__ = ["batches", "loader", "train_dataset", "val_dataset"]


def batches(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Cycle over a loader forever."""
    if len(loader) == 0:
        raise QuantNASError(
            "the training data yields no batch; raise data.repeat or lower the batch size"
        )
    while True:
        yield from loader


def loader(dataset, *, batch_size: int, num_workers: int) -> DataLoader:
    """Shuffled training loader; keeps a short last batch only when the data is tiny.

    An epoch whose shuffled order (one int64 per sample) cannot fit in memory is refused
    first, naming ``data.repeat``.
    """
    from quantnas.memory import check_samples

    check_samples(len(dataset))
    return make_loader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        drop_last=len(dataset) >= batch_size,
    )


def train_dataset(data: DataSpec | Config, images: list | None = None) -> SRTrainDataset:
    """The training crops dataset (of ``images`` when given, HR, already read)."""
    spec = as_data_spec(data)
    imgs = images if images is not None else training_images(spec)
    return SRTrainDataset(
        imgs,
        scale=spec.scale,
        lr_crop=spec.lr_crop,
        augment=True,
        repeat=spec.repeat,
        min_std=spec.min_patch_std,
    )


def _center_crop(img, size: int):
    h, w = img.shape[:2]
    if size <= 0 or (h <= size and w <= size):
        return img
    th, tw = min(h, size), min(w, size)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[top : top + th, left : left + tw]


def val_dataset(data: DataSpec | Config, images: list | None = None) -> SRValDataset:
    """The validation set (optionally centre-cropped to ``data.val_crop``) of the
    ``data.val`` images, or of ``images`` (HR, already read).
    """
    spec = as_data_spec(data)
    imgs = images if images is not None else validation_images(spec)
    hr = [(n, _center_crop(a, spec.val_crop)) for n, a in imgs]
    lr = resolve_images(spec.val_lr, **reader_limits(spec)) if spec.val_lr else None
    return SRValDataset(hr, scale=spec.scale, lr_images=lr)
