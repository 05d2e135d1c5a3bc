"""Per-step TensorBoard scalars (loss, learning rate) of searches and trainings, which change
no number, and the ETAs of progress bars and stages.
"""

import json
import logging

import pytest
import torch
from tiny_runs import RUN, TRAIN

from quantnas.pipeline.resolve import load_config
from quantnas.rundir.log import StageClock, progress
from quantnas.search.searcher import search
from quantnas.space import genotype as gt
from quantnas.training.checkpoint import load_checkpoint
from quantnas.training.trainer import Trainer

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")

STEPS = ["train.epochs=2", "train.steps_per_epoch=3"]


def step_events(run_dir):
    """``{tag: [(step, value), ...]}`` of the run's per-step TensorBoard scalars."""
    acc = event_accumulator.EventAccumulator(str(run_dir / "tensorboard" / "steps"))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_tiny(tmp_path, name, *extra):
    cfg = load_config(preset="tiny", overrides=[*TRAIN, *STEPS, f"out_dir={tmp_path}", *extra])
    Trainer(cfg, tmp_path / name, gt.DEFAULT).run()
    return tmp_path / name


def test_training_logs_every_step_and_changes_nothing(tmp_path):
    on = train_tiny(tmp_path, "on", "tensorboard=true")
    off = train_tiny(tmp_path, "off", "tensorboard=false")
    events = step_events(on)
    assert {"step/train_loss", "step/lr"} <= set(events)
    losses = events["step/train_loss"]
    assert [s for s, _ in losses] == list(range(6))
    history = rows(on)
    assert len(history) == 2 and not any(k.startswith("step/") for r in history for k in r)
    for epoch, row in enumerate(history):  # the epoch's mean is the mean of its steps
        mean = sum(v for s, v in losses if s // 3 == epoch) / 3
        assert mean == pytest.approx(row["train_loss"], rel=1e-6)
    lrs = [v for _, v in events["step/lr"]]
    assert 0 < lrs[0] and lrs == sorted(lrs)  # the linear warm-up of these 6 steps
    # a step's rate is the one it used: the epoch row's rate (read after it) is the next's
    assert lrs[3] == pytest.approx(history[0]["lr"], rel=1e-6)
    # the same training without TensorBoard gives the same numbers, to the last bit
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in rows(off)]
    a, b = load_checkpoint(on / "best.pt")["model"], load_checkpoint(off / "best.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_search_logs_every_step(tmp_path):
    cfg = load_config(overrides=[*RUN, "tensorboard=true", f"out_dir={tmp_path}"])
    search(cfg, tmp_path / "s")
    events = step_events(tmp_path / "s")
    steps = cfg.search.epochs * cfg.search.steps_per_epoch
    assert [s for s, _ in events["step/train_loss"]] == list(range(steps))
    assert len(events["step/lr"]) == steps
    # alpha steps start at search.warm_up=1: their terms from the second epoch on
    first_alpha = cfg.search.warm_up * cfg.search.steps_per_epoch
    assert [s for s, _ in events["step/alpha_l1"]] == list(range(first_alpha, steps))
    history = rows(tmp_path / "s")
    assert len(history) == cfg.search.epochs
    last = [v for s, v in events["step/train_loss"] if s >= steps - cfg.search.steps_per_epoch]
    assert sum(last) / len(last) == pytest.approx(history[-1]["train_loss"], rel=1e-6)


def test_progress_bar_shows_an_eta(monkeypatch, capsys):
    monkeypatch.setenv("QUANTNAS_PROGRESS", "1")
    for _ in progress(range(3), desc="train 1/2"):
        pass
    err = capsys.readouterr().err
    assert "train 1/2" in err and "ETA" in err


def test_stage_clock():
    clock = StageClock(10, done=2, now=100.0)  # resumed after 2 of 10 epochs
    assert clock.eta(2, now=130.0) is None and clock.text(2, now=130.0) == ""
    assert clock.eta(4, now=160.0) == pytest.approx(180.0)  # 30 s an epoch, 6 to go
    assert clock.text(4, now=160.0) == "ETA 03:00"
    assert clock.text(5, now=100.0 + 3 * 1500.0) == "ETA 2:05:00"
    assert clock.eta(10, now=500.0) == 0.0


def test_stages_log_their_eta(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="quantnas"):
        run = train_tiny(tmp_path, "t", "tensorboard=false")
    lines = [r.getMessage() for r in caplog.records if "epochs done" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("training: 1 of 2 epochs done, ETA ")
    assert (run / "best.pt").exists()
