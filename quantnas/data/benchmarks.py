"""Benchmark (test) sets: a YAML file of HR / LR folders, or the embedded test photos."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from quantnas.data.datasets import SRValDataset
from quantnas.data.sources import EMBEDDED_PREFIX, resolve_images
from quantnas.errors import QuantNASError, read_user_text

__all__ = ["EMBEDDED_TEST_SET", "load_benchmark_sets"]

logger = logging.getLogger(__name__)

#: Set name under which ``data.benchmarks=embedded:...`` photos are reported (their role).
EMBEDDED_TEST_SET = "test"


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise QuantNASError(f"benchmark sets file {path} does not exist")
    from quantnas.config.io import YamlAliasError, load_yaml

    try:
        data = load_yaml(read_user_text(path, "benchmark sets file"))
    except YamlAliasError as exc:
        raise QuantNASError(f"{path}: {exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        first = " ".join(str(exc).split())
        first = first if len(first) <= 80 else first[:77] + "..."
        raise QuantNASError(f"{path}: malformed YAML ({first})") from exc
    if not isinstance(data, dict) or not data:
        raise QuantNASError(f"{path}: expected a mapping {{SetName: {{hr: dir, lr: dir}}}}")
    return data


def _entry_dirs(path: Path, name: str, entry: object) -> tuple[Path, Path | None]:
    """Validate one YAML entry and return its (hr, lr) folders resolved against ``path``."""
    if isinstance(entry, str):
        entry = {"hr": entry}
    if not isinstance(entry, dict):
        raise QuantNASError(f"{path}: {name} must be a mapping with keys hr and optional lr")
    unknown = sorted(set(entry) - {"hr", "lr"})
    if unknown:
        raise QuantNASError(f"{path}: {name} has unknown key {unknown[0]!r}; expected hr, lr")
    if not entry.get("hr"):
        raise QuantNASError(f"{path}: {name} is missing the 'hr' key (HR image folder)")
    dirs: list[Path | None] = []
    for key in ("hr", "lr"):
        value = entry.get(key)
        if value is None:
            dirs.append(None)
            continue
        folder = Path(str(value)).expanduser()
        folder = folder if folder.is_absolute() else path.parent / folder
        if not folder.is_dir():
            raise QuantNASError(f"{path}: {name}.{key} folder {folder} does not exist")
        dirs.append(folder)
    return dirs[0], dirs[1]


def load_benchmark_sets(
    path: str | Path,
    *,
    scale: int,
    max_pixels: int | None = None,
    allow_gray: bool = True,
) -> dict[str, SRValDataset]:
    """Load benchmark (test) sets listed in a YAML file, or embedded test photos.

    ``embedded:test`` (or ``embedded:NAME,...``) gives one set named ``test``. The file
    maps set names to folders, e.g.::

        Set5: {hr: Set5/HR, lr: Set5/LR_bicubic/X4}
        Set14: {hr: Set14/HR}        # LR made by bicubic downscaling

    Relative folders are resolved against the YAML file's folder; a plain string is
    shorthand for ``{hr: string}``. Grayscale images are replicated to RGB (the SR
    convention) unless ``allow_gray`` is False (``data.gray=reject``).

    Args:
        path: YAML file.
        scale: Upscaling factor.
        max_pixels: Pixel limit per image file (see :func:`load_rgb`).
        allow_gray: Replicate grayscale images to RGB instead of rejecting them.

    Returns:
        Mapping set name -> :class:`SRValDataset`, in file order.

    Raises:
        QuantNASError: Malformed YAML, missing ``hr`` key, unknown key, missing folder,
            unreadable image or LR/HR mismatch, naming the file and key.

    """
    if str(path).startswith(EMBEDDED_PREFIX):
        hr = resolve_images(str(path), max_pixels=max_pixels)
        label = f"data.benchmarks {path}"
        return {EMBEDDED_TEST_SET: SRValDataset(hr, scale=scale, label=label)}
    path = Path(path)
    sets: dict[str, SRValDataset] = {}
    for name, entry in _read_yaml(path).items():
        hr_dir, lr_dir = _entry_dirs(path, str(name), entry)
        hr = resolve_images(hr_dir, allow_gray=allow_gray, max_pixels=max_pixels)
        lr = (
            resolve_images(lr_dir, allow_gray=allow_gray, max_pixels=max_pixels)
            if lr_dir is not None
            else None
        )
        label = f"{path}: {name}"
        sets[str(name)] = SRValDataset(hr, scale=scale, lr_images=lr, label=label)
        logger.info("benchmark %s: %d images", name, len(hr))
    return sets
