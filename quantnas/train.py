"""Train a genotype from scratch with quantization-aware training ("augment").

L1 loss (optionally MSE for the last ``train.finetune_epochs``), Adam with linear warm-up +
cosine decay, optional full-precision warm-up epochs before QAT (``train.warm_up``), an
optional exponential moving average of the weights (``train.ema``, validated and saved in
place of the raw weights, as BasicSR's ``ema_decay``), validation PSNR every epoch, best
(by validation PSNR) and last checkpoints written atomically; ``resume`` continues exactly
(weights, EMA, optimizer, scheduler, RNG, epoch).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from quantnas import distributed as qdist
from quantnas import genotype as gt
from quantnas.checkpoint import (
    atomic_save,
    atomic_write_text,
    load_checkpoint,
    load_state,
    remove_stale_tmp,
    require_keys,
    restore_run_state,
    rng_state,
    seed_everything,
    set_rng_state,
)
from quantnas.config import ArchConfig, Config, dump, merge
from quantnas.engine import (
    batches,
    check_finite,
    param_groups,
    pixel_loss,
    select_device,
    set_threads,
    train_dataset,
    val_dataset,
    validate,
    warmup_cosine,
)
from quantnas.errors import QuantNASError
from quantnas.genotype import Genotype
from quantnas.plots import plot_genotype, plot_training_curves
from quantnas.runlog import progress
from quantnas.space import build_network, picture_cells, set_quantized

log = logging.getLogger("quantnas")

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


@dataclass
class TrainResult:
    """What training produced."""

    run_dir: Path
    best_path: Path
    best_epoch: int
    best_psnr: float
    seconds: float


def model_payload(net: nn.Module, genotype: Genotype | None, arch: ArchConfig, **extra) -> dict:
    """A self-describing model checkpoint (enough to rebuild the network).

    ``genotype`` is None for a network that is not built from a genotype (a sweep's
    baseline, described by ``extra["net_spec"]``).
    """
    return {
        "kind": "model",
        "genotype": genotype.to_dict() if genotype is not None else None,
        "arch": asdict(arch),
        "model": net.state_dict(),
        **extra,
    }


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, Genotype, ArchConfig]:
    """Rebuild a trained network from a ``best.pt`` / ``checkpoint.pt`` file."""
    ck = load_checkpoint(path)
    if ck.get("kind") not in ("model", "train"):
        raise QuantNASError(f"checkpoint {path} holds no trained network (kind={ck.get('kind')!r})")
    require_keys(ck, ("genotype", "arch", "model"), path=path, what="a trained network")
    arch = merge(ArchConfig(), ck["arch"], source=str(path))
    geno = gt.from_dict(ck["genotype"], source=str(path))
    _check_shapes(geno, arch, ck["model"], path)
    net = build_network(geno, arch)
    set_quantized(net, bool(ck.get("quantized", True)))
    load_state(net, ck["model"], path=path, what="the network rebuilt from its genotype")
    return net.to(device).eval(), geno, arch


def _check_shapes(geno: Genotype, arch: ArchConfig, state: object, path: str | Path) -> None:
    """Compare the network a checkpoint describes with its weights, allocating nothing.

    The network is built on PyTorch's ``meta`` device, so an ``arch`` claiming, say,
    100000 channels is refused instead of allocating terabytes.
    """
    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in build_network(geno, arch).state_dict().items()}
    except QuantNASError:
        raise
    except Exception as e:  # noqa: BLE001 - a bad arch makes layer constructors raise anything
        raise QuantNASError(
            f"checkpoint {path}: its arch {asdict(arch)} is invalid ({e})"
        ) from None
    if not isinstance(state, dict):
        raise QuantNASError(f"checkpoint {path}: 'model' is not a state dict")
    have = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    for key, shape in want.items():
        if have.get(key) != shape:
            raise QuantNASError(
                f"checkpoint {path} does not match the network its arch and genotype describe "
                f"({key}: expected shape {shape}, found {have.get(key)})"
            )


def ema_update(decay: float):
    """An ``AveragedModel`` update with the decay warmed up as ``min(decay, (1+n)/(10+n))``.

    ``n`` is the number of updates so far; the warm-up keeps the first weights from
    dominating a short run (with a fixed 0.999 they would still weigh 0.999**1500 = 22% after
    1500 steps).
    """

    def update(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return avg + (new - avg) * (1.0 - d)

    return update


class Trainer:
    """QAT of one genotype in ``run_dir``.

    Args:
        cfg: Resolved configuration (``train`` and ``data`` sections).
        run_dir: Output directory.
        genotype: The architecture to train (None when ``net`` is not built from one).
        net: A network to train instead of ``build_network(genotype)`` (e.g. a sweep's
            baseline), built by the caller after seeding.
        net_spec: What ``net`` is (saved in checkpoints and checked on resume).

    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        genotype: Genotype | None,
        *,
        net: nn.Module | None = None,
        net_spec: dict | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.genotype = cfg, Path(run_dir), genotype
        self.net_spec = net_spec
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if qdist.is_main():
            remove_stale_tmp(self.run_dir)
        set_threads(cfg.threads)
        self.device = select_device(cfg.device)
        qdist.init(self.device)
        seed_everything(cfg.seed)
        if net is None:
            if genotype is None:
                raise QuantNASError("Trainer: give a genotype or a network")
            net = build_network(genotype, cfg.arch)
        self.net = net.to(self.device)
        qdist.broadcast_module(self.net)
        t = cfg.train
        self.loader = qdist.train_loader(
            train_dataset(cfg),
            batch_size=t.batch_size,
            num_workers=cfg.data.num_workers,
            seed=cfg.seed,
        )
        self.val = val_dataset(cfg)
        self.steps = t.steps_per_epoch or max(1, len(self.loader))
        self.opt = torch.optim.Adam(
            param_groups(
                self.net.named_parameters(),
                lr=t.lr,
                weight_decay=t.weight_decay,
                step_lr_scale=t.step_lr_scale,
            )
        )
        self.sched = warmup_cosine(
            self.opt,
            total_steps=self.steps * t.epochs,
            warmup_steps=t.lr_warmup_steps,
            min_ratio=t.lr_min / t.lr,
        )
        self.ema = (
            AveragedModel(self.net, avg_fn=ema_update(t.ema), use_buffers=True)
            if t.ema > 0
            else None
        )
        self.epoch = 0
        self.history: list[dict] = []
        self.best = {"epoch": -1, "val_psnr": -float("inf")}
        self.metrics = qdist.metric_logger(self.run_dir, tensorboard=cfg.tensorboard)

    def quantized_at(self, epoch: int) -> bool:
        return epoch >= self.cfg.train.warm_up

    def loss_at(self, epoch: int):
        """The loss function of an epoch (``finetune_loss`` in the last ``finetune_epochs``)."""
        t = self.cfg.train
        fine = t.finetune_epochs > 0 and epoch >= t.epochs - t.finetune_epochs
        return pixel_loss(t.finetune_loss if fine else t.loss)

    @property
    def eval_net(self) -> nn.Module:
        """The network that is validated and saved: the EMA copy when ``train.ema > 0``."""
        return self.ema.module if self.ema is not None else self.net

    def _set_quantized(self, quantized: bool) -> None:
        set_quantized(self.net, quantized)
        if self.ema is not None:
            set_quantized(self.ema.module, quantized)

    def state(self) -> dict:
        return {
            **model_payload(
                self.net,
                self.genotype,
                self.cfg.arch,
                quantized=self.quantized_at(self.epoch - 1),
                net_spec=self.net_spec,
            ),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "kind": "train",
            "epoch": self.epoch,
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
        }

    def resume(self, path: Path | None = None) -> bool:
        """Restore the full state from ``run_dir/checkpoint.pt`` if present."""
        path = path or self.run_dir / CHECKPOINT
        keys = ("genotype", "model", "opt", "sched", "rng", "epoch", "history", "best")
        if not restore_run_state(
            path, kind="train", keys=keys, what="training checkpoint", restore=self._restore
        ):
            return False
        self.metrics.truncate_after("epoch", self.epoch - 1)
        log.info("resumed training from %s at epoch %d", path, self.epoch)
        return True

    def _restore(self, ck: dict, path: Path) -> None:
        """Load a training checkpoint's state into this trainer."""
        mine = self.genotype.to_dict() if self.genotype is not None else None
        if ck["genotype"] != mine or ck.get("net_spec") != self.net_spec:
            raise QuantNASError(f"checkpoint {path} was trained on another genotype/network")
        self._set_quantized(bool(ck.get("quantized", True)))
        load_state(self.net, ck["model"], path=path, what="the config's network")
        if self.ema is not None:
            if ck.get("ema") is None:
                raise QuantNASError(f"checkpoint {path} has no EMA weights but train.ema > 0")
            load_state(self.ema, ck["ema"], path=path, what="the EMA copy of the network")
        self.opt.load_state_dict(ck["opt"])
        self.sched.load_state_dict(ck["sched"])
        set_rng_state(ck["rng"])
        self.epoch, self.history, self.best = int(ck["epoch"]), list(ck["history"]), ck["best"]
        float(self.best["val_psnr"])

    def step(self, lr: torch.Tensor, hr: torch.Tensor, loss_fn) -> torch.Tensor:
        """One optimisation step on a batch; returns the (detached) loss."""
        self.opt.zero_grad(set_to_none=True)
        loss = loss_fn(self.net(lr.to(self.device)), hr.to(self.device))
        loss.backward()
        qdist.average_gradients(self.net.parameters())
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.train.grad_clip)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update_parameters(self.net)
        return loss.detach()

    def _epoch(self, epoch: int) -> float:
        quant = self.quantized_at(epoch)
        if quant and epoch == self.cfg.train.warm_up and epoch > 0:
            log.info("epoch %d: switching from full precision to QAT", epoch)
        self._set_quantized(quant)
        self.net.train()
        qdist.set_epoch(self.loader, epoch=epoch)
        it = batches(self.loader)
        loss_fn = self.loss_at(epoch)
        total = 0.0
        for _ in progress(
            range(self.steps),
            desc=f"train {epoch + 1}/{self.cfg.train.epochs}",
            enabled=self.cfg.progress,
        ):
            lr, hr = next(it)
            loss = self.step(lr, hr, loss_fn)
            value = loss.item()
            check_finite(
                value,
                "training loss",
                epoch=epoch,
                checkpoint=self.run_dir / CHECKPOINT,
                hint="lower train.lr or raise train.lr_warmup_steps",
            )
            total += value
        return total / self.steps

    def run(self, *, stop_after: int | None = None) -> TrainResult:
        """Train from the current epoch to the end (or ``stop_after`` epochs, for tests)."""
        main = qdist.is_main()  # under torchrun, rank 0 alone validates and writes
        if main:
            atomic_write_text(self.run_dir / "config.yaml", dump(self.cfg))
            if self.genotype is not None:
                gt.save(self.genotype, self.run_dir / "genotype.json")
        done = 0
        while self.epoch < self.cfg.train.epochs:
            if stop_after is not None and done >= stop_after:
                break
            t0 = time.time()
            train_loss = self._epoch(self.epoch)
            if not main:
                self.epoch += 1
                done += 1
                continue
            with qdist.isolated_rng():
                val = validate(self.eval_net, self.val, self.device)
            check_finite(
                val["val_loss"],
                "validation loss",
                epoch=self.epoch,
                checkpoint=self.run_dir / CHECKPOINT,
                hint="lower train.lr or raise train.lr_warmup_steps",
            )
            row = {
                "epoch": self.epoch,
                "train_loss": train_loss,
                **val,
                "quantized": int(self.quantized_at(self.epoch)),
                "lr": self.opt.param_groups[0]["lr"],
                "seconds": time.time() - t0,
            }
            self.history.append(row)
            self.metrics.log(row)
            log.info(
                "train epoch %d: loss %.4f val_psnr %.2f dB (%s)",
                self.epoch,
                train_loss,
                val["val_psnr"],
                "QAT" if row["quantized"] else "full precision",
            )
            self.epoch += 1
            done += 1
            if val["val_psnr"] > self.best["val_psnr"] and row["quantized"]:
                self.best = {"epoch": row["epoch"], "val_psnr": val["val_psnr"]}
                atomic_save(
                    model_payload(
                        self.eval_net,
                        self.genotype,
                        self.cfg.arch,
                        quantized=True,
                        epoch=row["epoch"],
                        val_psnr=val["val_psnr"],
                        net_spec=self.net_spec,
                    ),
                    self.run_dir / BEST,
                )
            atomic_save(self.state(), self.run_dir / CHECKPOINT)
        if self.history:
            plot_training_curves(
                self.history, self.run_dir / "training.png", title="training (QAT)"
            )
            if self.genotype is not None:
                plot_genotype(
                    self.genotype.pairs(),
                    self.run_dir / "arch.png",
                    body_cells=picture_cells(self.cfg.arch),
                    title="trained architecture",
                )
        self.metrics.close()
        qdist.barrier()
        return TrainResult(
            self.run_dir,
            self.run_dir / BEST,
            int(self.best["epoch"]),
            float(self.best["val_psnr"]),
            sum(r["seconds"] for r in self.history),
        )


def train(cfg: Config, run_dir: Path, genotype: Genotype, *, resume: bool = False) -> TrainResult:
    """Train ``genotype`` (resuming from ``run_dir`` when asked and possible)."""
    t = Trainer(cfg, run_dir, genotype)
    if resume:
        t.resume()
    return t.run()
