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
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from quantnas.config.types import Config
from quantnas.data.from_config import batches, train_dataset
from quantnas.data.job_data import JobData
from quantnas.errors import QuantNASError
from quantnas.evaluation.score import bicubic_reference, validate
from quantnas.rundir.files import atomic_save
from quantnas.rundir.log import progress
from quantnas.space import genotype as gt
from quantnas.space.build import build_network, set_quantized
from quantnas.space.genotype import Genotype
from quantnas.training import distributed as qdist
from quantnas.training.checkpoint import (
    BEST,
    KIND_TRAIN,
    load_checkpoint,
    load_state,
    model_payload,
)
from quantnas.training.loop import EpochLoop
from quantnas.training.optim import ema_update, pixel_loss, weight_optimizer
from quantnas.training.records import TrainResult, recorded_config, write_training_records

__all__ = ["TrainResult", "Trainer", "ema_update", "train"]

log = logging.getLogger(__name__)


class Trainer(EpochLoop):
    """QAT of one genotype in ``run_dir``.

    Args:
        cfg: Resolved configuration (``train`` and ``data`` sections).
        run_dir: Output directory (a string or a Path).
        genotype: The architecture to train (None when ``build`` gives the network).
        build: Builds the network to train instead of ``build_network(genotype)`` (e.g.
            a sweep's baseline). It is called here, right after seeding and before the
            data loader, exactly where ``build_network`` would be, so the same seed gives
            the same initialisation and data order whoever starts the training (the
            ``train`` verb, ``run`` or a sweep trial).
        net_spec: What the built network is (saved in checkpoints and checked on resume).
        data: The job's images (read from the config's sources when None).

    """

    kind = KIND_TRAIN
    noun = "training"
    hint = "lower train.optim.lr or raise train.optim.warmup_steps"
    best_metric = "val_psnr"
    extra_keys = ("genotype",)

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        genotype: Genotype | None,
        *,
        build: Callable[[], nn.Module] | None = None,
        net_spec: dict | None = None,
        data: JobData | None = None,
    ) -> None:
        if build is None and genotype is None:
            raise QuantNASError("Trainer: give a genotype or a network builder")
        self.genotype, self.net_spec = genotype, net_spec
        cfg = recorded_config(cfg, genotype)  # config.yaml names the genotype trained
        super().__init__(cfg, run_dir)  # seeds: the network and the data order follow
        net = build() if build is not None else build_network(genotype, cfg.arch)
        self.net = net.to(self.device)
        qdist.broadcast_module(self.net)
        t = cfg.train
        data = data if data is not None else JobData(cfg)
        self.loader = qdist.train_loader(
            train_dataset(cfg, data.training_images()),
            batch_size=t.batch_size,
            num_workers=cfg.data.num_workers,
            seed=cfg.seed,
        )
        self.val = data.val_dataset()
        self.steps = t.steps_per_epoch or max(1, len(self.loader))
        self.opt, self.sched = weight_optimizer(
            self.net.named_parameters(), t.optim, total_steps=self.steps * t.epochs
        )
        self.stateful = {"opt": self.opt, "sched": self.sched}
        self.ema = (
            AveragedModel(self.net, avg_fn=ema_update(t.ema), use_buffers=True)
            if t.ema > 0
            else None
        )
        self.best = {"epoch": -1, "val_psnr": -float("inf")}
        self._bicubic: float | None = None
        self.open_metrics()

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs

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

    def _payload(self, net: nn.Module, **extra) -> dict:
        return model_payload(net, self.genotype, self.cfg.arch, net_spec=self.net_spec, **extra)

    # ----------------------------------------------------------------- checkpoints
    def extra_state(self) -> dict:
        return {
            **self._payload(self.net, quantized=self.quantized_at(self.epoch - 1)),
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_extra(self, ck: dict, path: Path) -> None:
        mine = self.genotype.to_dict() if self.genotype is not None else None
        if ck["genotype"] != mine or ck.get("net_spec") != self.net_spec:
            raise QuantNASError(f"checkpoint {path} was trained on another genotype/network")
        self._set_quantized(bool(ck.get("quantized", True)))
        load_state(self.net, ck["model"], path=path, what="the config's network")
        if self.ema is not None:
            if ck.get("ema") is None:
                raise QuantNASError(f"checkpoint {path} has no EMA weights but train.ema > 0")
            load_state(self.ema, ck["ema"], path=path, what="the EMA copy of the network")

    # ------------------------------------------------------------------- epoch
    def step(self, lr: torch.Tensor, hr: torch.Tensor, loss_fn) -> torch.Tensor:
        """One optimisation step on a batch; returns the (detached) loss."""
        self.opt.zero_grad(set_to_none=True)
        loss = loss_fn(self.net(lr.to(self.device)), hr.to(self.device))
        loss.backward()
        qdist.average_gradients(self.net.parameters())
        if self.cfg.train.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.train.optim.grad_clip)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update_parameters(self.net)
        return loss.detach()

    def train_epoch(self, epoch: int) -> dict:
        quant = self.quantized_at(epoch)
        if quant and epoch == self.cfg.train.warm_up and epoch > 0:
            log.info("epoch %d: switching from full precision to QAT", epoch)
        self._set_quantized(quant)
        self.net.train()
        qdist.set_epoch(self.loader, epoch=epoch)
        it = batches(self.loader)
        loss_fn = self.loss_at(epoch)
        total = 0.0
        for i in progress(
            range(self.steps),
            desc=f"train {epoch + 1}/{self.cfg.train.epochs} {self.stage_eta}".rstrip(),
            enabled=self.cfg.progress,
        ):
            lr, hr = next(it)
            rate = self.opt.param_groups[0]["lr"]
            value = self.step(lr, hr, loss_fn).item()
            self.check(value, "training loss", epoch)
            total += value
            step = {"step/train_loss": value, "step/lr": rate}
            self.metrics.step_scalars(step, epoch * self.steps + i)
        return {"train_loss": total / self.steps}

    # ----------------------------------------------------------------- records
    def on_start(self) -> None:
        if self.genotype is not None:
            gt.save(self.genotype, self.run_dir / "genotype.json")

    def end_epoch(self, epoch: int, train: dict, started: float) -> None:
        val = validate(self.eval_net, self.val, self.device)
        self.check(val["val_loss"], "validation loss", epoch)
        row = {
            "epoch": epoch,
            **train,
            **val,
            "quantized": int(self.quantized_at(epoch)),
            "lr": self.opt.param_groups[0]["lr"],
            "seconds": time.time() - started,
        }
        row["val_gain"] = val["val_psnr"] - self.bicubic_psnr
        self.history.append(row)
        self.metrics.log(row)
        log.info(
            "train epoch %d: loss %.4f val_psnr %.2f dB (%s)",
            epoch,
            train["train_loss"],
            val["val_psnr"],
            "QAT" if row["quantized"] else "full precision",
        )
        if val["val_psnr"] > self.best["val_psnr"] and row["quantized"]:
            self.best = {"epoch": epoch, "val_psnr": val["val_psnr"]}
            payload = self._payload(
                self.eval_net, quantized=True, epoch=epoch, val_psnr=val["val_psnr"]
            )
            atomic_save(payload, self.run_dir / BEST)
        if epoch + 1 == self.stall_epoch and self.stalled():
            log.warning(
                "training %s looks stalled: after %d of %d epochs its best validation PSNR "
                "is within %.2f dB of bicubic (%.2f dB); it goes on (see "
                "docs/research/stalled-trainings.md)",
                *(self.run_dir, epoch + 1, self.epochs),
                *(self.cfg.train.stall_margin, self.bicubic_psnr),
            )

    # ------------------------------------------------------------------ stalls
    @property
    def bicubic_psnr(self) -> float:
        """Validation PSNR of bicubic upscaling (computed once, on the validation set)."""
        if self._bicubic is None:
            self._bicubic = float(bicubic_reference(self.val)["psnr"])
        return self._bicubic

    @property
    def stall_epoch(self) -> int:
        """The epoch count after which a training still at bicubic is reported stalled."""
        return max(1, math.ceil(self.cfg.train.stall_check * self.epochs))

    def stalled(self) -> bool:
        """The best QAT validation PSNR so far is within ``train.stall_margin`` of bicubic."""
        gains = [r["val_psnr"] - self.bicubic_psnr for r in self.history if r["quantized"]]
        return bool(gains) and max(gains) < self.cfg.train.stall_margin

    def finish(self) -> None:
        write_training_records(self.cfg, self.run_dir, self.genotype, self.history)

    def best_network(self) -> nn.Module:
        """The network with the state of the best checkpoint, quantized as it was, in eval
        mode (the network trained here: nothing is rebuilt).
        """
        ck = load_checkpoint(self.run_dir / BEST)
        set_quantized(self.net, bool(ck.get("quantized", True)))
        load_state(self.net, ck["model"], path=self.run_dir / BEST, what="the best network")
        return self.net.eval()

    def result(self) -> TrainResult:
        return TrainResult(
            self.run_dir,
            self.run_dir / BEST,
            int(self.best["epoch"]),
            float(self.best["val_psnr"]),
            sum(r["seconds"] for r in self.history),
            self.bicubic_psnr,
            self.stalled(),
            len(self.history) - 1,
        )


def train(
    cfg: Config,
    run_dir: str | Path,
    genotype: Genotype,
    *,
    resume: bool = False,
    data: JobData | None = None,
    build: Callable[[], nn.Module] | None = None,
    net_spec: dict | None = None,
) -> TrainResult:
    """Train ``genotype`` (or the network ``build`` makes, see :class:`Trainer`; resuming
    from ``run_dir`` when asked and possible) on ``data`` (the config's sources when None).
    The result holds the best network.
    """
    t = Trainer(cfg, run_dir, genotype, build=build, net_spec=net_spec, data=data)
    if resume:
        t.resume()
    res = t.run()
    if res.best_path.exists():
        res.network = t.best_network()
    return res
