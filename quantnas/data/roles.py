"""The three roles of data: training, validation (chooses epochs, checkpoints and
architectures) and test (only reported).

``data.val`` names the validation images: ``embedded:...``, a folder, ``holdout`` (a fixed
part of the training images, taken out of training) or ``auto`` (the default:
``embedded:val`` when training on embedded photos, else ``holdout``; resolved in the
:class:`~quantnas.config.specs.DataSpec`). Test sets come from ``data.benchmarks`` and never
choose anything. Every reader takes the job's ``DataSpec`` (or a config, resolved into one).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from quantnas.config.specs import AUTO, EMBEDDED, HOLDOUT, DataSpec, as_data_spec
from quantnas.config.types import Config
from quantnas.data.images import GRAY_MODES
from quantnas.data.sources import NamedImage, embedded_names, resolve_images
from quantnas.errors import QuantNASError

log = logging.getLogger(__name__)

__all__ = [
    "AUTO",
    "HOLDOUT",
    "holdout_names",
    "holdout_split",
    "reader_limits",
    "training_images",
    "validation_images",
    "validation_source",
]
_EMBEDDED = EMBEDDED


def reader_limits(spec: DataSpec) -> dict[str, Any]:
    """The reader settings: pixels per image and per set, the grayscale rule."""
    return {
        "max_pixels": spec.max_pixels,
        "max_total_pixels": spec.max_total_pixels,
        "allow_gray": GRAY_MODES.get(spec.gray),
    }


def validation_source(data: DataSpec | Config) -> str:
    """``data.val`` with ``auto`` resolved."""
    return as_data_spec(data).val


def holdout_names(names: list[str], fraction: float) -> list[str]:
    """The images held out for validation: a fixed choice that depends only on the names.

    Names are ordered by a hash of the name, so the choice does not change with the seed or
    with the order of the files; ``max(1, round(n * fraction))`` images, never all of them.

    Raises:
        QuantNASError: Fewer than two training images.

    """
    if len(names) < 2:
        raise QuantNASError(
            "data.val=holdout needs at least 2 training images (got "
            f"{len(names)}); give a validation folder with data.val=DIR"
        )
    k = min(len(names) - 1, max(1, round(len(names) * fraction)))
    ranked = sorted(names, key=lambda n: hashlib.sha1(n.encode("utf-8")).hexdigest())
    return sorted(ranked[:k])


def holdout_split(data: DataSpec | Config) -> tuple[list[NamedImage], list[NamedImage]]:
    """``(training, validation)`` images of ``data.val=holdout`` (the folder read once)."""
    spec = as_data_spec(data)
    images = resolve_images(spec.train, **reader_limits(spec))
    held = set(holdout_names([n for n, _ in images], spec.val_holdout))
    log.info(
        "validation: %d of %d training images held out (data.val=holdout): %s",
        len(held),
        len(images),
        ", ".join(sorted(held)),
    )
    return [im for im in images if im[0] not in held], [im for im in images if im[0] in held]


def _same_source(a: str, b: str) -> bool:
    if a.startswith(_EMBEDDED) or b.startswith(_EMBEDDED):
        return False
    return Path(a).resolve() == Path(b).resolve()


def training_images(data: DataSpec | Config) -> list[NamedImage]:
    """The training images (without the held-out validation images)."""
    spec = as_data_spec(data)
    source = spec.val
    if source == HOLDOUT:
        return holdout_split(spec)[0]
    if _same_source(spec.train, source):
        raise QuantNASError(
            f"data.val {source!r} is the training folder; use data.val=holdout or another folder"
        )
    images = resolve_images(spec.train, **reader_limits(spec))
    if spec.train.startswith(_EMBEDDED) and source.startswith(_EMBEDDED):
        val_names = set(embedded_names(source[len(_EMBEDDED) :]))  # names: nothing read twice
        both = sorted(val_names & {n for n, _ in images})
        if both:
            raise QuantNASError(
                f"data.val: embedded photo {both[0]!r} is also in data.train; "
                "the validation images must not be trained on"
            )
    return images


def validation_images(data: DataSpec | Config) -> list[NamedImage]:
    """The validation images (HR)."""
    spec = as_data_spec(data)
    if spec.val == HOLDOUT:
        return holdout_split(spec)[1]
    return resolve_images(spec.val, **reader_limits(spec))
