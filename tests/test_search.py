"""Behaviour of the search loop (penalty, regularizer, resume, outputs, transforms, modes)."""

import json
import math
import subprocess
import sys
import warnings

import pytest
import torch
from tiny_runs import SEARCH as TINY

from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.search import losses
from quantnas.search.searcher import Searcher, search
from quantnas.space.build import build_network
from quantnas.space.cost import network_cost
from quantnas.space.genotype import load as load_genotype

#: The supernet the default preset searches with (docs/research/probe-gain.md).
ZERO_FLOAT = (
    "search.branch_init=zero_last",
    "search.output_scale=false",
    "search.float_warm_up=true",
)


def tiny_cfg(tmp_path, *extra):
    return load_config(preset="tiny", overrides=[*TINY, f"out_dir={tmp_path}", *extra])


def run_search(tmp_path, name, *extra, stop_after=None):
    cfg = tiny_cfg(tmp_path, *extra)
    s = Searcher(cfg, tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = s.run(stop_after=stop_after)
    return cfg, s, res


def bitops(geno, cfg):
    return network_cost(build_network(geno, cfg.arch), lr_size=32).bitops


# ---------------------------------------------------------------------------- penalty
def test_hardware_penalty_lowers_bitops(tmp_path):
    cfg0, s0, r0 = run_search(tmp_path, "p0", "search.penalty=0")
    cfg1, s1, r1 = run_search(tmp_path, "p1", "search.penalty=1.0")
    b0, b1 = bitops(r0.best, cfg0), bitops(r1.best, cfg1)
    assert b1 < b0, (b0, b1)
    # the exported last genotype too
    assert bitops(r1.last, cfg1) < bitops(r0.last, cfg0)
    # the logged genotype BitOps is the one of the exported genotype
    assert s1.history[-1]["genotype_bitops"] == bitops(r1.last, cfg1)
    # expected BitOps falls every epoch under the penalty ...
    exp1 = [h["expected_bitops"] for h in s1.history]
    assert all(b < a for a, b in zip(exp1, exp1[1:], strict=False)), exp1
    # ... faster than without it
    exp0 = [h["expected_bitops"] for h in s0.history]
    assert exp1[-1] < exp0[-1]
    # first epoch is alpha warm-up: the expected BitOps is the one at the start
    assert exp1[0] == pytest.approx(s1.initial_bitops)
    # the penalty term is logged once alpha steps run
    assert "penalty" not in s1.history[0]
    assert s1.history[-1]["penalty"] > 0 and s0.history[-1]["penalty"] == 0


def test_entropy_regularizer_lowers_entropy(tmp_path):
    _, s_off, _ = run_search(tmp_path, "off", "search.sparse_type=none")
    _, s_on, _ = run_search(tmp_path, "on", "search.sparse_type=entropy", "search.sparse_coef=1.0")
    e_off, e_on = s_off.history[-1]["entropy"], s_on.history[-1]["entropy"]
    assert e_on < e_off, (e_on, e_off)
    # logged entropy is the mean per-layer entropy of the current probabilities
    probs = s_on.net.probabilities()
    assert e_on == pytest.approx(losses.mean_entropy(probs), rel=1e-6)
    # everything starts uniform: log(n_ops * n_bits) per layer
    n = {k: p.numel() for k, p in probs.items()}
    start = sum(math.log(v) for v in n.values()) / len(n)
    assert s_on.history[0]["entropy"] == pytest.approx(start, rel=1e-5)


# ----------------------------------------------------------------------------- resume
def _alphas(s):
    return {k: s.net.alpha.logits(k).detach().clone() for k in s.net.alpha.keys()}


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("search.alpha_transform=gumbel", "search.steps_per_epoch=1"),
        ("search.mode=quant", "search.steps_per_epoch=1"),
        (*ZERO_FLOAT, "search.mode=quant", "search.steps_per_epoch=1"),
    ],
    ids=["softmax-noise", "gumbel", "quant", "zero-last-float-quant"],
)
def test_resume_is_exact(tmp_path, extra):
    cfg, full, rf = run_search(tmp_path, "full", *extra)
    _, part, _ = run_search(tmp_path, "part", *extra, stop_after=1)
    assert part.epoch == 1
    assert (tmp_path / "part" / "checkpoint.pt").exists()
    assert not (tmp_path / "part" / "genotypes" / "epoch_001.json").exists()

    resumed = Searcher(cfg, tmp_path / "part")
    assert resumed.resume() is True
    assert resumed.epoch == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rr = resumed.run()
    assert rr.best == rf.best and rr.last == rf.last
    a_full, a_res = _alphas(full), _alphas(resumed)
    assert a_full.keys() == a_res.keys()
    for k in a_full:
        assert torch.allclose(a_full[k], a_res[k], atol=1e-6, rtol=0), k
    # alphas really moved (otherwise the comparison proves nothing)
    assert any(a.abs().max() > 1e-3 for a in a_full.values())
    # and so did every weight tensor, LSQ steps included (they are saved and restored)
    sd_full, sd_res = full.net.state_dict(), resumed.net.state_dict()
    for k in sd_full:
        assert torch.equal(sd_full[k], sd_res[k]), k
    assert resumed.history[-1]["val_loss"] == pytest.approx(
        full.history[-1]["val_loss"], rel=1e-6, abs=1e-9
    )
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    # the metrics file holds each epoch once
    rows = (tmp_path / "part" / "metrics.jsonl").read_text().strip().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [0, 1, 2]
    hist = json.loads((tmp_path / "part" / "alpha_history.json").read_text())
    assert all(len(v) == 3 for v in hist.values())


def test_resume_without_checkpoint_returns_false(tmp_path):
    cfg = tiny_cfg(tmp_path)
    assert Searcher(cfg, tmp_path / "empty").resume() is False


def test_resume_with_other_space_refused_before_training(tmp_path, monkeypatch):
    run_search(tmp_path, "r", stop_after=1)
    other = tiny_cfg(tmp_path, "arch.primitives={body: [simple_1x1, simple_3x3]}")
    s = Searcher(other, tmp_path / "r")

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("a training step ran before the config check")

    # fails at once if a step runs before the check (the checkpoint mtime is checked too)
    monkeypatch.setattr(Searcher, "train_epoch", boom)
    ck = tmp_path / "r" / "checkpoint.pt"
    stamp = ck.stat().st_mtime_ns
    with pytest.raises(QuantNASError, match="alphas") as ei:
        s.resume()
    assert "config" in str(ei.value)
    assert ck.stat().st_mtime_ns == stamp

    other = tiny_cfg(
        tmp_path, "arch.arch_pattern={head: 1, body: 2, skip: 1, upsample: 1, tail: 0}"
    )
    with pytest.raises(QuantNASError, match="alphas"):
        Searcher(other, tmp_path / "r").resume()


def test_search_function_resume(tmp_path):
    cfg, _, _ = run_search(tmp_path, "f", stop_after=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = search(cfg, tmp_path / "f", resume=True)
    assert res.best_epoch >= cfg.search.warm_up
    assert len(list((tmp_path / "f" / "genotypes").glob("epoch_*.json"))) == 3


def test_search_threads_hold_for_the_search_and_are_restored(tmp_path, monkeypatch):
    """``search.threads`` sets the search's thread count whatever the run's ``threads``, so
    its weights and alphas come out bit for bit alike at threads 1 and 2; the count is
    restored after.
    """
    seen: list[int] = []
    epoch = Searcher.train_epoch

    def spy(self, e):
        seen.append(torch.get_num_threads())
        return epoch(self, e)

    monkeypatch.setattr(Searcher, "train_epoch", spy)
    before = torch.get_num_threads()
    states = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(2)
            cfg = tiny_cfg(tmp_path, f"threads={threads}", "search.threads=1")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                search(cfg, tmp_path / f"t{threads}")
            assert torch.get_num_threads() == 2  # what the process had before the search
            ck = torch.load(tmp_path / f"t{threads}" / "checkpoint.pt", weights_only=False)
            states[threads] = ck["model"]  # the supernet's weights and alphas
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
    assert states[1].keys() == states[2].keys()
    assert any("alpha" in k for k in states[1])
    assert all(torch.equal(states[1][k], states[2][k]) for k in states[1])


# ---------------------------------------------------------------------------- outputs
def test_run_dir_outputs(tmp_path):
    cfg, s, res = run_search(tmp_path, "out")
    d = tmp_path / "out"
    for name in (
        "best_arch.json",
        "last_arch.json",
        "genotypes/epoch_000.json",
        "genotypes/epoch_002.json",
        "alpha_history.json",
        "alphas.png",
        "arch.png",
        "metrics.jsonl",
        "config.yaml",
        "checkpoint.pt",
    ):
        assert (d / name).is_file(), name
        assert (d / name).stat().st_size > 0, name
    assert load_genotype(d / "best_arch.json") == res.best
    assert load_genotype(d / "last_arch.json") == res.last
    # best is chosen after alpha warm-up
    assert res.best_epoch >= cfg.search.warm_up
    assert load_genotype(d / f"genotypes/epoch_{res.best_epoch:03d}.json") == res.best
    hist = json.loads((d / "alpha_history.json").read_text())
    assert set(hist) == set(s.net.alpha.keys())
    for key, rows in hist.items():
        assert len(rows) == cfg.search.epochs
        assert sum(map(sum, rows[-1])) == pytest.approx(1.0, abs=1e-5), key
    rows = [json.loads(r) for r in (d / "metrics.jsonl").read_text().splitlines()]
    header = {k for r in rows for k in r}
    for col in ("epoch", "val_loss", "val_psnr", "genotype_bitops", "expected_bitops", "entropy"):
        assert col in header


# ------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("transform", ["gumbel", "hard_gumbel"])
def test_gumbel_transforms_and_temperature(tmp_path, transform):
    extra = [
        f"search.alpha_transform={transform}",
        "search.steps_per_epoch=1",
        "search.temp_max=2.0",
        "search.temp_min=0.5",
    ]
    cfg, s, res = run_search(tmp_path, transform, *extra)
    sc = cfg.search
    assert len(s.history) == 3
    for h in s.history:
        want = losses.temperature(
            h["epoch"], epochs=sc.epochs, warm_up=sc.warm_up, t_max=sc.temp_max, t_min=sc.temp_min
        )
        assert h["temperature"] == pytest.approx(want)
        assert math.isfinite(h["train_loss"])
    assert s.history[0]["temperature"] == pytest.approx(2.0)
    assert s.history[-1]["temperature"] == pytest.approx(0.5)
    assert res.best is not None


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("epochs,warm_up", [(20, 9), (4, 1), (3, 1), (10, 0), (9, 4)])
def test_ramp_schedule_linear(epochs, warm_up):
    vals = [losses.ramp(e, epochs=epochs, warm_up=warm_up, shape="linear") for e in range(epochs)]
    remaining = epochs - warm_up
    for e in range(warm_up):
        assert vals[e] == 0.0
    for e in range(warm_up, epochs):
        if e - warm_up < remaining / 4:
            assert vals[e] == 0.0, (e, vals)
    assert vals[-1] == 1.0
    assert all(0.0 <= v <= 1.0 for v in vals)
    assert all(b >= a for a, b in zip(vals, vals[1:], strict=False)), vals
    # some epoch in between is strictly between 0 and 1 when there is room for it
    if remaining >= 5:
        assert any(0.0 < v < 1.0 for v in vals)


def test_ramp_linear_values():
    # 20 epochs, warm-up 9: 11 alpha epochs, zero for the first 2.75 of them
    vals = [losses.ramp(e, epochs=20, warm_up=9, shape="linear") for e in range(20)]
    assert vals[:12] == [0.0] * 12
    assert vals[12] == pytest.approx(0.25 / 7.25)
    assert vals[19] == 1.0
    # the linear ramp also applies to the l1 types
    assert losses.ramp(12, epochs=20, warm_up=9, shape="linear", kind="l1") == vals[12]


def test_ramp_original_values():
    # SparseCrit.update of the original: r = 11 alpha epochs, q = r // 4 = 2,
    # weight = (e / 10) * log_10(e - 2 + 2) for e = epoch - 9 >= 2
    vals = [losses.ramp(e, epochs=20, warm_up=9) for e in range(20)]
    assert vals[:11] == [0.0] * 11
    assert vals[11] == pytest.approx(0.2 * math.log10(2))  # 0.0602
    assert vals[12] == pytest.approx(0.3 * math.log10(3))  # 0.1431
    assert vals[15] == pytest.approx(0.6 * math.log10(6))
    assert vals[19] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(vals, vals[1:], strict=False))
    # 4 epochs, warm-up 1: r = 3, q = 0: e / 2 * log_4(e + 2)
    assert [losses.ramp(e, epochs=4, warm_up=1) for e in range(4)] == pytest.approx(
        [0.0, 0.0, 0.5 * math.log(3, 4), 1.0]
    )
    # the original ramps only the entropy; l1 and l1_softmax have weight 1 throughout
    for kind in ("l1", "l1_softmax"):
        assert losses.ramp(9, epochs=20, warm_up=9, kind=kind) == 1.0
    with pytest.raises(QuantNASError, match="sparse_ramp"):
        losses.ramp(0, epochs=2, warm_up=1, shape="cubic")


def test_temperature_endpoints():
    kw = {"epochs": 10, "warm_up": 3, "t_max": 1.0, "t_min": 0.1}
    temps = [losses.temperature(e, **kw) for e in range(10)]
    assert temps[:4] == [1.0] * 4
    assert temps[-1] == pytest.approx(0.1)
    assert all(b <= a for a, b in zip(temps, temps[1:], strict=False))
    assert temps[5] == pytest.approx(1.0 + (0.1 - 1.0) * 2 / 6)


def _probs():
    u = torch.full((4, 2), 1 / 8)
    p = torch.tensor([[0.7, 0.1], [0.1, 0.1]])
    return {"a.0": u, "b.0": p}


def test_sparsity_kinds():
    probs = _probs()
    logits = {"a.0": torch.tensor([1.0, -2.0, 0.5]), "b.0": torch.tensor([-0.25])}
    ent = losses.sparsity("entropy", probs, logits)
    h_p = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1))
    assert float(ent) == pytest.approx(math.log(8) + h_p, rel=1e-6)
    assert float(losses.layer_entropy(probs["a.0"])) == pytest.approx(math.log(8), rel=1e-6)
    assert losses.mean_entropy(probs) == pytest.approx((math.log(8) + h_p) / 2, rel=1e-6)
    assert float(losses.sparsity("l1", probs, logits)) == pytest.approx(3.75)
    # the original's l1_softmax: the L1 norm of exp(alpha), on the raw logits
    l1s = losses.sparsity("l1_softmax", probs, logits)
    want = math.exp(1.0) + math.exp(-2.0) + math.exp(0.5) + math.exp(-0.25)
    assert float(l1s) == pytest.approx(want, rel=1e-6)  # 5.2811
    l1h = losses.sparsity("l1_onehot", probs, logits)
    assert float(l1h) == pytest.approx(2 * (1 - 1 / 8) + 2 * (1 - 0.7), rel=1e-6)
    assert float(losses.sparsity("none", probs, logits)) == 0.0
    # one-hot: zero entropy, zero l1_onehot
    hot = {"x.0": torch.tensor([[0.0, 1.0], [0.0, 0.0]])}
    assert float(losses.sparsity("entropy", hot, {})) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.sparsity("l1_onehot", hot, {})) == pytest.approx(0.0, abs=1e-6)


def test_sparsity_entropy_has_gradient():
    a = torch.tensor([0.3, -0.2, 0.1, 0.0], requires_grad=True)
    p = {"l.0": torch.softmax(a, 0).view(2, 2)}
    losses.sparsity("entropy", p, {"l.0": a}).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_sparsity_unknown_kind():
    with pytest.raises(QuantNASError, match="sparse_type"):
        losses.sparsity("l2", _probs(), {})


def test_hardware_penalty_formula():
    pen = losses.hardware_penalty(torch.tensor(50.0), 200.0, 0.4)
    assert float(pen) == pytest.approx(0.1)


def test_mean_entropy_of_grad_tensors_does_not_warn():
    # torch emits this warning once per process, so check in a fresh interpreter
    code = (
        "import torch; from quantnas.search.losses import mean_entropy; "
        "a = torch.zeros(6, requires_grad=True); "
        "print(mean_entropy({'l.0': torch.softmax(a, 0).view(3, 2)}))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-500:]
    assert float(out.stdout) == pytest.approx(math.log(6))


# ------------------------------------------------------------------------------ modes
def _one_epoch(tmp_path, name, *extra):
    return run_search(
        tmp_path, name, "search.epochs=2", "search.steps_per_epoch=1", *extra, stop_after=1
    )


def test_quant_mode_one_epoch(tmp_path):
    cfg, s, _ = _one_epoch(tmp_path, "q", "search.mode=quant")
    assert len(s.history) == 1 and math.isfinite(s.history[0]["train_loss"])
    assert math.isfinite(s.history[0]["val_psnr"])


def test_fp_mode_one_epoch(tmp_path):
    cfg, s, _ = _one_epoch(tmp_path, "fp", "search.mode=fp", "arch.bits=[32]")
    assert len(s.history) == 1 and math.isfinite(s.history[0]["train_loss"])
    geno = s.net.export()
    assert all(c.bits == 32 for layers in geno.blocks.values() for c in layers)


def test_fp_mode_with_low_bits_refused(tmp_path):
    cfg = tiny_cfg(tmp_path, "search.mode=fp", "arch.bits=[4,8]")
    with pytest.raises(QuantNASError, match="fp"):
        Searcher(cfg, tmp_path / "bad")


def test_rfdn_space_one_epoch(tmp_path):
    cfg, s, _ = run_search(
        tmp_path,
        "rfdn",
        "arch.space=rfdn",
        "arch.c_fixed=12",
        "arch.body_cells=1",
        "data.lr_crop=16",
        "search.epochs=2",
        "search.steps_per_epoch=1",
    )
    geno = load_genotype(tmp_path / "rfdn" / "best_arch.json")
    assert geno.space == "rfdn"
    assert geno.counts() == {"head": 0, "body": 4, "skip": 3, "upsample": 1, "tail": 1}
    net = build_network(geno, cfg.arch)
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 64, 64)


def test_arch_png_draws_the_exported_genotype_and_logs_say_the_width(tmp_path, monkeypatch, caplog):
    """search/arch.png draws the best epoch's genotype (what is exported and trained), and
    the epoch log states BitOps at the final width next to the search width."""
    import logging

    import quantnas.search.records as searcher_mod

    drawn = []
    monkeypatch.setattr(
        searcher_mod, "plot_genotype", lambda pairs, path, **kw: drawn.append((pairs, kw))
    )
    cfg = tiny_cfg(tmp_path, "arch.c_fixed=12", "search.c_fixed=6")
    with caplog.at_level(logging.INFO, logger="quantnas"):
        s = Searcher(cfg, tmp_path / "s")
        res = s.run()
    best = load_genotype(tmp_path / "s" / "best_arch.json")
    assert res.best == best
    pairs, kw = drawn[-1]
    assert pairs == best.pairs() and f"best epoch {res.best_epoch}" in kw["title"]
    lines = [r.getMessage() for r in caplog.records if "search epoch" in r.getMessage()]
    assert lines and all("at the final 12 channels" in ln and "search's 6" in ln for ln in lines)
    final = network_cost(build_network(best, cfg.arch), lr_size=32).bitops
    row = s.history[res.best_epoch]
    assert row["final_bitops"] == final


# ------------------------------------------------- how the supernet starts (issue 27)
def _l1_grads(net, x, hr):
    net.zero_grad(set_to_none=True)
    torch.nn.functional.l1_loss(net(x, alpha_grad=False), hr).backward()
    return [c.weight.grad for c in net.output_convs()]


@pytest.mark.parametrize("mode", ["noise", "quant"])
def test_zero_last_starts_at_bicubic_and_learns_at_step_one(tmp_path, mode):
    from quantnas.models.blocks import upscale_input
    from quantnas.search.setup import build_supernet
    from quantnas.space.build import primitives

    cfg = tiny_cfg(tmp_path, *ZERO_FLOAT, f"search.mode={mode}")
    torch.manual_seed(0)
    net = build_supernet(cfg)
    assert net.branch_init == "zero_last" and net.net.out_scale is None  # no gate
    convs = net.output_convs()
    assert len(convs) == len(primitives(cfg.arch, "upsample"))  # one per candidate
    assert all(not c.weight.any() for c in convs)
    # the LSQ steps keep the He-derived values (a step from zeros would kill the gradient)
    assert all(float(q.step.detach().min()) > 1e-4 for c in convs for q in c.w_quant)
    x, hr = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(net(x), upscale_input(x, cfg.arch.scale, cfg.arch.global_skip))
    grads = _l1_grads(net, x, hr)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_original_supernet_keeps_its_gate(tmp_path):
    """``branch_init=he`` with the gate (the library default and the original quantnas
    supernet): the output convs start He-initialised and their gradient is 0 through the gate.
    """
    from quantnas.search.setup import build_supernet

    cfg = tiny_cfg(tmp_path)
    assert (cfg.search.branch_init, cfg.search.output_scale, cfg.search.float_warm_up) == (
        "he",
        True,
        False,
    )
    torch.manual_seed(0)
    net = build_supernet(cfg)
    assert net.net.out_scale is not None and float(net.net.out_scale.detach()) == 0.0
    assert all(c.weight.any() for c in net.output_convs())
    grads = _l1_grads(net, torch.rand(2, 3, 12, 12), torch.rand(2, 3, 48, 48))
    assert all(g is None or not g.any() for g in grads)
    # the paper presets keep the original supernet
    for preset in ("paper-basic", "paper-rfdn"):
        s = load_config(preset=preset).search
        assert (s.branch_init, s.float_warm_up) == ("he", False), preset


def test_default_preset_searches_the_zero_last_float_supernet():
    s = load_config(preset="default").search
    assert (s.branch_init, s.output_scale, s.float_warm_up) == ("zero_last", False, True)
    assert s.warm_up == "auto" and s.warm_up_margin == 0.3


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (("search.branch_init=zero_last",), "search.output_scale=false"),
        (
            ("search.branch_init=zero_last", "search.output_scale=false", "arch.global_skip=none"),
            "needs arch.global_skip",
        ),
        (("search.branch_init=zero",), "'zero' is not one of ['he', 'zero_last']"),
    ],
    ids=["with-gate", "no-global-skip", "unknown"],
)
def test_branch_init_bad_values_are_one_line_errors(tmp_path, extra, fragment):
    with pytest.raises(QuantNASError) as e:
        tiny_cfg(tmp_path, *extra)
    msg = str(e.value)
    assert "search.branch_init" in msg and fragment in msg and "\n" not in msg


def test_float_warm_up_trains_in_full_precision_then_inits_steps(tmp_path):
    """Weight steps before the first alpha step run without quantizers; every epoch ends
    with them back, LSQ steps re-initialised from the warmed-up weights.
    """
    from quantnas.quant.mixed import MixedQConv2d

    cfg = tiny_cfg(tmp_path, *ZERO_FLOAT, "search.mode=quant", "search.warm_up=1")
    s = Searcher(cfg, tmp_path / "s")
    convs = [m for m in s.net.modules() if isinstance(m, MixedQConv2d)]
    seen: list[tuple[int, bool]] = []
    hook = convs[0].register_forward_pre_hook(lambda m, a: seen.append((s.epoch, m.quantized)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        s.run(stop_after=1)
        assert {q for e, q in seen if e == 0} == {False, True}  # float steps, quantized val
        assert all(c.quantized for c in convs)
        for c in convs:  # the steps come from the warmed-up weights
            w = c.weight.detach()
            for q in c.w_quant:
                want = 2 * w.abs().mean(dim=(1, 2, 3), keepdim=True) / math.sqrt(q.qp)
                assert torch.allclose(q.step, want.clamp_min(1e-8)), c
        assert all(c.weight.any() for c in s.net.output_convs())  # the zeroed convs learned
        seen.clear()
        s.run()
    hook.remove()
    assert seen and all(q for _, q in seen)  # alpha epochs: quantized throughout


def test_float_warm_up_off_never_switches(tmp_path):
    from quantnas.quant.mixed import MixedQConv2d

    cfg = tiny_cfg(tmp_path, "search.warm_up=1")
    s = Searcher(cfg, tmp_path / "s")
    conv = next(m for m in s.net.modules() if isinstance(m, MixedQConv2d))
    seen: list[bool] = []
    conv.register_forward_pre_hook(lambda m, a: seen.append(m.quantized))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        s.run(stop_after=1)
    assert seen and all(seen)


def test_searcher_and_search_take_a_string_run_dir(tmp_path):
    cfg = tiny_cfg(tmp_path, "search.epochs=2", "search.steps_per_epoch=1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = Searcher(cfg, str(tmp_path / "s")).run()
        assert (tmp_path / "s" / "split.json").exists() and res.run_dir == tmp_path / "s"
        res2 = search(cfg, str(tmp_path / "f"))
    assert (tmp_path / "f" / "best_arch.json").exists() and res2.best == res.best


def test_conv_init_pytorch_draws_the_smaller_default_init(tmp_path):
    from quantnas.quant.mixed import MixedQConv2d
    from quantnas.search.setup import build_supernet

    nets = {}
    for init in ("he", "pytorch"):
        torch.manual_seed(0)
        nets[init] = build_supernet(tiny_cfg(tmp_path, f"search.conv_init={init}"))
    for name, conv in nets["pytorch"].named_modules():
        if not isinstance(conv, MixedQConv2d):
            continue
        fan_in = conv.weight[0].numel()
        bound = 1 / math.sqrt(fan_in)  # Kaiming-uniform with a = sqrt(5)
        assert float(conv.weight.detach().abs().max()) <= bound + 1e-7, name
        # the LSQ steps follow the drawn weights
        w = conv.weight.detach()
        for q in conv.w_quant:
            want = 2 * w.abs().mean(dim=(1, 2, 3), keepdim=True) / math.sqrt(q.qp)
            assert torch.allclose(q.step.detach(), want), name
    he = torch.cat([p.detach().flatten() for n, p in nets["he"].named_weights() if "weight" in n])
    pt = torch.cat(
        [p.detach().flatten() for n, p in nets["pytorch"].named_weights() if "weight" in n]
    )
    assert 2.0 < float(he.std() / pt.std()) < 3.0  # sqrt(6) = 2.45 for equal fan-ins
    with pytest.raises(QuantNASError, match="search.conv_init"):
        tiny_cfg(tmp_path, "search.conv_init=xavier")
