"""What a config's search is made of: the supernet, its width, its crops, its two data splits."""

from __future__ import annotations

import dataclasses
import logging

import torch

from quantnas.config import ArchConfig, Config
from quantnas.search.supernet import Supernet

log = logging.getLogger(__name__)

__all__ = ["build_supernet", "search_arch", "search_crop", "split_images"]


def split_images(images: list, *, subsample: float, seed: int) -> tuple[list, list]:
    """Subsample the training images and halve them into weight / alpha splits."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g).tolist()
    n = max(1, round(len(images) * subsample))
    chosen = [images[i] for i in order[:n]]
    if len(chosen) < 2:
        log.warning("only one training image: weight and alpha steps share it")
        return chosen, chosen
    half = len(chosen) // 2
    return chosen[half:], chosen[:half]


def search_arch(cfg: Config) -> ArchConfig:
    """The space searched: ``arch`` with ``search.c_fixed`` channels when set.

    As in DARTS, the supernet may be narrower than the network trained afterwards: the
    genotype (ops and bit-widths per layer) does not depend on the width.
    """
    if cfg.search.c_fixed <= 0 or cfg.search.c_fixed == cfg.arch.c_fixed:
        return cfg.arch
    return dataclasses.replace(cfg.arch, c_fixed=cfg.search.c_fixed)


def search_crop(cfg: Config) -> int:
    """LR crop of the search batches (``search.lr_crop``, else ``data.lr_crop``)."""
    return cfg.search.lr_crop if cfg.search.lr_crop > 0 else cfg.data.lr_crop


def build_supernet(cfg: Config) -> Supernet:
    """The supernet of a config."""
    s = cfg.search
    return Supernet(
        search_arch(cfg),
        mode=s.mode,
        noise=s.noise,
        noise_mix=s.noise_mix,
        noise_source=s.noise_source,
        transform=s.alpha_transform,
    )
