"""Training / validation datasets for super-resolution.

Images are held in memory as ``(name, uint8 HxWx3 array)`` pairs. They come either from
photos bundled in the scikit-image wheel (``embedded:train`` / ``embedded:val``, usable
offline, for smoke tests and demos) or from a folder of image files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

from quantnas.data.bicubic import downscale_uint8
from quantnas.data.images import list_images, load_rgb
from quantnas.errors import QuantNASError, read_user_text

__all__ = [
    "EMBEDDED_ALL",
    "EMBEDDED_TEST",
    "EMBEDDED_TRAIN",
    "EMBEDDED_VAL",
    "NamedImage",
    "SRTrainDataset",
    "SRValDataset",
    "embedded_images",
    "load_benchmark_sets",
    "make_loader",
    "resolve_images",
]

logger = logging.getLogger(__name__)

NamedImage = tuple[str, np.ndarray]

EMBEDDED_TRAIN: tuple[str, ...] = (
    "rocket",
    "stereo_motorcycle",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
)
# Three of the five natural photos are held out (a portrait, a still life and fur close-up,
# the last one hard to super-resolve); training keeps two natural photos and the three
# scientific images.
EMBEDDED_VAL: tuple[str, ...] = ("astronaut", "coffee", "chelsea")
# The test split: photos that neither training nor validation uses, only ever reported
# (e.g. the Pareto fronts of ``quantnas sweep``). ``grace_hopper`` is the public-domain
# portrait shipped in matplotlib's ``mpl-data/sample_data``; ``camera`` (CC0), ``coins``
# (Brooklyn Museum, no known copyright restrictions) and ``brick`` (CC0 texture photo) are
# grayscale photos in scikit-image's data folder, replicated to RGB.
EMBEDDED_TEST: tuple[str, ...] = ("grace_hopper", "camera", "coins", "brick")
EMBEDDED_ALL: tuple[str, ...] = EMBEDDED_TRAIN + EMBEDDED_VAL + EMBEDDED_TEST
_EMBEDDED = {"train": EMBEDDED_TRAIN, "val": EMBEDDED_VAL, "test": EMBEDDED_TEST}
_EMBEDDED_PREFIX = "embedded:"
#: Set name under which ``data.benchmarks=embedded:...`` photos are reported (their role).
EMBEDDED_TEST_SET = "test"


def _as_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert a scikit-image sample (gray, RGB or RGBA, any dtype) to ``uint8`` RGB."""
    if arr.dtype != np.uint8:
        from skimage.util import img_as_ubyte

        arr = img_as_ubyte(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def embedded_names(spec: str) -> tuple[str, ...]:
    """The photo names of an embedded split (``train``/``val``) or a comma-separated list.

    Raises:
        QuantNASError: For an unknown split or photo name.

    """
    if spec in _EMBEDDED:
        return _EMBEDDED[spec]
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in EMBEDDED_ALL]
    if not names or unknown:
        raise QuantNASError(
            f"unknown embedded split {(unknown[0] if unknown else spec)!r}; expected 'train', "
            f"'val', 'test' or a comma-separated list of {', '.join(EMBEDDED_ALL)}"
        )
    return names


def _matplotlib_sample(name: str) -> np.ndarray:
    """A photo from matplotlib's bundled ``sample_data`` folder (no download)."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data(f"{name}.jpg", asfileobj=False)) as img:
        return np.asarray(img.convert("RGB"))


#: Embedded photos that come from matplotlib rather than ``skimage.data``.
_MATPLOTLIB_PHOTOS = ("grace_hopper",)


def embedded_images(split: str) -> list[NamedImage]:
    """Load the photos bundled with scikit-image / matplotlib (no download needed).

    Args:
        split: ``"train"`` (:data:`EMBEDDED_TRAIN`), ``"val"`` (:data:`EMBEDDED_VAL`),
            ``"test"`` (:data:`EMBEDDED_TEST`) or a comma-separated list of names from
            :data:`EMBEDDED_ALL`, e.g. ``"coffee,rocket"``.

    Returns:
        List of ``(name, uint8 HxWx3)``; ``stereo_motorcycle`` uses the left image;
        grayscale photos are replicated to RGB.

    Raises:
        QuantNASError: For an unknown split or photo name.

    """
    names = embedded_names(split)
    import skimage.data

    out: list[NamedImage] = []
    for name in names:
        if name in _MATPLOTLIB_PHOTOS:
            data = _matplotlib_sample(name)
        else:
            data = getattr(skimage.data, name)()
        if isinstance(data, tuple):
            data = data[0]
        out.append((name, _as_rgb_uint8(np.asarray(data))))
    return out


def resolve_images(
    source: str | Path,
    *,
    min_size: int | None = None,
    allow_gray: bool = False,
    max_pixels: int | None = None,
) -> list[NamedImage]:
    """Load the images named by a data source.

    Folder images are all loaded eagerly into memory: fine for patch folders and
    benchmark sets, not meant for huge raw collections (cut those with ``prepare``).

    Args:
        source: ``"embedded:train"``, ``"embedded:val"`` or a folder of images.
        min_size: Minimum short side of each image (see :func:`load_rgb`).
        allow_gray: Replicate grayscale images to RGB instead of rejecting them.
        max_pixels: Pixel limit per image file (see :func:`load_rgb`; ``data.max_pixels``).

    Returns:
        List of ``(file stem or embedded name, uint8 HxWx3)``, sorted by file name.

    Raises:
        QuantNASError: Unknown embedded split, missing/empty folder, bad image.

    """
    text = str(source)
    if text.startswith(_EMBEDDED_PREFIX):
        images = embedded_images(text[len(_EMBEDDED_PREFIX) :])
        if min_size is not None:
            for name, arr in images:
                if min(arr.shape[:2]) < min_size:
                    raise QuantNASError(
                        f"embedded image {name} is {arr.shape[0]}x{arr.shape[1]}; "
                        f"need at least {min_size}"
                    )
        return images
    files = list_images(text)
    logger.info("loading %d images from %s", len(files), text)
    return [
        (p.stem, load_rgb(p, allow_gray=allow_gray, min_size=min_size, max_pixels=max_pixels))
        for p in files
    ]


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


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise QuantNASError(f"benchmark sets file {path} does not exist")
    try:
        data = yaml.safe_load(read_user_text(path, "benchmark sets file"))
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).replace("\n", " ")
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
    path: str | Path, *, scale: int, max_pixels: int | None = None
) -> dict[str, SRValDataset]:
    """Load benchmark (test) sets listed in a YAML file, or embedded test photos.

    ``embedded:test`` (or ``embedded:NAME,...``) gives one set named ``test``. The file
    maps set names to folders, e.g.::

        Set5: {hr: Set5/HR, lr: Set5/LR_bicubic/X4}
        Set14: {hr: Set14/HR}        # LR made by bicubic downscaling

    Relative folders are resolved against the YAML file's folder; a plain string is
    shorthand for ``{hr: string}``. Grayscale images are replicated to RGB.

    Args:
        path: YAML file.
        scale: Upscaling factor.
        max_pixels: Pixel limit per image file (see :func:`load_rgb`).

    Returns:
        Mapping set name -> :class:`SRValDataset`, in file order.

    Raises:
        QuantNASError: Malformed YAML, missing ``hr`` key, unknown key, missing folder,
            unreadable image or LR/HR mismatch, naming the file and key.

    """
    if str(path).startswith(_EMBEDDED_PREFIX):
        hr = resolve_images(str(path), max_pixels=max_pixels)
        label = f"data.benchmarks {path}"
        return {EMBEDDED_TEST_SET: SRValDataset(hr, scale=scale, label=label)}
    path = Path(path)
    sets: dict[str, SRValDataset] = {}
    for name, entry in _read_yaml(path).items():
        hr_dir, lr_dir = _entry_dirs(path, str(name), entry)
        hr = resolve_images(hr_dir, allow_gray=True, max_pixels=max_pixels)
        lr = (
            resolve_images(lr_dir, allow_gray=True, max_pixels=max_pixels)
            if lr_dir is not None
            else None
        )
        label = f"{path}: {name}"
        sets[str(name)] = SRValDataset(hr, scale=scale, lr_images=lr, label=label)
        logger.info("benchmark %s: %d images", name, len(hr))
    return sets


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
