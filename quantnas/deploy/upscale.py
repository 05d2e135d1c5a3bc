"""``quantnas upscale``: run a trained or exported network on image files.

Colour handling:

* RGB: upscaled by the network.
* RGBA / gray+alpha / palette with transparency: colour by the network, the alpha channel
  by MATLAB bicubic (clipped to its range); written with alpha.
* grayscale: replicated to RGB, upscaled, and written back as gray (mean of the three
  output channels).
* palette: converted to RGB(A) and written as RGB(A) (an upscaled image has new colours).
* 16-bit (PNG, TIFF): read at full depth, scaled to ``[0, 1]`` by ``1/65535`` and written
  as 16-bit PNG; 8-bit images are written as 8-bit PNG.
* floating point (e.g. float32 TIFF): finite values in ``[0, 1]`` are the intensities
  (written as 8-bit PNG); NaN, Inf or values outside ``[0, 1]`` are refused.

Sizes: an input whose header claims more than ``--max-pixels`` pixels (default Pillow's
``MAX_IMAGE_PIXELS``, about 89.5 M, the data path's limit) is refused before decoding, and
so is one whose output (input pixels x scale^2) would claim more: the result must itself
be readable by the same limit. A network output holding NaN or Inf is refused (nothing
written), naming the input.

Outputs go to ``OUT/<name>_x<scale>.png``. A file that cannot be read or processed prints one
``error:`` line and the remaining files are still processed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from quantnas.data.headers import image_size
from quantnas.data.images import IMAGE_EXTENSIONS, default_max_pixels
from quantnas.deploy.backends import Upscaler
from quantnas.deploy.picture import (
    Picture,
    _png16,  # noqa: F401 - named here for older importers
    read_picture,
    write_picture,
)
from quantnas.deploy.tiling import upscale_tiled
from quantnas.errors import QuantNASError

__all__ = [
    "Picture",
    "check_output_size",
    "read_picture",
    "tile_overlap",
    "upscale_files",
    "upscale_picture",
    "write_picture",
]

log = logging.getLogger(__name__)


def upscale_picture(model: Upscaler, pic: Picture, *, tile: int, overlap: int) -> Picture:
    """Upscale colour with the model (tiled) and alpha with MATLAB bicubic."""
    from quantnas.data.bicubic import imresize

    h, w = pic.rgb.shape[:2]
    if min(h, w) < model.min_side:
        raise QuantNASError(
            f"image is {h}x{w}; the model needs sides of at least {model.min_side} pixels"
        )
    lr = pic.rgb.transpose(2, 0, 1)[None]
    sr = upscale_tiled(model, lr, model.scale, tile=tile, overlap=overlap, min_side=model.min_side)[
        0
    ].transpose(1, 2, 0)
    if not bool(np.isfinite(sr).all()):
        raise QuantNASError(
            "the network's output holds non-finite values (NaN or Inf); nothing written"
        )
    alpha = None
    if pic.alpha is not None:
        alpha = np.clip(imresize(pic.alpha, model.scale), 0.0, 1.0).astype(np.float32)
    return Picture(np.ascontiguousarray(sr), alpha, pic.gray, pic.bits)


def check_output_size(path: Path, scale: int, max_pixels: int | None = None) -> None:
    """Refuse an input (from its header) whose x``scale`` output would claim more than
    ``max_pixels`` pixels (None or 0: Pillow's ``MAX_IMAGE_PIXELS``), or that does itself.
    """
    limit = int(max_pixels) if max_pixels else default_max_pixels()
    size = image_size(path, limit)
    if size is None:
        return  # not an image a header reader knows: read_picture reports it
    w, h = size[0] * scale, size[1] * scale
    if w * h > limit:
        raise QuantNASError(
            f"{path}: its x{scale} output would be {w}x{h} = {w * h:,} pixels, more than the "
            f"limit of {limit:,} (raise --max-pixels if it is meant)"
        )


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, and the image files directly inside given folders (sorted)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = (f for f in p.iterdir() if f.is_file())
            files.extend(sorted(f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            files.append(p)  # missing files are reported one by one
    return files


def tile_overlap(model: Upscaler, *, tile: int, overlap: int | None) -> int:
    """The LR overlap of tiles: ``overlap``, or the network's halo when None (16 for a
    network with whole-image statistics); warns when tiles will not match the untiled result.
    """
    halo = model.halo
    if overlap is None:
        overlap = halo if halo is not None else 16
    if tile > 0 and halo is None:
        log.warning(
            "this network uses whole-image statistics (ADQ or ESA): tiled output differs from "
            "the untiled result; use --tile 0 for the exact result"
        )
    elif tile > 0 and overlap < halo:
        log.warning(
            "--overlap %d is less than the network's halo of %d LR pixels: tile borders will "
            "differ from the untiled result",
            overlap,
            halo,
        )
    return overlap


def upscale_files(
    model: Upscaler,
    inputs: list[str],
    out_dir: str | Path,
    *,
    tile: int = 256,
    overlap: int | None = None,
    progress: bool = True,
    max_pixels: int | None = None,
) -> tuple[list[Path], list[str]]:
    """Upscale every input image into ``out_dir``.

    Args:
        model: The network.
        inputs: Image files and folders.
        out_dir: Output folder (created).
        tile: Core tile side in LR pixels; 0 processes each image whole.
        overlap: LR pixels of context around each tile; None = the network's halo (exact
            tiling), or 16 for networks with whole-image statistics.
        progress: Show a progress bar over the images (on a terminal).
        max_pixels: Largest input and output ``H * W`` (None or 0: Pillow's
            ``MAX_IMAGE_PIXELS``), checked from each file's header before decoding.

    Returns:
        ``(written files, one error line per failed input)``.

    """
    from quantnas.rundir.log import progress as bar

    files = collect_inputs(inputs)
    if not files:
        raise QuantNASError("no input images (give image files or folders holding images)")
    overlap = tile_overlap(model, tile=tile, overlap=overlap)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    errors: list[str] = []
    taken: set[str] = set()
    it = bar(files, desc="upscale", enabled=progress)
    for f in it:
        name = f"{f.stem}_x{model.scale}.png"
        try:
            if name in taken:
                raise QuantNASError(f"{f}: another input already wrote {out / name}")
            check_output_size(f, model.scale, max_pixels)
            pic = read_picture(f, max_pixels)
            try:
                sr = upscale_picture(model, pic, tile=tile, overlap=overlap)
            except QuantNASError as e:
                raise QuantNASError(f"{f}: {e}") from None
            written.append(write_picture(out / name, sr))
            taken.add(name)
        except QuantNASError as e:
            line = f"error: {e}"
            errors.append(line)
            it.write(line, file=sys.stderr)
    return written, errors
