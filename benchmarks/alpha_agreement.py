"""Do the alpha split's gradients point where the validation photos' do?

For one search config (``--preset``, ``--set``), trains the supernet's weights up to the
first alpha step (the preset's warm-up: ``warm_up`` epochs, or for ``auto`` until the probe
says so, at most half the epochs), then takes the mean L1 gradient of the alphas over
``--batches`` batches of the alpha split and over as many random crops of the validation
photos (same crop size), and prints the share of alpha coordinates whose signs agree and
the correlation of the two mean gradients. Run it for each ``search.split``:

    python benchmarks/alpha_agreement.py --set search.split=photos
    python benchmarks/alpha_agreement.py --set search.split=regions
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from quantnas.data.datasets import SRTrainDataset
from quantnas.data.from_config import batches
from quantnas.data.roles import validation_images
from quantnas.pipeline.resolve import load_config
from quantnas.search.searcher import Searcher
from quantnas.search.setup import search_crop


def mean_alpha_grad(net, pairs) -> torch.Tensor:
    net.zero_grad(set_to_none=True)
    for lr, hr in pairs:
        F.l1_loss(net(lr), hr).backward()
    return torch.cat([p.grad.flatten() / len(pairs) for p in net.alphas()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--batches", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    cfg = load_config(preset=args.preset, overrides=["progress=false", "tensorboard=false",
                                                      f"seed={args.seed}", *args.set])
    with tempfile.TemporaryDirectory() as tmp:
        s = Searcher(cfg, Path(tmp) / "s")
        while s.alpha_from is None or s.epoch < s.alpha_from:
            s.run(stop_after=1)
        first = s.epoch
        net = s.net
        torch.manual_seed(1234)
        a_iter = batches(s.a_loader)
        alpha = [next(a_iter) for _ in range(args.batches)]
        val = SRTrainDataset(validation_images(cfg), scale=cfg.arch.scale,
                             lr_crop=search_crop(cfg), repeat=args.batches * 8)
        items = [val[i] for i in range(args.batches * cfg.search.batch_size)]
        b = cfg.search.batch_size
        vpairs = [(torch.stack([x for x, _ in items[i:i + b]]),
                   torch.stack([y for _, y in items[i:i + b]])) for i in range(0, len(items), b)]
        gain = s.probe.gain(net) if s.probe is not None else float("nan")
        ga, gv = mean_alpha_grad(net, alpha), mean_alpha_grad(net, vpairs)
    agree = float((torch.sign(ga) == torch.sign(gv)).float().mean())
    corr = float(torch.corrcoef(torch.stack([ga, gv]))[0, 1])
    print(f"{' '.join(args.set) or args.preset}: first alpha epoch {first}, supernet "
          f"{gain:+.3f} dB over bicubic (alpha crops); sign agreement alpha split vs "
          f"validation crops {agree:.1%} of {ga.numel()} alphas, correlation {corr:+.2f}")


if __name__ == "__main__":
    main()
