"""The search loop (SPEC section 6): first-order alternating alpha / weight steps.

Each iteration: (1) after ``search.warm_up`` epochs, an alpha step on a batch of the alpha
split with ``L1 + ramp * sparse_coef * regularizer + penalty * E[BitOps] / E[BitOps]_0``
(Adam, betas (0.5, 0.999)); (2) a weight step on a batch of the weight split with L1 (Adam,
warm-up + cosine, grad-norm clipping). Every epoch: validation, the exported genotype with
its BitOps, alpha history, plots and an atomic full-state checkpoint that resumes exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from quantnas import distributed as qdist
from quantnas import genotype as gt
from quantnas.checkpoint import (
    atomic_save,
    atomic_write_json,
    atomic_write_text,
    load_state,
    remove_stale_tmp,
    restore_run_state,
    rng_state,
    seed_everything,
    set_rng_state,
)
from quantnas.config import ArchConfig, Config, dump
from quantnas.cost import SupernetCost, network_cost
from quantnas.data.datasets import SRTrainDataset
from quantnas.data.roles import training_images
from quantnas.engine import (
    batches,
    check_finite,
    param_groups,
    select_device,
    set_threads,
    val_dataset,
    validate,
    warmup_cosine,
)
from quantnas.errors import QuantNASError
from quantnas.genotype import Genotype
from quantnas.plots import plot_alpha_evolution, plot_genotype
from quantnas.runlog import progress
from quantnas.search.losses import hardware_penalty, mean_entropy, ramp, sparsity, temperature
from quantnas.search.supernet import Supernet
from quantnas.space import build_network, picture_cells

log = logging.getLogger("quantnas")

CHECKPOINT = "checkpoint.pt"


@dataclass
class SearchResult:
    """What a search produced."""

    run_dir: Path
    best: Genotype
    last: Genotype
    best_epoch: int
    seconds: float


def split_images(images: list, *, subsample: float, seed: int) -> tuple[list, list]:
    """Subsample the training images and halve them into weight / alpha splits."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=g).tolist()
    n = max(1, round(len(images) * subsample))
    chosen = [images[i] for i in order[:n]]
    if len(chosen) < 2:
        log.warning("only one training image: weight and alpha steps share it")
        return chosen, chosen
    half = len(chosen) // 2
    return chosen[half:], chosen[:half]


def search_arch(cfg: Config) -> ArchConfig:
    """The space searched: ``arch`` with ``search.c_fixed`` channels when set.

    As in DARTS, the supernet may be narrower than the network trained afterwards: the
    genotype (ops and bit-widths per layer) does not depend on the width.
    """
    if cfg.search.c_fixed <= 0 or cfg.search.c_fixed == cfg.arch.c_fixed:
        return cfg.arch
    return dataclasses.replace(cfg.arch, c_fixed=cfg.search.c_fixed)


def search_crop(cfg: Config) -> int:
    """LR crop of the search batches (``search.lr_crop``, else ``data.lr_crop``)."""
    return cfg.search.lr_crop if cfg.search.lr_crop > 0 else cfg.data.lr_crop


def build_supernet(cfg: Config) -> Supernet:
    """The supernet of a config."""
    s = cfg.search
    return Supernet(
        search_arch(cfg),
        mode=s.mode,
        noise=s.noise,
        noise_mix=s.noise_mix,
        transform=s.alpha_transform,
    )


class Searcher:
    """Runs (or resumes) a search in ``run_dir``.

    Args:
        cfg: Resolved configuration.
        run_dir: Output directory (created).

    """

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if qdist.is_main():
            remove_stale_tmp(self.run_dir)
        set_threads(cfg.threads)
        self.device = select_device(cfg.device)
        qdist.init(self.device)
        seed_everything(cfg.seed)
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
        self.w_opt = torch.optim.Adam(
            param_groups(
                self.net.named_weights(),
                lr=s.w_lr,
                weight_decay=s.w_weight_decay,
                step_lr_scale=s.step_lr_scale,
            )
        )
        self.a_opt = torch.optim.Adam(
            self.net.alphas(),
            lr=s.alpha_lr,
            betas=tuple(s.alpha_betas),
            weight_decay=s.alpha_weight_decay,
        )
        self.w_sched = warmup_cosine(
            self.w_opt,
            total_steps=self.steps * s.epochs,
            warmup_steps=s.lr_warmup_steps,
            min_ratio=s.w_lr_min / s.w_lr,
        )
        with torch.no_grad():
            probs0 = self.net.probabilities()
            self.initial_bitops = float(self.cost.expected_bitops(probs0))
            self.initial_cost = float(self.cost.penalty_cost(probs0, cfg.search.penalty_cost))
        self.epoch = 0
        self.history: list[dict] = []
        self.alpha_history: dict[str, list] = {}
        self.best = {"epoch": -1, "val_loss": float("inf")}
        self.metrics = qdist.metric_logger(self.run_dir, tensorboard=cfg.tensorboard)

    # ----------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {
            "kind": "search",
            "epoch": self.epoch,
            "model": self.net.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "w_sched": self.w_sched.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "alpha_history": self.alpha_history,
            "best": self.best,
            "initial_bitops": self.initial_bitops,
            "alpha_shapes": {k: list(v) for k, v in self.net.alpha.shapes.items()},
        }

    def resume(self, path: Path | None = None) -> bool:
        """Restore the full state from ``run_dir/checkpoint.pt`` if present."""
        path = path or self.run_dir / CHECKPOINT
        keys = ("model", "w_opt", "a_opt", "w_sched", "rng", "epoch", "history")
        keys += ("alpha_history", "best", "initial_bitops", "alpha_shapes")
        if not restore_run_state(
            path, kind="search", keys=keys, what="search checkpoint", restore=self._restore
        ):
            return False
        self.metrics.truncate_after("epoch", self.epoch - 1)
        log.info("resumed search from %s at epoch %d", path, self.epoch)
        return True

    def _restore(self, ck: dict, path: Path) -> None:
        """Load a search checkpoint's state into this searcher."""
        want = {k: list(v) for k, v in self.net.alpha.shapes.items()}
        if ck.get("alpha_shapes") != want:
            raise QuantNASError(
                f"checkpoint {path}: its alphas {ck.get('alpha_shapes')} do not match the "
                f"search space of the config {want}"
            )
        load_state(self.net, ck["model"], path=path, what="the config's supernet")
        self.w_opt.load_state_dict(ck["w_opt"])
        self.a_opt.load_state_dict(ck["a_opt"])
        self.w_sched.load_state_dict(ck["w_sched"])
        set_rng_state(ck["rng"])
        self.epoch = int(ck["epoch"])
        self.history, self.alpha_history = ck["history"], ck["alpha_history"]
        self.best, self.initial_bitops = ck["best"], float(ck["initial_bitops"])

    # ------------------------------------------------------------------- steps
    def _alpha_step(self, lr: torch.Tensor, hr: torch.Tensor, epoch: int) -> dict[str, float]:
        s = self.cfg.search
        self.a_opt.zero_grad(set_to_none=True)
        l1 = F.l1_loss(self.net(lr), hr)
        probs = self.net.probabilities()
        logits = {k: self.net.alpha.logits(k) for k in probs}
        w_reg = s.sparse_coef * ramp(
            epoch, epochs=s.epochs, warm_up=s.warm_up, shape=s.sparse_ramp, kind=s.sparse_type
        )
        reg = sparsity(s.sparse_type, probs, logits)
        expected = self.cost.expected_bitops(probs)
        cost = self.cost.penalty_cost(probs, s.penalty_cost)
        pen = hardware_penalty(cost, self.initial_cost, s.penalty)
        loss = l1 + w_reg * reg + pen.float()
        self._check(loss.item(), "search alpha loss", epoch)
        loss.backward()
        qdist.average_gradients(self.net.alphas())
        self.a_opt.step()
        return {
            "alpha_l1": l1.item(),
            "reg": float(reg.detach()),
            "penalty": pen.item(),
            "expected_bitops": expected.item(),
        }

    def _check(self, value: float, what: str, epoch: int) -> None:
        check_finite(
            value,
            what,
            epoch=epoch,
            checkpoint=self.run_dir / CHECKPOINT,
            hint="lower search.w_lr / search.alpha_lr or search.penalty",
        )

    def _weight_step(self, lr: torch.Tensor, hr: torch.Tensor, epoch: int) -> float:
        self.w_opt.zero_grad(set_to_none=True)
        loss = F.l1_loss(self.net(lr, alpha_grad=False), hr)
        self._check(loss.item(), "search weight loss", epoch)
        loss.backward()
        qdist.average_gradients(self.net.weights())
        torch.nn.utils.clip_grad_norm_(list(self.net.weights()), self.cfg.search.w_grad_clip)
        self.w_opt.step()
        self.w_sched.step()
        return loss.item()

    def _epoch(self, epoch: int) -> dict:
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
        for _ in bar:
            if epoch >= s.warm_up:
                lr, hr = next(a_iter)
                for k, v in self._alpha_step(lr.to(self.device), hr.to(self.device), epoch).items():
                    sums[k] = sums.get(k, 0.0) + v
            lr, hr = next(w_iter)
            sums["train_loss"] = sums.get("train_loss", 0.0) + self._weight_step(
                lr.to(self.device), hr.to(self.device), epoch
            )
        return {k: v / self.steps for k, v in sums.items()}

    def _record(self, epoch: int, train: dict, seconds: float) -> Genotype:
        cfg = self.cfg
        val = validate(self.net, self.val, self.device)
        self._check(val["val_loss"], "search validation loss", epoch)
        geno = self.net.export()
        final = build_network(geno, self.net.arch)
        bitops = network_cost(final, lr_size=cfg.search.bitops_lr_size).bitops
        probs = self.net.probabilities()
        with torch.no_grad():
            expected = float(self.cost.expected_bitops(probs))
        row = {
            "epoch": epoch,
            **train,
            **val,
            "genotype_bitops": bitops,
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
            "(%.3g BitOps @%dx%d)",
            epoch,
            train.get("train_loss", 0.0),
            val["val_psnr"],
            row["entropy"],
            geno,
            bitops,
            cfg.search.bitops_lr_size,
            cfg.search.bitops_lr_size,
        )
        return geno

    def _plots(self, geno: Genotype) -> None:
        import numpy as np

        table = self.net.layer_table()
        hist = {k: np.asarray(v) for k, v in self.alpha_history.items()}
        plot_alpha_evolution(
            hist,
            {k: v["ops"] for k, v in table.items()},
            self.net.bits,
            self.run_dir / "alphas.png",
            title="alpha evolution",
        )
        plot_genotype(
            geno.pairs(),
            self.run_dir / "arch.png",
            body_cells=picture_cells(self.cfg.arch),
            title="searched architecture",
        )

    # -------------------------------------------------------------------- main
    def run(self, *, stop_after: int | None = None) -> SearchResult:
        """Search from the current epoch to the end (or ``stop_after`` epochs, for tests)."""
        main = qdist.is_main()  # under torchrun, rank 0 alone validates and writes
        if main:
            atomic_write_text(self.run_dir / "config.yaml", dump(self.cfg))
        done = 0
        geno = self.net.export()
        while self.epoch < self.cfg.search.epochs:
            if stop_after is not None and done >= stop_after:
                break
            t0 = time.time()
            train = self._epoch(self.epoch)
            if main:
                with qdist.isolated_rng():
                    geno = self._record(self.epoch, train, time.time() - t0)
            else:
                geno = self.net.export()
            self.epoch += 1
            done += 1
            if main:
                atomic_save(self.state(), self.run_dir / CHECKPOINT)
                atomic_write_json(self.run_dir / "alpha_history.json", self.alpha_history)
        if self.history:
            self._plots(geno)
        if (
            self.history
            and self.epoch >= self.cfg.search.epochs
            and not (self.run_dir / "best_arch.json").exists()
        ):
            gt.save(geno, self.run_dir / "best_arch.json")
        self.metrics.close()
        qdist.barrier()
        best = (
            gt.load(self.run_dir / "best_arch.json")
            if (self.run_dir / "best_arch.json").exists()
            else geno
        )
        return SearchResult(
            self.run_dir,
            best,
            geno,
            int(self.best["epoch"]),
            sum(r["seconds"] for r in self.history),
        )


def search(cfg: Config, run_dir: Path, *, resume: bool = False) -> SearchResult:
    """Run a search (resuming from ``run_dir`` when asked and possible)."""
    s = Searcher(cfg, run_dir)
    if resume:
        s.resume()
    return s.run()
