"""The search loop: first-order alternating alpha / weight steps.

Each iteration: (1) after ``search.warm_up`` epochs (or, with ``auto``, once the supernet
beats bicubic on the alpha split), an alpha step on a batch of the alpha
split with ``L1 + ramp * sparse_coef * regularizer + penalty * E[BitOps] / E[BitOps]_0``
(Adam, betas (0.5, 0.999)), plus the Lagrangian term of ``search.target_bitops``; (2) a
weight step on a batch of the weight split with L1 (Adam, warm-up + cosine, grad-norm
clipping) of the mixture or of one sampled path (``search.weight_sampling``). Every epoch:
validation, the exported genotype with its BitOps, alpha history, plots and an atomic
full-state checkpoint that resumes exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from quantnas.config.types import Config
from quantnas.data.from_config import batches
from quantnas.data.job_data import JobData
from quantnas.device import kept_threads
from quantnas.errors import QuantNASError
from quantnas.evaluation.score import validate
from quantnas.rng import set_rng_state
from quantnas.rundir.files import atomic_write_json
from quantnas.rundir.log import progress
from quantnas.search.choose import Chooser
from quantnas.search.losses import mean_entropy, temperature
from quantnas.search.probe import AlphaProbe
from quantnas.search.records import SearchResult, alpha_scalars, margins, write_search_records
from quantnas.search.setup import build_supernet, search_crop, search_loaders, search_split
from quantnas.search.steps import alpha_step, weight_step
from quantnas.space import genotype as gt
from quantnas.space.build import build_network
from quantnas.space.cost import SupernetCost, network_cost
from quantnas.training import distributed as qdist
from quantnas.training.checkpoint import KIND_SEARCH, load_state
from quantnas.training.loop import EpochLoop
from quantnas.training.optim import weight_optimizer

log = logging.getLogger(__name__)


class Searcher(EpochLoop):
    """Runs (or resumes) a search in ``run_dir``.

    Args:
        cfg: Resolved configuration.
        run_dir: Output directory (created; a string or a Path).
        data: The job's images (read from the config's sources when None).
        supernet: A :class:`~quantnas.pipeline.job.Prebuilt` supernet to search with (built
            when None).

    """

    kind = KIND_SEARCH
    noun = "search"
    hint = "lower search.optim.lr / search.alpha_optim.lr or search.penalty"
    best_metric = "val_loss"
    extra_keys = ("alpha_history", "initial_bitops", "alpha_shapes", "alpha_from", "budget")

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        *,
        data: JobData | None = None,
        supernet: Any = None,
    ) -> None:
        super().__init__(cfg, run_dir)
        run_dir = self.run_dir
        data = data if data is not None else JobData(cfg)
        if supernet is not None:  # built after the same seeding: go on from its RNG state
            set_rng_state(supernet.rng)
        net = supernet.net if supernet is not None else build_supernet(cfg)
        self.net = net.to(self.device)
        qdist.broadcast_module(self.net)
        self.cost = SupernetCost(self.net, lr_size=cfg.search.bitops_lr_size)
        self.chooser = Chooser(self.net, cfg)
        self.budget = self.chooser.budget()
        split = search_split(cfg, data.training_images())
        if qdist.is_main():
            atomic_write_json(run_dir / "split.json", split[2])
        self.w_loader, self.a_loader = search_loaders(cfg, split)
        s = cfg.search
        #: The epoch alpha steps start at (None: ``warm_up: auto`` has not decided yet).
        self.alpha_from: int | None = None if s.warm_up == "auto" else int(s.warm_up)
        self.probe = (
            AlphaProbe(split[1], scale=cfg.arch.scale, lr_crop=search_crop(cfg), seed=cfg.seed)
            if s.warm_up == "auto"
            else None
        )
        #: What the ``path`` selector scores on (read only for it; ``val`` is the per-epoch
        #: validation set).
        self.val_images = data.validation_images() if s.select == "path" else None
        self.val = data.val_dataset()
        self.steps = s.steps_per_epoch or max(1, len(self.w_loader))
        self.w_opt, self.w_sched = weight_optimizer(
            self.net.named_weights(), s.optim, total_steps=self.steps * s.epochs
        )
        self.a_opt = torch.optim.Adam(
            self.net.alphas(),
            lr=s.alpha_optim.lr,
            betas=tuple(s.alpha_optim.betas),
            weight_decay=s.alpha_optim.weight_decay,
        )
        self.stateful = {"w_opt": self.w_opt, "a_opt": self.a_opt, "w_sched": self.w_sched}
        with torch.no_grad():
            probs0 = self.net.probabilities()
            self.initial_bitops = float(self.cost.expected_bitops(probs0))
            self.initial_cost = float(self.cost.penalty_cost(probs0, cfg.search.penalty_cost))
        self.alpha_history: dict[str, list] = {}
        self.best = {"epoch": -1, "val_loss": float("inf")}
        self.open_metrics()

    def thread_count(self, cfg: Config) -> int:
        """``search.threads`` when set, else the run's ``threads``."""
        return cfg.search.threads or cfg.threads

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
            "alpha_from": self.alpha_from,
            "budget": self.budget.state_dict() if self.budget else None,
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
        self.alpha_from = ck.get("alpha_from", self.alpha_from)
        if self.budget is not None and ck.get("budget"):
            self.budget.load_state_dict(ck["budget"])

    # ------------------------------------------------------------------- epoch
    def train_epoch(self, epoch: int) -> dict:
        s = self.cfg.search
        self.net.train()
        start = s.epochs if self.alpha_from is None else self.alpha_from
        self.net.alpha.temperature = temperature(
            epoch, epochs=s.epochs, warm_up=start, t_max=s.temp_max, t_min=s.temp_min
        )
        qdist.set_epoch(self.w_loader, self.a_loader, epoch=epoch)
        w_iter, a_iter = batches(self.w_loader), batches(self.a_loader)
        sums: dict[str, float] = {}
        desc = f"search {epoch + 1}/{s.epochs} {self.stage_eta}".rstrip()
        bar = progress(range(self.steps), desc=desc, enabled=self.cfg.progress)

        def check(value: float, what: str) -> None:
            self.check(value, what, epoch)

        # search.float_warm_up: the weight steps before the first alpha step run in full
        # precision; every epoch ends with the quantizers back (steps re-initialised from
        # the weights), so validation, the probe and the checkpoint see the searched net
        warm = s.float_warm_up and epoch < start
        if warm:
            self.net.set_quantized(False)
        try:
            self._steps(epoch, start, bar, w_iter, a_iter, sums, check)
        finally:
            if warm:
                self.net.set_quantized(True)
        return {k: v / self.steps for k, v in sums.items()}

    def _steps(
        self,
        epoch: int,
        start: int,
        bar: Iterable[int],
        w_iter: Iterator[tuple[torch.Tensor, torch.Tensor]],
        a_iter: Iterator[tuple[torch.Tensor, torch.Tensor]],
        sums: dict[str, float],
        check: Callable[[float, str], None],
    ) -> None:
        """One epoch's alpha steps (from epoch ``start`` on) and weight steps, their values
        added to ``sums``.
        """
        s, dev = self.cfg.search, self.device
        for i in bar:
            step: dict[str, float] = {}
            if epoch >= start:
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
                    alpha_from=start,
                    budget=self.budget,
                    check=check,
                )
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
                    step[f"step/{k}"] = v
            lr, hr = next(w_iter)
            step["step/lr"] = self.w_opt.param_groups[0]["lr"]
            path = self.chooser.sample_path() if s.weight_sampling == "path" else None
            loss = weight_step(
                self.net,
                self.w_opt,
                self.w_sched,
                lr.to(dev),
                hr.to(dev),
                grad_clip=s.optim.grad_clip,
                probs=path,
                check=check,
            )
            sums["train_loss"] = sums.get("train_loss", 0.0) + loss
            step["step/train_loss"] = loss
            self.metrics.step_scalars(step, epoch * self.steps + i)

    # ----------------------------------------------------------------- records
    def end_epoch(self, epoch: int, train: dict, started: float) -> None:
        cfg, s = self.cfg, self.cfg.search
        seconds = time.time() - started
        val = validate(self.net, self.val, self.device)
        self.check(val["val_loss"], "search validation loss", epoch)
        if self.alpha_from is None:  # warm_up: auto
            train["probe_gain"], self.alpha_from = self.probe.alpha_start(
                self.net, self.device, epoch=epoch, epochs=s.epochs, margin=s.warm_up_margin
            )
        probs = self.net.probabilities()
        geno = self.chooser.argmax(probs)
        final = build_network(geno, self.net.arch)
        bitops = network_cost(final, lr_size=s.bitops_lr_size).bitops
        final_bitops = self.chooser.bitops(geno)
        gaps = margins(probs)
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
            "margin_min": min(gaps.values()),
            "margin_mean": sum(gaps.values()) / len(gaps),
            "temperature": self.net.alpha.temperature,
            "lr": self.w_opt.param_groups[0]["lr"],
            "seconds": seconds,
        }
        for key, p in probs.items():
            self.alpha_history.setdefault(key, []).append(p.detach().tolist())
        self.history.append(row)
        self.metrics.log(row)
        self.metrics.scalars(alpha_scalars(self.net.layer_table()), epoch)
        gt.save(geno, self.run_dir / "genotypes" / f"epoch_{epoch:03d}.json")
        gt.save(geno, self.run_dir / "last_arch.json")
        started_alphas = self.alpha_from is not None and epoch >= self.alpha_from
        tie = s.best_tolerance > 0 and val["val_loss"] <= self.best["val_loss"] * (
            1 + s.best_tolerance
        )  # a near tie goes to the later epoch, whose alphas moved further
        if started_alphas and (val["val_loss"] < self.best["val_loss"] or tie):
            self.best = {"epoch": epoch, "val_loss": val["val_loss"], "genotype": geno.to_dict()}
            gt.save(geno, self.run_dir / "best_arch.json")
        log.info(
            "search epoch %d: loss %.4f val_psnr %.2f dB entropy %.3f margin %.3f genotype %s "
            "(%.3g BitOps at the final %d channels, %.3g at the search's %d; LR %dx%d)",
            *(epoch, train.get("train_loss", 0.0), val["val_psnr"], row["entropy"]),
            *(row["margin_min"], geno, final_bitops, cfg.arch.c_fixed, bitops),
            *(self.net.arch.c_fixed, s.bitops_lr_size, s.bitops_lr_size),
        )

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
            chooser=self.chooser,
            val_images=self.val_images,
            device=self.device,
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
            self.history[-1].get("entropy") if self.history else None,
        )


def search(
    cfg: Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    data: JobData | None = None,
    supernet: Any = None,
) -> SearchResult:
    """Run a search (resuming from ``run_dir`` when asked and possible) on ``data`` (the
    config's sources when None).
    """
    from quantnas.space.footprint import check_network_budget

    check_network_budget(cfg, "search")  # before the supernet is built
    with kept_threads():  # search.threads holds for the search only
        s = Searcher(cfg, run_dir, data=data, supernet=supernet)
        if resume:
            s.resume()
        return s.run()
