"""The search loop: first-order alternating alpha / weight steps.

Each iteration: (1) after ``search.warm_up`` epochs, an alpha step on a batch of the alpha
split with ``L1 + ramp * sparse_coef * regularizer + penalty * E[BitOps] / E[BitOps]_0``
(Adam, betas (0.5, 0.999)); (2) a weight step on a batch of the weight split with L1 (Adam,
warm-up + cosine, grad-norm clipping). Every epoch: validation, the exported genotype with
its BitOps, alpha history, plots and an atomic full-state checkpoint that resumes exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from quantnas import distributed as qdist
from quantnas import genotype as gt
from quantnas.checkpoint import KIND_SEARCH, load_state
from quantnas.config import Config
from quantnas.cost import SupernetCost, network_cost
from quantnas.data.datasets import SRTrainDataset
from quantnas.data.from_config import batches, val_dataset
from quantnas.data.roles import training_images
from quantnas.errors import QuantNASError
from quantnas.evaluate import validate
from quantnas.fileio import atomic_write_json
from quantnas.genotype import Genotype
from quantnas.loop import EpochLoop
from quantnas.optim import weight_optimizer
from quantnas.runlog import progress
from quantnas.search.losses import mean_entropy, temperature
from quantnas.search.records import write_search_records
from quantnas.search.setup import build_supernet, search_crop, split_images
from quantnas.search.steps import alpha_step, weight_step
from quantnas.space import build_network

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """What a search produced."""

    run_dir: Path
    best: Genotype
    last: Genotype
    best_epoch: int
    seconds: float


class Searcher(EpochLoop):
    """Runs (or resumes) a search in ``run_dir``.

    Args:
        cfg: Resolved configuration.
        run_dir: Output directory (created).

    """

    kind = KIND_SEARCH
    noun = "search"
    hint = "lower search.w_lr / search.alpha_lr or search.penalty"
    best_metric = "val_loss"
    extra_keys = ("alpha_history", "initial_bitops", "alpha_shapes")

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        super().__init__(cfg, run_dir)
        self.net = build_supernet(cfg).to(self.device)
        qdist.broadcast_module(self.net)
        self.cost = SupernetCost(self.net, lr_size=cfg.search.bitops_lr_size)
        images = training_images(cfg)
        w_imgs, a_imgs = split_images(images, subsample=cfg.search.search_subsample, seed=cfg.seed)
        kw = {
            "scale": cfg.arch.scale,
            "lr_crop": search_crop(cfg),
            "repeat": cfg.data.repeat,
            "min_std": cfg.data.min_patch_std,
        }
        bs, nw = cfg.search.batch_size, cfg.data.num_workers
        self.w_loader = qdist.train_loader(
            SRTrainDataset(w_imgs, **kw), batch_size=bs, num_workers=nw, seed=cfg.seed
        )
        self.a_loader = qdist.train_loader(
            SRTrainDataset(a_imgs, **kw), batch_size=bs, num_workers=nw, seed=cfg.seed + 1
        )
        self.val = val_dataset(cfg)
        s = cfg.search
        self.steps = s.steps_per_epoch or max(1, len(self.w_loader))
        self.w_opt, self.w_sched = weight_optimizer(
            self.net.named_weights(), s, prefix="w_", total_steps=self.steps * s.epochs
        )
        self.a_opt = torch.optim.Adam(
            self.net.alphas(),
            lr=s.alpha_lr,
            betas=tuple(s.alpha_betas),
            weight_decay=s.alpha_weight_decay,
        )
        self.stateful = {"w_opt": self.w_opt, "a_opt": self.a_opt, "w_sched": self.w_sched}
        with torch.no_grad():
            probs0 = self.net.probabilities()
            self.initial_bitops = float(self.cost.expected_bitops(probs0))
            self.initial_cost = float(self.cost.penalty_cost(probs0, cfg.search.penalty_cost))
        self.alpha_history: dict[str, list] = {}
        self.best = {"epoch": -1, "val_loss": float("inf")}
        self.open_metrics()

    @property
    def epochs(self) -> int:
        return self.cfg.search.epochs

    # ----------------------------------------------------------------- checkpoints
    def extra_state(self) -> dict:
        return {
            "model": self.net.state_dict(),
            "alpha_history": self.alpha_history,
            "initial_bitops": self.initial_bitops,
            "alpha_shapes": {k: list(v) for k, v in self.net.alpha.shapes.items()},
        }

    def load_extra(self, ck: dict, path: Path) -> None:
        want = {k: list(v) for k, v in self.net.alpha.shapes.items()}
        if ck.get("alpha_shapes") != want:
            raise QuantNASError(
                f"checkpoint {path}: its alphas {ck.get('alpha_shapes')} do not match the "
                f"search space of the config {want}"
            )
        load_state(self.net, ck["model"], path=path, what="the config's supernet")
        self.alpha_history = ck["alpha_history"]
        self.initial_bitops = float(ck["initial_bitops"])

    # ------------------------------------------------------------------- epoch
    def train_epoch(self, epoch: int) -> dict:
        s = self.cfg.search
        self.net.train()
        self.net.alpha.temperature = temperature(
            epoch, epochs=s.epochs, warm_up=s.warm_up, t_max=s.temp_max, t_min=s.temp_min
        )
        qdist.set_epoch(self.w_loader, self.a_loader, epoch=epoch)
        w_iter, a_iter = batches(self.w_loader), batches(self.a_loader)
        sums: dict[str, float] = {}
        bar = progress(
            range(self.steps), desc=f"search {epoch + 1}/{s.epochs}", enabled=self.cfg.progress
        )

        def check(value: float, what: str) -> None:
            self.check(value, what, epoch)

        dev = self.device
        for _ in bar:
            if epoch >= s.warm_up:
                lr, hr = next(a_iter)
                out = alpha_step(
                    self.net,
                    self.cost,
                    self.a_opt,
                    lr.to(dev),
                    hr.to(dev),
                    cfg=s,
                    epoch=epoch,
                    initial_cost=self.initial_cost,
                    check=check,
                )
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
            lr, hr = next(w_iter)
            loss = weight_step(
                self.net,
                self.w_opt,
                self.w_sched,
                lr.to(dev),
                hr.to(dev),
                grad_clip=s.w_grad_clip,
                check=check,
            )
            sums["train_loss"] = sums.get("train_loss", 0.0) + loss
        return {k: v / self.steps for k, v in sums.items()}

    # ----------------------------------------------------------------- records
    def end_epoch(self, epoch: int, train: dict, started: float) -> None:
        cfg = self.cfg
        seconds = time.time() - started
        val = validate(self.net, self.val, self.device)
        self.check(val["val_loss"], "search validation loss", epoch)
        geno = self.net.export()
        final = build_network(geno, self.net.arch)
        bitops = network_cost(final, lr_size=cfg.search.bitops_lr_size).bitops
        final_bitops = bitops if self.net.arch.c_fixed == cfg.arch.c_fixed else self._wide(geno)
        probs = self.net.probabilities()
        with torch.no_grad():
            expected = float(self.cost.expected_bitops(probs))
        row = {
            "epoch": epoch,
            **train,
            **val,
            "genotype_bitops": bitops,
            "final_bitops": final_bitops,
            "expected_bitops": expected,
            "entropy": mean_entropy(probs),
            "temperature": self.net.alpha.temperature,
            "lr": self.w_opt.param_groups[0]["lr"],
            "seconds": seconds,
        }
        for key, p in probs.items():
            self.alpha_history.setdefault(key, []).append(p.detach().tolist())
        self.history.append(row)
        self.metrics.log(row)
        table = self.net.layer_table()
        self.metrics.scalars(
            {
                f"alpha/{k}/{op}@{b}b": v["probs"][o][j]
                for k, v in table.items()
                for o, op in enumerate(v["ops"])
                for j, b in enumerate(v["bits"])
            },
            epoch,
        )
        gdir = self.run_dir / "genotypes"
        gt.save(geno, gdir / f"epoch_{epoch:03d}.json")
        gt.save(geno, self.run_dir / "last_arch.json")
        if epoch >= cfg.search.warm_up and val["val_loss"] < self.best["val_loss"]:
            self.best = {"epoch": epoch, "val_loss": val["val_loss"], "genotype": geno.to_dict()}
            gt.save(geno, self.run_dir / "best_arch.json")
        log.info(
            "search epoch %d: loss %.4f val_psnr %.2f dB entropy %.3f genotype %s "
            "(%.3g BitOps at the final %d channels, %.3g at the search's %d; LR %dx%d)",
            *(epoch, train.get("train_loss", 0.0), val["val_psnr"], row["entropy"], geno),
            *(final_bitops, cfg.arch.c_fixed, bitops, self.net.arch.c_fixed),
            *(cfg.search.bitops_lr_size, cfg.search.bitops_lr_size),
        )

    def _wide(self, geno: Genotype) -> float:
        """BitOps of ``geno`` at the final width (NaN where an op cannot take that width)."""
        try:
            net = build_network(geno, self.cfg.arch)
        except QuantNASError:
            return float("nan")
        return float(network_cost(net, lr_size=self.cfg.search.bitops_lr_size).bitops)

    def after_checkpoint(self) -> None:
        atomic_write_json(self.run_dir / "alpha_history.json", self.alpha_history)

    def finish(self) -> None:
        """Every file derived from the state (also when a finished search is resumed)."""
        write_search_records(
            self.net,
            self.cfg,
            self.run_dir,
            alpha_history=self.alpha_history,
            history=self.history,
            best=self.best,
        )

    def result(self) -> SearchResult:
        last = self.net.export()
        best = self.run_dir / "best_arch.json"
        return SearchResult(
            self.run_dir,
            gt.load(best) if best.exists() else last,
            last,
            int(self.best["epoch"]),
            sum(r["seconds"] for r in self.history),
        )


def search(cfg: Config, run_dir: Path, *, resume: bool = False) -> SearchResult:
    """Run a search (resuming from ``run_dir`` when asked and possible)."""
    from quantnas.budget import check_network_budget

    check_network_budget(cfg, "search")  # before the supernet is built
    s = Searcher(cfg, run_dir)
    if resume:
        s.resume()
    return s.run()
