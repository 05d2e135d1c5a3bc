"""Is the supernet trained enough for alpha steps? Its gain over bicubic on fixed crops.

``search.warm_up: auto`` asks this after every warm-up epoch: the alpha steps start once
the supernet's RGB PSNR on fixed crops of the alpha split beats bicubic upscaling of the
same LR crops by ``search.warm_up_margin`` dB. Alpha gradients taken before that follow a
network still at bicubic (README, "Search at a budget").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from quantnas.data.datasets import SRTrainDataset
from quantnas.models.blocks import upscale_input

__all__ = ["AlphaProbe"]


log = logging.getLogger(__name__)


class AlphaProbe:
    """``n`` fixed LR/HR crops of the alpha split (drawn from their own seeded stream).

    Args:
        images: The alpha split's images.
        scale: Upscaling factor.
        lr_crop: LR crop size.
        n: Number of crops.
        seed: Seed of the crops (the global RNG streams are left untouched).

    """

    def __init__(self, images: list, *, scale: int, lr_crop: int, n: int = 32, seed: int = 0):
        ds = SRTrainDataset(images, scale=scale, lr_crop=lr_crop, augment=False, repeat=n)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            items = [ds[i] for i in range(n)]
        self.lr = torch.stack([lr for lr, _ in items])
        self.hr = torch.stack([hr for _, hr in items])
        self.scale = scale

    @staticmethod
    def _psnr(x: torch.Tensor, y: torch.Tensor) -> float:
        mse = float(((x.clamp(0, 1) - y) ** 2).mean())
        return 10.0 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item()

    @torch.no_grad()
    def gain(self, net: Callable[[torch.Tensor], torch.Tensor], device: Any = "cpu") -> float:
        """PSNR of ``net`` (a module, put in eval mode meanwhile, or a function of an LR
        batch) minus bicubic's on the crops (dB).
        """
        module = net if isinstance(net, torch.nn.Module) else None
        was = module.training if module is not None else False
        if module is not None:
            module.eval()
        try:
            out = torch.cat([net(x.to(device)).cpu() for x in self.lr.split(8)])
        finally:
            if module is not None:
                module.train(was)
        bic = upscale_input(self.lr, self.scale, "bicubic")
        return self._psnr(out, self.hr) - self._psnr(bic, self.hr)

    def alpha_start(
        self, net: torch.nn.Module, device: Any, *, epoch: int, epochs: int, margin: float
    ) -> tuple[float, int | None]:
        """``warm_up: auto`` after ``epoch``: ``(gain, the epoch alpha steps start at or
        None)``; they start once the gain reaches ``margin``, after half the epochs at the
        latest.
        """
        gain = self.gain(net, device)
        if gain < margin and epoch + 1 < max(1, epochs // 2):
            return gain, None
        log.info(
            "search: alpha steps start at epoch %d (supernet %+.3f dB over bicubic on the "
            "alpha crops, margin %.3f)",
            *(epoch + 1, gain, margin),
        )
        return gain, epoch + 1
