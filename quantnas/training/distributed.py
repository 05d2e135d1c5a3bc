"""Data-parallel search and training under ``torchrun`` (gloo on CPU, nccl on GPU).

``torchrun --nproc_per_node N -m quantnas search|train ...`` starts N processes; each
runs the same search or training on its own shard of every batch:

* ``search.batch_size`` / ``train.batch_size`` stay the *global* batch; each of the N
  ranks computes ``batch_size / N`` samples of it (the batch size must be divisible by N).
* All ranks draw the same global batches: one permutation per pass seeded by
  ``(seed, epoch, pass)``, and each sample's random crop/augmentation drawn under its own
  seed ``(seed, epoch, pass, position)``. The samples therefore do not depend on how many
  ranks share them, and a run with N ranks sees the batches of a 1-rank run.
* After every backward pass the gradients (weights, and in the search the alphas) are
  averaged over the ranks with one all-reduce, the same averaging as
  ``DistributedDataParallel``; every rank then applies the same update, so weights, LSQ
  steps and alphas stay identical on every rank and every rank exports the same genotype.
  (The ``DistributedDataParallel`` wrapper itself is not used: the search alternates two
  optimizers over disjoint parameters with different losses, and the trainer's EMA copy and
  checkpoints expect the plain module.)
* Rank 0 alone validates, logs and writes files (checkpoints, metrics, genotypes, plots);
  the other ranks write nothing. A resumed run reads rank 0's checkpoint on every rank
  (several machines need the run directory on a shared file system).
* The random-number streams (e.g. the search's quantization noise) are the same on every
  rank, as the checkpoint holds one RNG state.

Not covered: BatchNorm statistics (ADQ, ``arch.skip_mode=false``) are per rank, as with
``DistributedDataParallel`` without SyncBatchNorm, so ADQ networks are not bit-equal to a
1-rank run; ``data.num_workers`` is not used under ``torchrun`` (samples load in the
training process). Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) nothing
here changes quantnas' behaviour.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from quantnas.errors import QuantNASError

__all__ = [
    "ShardedLoader",
    "active",
    "average_gradients",
    "barrier",
    "broadcast_module",
    "init",
    "isolated_rng",
    "is_main",
    "launched",
    "rank",
    "rank0_path",
    "refuse",
    "set_epoch",
    "train_loader",
]

log = logging.getLogger(__name__)


def launched() -> bool:
    """True when started by ``torchrun`` (or anything that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ


def rank() -> int:
    """The rank of this process (0 without ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the rank that validates, logs and writes files (rank 0)."""
    return rank() == 0


def active() -> bool:
    """True when a process group is up (this process is one rank of a data-parallel run)."""
    return dist.is_available() and dist.is_initialized()


def init(device: torch.device | str = "cpu") -> bool:
    """Join the process group described by ``torchrun``'s environment (idempotent).

    Uses nccl for CUDA devices and gloo otherwise. Returns whether a group is active.

    Raises:
        QuantNASError: If ``torch.distributed`` is unavailable or the group cannot be joined.

    """
    if not launched():
        return False
    if active():
        return True
    if not dist.is_available():
        raise QuantNASError("WORLD_SIZE is set but this torch build has no torch.distributed")
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        dist.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QuantNASError(f"cannot join the torchrun process group ({backend}): {first}") from e
    log.info("data-parallel rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return True


def isolated_rng():
    """Under ``torchrun``: a context in which rank 0's extra work (validation, which can
    draw quantization noise) leaves the global RNG as it was, so every rank keeps the same
    random stream. A plain no-op context otherwise (single-process runs are unchanged).
    """
    if active():
        return torch.random.fork_rng(devices=[])
    return contextlib.nullcontext()


def refuse(verb: str) -> None:
    """Reject verbs that do not run data-parallel when started with several ranks."""
    if launched() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise QuantNASError(
            f"quantnas {verb} does not run under torchrun; run `quantnas search` and "
            "`quantnas train` with torchrun, the other stages in one process"
        )


def rank0_path(path):
    """Rank 0's value of ``path`` on every rank (e.g. a run directory named by time)."""
    from pathlib import Path

    if not active():
        return path
    box = [str(path)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if active():
        dist.barrier()


@torch.no_grad()
def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op without a group)."""
    if not active() or dist.get_world_size() == 1:
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


@torch.no_grad()
def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the ranks with one all-reduce.

    Parameters without a gradient are skipped (the same on every rank: every rank runs
    the same graph). No-op without a process group or with one rank.
    """
    if not active() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class ShardedLoader:
    """The share of one rank of every global batch, independent of the number of ranks.

    Args:
        dataset: Map-style dataset of ``(lr, hr)`` tensors whose randomness comes from
            torch's global RNG (e.g. :class:`~quantnas.data.datasets.SRTrainDataset`).
        batch_size: Global batch size (divisible by ``world``).
        rank: This rank.
        world: Number of ranks.
        seed: Base seed.

    """

    def __init__(self, dataset, *, batch_size: int, rank: int, world: int, seed: int) -> None:
        if batch_size % world:
            raise QuantNASError(
                f"batch size {batch_size} is not divisible by the {world} torchrun processes"
            )
        if len(dataset) < batch_size:
            raise QuantNASError(
                f"the training data yields {len(dataset)} samples, fewer than one global batch "
                f"of {batch_size}; raise data.repeat or lower the batch size"
            )
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.rank, self.world, self.seed = int(rank), int(world), int(seed)
        self.epoch = 0
        self._pass = 0

    def set_epoch(self, epoch: int) -> None:
        """Start the sample sequence of ``epoch`` (call at the start of every epoch)."""
        self.epoch, self._pass = int(epoch), 0

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def global_indices(self, pass_: int) -> list[list[int]]:
        """The dataset indices of every global batch of one pass over the data."""
        g = torch.Generator().manual_seed(_seed(self.seed, self.epoch, pass_, 0x5EED))
        order = torch.randperm(len(self.dataset), generator=g).tolist()
        b = self.batch_size
        return [order[i * b : (i + 1) * b] for i in range(len(self))]

    def _sample(self, pass_: int, position: int, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, self.epoch, pass_, position))
            return self.dataset[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pass_ = self._pass
        self._pass += 1
        share = self.batch_size // self.world
        for i, batch in enumerate(self.global_indices(pass_)):
            lo = self.rank * share
            items = [
                self._sample(pass_, i * self.batch_size + lo + k, idx)
                for k, idx in enumerate(batch[lo : lo + share])
            ]
            yield tuple(torch.stack(parts) for parts in zip(*items, strict=True))


def train_loader(dataset, *, batch_size: int, num_workers: int, seed: int):
    """The training loader: :class:`ShardedLoader` under ``torchrun``, else the usual one."""
    if not active():
        from quantnas.data.from_config import loader

        return loader(dataset, batch_size=batch_size, num_workers=num_workers)
    return ShardedLoader(
        dataset,
        batch_size=batch_size,
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        seed=seed,
    )


def set_epoch(*loaders, epoch: int) -> None:
    """Tell sharded loaders the epoch (no-op for ordinary loaders)."""
    for ld in loaders:
        if isinstance(ld, ShardedLoader):
            ld.set_epoch(epoch)
