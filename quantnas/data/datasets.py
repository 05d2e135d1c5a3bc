"""Super-resolution datasets: random training crops with bicubic LR, full validation
images, and the data loader.

The images come from :mod:`quantnas.data.sources` (embedded photos or a folder).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from quantnas.data.bicubic import downscale_uint8
from quantnas.data.sources import NamedImage, resolve_images
from quantnas.errors import QuantNASError

#: ``resolve_images`` is :mod:`quantnas.data.sources`'s, named here for older importers.
__all__ = ["SRTrainDataset", "SRValDataset", "make_loader", "resolve_images"]


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    """``uint8 HxWx3`` -> float32 ``3xHxW`` tensor in ``[0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255.0)


def _randint(high: int) -> int:
    """Draw an int in ``[0, high)`` from torch's global RNG."""
    return int(torch.randint(0, high, (1,)).item())


class SRTrainDataset(Dataset):
    """Random aligned HR crops with on-the-fly bicubic LR.

    Each item picks image ``index % len(images)``, takes a random ``lr_crop*scale``
    square HR crop whose corner lies on a multiple of ``scale``, applies random
    horizontal flip, vertical flip and 90-degree rotation (when ``augment``), and makes
    the LR with :func:`downscale_uint8`. All randomness comes from torch's global RNG
    (``torch.randint``), so DataLoader workers are seeded by torch and a saved RNG state
    reproduces the stream.

    With ``min_std > 0`` a crop whose standard deviation (on the ``[0, 1]`` scale) is below
    it, e.g. the black sky of ``hubble_deep_field``, is redrawn up to ``tries`` times (the
    last draw is kept), so training steps are not spent on flat patches.

    Items are ``(lr, hr)`` float32 tensors ``3 x h x w`` in ``[0, 1]``.
    """

    def __init__(
        self,
        images: Sequence[NamedImage],
        *,
        scale: int,
        lr_crop: int,
        augment: bool = True,
        repeat: int = 1,
        min_std: float = 0.0,
        tries: int = 10,
    ) -> None:
        if not images:
            raise QuantNASError("SRTrainDataset: no training images")
        if scale < 1 or lr_crop < 1 or repeat < 1:
            raise QuantNASError(
                f"SRTrainDataset: scale, lr_crop and repeat must be >= 1, "
                f"got {scale}, {lr_crop}, {repeat}"
            )
        self.images = list(images)
        self.scale = int(scale)
        self.lr_crop = int(lr_crop)
        self.hr_crop = self.lr_crop * self.scale
        self.augment = augment
        self.repeat = int(repeat)
        self.min_std = float(min_std) * 255.0
        self.tries = max(1, int(tries))
        for name, arr in self.images:
            h, w = arr.shape[:2]
            if min(h, w) < self.hr_crop:
                raise QuantNASError(
                    f"training image {name} is {h}x{w}, smaller than the HR crop "
                    f"{self.hr_crop}x{self.hr_crop} (lr_crop {lr_crop} x scale {scale})"
                )

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def _crop(self, arr: np.ndarray) -> np.ndarray:
        h, w = arr.shape[:2]
        top = self.scale * _randint((h - self.hr_crop) // self.scale + 1)
        left = self.scale * _randint((w - self.hr_crop) // self.scale + 1)
        return arr[top : top + self.hr_crop, left : left + self.hr_crop]

    @staticmethod
    def _augment(arr: np.ndarray) -> np.ndarray:
        if _randint(2):
            arr = arr[:, ::-1]
        if _randint(2):
            arr = arr[::-1, :]
        if _randint(2):
            arr = arr.transpose(1, 0, 2)
        return np.ascontiguousarray(arr)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, arr = self.images[index % len(self.images)]
        hr = self._crop(arr)
        for _ in range(self.tries - 1):
            if self.min_std <= 0 or hr[::4, ::4].std() >= self.min_std:
                break
            hr = self._crop(arr)
        hr = self._augment(hr) if self.augment else np.ascontiguousarray(hr)
        lr = downscale_uint8(hr, self.scale)
        return _to_tensor(lr), _to_tensor(hr)


def _lr_lookup(lr_images: Sequence[NamedImage], scale: int) -> dict[str, np.ndarray]:
    """Index LR images by name, accepting BasicSR-style ``<name>x<scale>`` stems."""
    table: dict[str, np.ndarray] = {}
    suffix = f"x{scale}"
    for name, arr in lr_images:
        key = name[: -len(suffix)] if name.endswith(suffix) else name
        table[key] = arr
        table.setdefault(name, arr)
    return table


class SRValDataset(Dataset):
    """Full validation/benchmark images.

    HR images are cropped (top-left) to a multiple of ``scale``. LR images are taken
    from ``lr_images`` matched by name (``name`` or BasicSR's ``namex4``) or, without
    them, made by :func:`downscale_uint8`. Items are ``(name, lr, hr)`` with float32
    ``3 x h x w`` tensors in ``[0, 1]``; use batch size 1 (sizes differ).
    """

    def __init__(
        self,
        hr_images: Sequence[NamedImage],
        *,
        scale: int,
        lr_images: Sequence[NamedImage] | None = None,
        label: str = "validation set",
    ) -> None:
        if not hr_images:
            raise QuantNASError(f"{label}: no HR images")
        self.scale = int(scale)
        self.label = label
        lookup = _lr_lookup(lr_images, self.scale) if lr_images is not None else None
        self.items: list[tuple[str, np.ndarray, np.ndarray]] = []
        for name, arr in hr_images:
            hr = self._crop_hr(name, arr)
            if lookup is None:
                lr = downscale_uint8(hr, self.scale)
            else:
                lr = self._match(name, hr, lookup)
            self.items.append((name, lr, hr))

    def _crop_hr(self, name: str, arr: np.ndarray) -> np.ndarray:
        h, w = arr.shape[:2]
        hc, wc = h - h % self.scale, w - w % self.scale
        if hc == 0 or wc == 0:
            raise QuantNASError(f"{self.label}: image {name} ({h}x{w}) is smaller than the scale")
        return np.ascontiguousarray(arr[:hc, :wc])

    def _match(self, name: str, hr: np.ndarray, lookup: dict[str, np.ndarray]) -> np.ndarray:
        if name not in lookup:
            raise QuantNASError(
                f"{self.label}: no LR image for HR {name} (expected {name} or {name}x{self.scale})"
            )
        lr = lookup[name]
        want = (hr.shape[0] // self.scale, hr.shape[1] // self.scale)
        if tuple(lr.shape[:2]) != want:
            raise QuantNASError(
                f"{self.label}: LR image {name} is {lr.shape[0]}x{lr.shape[1]}, expected "
                f"{want[0]}x{want[1]} (HR {hr.shape[0]}x{hr.shape[1]} / scale {self.scale})"
            )
        return lr

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        name, lr, hr = self.items[index]
        return name, _to_tensor(lr), _to_tensor(hr)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    drop_last: bool = True,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """Build a :class:`~torch.utils.data.DataLoader` with the project's defaults.

    Args:
        dataset: Dataset to load from.
        batch_size: Samples per batch.
        shuffle: Shuffle every epoch.
        num_workers: Worker processes (0 = load in the main process).
        drop_last: Drop the last incomplete batch.
        generator: RNG for shuffling (for reproducible order).

    Returns:
        The data loader.

    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=num_workers > 0,
    )
