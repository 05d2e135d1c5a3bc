"""The search at a BitOps budget: cost tables, repair, dual ascent, splits, warm-up auto,
path sampling / selection, and the sweep's comparison at equal BitOps."""

import json
import math

import numpy as np
import pytest
import torch
from test_search import run_search, tiny_cfg

from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.search.choose import Chooser, random_draws_near, random_near
from quantnas.search.constraint import (
    BitopsBudget,
    choice_bitops,
    cost_tables,
    mutation_probs,
    one_hot,
    repair,
    sample_from,
    sample_in_band,
)
from quantnas.search.records import margins, write_search_records
from quantnas.search.setup import build_supernet
from quantnas.search.splits import split_regions
from quantnas.space.build import build_network
from quantnas.space.cost import SupernetCost, network_cost
from quantnas.space.genotype import from_dict
from quantnas.space.genotype import load as load_genotype
from quantnas.sweep.at_targets import target_rows, target_table
from quantnas.sweep.trials import plan

DEFAULT_SPACE = ["--"]  # marker only

def default_cfg(*extra):
    return load_config(preset="default", overrides=list(extra))

def test_cost_table_matches_built_networks():
    cfg = default_cfg()
    net = build_supernet(cfg, final_width=True)
    tables, fixed = cost_tables(SupernetCost(net, lr_size=32))
    g = torch.Generator().manual_seed(0)
    for choice in sample_in_band(tables, fixed, lo=0, hi=math.inf, n=6, generator=g):
        geno = net.export(one_hot(choice, net.alpha.shapes))
        built = network_cost(build_network(geno, cfg.arch), lr_size=32).bitops
        assert choice_bitops(choice, tables, fixed) == pytest.approx(built, rel=1e-12)

@pytest.mark.parametrize("target", [0.607e9, 2.289e9, 2.429e9, 6.398e9])
def test_repair_lands_in_the_band(target):
    cfg = default_cfg(f"search.target_bitops={target}")
    net = build_supernet(cfg)
    ch = Chooser(net, cfg)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.alphas():
            p.normal_()
    geno = ch.argmax()
    b = network_cost(build_network(geno, cfg.arch), lr_size=32).bitops
    assert 0.9 * target <= b <= target, (b / 1e9, target / 1e9)

def test_repair_keeps_an_argmax_already_in_the_band_and_gives_up_loudly(caplog):
    tables = {"a": [1.0, 2.0, 4.0], "b": [10.0, 20.0]}
    logp = {"a": [0.0, -1.0, -2.0], "b": [-5.0, 0.0]}
    assert repair(logp, tables, 0.0, target=21.0, band=0.9) == {"a": 0, "b": 1}
    # over the target: b moves 20 -> 10 (5 nats for 10 BitOps, less per BitOps than any
    # other change) and 11 BitOps lie in [7.5, 15]
    assert repair(logp, tables, 0.0, target=15.0, band=0.5) == {"a": 0, "b": 0}
    # with the band at [13.5, 15], 11 is too low: a moves 0 -> 2 (2 nats for 3 BitOps beats
    # 0 -> 1, 1 nat for 1 BitOps), 14 BitOps
    assert repair(logp, tables, 0.0, target=15.0, band=0.9) == {"a": 2, "b": 0}
    assert repair(logp, tables, 100.0, target=50.0, band=0.9) == {"a": 0, "b": 0}
    assert "cannot be moved" in caplog.text

def test_dual_ascent_moves_the_multiplier_by_the_violation():
    cfg = default_cfg()
    cost = SupernetCost(build_supernet(cfg, final_width=True), lr_size=32)
    b = BitopsBudget(cost, target=2e9, dual_lr=0.01)
    b.update(3e9)
    assert b.lam == pytest.approx(0.005)
    b.update(1e9)
    assert b.lam == pytest.approx(0.0)  # 0.005 - 0.005, never below 0
    b.update(0.5e9)
    assert b.lam == 0.0
    b.lam = 0.25
    net = build_supernet(cfg)
    term, expected = b.term(net.probabilities())
    assert float(term.detach()) == pytest.approx(0.25 * expected / 2e9)
    assert expected == pytest.approx(float(cost.expected_bitops(net.probabilities()).detach()))

def tiny_target(tmp_path, share=0.4):
    """A BitOps target inside the tiny space: ``share`` of the way from its cheapest to its
    costliest genotype."""
    cfg = tiny_cfg(tmp_path)
    ch = Chooser(build_supernet(cfg), cfg)
    lo = ch.fixed + sum(min(v) for v in ch.tables.values())
    hi = ch.fixed + sum(max(v) for v in ch.tables.values())
    return lo + share * (hi - lo)


def test_search_honours_target_bitops(tmp_path):
    target = tiny_target(tmp_path)
    cfg, s, res = run_search(tmp_path, "t", f"search.target_bitops={target}",
                             "search.dual_lr=1.0")
    b = network_cost(build_network(res.best, cfg.arch), lr_size=32).bitops
    assert 0.9 * target <= b <= target, b
    rows = [json.loads(x) for x in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["final_bitops"] == pytest.approx(
        network_cost(build_network(s.chooser.argmax(), cfg.arch), lr_size=32).bitops)
    assert "lagrange" in rows[-1] and "margin_min" in rows[-1]

@pytest.mark.parametrize("when", ["best", "last"])
def test_finalists_are_drawn_from_the_alphas_of_halving_draw_epoch(tmp_path, when):
    target = tiny_target(tmp_path)
    cfg, s, _ = run_search(tmp_path, "t", f"search.target_bitops={target}",
                           "search.dual_lr=1.0", "search.select=halving",
                           "search.select_samples=3", f"search.halving_draw_epoch={when}")
    assert s.best.get("genotype")
    ch, run_dir = s.chooser, tmp_path / "t"
    # the best epoch's alphas replaced by one in-band genotype (not the exported one)
    g = ch.candidates(4, draw="uniform")[1][0]
    delta = one_hot(ch.choice_of(g), s.net.alpha.shapes)
    hist = {k: list(v) for k, v in s.alpha_history.items()}
    for k in hist:
        hist[k][int(s.best["epoch"])] = delta[k].tolist()
    write_search_records(s.net, cfg, run_dir, alpha_history=hist, history=s.history,
                         best=s.best, chooser=ch)
    rows = json.loads((run_dir / "candidates.json").read_text())
    assert rows[0]["source"] == "exported" and rows[0]["genotype"] == s.best["genotype"]
    drawn = [r["genotype"] for r in rows[1:]]
    if when == "best":  # only the one genotype the best epoch's alphas allow
        assert drawn == [g.to_dict()]
    else:  # the alphas the search ended with, whatever the history says
        first = from_dict(rows[0]["genotype"])
        assert drawn == [x.to_dict() for x, _, _ in ch.candidates(3, first=first)[1:]]
        assert drawn != [g.to_dict()]


def test_mutation_probs_by_hand():
    shapes = {"a": (2, 2), "b": (3, 1)}
    p = mutation_probs({"a": 1, "b": 2}, shapes, 0.4)
    # kept with 1 - 0.4, else one of the n * b pairs uniformly: 0.1 each for a, 0.4/3 for b
    assert p["a"].shape == (2, 2) and p["b"].shape == (3, 1)
    assert p["a"].flatten().tolist() == pytest.approx([0.1, 0.7, 0.1, 0.1])
    assert p["b"].flatten().tolist() == pytest.approx([0.4 / 3, 0.4 / 3, 0.6 + 0.4 / 3])
    # rate 1: uniform whatever the choice
    assert mutation_probs({"a": 1, "b": 2}, shapes, 1.0)["a"].flatten().tolist() == [0.25] * 4
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(QuantNASError, match="search.halving_mutation_rate"):
            mutation_probs({"a": 1, "b": 2}, shapes, bad)


def test_mutations_stay_near_the_exported_genotype():
    shapes = {f"l{i}": (4, 2) for i in range(6)}
    head = {k: i % 8 for i, k in enumerate(shapes)}

    def changed(rate):  # mean number of layers a distinct draw changes
        drawn = sample_from(mutation_probs(head, shapes, rate), None, 0.0, lo=0, hi=math.inf,
                            n=30, generator=torch.Generator().manual_seed(3))
        return sum(sum(c[k] != head[k] for k in head) for c in drawn) / len(drawn)

    near, far = changed(0.2), changed(1.0)
    assert near < 2.0 < far, (near, far)  # uniform draws change 6 * 7/8 = 5.25 on average


def test_finalists_drawn_as_mutations_of_the_exported_genotype(tmp_path):
    target = tiny_target(tmp_path)
    cfg, s, _ = run_search(tmp_path, "t", f"search.target_bitops={target}",
                           "search.dual_lr=1.0", "search.select=halving",
                           "search.select_samples=3", "search.halving_draw=mutations",
                           "search.halving_mutation_rate=0.5")
    rows = json.loads((tmp_path / "t" / "candidates.json").read_text())
    assert rows[0]["source"] == "exported"
    assert rows[1:] and {r["source"] for r in rows[1:]} == {"mutations"}
    ch = s.chooser
    first = from_dict(rows[0]["genotype"])
    want = ch.candidates(3, draw="mutations", first=first, rate=0.5)
    assert [r["genotype"] for r in rows] == [g.to_dict() for g, _, _ in want]
    head = ch.choice_of(first)
    for r in rows[1:]:
        assert ch.choice_of(from_dict(r["genotype"])) != head
        assert ch.lo <= r["bitops"] <= ch.target


def test_bitops_flag_and_suffixes():
    assert load_config(overrides=["search.target_bitops=2.4G"]).search.target_bitops == 2.4e9
    assert load_config(overrides=["search.target_bitops=350M"]).search.target_bitops == 3.5e8
    with pytest.raises(QuantNASError, match="search.target_bitops"):
        load_config(overrides=["search.target_bitops=lots"])
    from quantnas.cli.parser import build_parser

    args = build_parser().parse_args(["run", "--bitops", "2.4G"])
    assert args.bitops == "2.4G"

def test_regions_split_gives_every_photo_to_both_splits():
    rng = np.random.default_rng(0)
    imgs = [(f"p{i}", rng.integers(0, 255, (200 + 40 * i, 300, 3), dtype=np.uint8))
            for i in range(3)] + [("small", np.zeros((60, 60, 3), np.uint8))]
    w, a, rec = split_regions(imgs, subsample=1.0, seed=3, tile=96)
    assert rec["kind"] == "regions"
    for i in range(3):
        parts = rec["images"][f"p{i}"]
        assert parts["weight"] and parts["alpha"]
        boxes = parts["weight"] + parts["alpha"]
        area = sum((y1 - y0) * (x1 - x0) for y0, x0, y1, x1 in boxes)
        assert area == imgs[i][1].shape[0] * 300  # the tiles cover the photo exactly once
    assert rec["images"]["small"] == {"weight": [[0, 0, 60, 60]], "alpha": []}
    assert {n.split("[")[0] for n, _ in a} == {"p0", "p1", "p2"}
    assert split_regions(imgs, subsample=1.0, seed=3, tile=96)[2] == rec
    assert split_regions(imgs, subsample=1.0, seed=4, tile=96)[2] != rec

def test_warm_up_auto_and_split_record(tmp_path):
    cfg, s, res = run_search(tmp_path, "auto", "search.warm_up=auto", "search.split=regions",
                             "search.epochs=4")
    assert s.alpha_from is not None and 1 <= s.alpha_from <= 2
    rows = [json.loads(x) for x in (tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()]
    assert "probe_gain" in rows[0]
    split = json.loads((tmp_path / "auto" / "split.json").read_text())
    assert split["kind"] == "regions" and split["images"]
    with pytest.raises(QuantNASError, match="search.warm_up"):
        load_config(overrides=["search.warm_up=soon"])

def test_margins():
    p = torch.tensor([[0.5, 0.25], [0.25, 0.0]])
    assert margins({"a": p})["a"] == pytest.approx(math.log(2))
    assert margins({"a": torch.full((2, 2), 0.25)})["a"] == 0.0

def test_path_sampling_and_selection(tmp_path):
    target = tiny_target(tmp_path, 0.5)
    cfg, s, res = run_search(
        tmp_path, "path", "search.weight_sampling=path", "search.select=path",
        f"search.target_bitops={target}", "search.select_samples=4",
    )
    sel = json.loads((tmp_path / "path" / "selection.json").read_text())
    assert len(sel) == 5  # the repaired argmax and 4 draws
    assert all(0.9 * target <= r["bitops"] <= target for r in sel)
    best = max(sel, key=lambda r: r["gain_db"])
    assert load_genotype(tmp_path / "path" / "best_arch.json").to_dict() == best["genotype"]
    assert res.best.to_dict() == best["genotype"]

def test_random_near_is_within_tolerance_and_seeded():
    cfg = default_cfg()
    for t in (0.607e9, 6.398e9):
        g = random_near(cfg.arch, 3, target=t, tolerance=0.05)
        b = network_cost(build_network(g, cfg.arch), lr_size=32).bitops
        assert abs(b / t - 1) <= 0.05
        assert random_near(cfg.arch, 3, target=t, tolerance=0.05) == g
        assert random_near(cfg.arch, 3, target=t, tolerance=0.05, index=1) != g
        # the halving-random race's draws in one pass: draw k is random_near's index k
        draws = random_draws_near(cfg.arch, 3, target=t, tolerance=0.05, n=3)
        assert draws == [random_near(cfg.arch, 3, target=t, tolerance=0.05, index=k)
                         for k in range(3)]
    # the ESPCN-4 window (+-5% of 0.607 G) holds 17 genotypes: a 18th distinct draw is refused
    with pytest.raises(QuantNASError, match="17 distinct"):
        random_near(cfg.arch, 3, target=0.607e9, tolerance=0.05, index=17)
    with pytest.raises(QuantNASError, match="sweep.targets"):
        random_near(cfg.arch, 3, target=1e3, tolerance=0.05)

def test_sweep_plans_trials_at_targets():
    cfg = load_config(preset="sweep-targets", overrides=["sweep.seeds=2", "sweep.random=2",
                                                         "sweep.methods=[search,random,baseline]"])
    trials = plan(cfg)
    ids = {t.trial_id for t in trials}
    assert "search_t0.607G_s0" in ids and "random_t6.398G_d1_s1" in ids
    assert sum(t.method == "search" for t in trials) == 4 * 2
    assert sum(t.method == "random" for t in trials) == 4 * 2 * 2
    assert not any(t.method == "random" and t.target is None for t in trials)

def _row(method, psnr, val=None, **kw):
    return {"method": method, "psnr_test": psnr, "psnr_validation": val or psnr,
            "status": "ok", **kw}

def test_target_table_numbers():
    t = 1e9
    rows = [
        _row("search", 29.0, target=t, bitops_32=0.95e9, search_s=100, seed=0),
        _row("search", 29.2, target=t, bitops_32=0.97e9, search_s=100, seed=1),
        _row("random", 28.8, 28.0, target=t, draw=0, train_s=50, bitops_32=1e9),
        _row("random", 28.6, 28.0, target=t, draw=0, train_s=50, bitops_32=1e9),
        _row("random", 28.9, 28.5, target=t, draw=1, train_s=50, bitops_32=1e9),
        _row("random", 28.9, 28.5, target=t, draw=1, train_s=50, bitops_32=1e9),
        _row("random", 29.5, 29.9, target=t, draw=2, train_s=50, bitops_32=1e9),
        _row("espcn", 28.5, bits=8, bitops_32=1.02e9),
        _row("espcn", 28.7, bits=8, bitops_32=1.02e9),
        _row("edsr", 30.0, bits=8, bitops_32=3e9),  # not near the target
    ]
    (c,) = target_rows(rows, "test", tolerance=0.05)
    assert c["found"][0] == pytest.approx(29.1) and c["found"][2] == 2
    assert c["k"] == 2  # 100 s of search buy 2 trainings of 50 s
    assert c["random_best"] == pytest.approx(28.9)  # of draws 0 and 1, draw 1 (val 28.5)
    assert c["random_median"] == pytest.approx(28.9)  # medians of 28.7, 28.9, 29.5
    assert c["baselines"][0][0] == "espcn-8" and c["baselines"][0][1] == pytest.approx(28.6)
    sd = math.sqrt(0.02)  # every group's std is 0.1414 (or NaN/0 for one or equal seeds)
    variances = [0.02, 0.02, 0.0, 0.02]
    assert c["pooled_std"] == pytest.approx(math.sqrt(sum(variances) / 4))
    assert c["margin"] == pytest.approx(29.1 - 28.9)
    assert sd > 0
    md = target_table(rows, "test", tolerance=0.05)
    assert "found wins" in md and "1 of 1 targets" in md


def test_report_shows_the_budget_and_each_layers_margin(tmp_path):
    from quantnas.pipeline.report import search_decisions

    (tmp_path / "search").mkdir()
    hist = {"head.0": [[[0.25, 0.25], [0.25, 0.25]], [[0.5, 0.25], [0.125, 0.125]]]}
    (tmp_path / "search" / "alpha_history.json").write_text(json.dumps(hist))
    cfg = load_config(overrides=["search.target_bitops=2G"])
    md = "\n".join(search_decisions(cfg, tmp_path, 1.9e9))
    assert "BitOps budget 2e+09" in md and "0.950 x the budget" in md
    assert f"| head.0 | 0.500 | {math.log(2):.3f} |" in md
    assert search_decisions(cfg, tmp_path / "nothing", 1.0) == []


def test_target_table_verdicts():
    t = 1e9
    base = [_row("espcn", 29.0, bits=8, bitops_32=1e9), _row("espcn", 29.2, bits=8, bitops_32=1e9)]
    lost = [_row("search", 28.0, target=t, bitops_32=1e9), _row("search", 28.2, target=t,
                                                                 bitops_32=1e9)]
    tie = [_row("search", 29.05, target=t, bitops_32=1e9), _row("search", 29.25, target=t,
                                                                 bitops_32=1e9)]
    assert "espcn-8 wins" in target_table(base + lost, "test", tolerance=0.05)
    assert "within the pooled std" in target_table(base + tie, "test", tolerance=0.05)


def test_best_tolerance_gives_near_ties_to_the_later_epoch(tmp_path):
    cfg, s, res = run_search(tmp_path, "tol", "search.best_tolerance=10", "search.epochs=3")
    assert res.best_epoch == 2  # every later epoch is within 1000% of the best: it wins
    cfg, s, res = run_search(tmp_path, "strict", "search.epochs=3")
    losses = [r["val_loss"] for r in s.history]
    assert res.best_epoch == 1 + min(range(2), key=lambda i: losses[1 + i])
