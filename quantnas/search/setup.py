"""What a config's search is made of: the supernet, its width, its crops, its two data splits."""

from __future__ import annotations

import logging

from quantnas.config.specs import SupernetSpec, supernet_spec
from quantnas.config.types import Config, search_arch, search_crop
from quantnas.data.datasets import SRTrainDataset
from quantnas.search.splits import Split, split_training
from quantnas.search.supernet import Supernet
from quantnas.training import distributed as qdist

log = logging.getLogger(__name__)

__all__ = ["build_supernet", "search_arch", "search_crop", "search_loaders", "search_split"]


def build_supernet(spec: SupernetSpec | Config, *, final_width: bool = False) -> Supernet:
    """The supernet of a :class:`~quantnas.config.specs.SupernetSpec`, or of a config (at
    ``arch.c_fixed`` with ``final_width``, e.g. for the BitOps of the final network; without
    ``search.output_scale`` its output gate is left out; ``search.branch_init`` sets how its
    output layer starts).
    """
    if isinstance(spec, Config):
        spec = supernet_spec(spec, final_width=final_width)
    return Supernet(
        spec.arch,
        mode=spec.mode,
        noise=spec.noise,
        noise_mix=spec.noise_mix,
        noise_source=spec.noise_source,
        transform=spec.transform,
        branch_init=spec.branch_init,
        conv_init=spec.conv_init,
    )


def search_split(cfg: Config, images: list) -> Split:
    """The weight / alpha split of the training images (``search.split``)."""
    s = cfg.search
    tile = s.split_tile or 2 * search_crop(cfg) * cfg.arch.scale
    return split_training(
        images, kind=s.split, subsample=s.search_subsample, seed=cfg.seed, tile=tile
    )


def search_loaders(cfg: Config, split: Split) -> tuple:
    """The weight and alpha loaders of a :func:`search_split` (random crops of
    ``search_crop``; with ``regions`` each tile gets ``data.repeat`` crops per epoch scaled
    by images / tiles, so an epoch holds as many crops as with whole photos).
    """
    w_imgs, a_imgs, record = split
    n_photos = len(record.get("images", ()))
    kw = {"scale": cfg.arch.scale, "lr_crop": search_crop(cfg), "min_std": cfg.data.min_patch_std}
    bs, nw = cfg.search.batch_size, cfg.data.num_workers
    out = []
    for i, imgs in enumerate((w_imgs, a_imgs)):
        rep = cfg.data.repeat
        if cfg.search.split == "regions":
            rep = max(1, round(rep * max(1, n_photos // 2) / len(imgs)))
        ds = SRTrainDataset(imgs, repeat=rep, **kw)
        out.append(qdist.train_loader(ds, batch_size=bs, num_workers=nw, seed=cfg.seed + i))
    return tuple(out)
