"""The search's two data splits: weight steps and alpha steps.

* ``photos`` (the quantnas 0.1 behaviour; on a folder of prepared patches it is the
  original's random split of DIV2K patches): whole training images are shuffled and halved.
* ``regions``: every training image is cut into a grid of tiles (each side at least
  ``tile`` pixels) and half of each image's tiles go to each split, so both splits see
  every photo and neither is made of the smoothest ones.

The assignment is fixed by the seed and written to the run directory (``split.json``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from quantnas.errors import QuantNASError
from quantnas.registry import Registry

log = logging.getLogger(__name__)

__all__ = ["SPLITS", "Split", "split_images", "split_regions", "split_training"]

#: ``(name, image)`` pairs, as the data layer reads them.
Images = list[tuple[str, np.ndarray]]
#: The weight images, the alpha images and the record of which region went where.
Split = tuple[Images, Images, dict]


def _subsample(images: Images, subsample: float, seed: int) -> Images:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g).tolist()
    n = max(1, round(len(images) * subsample))
    return [images[i] for i in order[:n]]


def split_images(images: Images, *, subsample: float, seed: int) -> Split:
    """Subsample the training images and halve them into weight / alpha splits."""
    chosen = _subsample(images, subsample, seed)
    if len(chosen) < 2:
        log.warning("only one training image: weight and alpha steps share it")
        names = [n for n, _ in chosen]
        return chosen, chosen, {"kind": "photos", "weight": names, "alpha": names}
    half = len(chosen) // 2
    w, a = chosen[half:], chosen[:half]
    return w, a, {"kind": "photos", "weight": [n for n, _ in w], "alpha": [n for n, _ in a]}


def _grid(size: int, tile: int) -> list[tuple[int, int]]:
    n = max(1, size // tile)
    edges = [round(i * size / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def split_regions(images: Images, *, subsample: float, seed: int, tile: int) -> Split:
    """Cut each subsampled image into tiles of at least ``tile`` pixels a side and give
    half of its tiles to each split (an odd tile goes to the weight split).

    An image too small for two tiles goes whole to the weight split (logged).
    """
    if tile < 1:
        raise QuantNASError(f"search.split_tile must be >= 1, got {tile}")
    g = torch.Generator().manual_seed(seed)
    weight: Images = []
    alpha: Images = []
    record: dict = {"kind": "regions", "tile": tile, "images": {}}
    for name, img in _subsample(images, subsample, seed):
        h, w = img.shape[:2]
        boxes = [(y0, x0, y1, x1) for y0, y1 in _grid(h, tile) for x0, x1 in _grid(w, tile)]
        if len(boxes) < 2:
            log.info(
                "search split: %s (%dx%d) is smaller than two %d-pixel tiles; "
                "it goes whole to the weight split",
                name,
                h,
                w,
                tile,
            )
            weight.append((name, img))
            record["images"][name] = {"weight": [[0, 0, h, w]], "alpha": []}
            continue
        order = torch.randperm(len(boxes), generator=g).tolist()
        n_alpha = len(boxes) // 2
        mine: dict[str, list] = {"weight": [], "alpha": []}
        for rank, i in enumerate(order):
            y0, x0, y1, x1 = boxes[i]
            part = "alpha" if rank < n_alpha else "weight"
            (alpha if part == "alpha" else weight).append(
                (f"{name}[{y0}:{y1},{x0}:{x1}]", img[y0:y1, x0:x1])
            )
            mine[part].append([y0, x0, y1, x1])
        record["images"][name] = {k: sorted(v) for k, v in mine.items()}
    if not alpha:
        log.warning(
            "search split: no image is large enough for two %d-pixel tiles; "
            "weight and alpha steps share the images",
            tile,
        )
        alpha = weight
    return weight, alpha, record


def split_training(images: Images, *, kind: str, subsample: float, seed: int, tile: int) -> Split:
    """The weight / alpha split of ``search.split`` (``photos`` or ``regions``)."""
    return SPLITS.get(kind)(images, subsample=subsample, seed=seed, tile=tile)


def _photos(images: Images, *, subsample: float, seed: int, tile: int) -> Split:
    return split_images(images, subsample=subsample, seed=seed)


#: The weight / alpha splits by ``search.split``: ``f(images, *, subsample, seed, tile)``.
SPLITS: Registry = Registry.of(
    "search split", {"photos": _photos, "regions": split_regions}, key="search.split"
)
