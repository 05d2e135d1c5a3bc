"""Pieces shared by the search and training loops: devices, schedules, batches, validation."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from quantnas.config import Config
from quantnas.data.datasets import SRTrainDataset, SRValDataset, resolve_images
from quantnas.data.roles import training_images, validation_images
from quantnas.errors import QuantNASError
from quantnas.metrics import sr_metrics, to_uint8_image

log = logging.getLogger("quantnas")


def select_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; asking for CUDA without it is an error."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise QuantNASError(f"device={name!r} requested but CUDA is not available; use device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise QuantNASError(f"device {name!r} unknown; expected cpu or cuda[:N]") from None


def set_threads(threads: int) -> None:
    """Set PyTorch's intra-op threads (0 = its default) and keep numpy's BLAS at one thread.

    numpy's OpenBLAS threads busy-wait after each call and steal the cores PyTorch's
    OpenMP threads compute on; the data pipeline only needs small products.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def param_groups(
    params: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    weight_decay: float,
    step_lr_scale: float,
) -> list[dict]:
    """Adam parameter groups: quantizer step sizes get ``lr * step_lr_scale`` and no decay.

    Adam normalises gradient magnitudes, so LSQ's step-gradient scaling has no effect under
    it; LSQ steps are orders of magnitude smaller than weights and, at the weights' learning
    rate, one update can jump a step by 10-20x (all weights round to zero, the layer dies).
    A smaller learning rate for steps keeps them stable.
    """
    steps, others = [], []
    for name, p in params:
        (steps if name.endswith(".step") else others).append(p)
    groups = [{"params": others, "lr": lr, "weight_decay": weight_decay}]
    if steps:
        groups.append({"params": steps, "lr": lr * step_lr_scale, "weight_decay": 0.0})
    return groups


def pixel_loss(name: str):
    """The training loss ``f(sr, hr) -> scalar`` named by ``train.loss``.

    ``l1`` (the SR default), ``mse`` (the PSNR objective itself; used to fine-tune at the
    end, as RFDN does) or ``charbonnier`` (``sqrt(d^2 + 1e-6)``, a smooth L1).
    """
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "charbonnier":
        return lambda sr, hr: torch.sqrt((sr - hr).pow(2) + 1e-6).mean()
    raise QuantNASError(f"unknown loss {name!r}; expected l1, mse or charbonnier")


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup_steps`` then cosine decay to ``min_ratio`` of the base lr.

    The short warm-up keeps Adam from killing ReLUs in the first steps (SPEC section 7).
    """
    total = max(1, total_steps)
    warm = max(0, min(warmup_steps, total - 1))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def check_finite(value: float, what: str, *, epoch: int, checkpoint: Path, hint: str) -> None:
    """Stop a run whose loss became NaN or infinite, naming the last good checkpoint.

    Args:
        value: The loss just computed.
        what: Which loss, e.g. ``"training loss"``.
        epoch: The current epoch (0-based).
        checkpoint: The run's checkpoint file (kept as it is: the last finished epoch).
        hint: The settings worth changing, e.g. ``"lower train.lr"``.

    Raises:
        QuantNASError: When ``value`` is not finite.

    """
    if math.isfinite(value):
        return
    kept = (
        f"the last good checkpoint {checkpoint} is kept"
        if checkpoint.exists()
        else "no epoch finished, so no checkpoint or best result was written"
    )
    raise QuantNASError(f"{what} became {value} in epoch {epoch}; run stopped, {kept}; {hint}")


def batches(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Cycle over a loader forever."""
    if len(loader) == 0:
        raise QuantNASError(
            "the training data yields no batch; raise data.repeat or lower the batch size"
        )
    while True:
        yield from loader


def loader(dataset, *, batch_size: int, num_workers: int) -> DataLoader:
    """Shuffled training loader; keeps a short last batch only when the data is tiny."""
    from quantnas.data.datasets import make_loader

    return make_loader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        drop_last=len(dataset) >= batch_size,
    )


def train_dataset(cfg: Config, images: list | None = None) -> SRTrainDataset:
    """The training crops dataset of a config."""
    imgs = images if images is not None else training_images(cfg)
    return SRTrainDataset(
        imgs,
        scale=cfg.arch.scale,
        lr_crop=cfg.data.lr_crop,
        augment=True,
        repeat=cfg.data.repeat,
        min_std=cfg.data.min_patch_std,
    )


def _center_crop(img, size: int):
    h, w = img.shape[:2]
    if size <= 0 or (h <= size and w <= size):
        return img
    th, tw = min(h, size), min(w, size)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[top : top + th, left : left + tw]


def val_dataset(cfg: Config) -> SRValDataset:
    """The validation set of a config (optionally centre-cropped to ``data.val_crop``)."""
    hr = [(n, _center_crop(a, cfg.data.val_crop)) for n, a in validation_images(cfg)]
    mp = cfg.data.max_pixels
    lr = resolve_images(cfg.data.val_lr, max_pixels=mp) if cfg.data.val_lr else None
    return SRValDataset(hr, scale=cfg.arch.scale, lr_images=lr)


@torch.no_grad()
def validate(model: nn.Module, dataset: SRValDataset, device: torch.device) -> dict[str, float]:
    """Mean L1 loss and Y-PSNR/SSIM of ``model`` over a validation set."""
    was = model.training
    model.eval()
    losses, psnrs, ssims = [], [], []
    try:
        for i in range(len(dataset)):
            _, lr, hr = dataset[i]
            sr = model(lr[None].to(device)).cpu()[0]
            losses.append(float(F.l1_loss(sr, hr)))
            m = sr_metrics(to_uint8_image(sr), to_uint8_image(hr), scale=dataset.scale)
            psnrs.append(m["psnr"])
            ssims.append(m["ssim"])
    finally:
        model.train(was)
    n = max(1, len(losses))
    return {"val_loss": sum(losses) / n, "val_psnr": sum(psnrs) / n, "val_ssim": sum(ssims) / n}


def bicubic_reference(dataset: SRValDataset) -> dict[str, float]:
    """PSNR/SSIM of MATLAB bicubic upscaling on a validation set."""
    from quantnas.evaluate import bicubic_upscaler, evaluate

    res = evaluate(bicubic_upscaler(dataset.scale), dataset)
    return {"psnr": res["psnr"], "ssim": res["ssim"]}


def run_dir_for(cfg: Config, stage: str) -> Path:
    """A fresh run directory ``out_dir/<name or stage-timestamp>``."""
    import time

    name = cfg.name or f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out_dir) / name
