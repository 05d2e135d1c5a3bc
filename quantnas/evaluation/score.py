"""Evaluate an SR model (or the bicubic baseline) on a validation set, or score files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from quantnas.data.bicubic import resize_tensor
from quantnas.data.datasets import SRValDataset
from quantnas.data.images import list_images, load_rgb, save_rgb
from quantnas.errors import QuantNASError
from quantnas.evaluation.metrics import sr_metrics, to_uint8_image

__all__ = [
    "bicubic_reference",
    "bicubic_upscaler",
    "eval_sets",
    "evaluate",
    "score_paths",
    "validate",
]

logger = logging.getLogger(__name__)

Upscaler = Callable[[torch.Tensor], torch.Tensor]


def bicubic_upscaler(scale: int) -> Upscaler:
    """Return a function that upscales ``(N, C, h, w)`` tensors with MATLAB bicubic.

    Args:
        scale: Upscaling factor.

    Returns:
        Callable mapping LR to ``(N, C, h*scale, w*scale)`` (not clamped).

    """

    def upscale(x: torch.Tensor) -> torch.Tensor:
        return resize_tensor(x, float(scale))

    return upscale


def _summary(rows: list[dict]) -> dict:
    """Average per-image rows into the evaluation result shape."""
    return {
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "images": rows,
    }


def _row(name: str, sr: np.ndarray, hr: np.ndarray, scale: int, lr_size: list[int]) -> dict:
    if sr.shape != hr.shape:
        raise QuantNASError(f"image {name}: SR shape {sr.shape} differs from HR shape {hr.shape}")
    try:
        metrics = sr_metrics(sr, hr, scale=scale)
    except QuantNASError as err:  # name the image: the metric alone cannot
        raise QuantNASError(f"image {name}: {err}") from None
    return {"name": name, **metrics, "lr_size": lr_size}


def evaluate(
    model: Upscaler,
    dataset: SRValDataset,
    *,
    device: str | torch.device = "cpu",
    save_dir: Path | None = None,
    loss: bool = False,
) -> dict:
    """Run ``model`` on every image of ``dataset`` and compute PSNR/SSIM on Y.

    Runs under ``torch.no_grad``; an ``nn.Module`` is put in eval mode and restored to
    its previous mode afterwards. SR outputs are clamped and rounded to 8 bits before
    scoring, as SR papers do.

    Args:
        model: Callable mapping a ``(1, 3, h, w)`` LR tensor to ``(1, 3, h*s, w*s)``.
        dataset: Validation set (its ``scale`` sets the border crop).
        device: Device the LR tensors are moved to.
        save_dir: If given, SR images are written there as ``<name>.png``.
        loss: Also give each image's L1 loss of the raw (unclamped) output as ``l1``.

    Returns:
        ``{"psnr": mean, "ssim": mean, "images": [{"name", "psnr", "ssim", "lr_size"}]}``.

    Raises:
        QuantNASError: If an SR output does not match its HR size.

    """
    module = model if isinstance(model, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    rows: list[dict] = []
    try:
        with torch.no_grad():
            for i in range(len(dataset)):
                name, lr, hr = dataset[i]
                out = model(lr[None].to(device)).cpu()
                sr = to_uint8_image(out)
                hr_u8 = to_uint8_image(hr)
                rows.append(_row(name, sr, hr_u8, dataset.scale, list(lr.shape[-2:])))
                if loss:
                    rows[-1]["l1"] = float(F.l1_loss(out[0], hr))
                if save_dir is not None:
                    save_rgb(Path(save_dir) / f"{name}.png", sr)
                logger.debug("%s: PSNR %.3f SSIM %.4f", name, rows[-1]["psnr"], rows[-1]["ssim"])
    finally:
        if module is not None:
            module.train(was_training)
    return _summary(rows)


def validate(model: torch.nn.Module, dataset: SRValDataset, device: torch.device) -> dict:
    """Mean L1 loss and Y-PSNR/SSIM of ``model`` on a validation set (the per-epoch check).

    Returns:
        ``{"val_loss", "val_psnr", "val_ssim"}``.

    """
    res = evaluate(model, dataset, device=device, loss=True)
    n = max(1, len(res["images"]))
    return {
        "val_loss": sum(r["l1"] for r in res["images"]) / n,
        "val_psnr": sum(r["psnr"] for r in res["images"]) / n,
        "val_ssim": sum(r["ssim"] for r in res["images"]) / n,
    }


def bicubic_reference(dataset: SRValDataset) -> dict[str, float]:
    """PSNR/SSIM of MATLAB bicubic upscaling on a validation set."""
    res = evaluate(bicubic_upscaler(dataset.scale), dataset)
    return {"psnr": res["psnr"], "ssim": res["ssim"]}


def eval_sets(data: list[str], benchmarks: str | None, *, scale: int) -> dict[str, SRValDataset]:
    """The sets ``quantnas eval`` scores: HR folders / ``embedded:...`` and benchmark sets.

    Args:
        data: HR image folders (named by folder name) or ``embedded:...`` sources.
        benchmarks: YAML file of benchmark sets or ``embedded:test`` (see
            :func:`~quantnas.data.benchmarks.load_benchmark_sets`).
        scale: Upscaling factor.

    Raises:
        QuantNASError: Nothing to evaluate, or a bad folder / image / YAML file.

    """
    from quantnas.data.benchmarks import load_benchmark_sets
    from quantnas.data.sources import resolve_images

    sets: dict[str, SRValDataset] = {}
    for d in data:
        name = Path(d).name if not d.startswith("embedded:") else d
        sets[name] = SRValDataset(resolve_images(d, allow_gray=True), scale=scale)
    if benchmarks:
        sets.update(load_benchmark_sets(benchmarks, scale=scale))
    if not sets:
        raise QuantNASError("nothing to evaluate: give --data DIR and/or --benchmarks YAML")
    return sets


def _pairs(sr: Path, hr: Path) -> list[tuple[str, Path, Path]]:
    """Match SR and HR files by stem (single files are paired directly)."""
    if sr.is_file() and hr.is_file():
        return [(hr.stem, sr, hr)]
    if sr.is_file() != hr.is_file():
        raise QuantNASError(f"score: {sr} and {hr} must both be files or both be folders")
    sr_files = {p.stem: p for p in list_images(sr)}
    hr_files = list_images(hr)
    missing = [p.stem for p in hr_files if p.stem not in sr_files]
    if missing:
        raise QuantNASError(
            f"score: no SR image in {sr} for HR {missing[0]} ({len(missing)} missing in total)"
        )
    return [(p.stem, sr_files[p.stem], p) for p in hr_files]


def score_paths(sr: Path, hr: Path, *, scale: int) -> dict:
    """Score SR image files against HR files (PSNR/SSIM on Y, border ``scale``).

    HR images are cropped (top-left) to a multiple of ``scale`` first, as when the LR
    was made. Folders are matched by file stem; every HR image needs an SR image.

    Args:
        sr: SR image file or folder.
        hr: HR image file or folder.
        scale: SR scale.

    Returns:
        Same shape as :func:`evaluate` (``lr_size`` is the HR size divided by ``scale``).

    Raises:
        QuantNASError: Missing files, unmatched names, or size mismatches.

    """
    rows = []
    for name, sr_path, hr_path in _pairs(Path(sr), Path(hr)):
        hr_img = load_rgb(hr_path, allow_gray=True)
        h, w = hr_img.shape[0] - hr_img.shape[0] % scale, hr_img.shape[1] - hr_img.shape[1] % scale
        sr_img = load_rgb(sr_path, allow_gray=True)
        rows.append(_row(name, sr_img, hr_img[:h, :w], scale, [h // scale, w // scale]))
    return _summary(rows)
