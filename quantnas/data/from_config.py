"""The datasets and loaders a config describes (training crops, validation set)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from quantnas.config.types import Config
from quantnas.data.datasets import SRTrainDataset, SRValDataset, make_loader, resolve_images
from quantnas.data.images import GRAY_MODES
from quantnas.data.roles import training_images, validation_images
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


def train_dataset(cfg: Config, images: list | None = None) -> SRTrainDataset:
    """The training crops dataset of a config."""
    imgs = images if images is not None else training_images(cfg)
    return SRTrainDataset(
        imgs,
        scale=cfg.arch.scale,
        lr_crop=cfg.data.lr_crop,
        augment=True,
        repeat=cfg.data.repeat,
        min_std=cfg.data.min_patch_std,
    )


def _center_crop(img, size: int):
    h, w = img.shape[:2]
    if size <= 0 or (h <= size and w <= size):
        return img
    th, tw = min(h, size), min(w, size)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[top : top + th, left : left + tw]


def val_dataset(cfg: Config, images: list | None = None) -> SRValDataset:
    """The validation set of a config (optionally centre-cropped to ``data.val_crop``) of
    its ``data.val`` images, or of ``images`` (HR, already read).
    """
    imgs = images if images is not None else validation_images(cfg)
    hr = [(n, _center_crop(a, cfg.data.val_crop)) for n, a in imgs]
    limits = {
        "max_pixels": cfg.data.max_pixels,
        "max_total_pixels": cfg.data.max_total_pixels,
        "allow_gray": GRAY_MODES.get(cfg.data.gray),
    }
    lr = resolve_images(cfg.data.val_lr, **limits) if cfg.data.val_lr else None
    return SRValDataset(hr, scale=cfg.arch.scale, lr_images=lr)
