"""Cut HR training images into overlapping square patches (the ``prepare`` verb)."""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from quantnas.data.images import list_images, load_rgb, save_rgb
from quantnas.errors import QuantNASError

__all__ = ["patch_starts", "prepare_patches"]

logger = logging.getLogger(__name__)


def patch_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets of patches along one axis (BasicSR ``extract_subimages`` rule).

    Offsets are ``0, stride, 2*stride, ...`` while the patch fits, plus one last patch
    flush with the end when the regular grid leaves pixels uncovered.

    Args:
        length: Image size along the axis.
        patch: Patch size.
        stride: Step between patches.

    Returns:
        Sorted offsets; empty if ``length < patch``.

    """
    if length < patch:
        return []
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def _round_down(value: int, scale: int, what: str) -> int:
    rounded = value - value % scale
    if rounded < scale:
        raise QuantNASError(f"prepare: {what} {value} is smaller than the scale {scale}")
    return rounded


def _cut(arr: np.ndarray, patch: int, stride: int) -> list[np.ndarray]:
    h, w = arr.shape[:2]
    return [
        arr[top : top + patch, left : left + patch]
        for top in patch_starts(h, patch, stride)
        for left in patch_starts(w, patch, stride)
    ]


def _tile_keys(files: list[Path]) -> dict[Path, str]:
    """The name each image's tiles start with: its stem, or its full name when stems clash.

    ``a.png`` and ``a.jpg`` would both write ``a_s001.png``; when any two stems are equal
    (ignoring case, for case-insensitive file systems) every image's tiles are named after
    the full file name (``a.png_s001.png``), which is unique in a folder.
    """
    stems = [p.stem.casefold() for p in files]
    if len(set(stems)) == len(stems):
        return {p: p.stem for p in files}
    logger.warning(
        "prepare: several images share a name stem (e.g. a.png and a.jpg); tiles are named "
        "after the full file names (<name.ext>_s001.png)"
    )
    return {p: p.name for p in files}


_TILE = re.compile(r".+_s\d{3,}\.png")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def _remove_stale_partials(out: Path) -> None:
    """Delete the hidden ``.OUT.<pid>.*.partial`` folders an earlier, killed ``prepare`` of
    the same ``out`` left: only when the process that made one is gone and the folder holds
    nothing but tiles (``*_sNNN.png``). Folders of running processes are left alone.
    """
    if not out.parent.is_dir():
        return
    for tmp in out.parent.glob(f".{glob.escape(out.name)}.*.partial"):
        parts = tmp.name[len(out.name) + 2 :].split(".")
        pid = int(parts[0]) if parts[0].isdigit() else None
        if not tmp.is_dir() or tmp.is_symlink() or (pid is not None and _alive(pid)):
            continue
        if all(p.is_file() and _TILE.fullmatch(p.name) for p in tmp.iterdir()):
            logger.info("prepare: removing %s, left by an interrupted prepare", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _new_output(out: Path) -> Path:
    """A hidden temporary folder next to ``out`` (refusing an ``out`` that holds files)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise QuantNASError(
            f"prepare: output {out} already exists and is not an empty folder; choose a new "
            "folder (nothing was written)"
        )
    _remove_stale_partials(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=out.parent))
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)  # mkdtemp makes 0700; the result should look like a mkdir
    return tmp


def prepare_patches(
    src: str | Path,
    out: str | Path,
    *,
    patch: int = 200,
    stride: int = 70,
    scale: int = 4,
    skip_bad: bool = False,
    allow_gray: bool = True,
) -> int:
    """Cut every image of ``src`` into ``patch x patch`` PNG tiles in ``out``.

    ``patch`` and ``stride`` are rounded down to multiples of ``scale``. Tiles are named
    ``<stem>_s001.png``, ``<stem>_s002.png``, ... in row-major order (``<name.ext>_s001.png``
    for every image when two images share a stem). Images smaller than a patch are skipped
    with a warning.

    Tiles are written into a temporary folder next to ``out`` that is renamed to ``out``
    only when every image succeeded: a bad image leaves nothing behind (``out`` must not
    exist or be empty). Such folders that a killed ``prepare`` of the same ``out`` left
    (``.OUT.<pid>.*.partial``, holding only tiles) are removed first.

    Args:
        src: Folder of HR images (RGB; see :func:`load_rgb`).
        out: Output folder (created).
        patch: Tile size in HR pixels.
        stride: Step between tiles.
        scale: SR scale the tiles are meant for.
        skip_bad: Skip images that cannot be read (corrupt, grayscale, over the pixel
            limit, ...) instead of failing; they are listed in a warning at the end.
        allow_gray: Replicate grayscale images to RGB (``--gray replicate``, the SR
            convention) instead of rejecting them (``--gray reject``).

    Returns:
        The number of tiles written.

    Raises:
        QuantNASError: Missing/empty source folder, bad image (without ``skip_bad``),
            sizes smaller than the scale, an ``out`` that holds files, or no image large
            enough for one tile.

    """
    patch = _round_down(int(patch), scale, "patch")
    stride = _round_down(int(stride), scale, "stride")
    files = list_images(src)
    keys = _tile_keys(files)
    out = Path(out)
    tmp = _new_output(out)
    total = 0
    skipped: list[str] = []
    try:
        for i, path in enumerate(files, start=1):
            try:
                img = load_rgb(path, allow_gray=allow_gray)
            except QuantNASError as e:
                if not skip_bad:
                    raise
                skipped.append(f"{path.name} ({e})")
                logger.warning("prepare: skipping %s: %s", path, e)
                continue
            tiles = _cut(img, patch, stride)
            if not tiles:
                logger.warning("prepare: %s is smaller than %dx%d, skipped", path, patch, patch)
            for k, tile in enumerate(tiles, start=1):
                save_rgb(tmp / f"{keys[path]}_s{k:03d}.png", np.ascontiguousarray(tile))
            total += len(tiles)
            logger.info("prepare: [%d/%d] %s -> %d patches", i, len(files), path.name, len(tiles))
        if total == 0:
            raise QuantNASError(f"prepare: no image in {src} is at least {patch}x{patch} pixels")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if skipped:
        logger.warning("prepare: skipped %d bad image(s): %s", len(skipped), "; ".join(skipped))
    logger.info("prepare: wrote %d patches of %dx%d to %s", total, patch, patch, out)
    return total
