"""Behaviour of QAT training of a genotype (outputs, reload, resume, warm-up, losses, EMA,
quality)."""

import json
import math

import pytest
import torch
from tiny_runs import QUIET
from tiny_runs import TRAIN_STEPS as TINY

from quantnas.data.from_config import val_dataset
from quantnas.errors import QuantNASError
from quantnas.evaluation.score import bicubic_reference, validate
from quantnas.pipeline.resolve import load_config
from quantnas.space import genotype as gt
from quantnas.space.build import build_network
from quantnas.training.artifact import load_model
from quantnas.training.checkpoint import load_checkpoint
from quantnas.training.optim import pixel_loss
from quantnas.training.trainer import Trainer, ema_update, train


def tiny_cfg(tmp_path, *extra):
    return load_config(preset="tiny", overrides=[*TINY, f"out_dir={tmp_path}", *extra])


def _lr(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=g)


def test_train_outputs_and_reload(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.epochs=1")
    t = Trainer(cfg, tmp_path / "t", gt.DEFAULT)
    res = t.run()
    d = tmp_path / "t"
    for name in ("best.pt", "checkpoint.pt", "training.png", "genotype.json", "config.yaml"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert gt.load(d / "genotype.json") == gt.DEFAULT
    assert res.best_path == d / "best.pt"
    assert 0 <= res.best_epoch < cfg.train.epochs
    assert res.best_psnr == max(h["val_psnr"] for h in t.history)
    assert [h["epoch"] for h in t.history] == [0]
    assert t.history[0]["quantized"] == 1
    # the best checkpoint rebuilds the network and reproduces its output
    best = load_checkpoint(d / "best.pt")
    assert best["epoch"] == res.best_epoch and best["val_psnr"] == pytest.approx(res.best_psnr)
    net, geno, arch = load_model(d / "best.pt")
    assert geno == gt.DEFAULT and arch.c_fixed == 12 and not net.training
    x = _lr()
    assert res.best_epoch == 0  # the only epoch: best.pt holds the final weights
    t.net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), t.net(x))
    # the last checkpoint also loads (kind=train) and matches the final weights
    last, _, _ = load_model(d / "checkpoint.pt")
    t.net.eval()
    with torch.no_grad():
        assert torch.equal(last(x), t.net(x))
    # a fresh model differs (the comparison is not vacuous)
    fresh = build_network(gt.DEFAULT, cfg.arch).eval()
    with torch.no_grad():
        assert not torch.equal(fresh(x), t.net(x))


def test_load_model_rejects_search_checkpoint(tmp_path):
    from quantnas.rundir.files import atomic_save

    atomic_save({"kind": "search", "epoch": 1}, tmp_path / "s.pt")
    with pytest.raises(QuantNASError, match="no trained network"):
        load_model(tmp_path / "s.pt")


def test_resume_is_exact(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.epochs=3")
    full = Trainer(cfg, tmp_path / "full", gt.DEFAULT)
    full.run()
    part = Trainer(cfg, tmp_path / "part", gt.DEFAULT)
    part.run(stop_after=1)
    assert part.epoch == 1
    resumed = Trainer(cfg, tmp_path / "part", gt.DEFAULT)
    assert resumed.resume() is True and resumed.epoch == 1
    resumed.run()
    sd_full, sd_res = full.net.state_dict(), resumed.net.state_dict()
    assert sd_full.keys() == sd_res.keys()
    for k in sd_full:
        assert torch.equal(sd_full[k], sd_res[k]), k
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.history[-1]["val_psnr"] == full.history[-1]["val_psnr"]
    assert resumed.best == full.best
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().strip().splitlines()
    assert [json.loads(r)["epoch"] for r in lines] == [0, 1, 2]


def test_resume_with_warm_up_is_exact(tmp_path):
    # stop inside the full-precision warm-up, resume into QAT
    cfg = tiny_cfg(tmp_path, "train.epochs=2", "train.warm_up=1")
    full = Trainer(cfg, tmp_path / "full", gt.DEFAULT)
    full.run()
    Trainer(cfg, tmp_path / "part", gt.DEFAULT).run(stop_after=1)
    resumed = Trainer(cfg, tmp_path / "part", gt.DEFAULT)
    resumed.resume()
    resumed.run()
    for k, v in full.net.state_dict().items():
        assert torch.equal(v, resumed.net.state_dict()[k]), k


def test_resume_other_genotype_refused(tmp_path):
    cfg = tiny_cfg(tmp_path)
    Trainer(cfg, tmp_path / "r", gt.DEFAULT).run(stop_after=1)
    other = gt.Genotype.from_pairs({**gt.DEFAULT.pairs(), "upsample": [("simple_5x5", 8)]})
    with pytest.raises(QuantNASError, match="another genotype"):
        Trainer(cfg, tmp_path / "r", other).resume()


def test_full_precision_warm_up(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.epochs=2", "train.warm_up=1")
    t = Trainer(cfg, tmp_path / "w", gt.DEFAULT)
    res = t.run()
    assert [h["quantized"] for h in t.history] == [0, 1]
    rows = (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["quantized"] for r in rows] == [0, 1]
    # the best checkpoint is a quantized one
    assert res.best_epoch == 1
    assert load_checkpoint(tmp_path / "w" / "best.pt")["quantized"] is True


def test_train_warm_up_covering_all_epochs_refused():
    with pytest.raises(QuantNASError, match="train.warm_up"):
        load_config(overrides=["train.epochs=2", "train.warm_up=2"])


def test_train_zero_epochs_refused():
    with pytest.raises(QuantNASError, match="train.epochs"):
        load_config(overrides=["train.epochs=0"])


def test_genotype_of_other_space_refused(tmp_path):
    rfdn_geno = gt.Genotype.from_pairs(
        {
            "body": [("simple_3x3", 8)] * 4,
            "skip": [("simple_1x1", 8)] * 3,
            "upsample": [("simple_3x3", 8)],
            "tail": [("simple_3x3", 8)],
        },
        space="rfdn",
    )
    cfg = tiny_cfg(tmp_path)
    with pytest.raises(QuantNASError, match="space"):
        Trainer(cfg, tmp_path / "x", rfdn_geno)
    cfg = tiny_cfg(tmp_path, "arch.space=rfdn", "arch.body_cells=1", "data.lr_crop=16")
    with pytest.raises(QuantNASError, match="space"):
        train(cfg, tmp_path / "y", gt.DEFAULT)


def test_rfdn_genotype_trains(tmp_path):
    geno = gt.Genotype.from_pairs(
        {
            "body": [("simple_3x3", 8)] * 4,
            "skip": [("simple_1x1", 4)] * 3,
            "upsample": [("simple_3x3", 8)],
            "tail": [("simple_3x3", 8)],
        },
        space="rfdn",
    )
    cfg = tiny_cfg(
        tmp_path, "arch.space=rfdn", "arch.body_cells=1", "data.lr_crop=16", "train.epochs=1"
    )
    res = train(cfg, tmp_path / "r", geno)
    assert math.isfinite(res.best_psnr)
    net, g2, _ = load_model(res.best_path)
    assert g2 == geno


def _initial_psnr(geno, *overrides):
    cfg = load_config(overrides=["arch.c_fixed=12", "data.val_crop=64", *overrides])
    torch.manual_seed(0)
    net = build_network(geno, cfg.arch).eval()
    return validate(net, val_dataset(cfg), torch.device("cpu"))["val_psnr"]


def test_initial_network_starts_near_bicubic_without_tail():
    cfg = load_config(overrides=["data.val_crop=64"])
    bic = bicubic_reference(val_dataset(cfg))["psnr"]
    assert _initial_psnr(gt.DEFAULT) > bic - 4


_TAIL_GENOTYPES = {
    "basic-tail": (
        gt.Genotype.from_pairs({**gt.DEFAULT.pairs(), "tail": [("simple_3x3", 8)]}),
        [],
    ),
    "rfdn": (
        gt.Genotype.from_pairs(
            {
                "body": [("simple_3x3", 8)] * 4,
                "skip": [("simple_1x1", 8)] * 3,
                "upsample": [("simple_3x3", 8)],
                "tail": [("simple_3x3", 8)],
            },
            space="rfdn",
        ),
        ["arch.space=rfdn", "arch.body_cells=1"],
    ),
}


@pytest.mark.parametrize("which", sorted(_TAIL_GENOTYPES))
def test_initial_network_starts_near_bicubic_with_tail(which):
    geno, overrides = _TAIL_GENOTYPES[which]
    cfg = load_config(overrides=["data.val_crop=64"])
    bic = bicubic_reference(val_dataset(cfg))["psnr"]
    assert _initial_psnr(geno, *overrides) > bic - 4


def test_training_improves_psnr_over_bicubic(tmp_path):
    # about 4 s with one thread; deterministic for a fixed seed
    cfg = load_config(
        overrides=[
            "arch.c_fixed=12",
            "data.lr_crop=24",
            "data.repeat=48",
            "data.val_crop=64",
            "train.epochs=8",
            *QUIET,
            "seed=0",
            f"out_dir={tmp_path}",
        ]
    )
    t = Trainer(cfg, tmp_path / "q", gt.DEFAULT)
    res = t.run()
    psnrs = [h["val_psnr"] for h in t.history]
    bic = bicubic_reference(val_dataset(cfg))["psnr"]
    assert res.best_psnr > psnrs[0] + 0.1, (psnrs, bic)
    assert res.best_psnr > bic, (psnrs, bic)
    # a training that learns is not reported stalled
    assert not res.stalled and res.best_psnr - res.bicubic_psnr >= cfg.train.stall_margin


def test_pixel_losses_on_a_known_pair():
    sr = torch.tensor([0.0, 0.5, 1.0, 1.0])
    hr = torch.tensor([0.0, 0.0, 0.0, 1.0])
    # |d| = 0, 0.5, 1, 0
    assert float(pixel_loss("l1")(sr, hr)) == pytest.approx(1.5 / 4)
    assert float(pixel_loss("mse")(sr, hr)) == pytest.approx(1.25 / 4)
    expect = (2 * 1e-3 + (0.25 + 1e-6) ** 0.5 + (1 + 1e-6) ** 0.5) / 4
    assert float(pixel_loss("charbonnier")(sr, hr)) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(QuantNASError, match="unknown loss 'l3'"):
        pixel_loss("l3")


def test_ema_decay_warms_up():
    upd = ema_update(0.99)
    avg, new = torch.zeros(3), torch.ones(3)
    # first update: decay min(0.99, 1/10) = 0.1 -> 90% of the way to the new weights
    assert torch.allclose(upd(avg, new, 0), torch.full((3,), 0.9))
    # late updates use the configured decay
    assert torch.allclose(upd(avg, new, 10_000), torch.full((3,), 0.01))


def test_finetune_epochs_switch_the_loss(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.epochs=3", "train.finetune_epochs=1")
    t = Trainer(cfg, tmp_path / "f", gt.DEFAULT)
    assert [t.loss_at(e) for e in range(3)] == [pixel_loss("l1")] * 2 + [pixel_loss("mse")]
    t.run()
    # MSE of [0, 1] images is far below their L1: the logged loss shows the switch
    losses = [h["train_loss"] for h in t.history]
    assert losses[2] < 0.5 * min(losses[:2])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.ema=1.0", "train.ema: decay must be in"),
        ("train.finetune_epochs=3", "train.finetune_epochs: must be in"),
        ("train.loss=l3", "train.loss: 'l3' is not one of"),
    ],
)
def test_bad_training_options_refused(tmp_path, override, message):
    with pytest.raises(QuantNASError, match=message):
        tiny_cfg(tmp_path, override)


def test_ema_network_is_validated_saved_and_resumed_exactly(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.epochs=3", "train.ema=0.9")
    full = Trainer(cfg, tmp_path / "full", gt.DEFAULT)
    full.run()
    # the EMA copy differs from the raw weights and is what best.pt holds
    raw, ema = full.net.state_dict(), full.ema.module.state_dict()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    net, _, _ = load_model(tmp_path / "full" / "best.pt")
    best_epoch = load_checkpoint(tmp_path / "full" / "best.pt")["epoch"]
    if best_epoch == cfg.train.epochs - 1:
        for k, v in net.state_dict().items():
            assert torch.equal(v, ema[k]), k
    # the recorded PSNRs are those of the EMA copy, and best.pt reproduces its score
    val = val_dataset(cfg)
    cpu = torch.device("cpu")
    assert validate(full.ema.module, val, cpu)["val_psnr"] == full.history[-1]["val_psnr"]
    assert validate(net, val, cpu)["val_psnr"] == pytest.approx(full.best["val_psnr"])
    # interrupted after one epoch and resumed: bit-identical raw and EMA weights
    Trainer(cfg, tmp_path / "part", gt.DEFAULT).run(stop_after=1)
    resumed = Trainer(cfg, tmp_path / "part", gt.DEFAULT)
    assert resumed.resume()
    resumed.run()
    for k, v in full.ema.state_dict().items():
        assert torch.equal(v, resumed.ema.state_dict()[k]), k
    for k, v in raw.items():
        assert torch.equal(v, resumed.net.state_dict()[k]), k


def test_resume_without_ema_weights_refused(tmp_path):
    Trainer(tiny_cfg(tmp_path), tmp_path / "r", gt.DEFAULT).run(stop_after=1)
    t = Trainer(tiny_cfg(tmp_path, "train.epochs=3", "train.ema=0.9"), tmp_path / "r", gt.DEFAULT)
    with pytest.raises(QuantNASError, match="no EMA weights"):
        t.resume()


# ------------------------------------------------------------------------- stall detector
def test_stall_detector_flags_a_forced_stall(tmp_path, caplog):
    """A training forced to stay at bicubic (learning rate ~0, so the zero-initialised
    output scale never moves) is flagged with a warning naming the run, and not stopped."""
    import logging

    cfg = tiny_cfg(tmp_path, "train.epochs=2", "train.lr=1e-12", "train.lr_min=1e-13")
    with caplog.at_level(logging.WARNING, logger="quantnas"):
        t = Trainer(cfg, tmp_path / "stuck", gt.DEFAULT)
        res = t.run()
    assert res.stalled and len(t.history) == 2  # flagged, and it went on
    assert all(abs(r["val_gain"]) < 1e-6 for r in t.history)
    assert math.isclose(res.bicubic_psnr, bicubic_reference(val_dataset(cfg))["psnr"])
    warned = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
    assert len(warned) == 1 and str(tmp_path / "stuck") in warned[0]


@pytest.mark.slow
def test_4bit_edsr_that_stalled_now_leaves_bicubic(tmp_path):
    """The 4-bit small EDSR of the sweep-cpu preset, seed 0, ended exactly at bicubic
    (28.537 dB on validation) at lr 1e-3: Adam's sign-coherent steps pushed the input of
    its last conv below zero within 50 steps (docs/research/stalled-trainings.md). At the preset's
    lr it leaves bicubic. How far it gets in these 400 steps follows the CPU's float rounding
    near the saddle (+0.37 dB on the machine of that page, +0.056 dB on a Zen 3 CPU without
    AVX-512, where it takes off in the last 100 steps), so the test asks for the trainer's
    own criterion: above bicubic by more than ``train.stall_margin`` and rising. About 20-60 s
    with one thread (400 steps at 48 channels, as in the sweep)."""
    from quantnas.space.baselines import build_baseline

    cfg = load_config(
        preset="sweep-cpu",
        overrides=[
            "train.epochs=4",
            "train.steps_per_epoch=100",
            "threads=1",
            "seed=0",
            f"out_dir={tmp_path}",
        ],
    )
    assert cfg.train.optim.lr <= 5e-4
    t = Trainer(
        cfg,
        tmp_path / "edsr4",
        None,
        build=lambda: build_baseline("edsr", cfg.arch, 4),
        net_spec={"baseline": "edsr", "bits": 4},
    )
    res = t.run()
    gains = [r["val_psnr"] - res.bicubic_psnr for r in t.history]
    assert not res.stalled, gains
    assert gains[-1] > cfg.train.stall_margin and gains[-1] > gains[0], gains


def test_trainer_and_train_take_a_string_run_dir(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.epochs=1")
    res = Trainer(cfg, str(tmp_path / "t"), gt.DEFAULT).run()
    assert res.best_path == tmp_path / "t" / "best.pt" and res.best_path.is_file()
    res2 = train(cfg, str(tmp_path / "f"), gt.DEFAULT)
    assert res2.best_path == tmp_path / "f" / "best.pt" and res2.best_psnr == res.best_psnr
