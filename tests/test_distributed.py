"""Data-parallel search and training: 2 gloo processes on the CPU (as under torchrun)."""

import os
import socket
from pathlib import Path

import pytest
import torch
from tiny_runs import DIST_SEARCH as SEARCH
from tiny_runs import DIST_TRAIN as TRAIN

from quantnas.data.datasets import SRTrainDataset
from quantnas.data.sources import embedded_images
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.space import genotype as gt
from quantnas.training.distributed import ShardedLoader


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, task, out, overrides, stop_after, resume):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    out = Path(out)
    cfg = load_config(preset="tiny", overrides=[*overrides, f"out_dir={out}"])
    run_dir = out / ("run" if rank == 0 else f"run_rank{rank}")
    try:
        if task == "search":
            from quantnas.search.searcher import Searcher

            s = Searcher(cfg, run_dir)
            init = {k: v.clone() for k, v in s.net.alpha.state_dict().items()}
            s.run()
            state = {
                "alphas": s.net.alpha.state_dict(),
                "init_alphas": init,
                "weights": dict(s.net.named_weights()),
                "genotype": s.net.export().to_text(),
            }
        else:
            from quantnas.training.trainer import Trainer

            t = Trainer(cfg, run_dir, gt.PAPER_EXAMPLE)
            if resume:
                assert t.resume(out / "run" / "checkpoint.pt")
            t.run(stop_after=stop_after)
            state = {"model": t.net.state_dict(), "epoch": t.epoch}
        torch.save({k: v for k, v in state.items()}, out / f"result_{rank}.pt")
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _spawn(world, task, out, overrides, stop_after=None, resume=False):
    import torch.multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    args = (world, _free_port(), task, str(out), overrides, stop_after, resume)
    mp.spawn(_worker, args=args, nprocs=world, join=True)
    return [torch.load(out / f"result_{r}.pt", weights_only=False) for r in range(world)]


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --------------------------------------------------------------------- data sharding
def _dataset():
    return SRTrainDataset(embedded_images("train")[:2], scale=4, lr_crop=8, repeat=6)


def test_shards_of_two_ranks_make_the_one_rank_batch():
    one = ShardedLoader(_dataset(), batch_size=4, rank=0, world=1, seed=3)
    halves = [ShardedLoader(_dataset(), batch_size=4, rank=r, world=2, seed=3) for r in (0, 1)]
    for ld in (one, *halves):
        ld.set_epoch(1)
    assert len(one) == len(halves[0]) == 3
    for (lr, hr), (lr0, hr0), (lr1, hr1) in zip(one, *halves, strict=True):
        assert lr0.shape[0] == lr1.shape[0] == 2
        assert torch.equal(lr, torch.cat([lr0, lr1])) and torch.equal(hr, torch.cat([hr0, hr1]))
        assert not torch.equal(lr0, lr1)  # each rank computes its own samples
    # a new epoch draws other batches; the same epoch the same ones (resume)
    one.set_epoch(2)
    again = ShardedLoader(_dataset(), batch_size=4, rank=0, world=1, seed=3)
    again.set_epoch(2)
    first = next(iter(one))[0]
    assert torch.equal(first, next(iter(again))[0])
    one.set_epoch(1)
    assert not torch.equal(first, next(iter(one))[0])


def test_sharding_errors():
    with pytest.raises(QuantNASError, match="not divisible by the 3 torchrun processes"):
        ShardedLoader(_dataset(), batch_size=4, rank=0, world=3, seed=0)
    with pytest.raises(QuantNASError, match="fewer than one global batch"):
        ShardedLoader(_dataset(), batch_size=64, rank=0, world=2, seed=0)


# ------------------------------------------------------------------ two gloo processes
@pytest.mark.slow
def test_two_process_search_keeps_identical_alphas(tmp_path):
    r0, r1 = _spawn(2, "search", tmp_path, SEARCH)
    for k in r0["alphas"]:
        assert torch.equal(r0["alphas"][k], r1["alphas"][k]), k
    assert any(not torch.equal(r0["alphas"][k], r0["init_alphas"][k]) for k in r0["alphas"])
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k
    assert r0["genotype"] == r1["genotype"]
    # only rank 0 writes
    written = {p.name for p in _files(tmp_path / "run")}
    assert {"checkpoint.pt", "best_arch.json", "metrics.jsonl", "config.yaml"} <= written
    assert _files(tmp_path / "run_rank1") == []
    assert gt.load(tmp_path / "run" / "last_arch.json").to_text() == r0["genotype"]


@pytest.mark.slow
def test_two_process_training_equals_one_process_and_resumes(tmp_path, monkeypatch):
    # the 1-process run (a torchrun world of 1) in this process: no spawn needed
    port = _free_port()
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0"}
    for key, value in {**env, "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)  # restored (removed) after the test
    threads = torch.get_num_threads()
    (tmp_path / "one").mkdir()
    try:
        _worker(0, 1, port, "train", str(tmp_path / "one"), TRAIN, None, False)
    finally:
        torch.set_num_threads(threads)
    one = torch.load(tmp_path / "one" / "result_0.pt", weights_only=False)
    two = _spawn(2, "train", tmp_path / "two", TRAIN)
    for k, v in one["model"].items():
        assert torch.equal(two[0]["model"][k], two[1]["model"][k]), k
        if v.is_floating_point():
            assert torch.allclose(two[0]["model"][k], v, rtol=1e-4, atol=1e-5), k
    # the networks really trained: the weights moved from the initialisation
    torch.manual_seed(0)
    from quantnas.space.build import build_network

    fresh = build_network(
        gt.PAPER_EXAMPLE, load_config(preset="tiny", overrides=TRAIN).arch
    ).state_dict()
    assert "WORLD_SIZE" in os.environ  # (monkeypatch removes it after this test)
    assert any(
        not torch.allclose(fresh[k], v) for k, v in one["model"].items() if v.is_floating_point()
    )
    assert _files(tmp_path / "two" / "run_rank1") == []
    assert (tmp_path / "two" / "run" / "best.pt").is_file()

    # interrupted after one epoch and resumed on 2 ranks: the same weights, exactly
    cut = tmp_path / "cut"
    _spawn(2, "train", cut, TRAIN, stop_after=1)
    resumed = _spawn(2, "train", cut, TRAIN, resume=True)
    assert resumed[0]["epoch"] == 2
    for k, v in two[0]["model"].items():
        assert torch.equal(resumed[0]["model"][k], v), k
        assert torch.equal(resumed[1]["model"][k], v), k


@pytest.mark.slow
def test_torchrun_cli_train_then_resume(tmp_path):
    """`torchrun -m quantnas train` on 2 ranks, then `--resume` with more epochs."""
    import subprocess
    import sys

    base = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "quantnas",
        "train",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cfg = [f"out_dir={tmp_path}", *TRAIN, "train.epochs=1"]
    first = subprocess.run(
        [*base, "--preset", "tiny", "--genotype", "default", "name=t", *cfg],
        env=env,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "t"
    assert {"best.pt", "checkpoint.pt", "log.txt", "metrics.jsonl"} <= {
        p.name for p in run.iterdir()
    }
    again = subprocess.run(
        [*base, "--resume", str(run), "train.epochs=2"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-2000:]
    from quantnas.training.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2
    log = (run / "log.txt").read_text()
    assert log.count("train epoch 0:") == 1 and log.count("train epoch 1:") == 1  # rank 0 only
    assert "resumed training" in log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no directory of another rank
