"""The images of one job, read once: training, validation and test sets of a config, or
images handed over in memory (the Python API).

A job (``quantnas run``, a sweep trial, an API call) makes one :class:`JobData` and hands it
to every stage: the search, the training, the evaluation and the report read the images
through it, so each file is decoded once per job. In-memory images (``numpy`` arrays, or
``(name, array)`` pairs) take the place of ``data.train`` / ``data.val`` / ``data.benchmarks``
and are checked as files are: ``HxWx3`` (or ``HxWx4``, the alpha dropped), ``uint8``,
16-bit or floating point in ``[0, 1]``; grayscale, other shapes and non-finite values are
refused with a one-line error naming the image. Arrays are under the same pixel budget as
files (``data.max_pixels``, default Pillow's ``MAX_IMAGE_PIXELS``): the shape is checked
before anything is converted or copied, so a huge (even zero-stride) view costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from quantnas.config.specs import HOLDOUT, DataSpec, as_data_spec
from quantnas.config.types import Config
from quantnas.data.benchmarks import load_benchmark_sets
from quantnas.data.datasets import SRValDataset
from quantnas.data.images import GRAY_MODES, _to_rgb, _to_uint8, default_max_pixels
from quantnas.data.roles import holdout_split, training_images, validation_images
from quantnas.data.sources import NamedImage
from quantnas.errors import QuantNASError

__all__ = ["ImagesLike", "JobData", "as_named_images", "check_array_pixels"]

#: Images given in memory: arrays (named ``<role>_<i>``) or ``(name, array)`` pairs.
ImagesLike = Sequence[np.ndarray | tuple[str, np.ndarray]]


def check_array_pixels(
    arr: np.ndarray, label: object, max_pixels: int | None = None, *, scale: int = 1
) -> None:
    """Refuse an ``HxW[xC]`` array over the pixel budget, from its shape alone.

    Nothing is read or converted, so a zero-stride view of any size is refused at once.

    Args:
        arr: The image array (only ``shape`` is looked at).
        label: How the error names the image.
        max_pixels: Largest accepted ``H * W`` (None or 0: Pillow's ``MAX_IMAGE_PIXELS``,
            as ``data.max_pixels``).
        scale: Also refuse an image whose x``scale`` output would exceed the budget.

    Raises:
        QuantNASError: The image, or its x``scale`` output, has more than ``max_pixels``
            pixels (one line naming the limit).

    """
    limit = int(max_pixels) if max_pixels else default_max_pixels()
    if arr.ndim < 2:
        return  # not an image: the conversion reports its shape
    h, w = int(arr.shape[0]), int(arr.shape[1])
    if h * w > limit:
        raise QuantNASError(
            f"image {label} is {h}x{w} = {h * w:,} pixels, more than the limit of {limit:,} "
            "(data.max_pixels / max_pixels; raise it if the image is meant)"
        )
    if scale > 1 and h * w * scale * scale > limit:
        oh, ow = h * scale, w * scale
        raise QuantNASError(
            f"image {label}: its x{scale} output would be {oh}x{ow} = {oh * ow:,} pixels, "
            f"more than the limit of {limit:,} (max_pixels; raise it if the image is meant)"
        )


def as_named_images(
    images: ImagesLike,
    role: str,
    *,
    allow_gray: bool = True,
    max_pixels: int | None = None,
    scale: int = 1,
) -> list[NamedImage]:
    """In-memory images as ``(name, uint8 HxWx3)`` pairs, checked like image files.

    Every array's size is checked (:func:`check_array_pixels`) before any of them is
    converted.

    Args:
        images: Arrays or ``(name, array)`` pairs.
        role: What they are (``train``, ``val``, a test set's name): names the images in
            errors and unnamed images (``train_0``, ...).
        allow_gray: Replicate one-channel images to RGB (``data.gray=replicate``) instead of
            rejecting them.
        max_pixels: Largest ``H * W`` (None or 0: Pillow's ``MAX_IMAGE_PIXELS``).
        scale: Also refuse images whose x``scale`` output would be over ``max_pixels``.

    Raises:
        QuantNASError: No images, a duplicate name, an image over the pixel budget, or an
            image that is not an RGB image.

    """
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence) or not images:
        raise QuantNASError(
            f"{role} images: expected a non-empty list of HxWx3 arrays or (name, array) "
            f"pairs, got {type(images).__name__}"
        )
    items: list[tuple[str, np.ndarray, Path]] = []
    for i, item in enumerate(images):
        name, arr = item if isinstance(item, tuple) and len(item) == 2 else (f"{role}_{i}", item)
        label = Path(f"<{role}[{i}] {name}>")
        if not isinstance(arr, np.ndarray):
            raise QuantNASError(f"image {label} is a {type(arr).__name__}; expected an array")
        check_array_pixels(arr, label, max_pixels, scale=scale)
        items.append((name, arr, label))
    out: list[NamedImage] = []
    for name, arr, label in items:
        out.append(
            (
                str(name),
                np.ascontiguousarray(_to_rgb(_to_uint8(arr, label), label, allow_gray=allow_gray)),
            )
        )
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise QuantNASError(f"{role} images: the name {dup!r} is given twice")
    return out


class JobData:
    """The training, validation and test images of a job, each read (or checked) once.

    Args:
        data: What the job's readers use (a config is resolved into it).
        train: Training images in memory instead of ``data.train``.
        val: Validation images in memory instead of ``data.val``.
        test: Test sets in memory (``{set name: images}``) instead of ``data.benchmarks``.

    """

    def __init__(
        self,
        data: DataSpec | Config,
        *,
        train: ImagesLike | None = None,
        val: ImagesLike | None = None,
        test: Mapping[str, ImagesLike] | None = None,
    ) -> None:
        self.spec = spec = as_data_spec(data)
        if train is not None and val is None and spec.val == HOLDOUT:
            raise QuantNASError(
                "data.val=holdout: in-memory training images need in-memory validation "
                "images too (val=...), or a validation source in data.val"
            )
        opts = {"allow_gray": GRAY_MODES.get(spec.gray), "max_pixels": spec.max_pixels}
        self._train = None if train is None else as_named_images(train, "train", **opts)
        self._val = None if val is None else as_named_images(val, "val", **opts)
        self._test = (
            {str(k): as_named_images(v, str(k), **opts) for k, v in test.items()}
            if test is not None
            else None
        )
        self._val_ds: SRValDataset | None = None
        self._sets: dict[str, SRValDataset] | None = None

    def _read_holdout(self) -> bool:
        """Read both roles at once when validation is held out of the training folder."""
        if self._train is None and self._val is None and self.spec.val == HOLDOUT:
            self._train, self._val = holdout_split(self.spec)
            return True
        return False

    def training_images(self) -> list[NamedImage]:
        """The training images (read on first use)."""
        if self._train is None and not self._read_holdout():
            self._train = training_images(self.spec)
        return self._train

    def validation_images(self) -> list[NamedImage]:
        """The validation images, HR (read on first use)."""
        if self._val is None and not self._read_holdout():
            self._val = validation_images(self.spec)
        return self._val

    def val_dataset(self) -> SRValDataset:
        """The validation set (built once; see :func:`quantnas.data.from_config.val_dataset`)."""
        if self._val_ds is None:
            from quantnas.data.from_config import val_dataset

            self._val_ds = val_dataset(self.spec, images=self.validation_images())
        return self._val_ds

    def eval_sets(self) -> dict[str, SRValDataset]:
        """The validation set, then the test sets (``data.benchmarks`` or in memory)."""
        if self._sets is None:
            sets = {"validation": self.val_dataset()}
            if self._test is not None:
                sets.update(
                    {
                        k: SRValDataset(v, scale=self.spec.scale, label=f"test set {k!r}")
                        for k, v in self._test.items()
                    }
                )
            elif self.spec.benchmarks:
                d = self.spec
                sets.update(
                    load_benchmark_sets(
                        d.benchmarks,
                        scale=d.scale,
                        max_pixels=d.max_pixels,
                        allow_gray=GRAY_MODES.get(d.gray),
                    )
                )
            self._sets = sets
        return self._sets
