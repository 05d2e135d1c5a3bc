"""Finalists that are trained: successive halving (``search.select: halving``)."""

from __future__ import annotations

import json
import math

import pytest
from tiny_runs import RUN as TINY

from quantnas.data.job_data import JobData
from quantnas.errors import QuantNASError
from quantnas.pipeline.job import Job, Network
from quantnas.pipeline.resolve import load_config
from quantnas.search.finalists import rung_schedule, successive_halving
from quantnas.space import genotype as gt
from quantnas.space.build import random_genotype

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")


def _cfg(*extra):
    return load_config(
        preset="tiny",
        overrides=[*TINY, "train.epochs=4", "train.steps_per_epoch=2", *extra],
    )


@pytest.mark.parametrize(
    ("n", "eta", "first", "total", "want"),
    [
        (8, 2, 1, 20, [1, 2, 4]),
        (9, 3, 2, 20, [2, 6]),
        (4, 2, 3, 5, [3, 4]),  # capped at total - 1: the winner always goes on
        (1, 2, 1, 20, []),
        (5, 2, 1, 20, [1, 2, 4]),  # 5 -> 3 -> 2 -> 1
    ],
)
def test_rung_schedule(n, eta, first, total, want):
    assert rung_schedule(n, eta=eta, first=first, total=total) == want


def test_bad_halving_settings_are_one_line_errors():
    with pytest.raises(QuantNASError, match="search.halving_eta: 1 keeps every candidate"):
        _cfg("search.halving_eta=1")
    with pytest.raises(QuantNASError, match="search.select: 'halve' is not one of"):
        _cfg("search.select=halve")
    with pytest.raises(QuantNASError, match="search.halving_draw_epoch: 'first' is not one of"):
        _cfg("search.halving_draw_epoch=first")
    with pytest.raises(QuantNASError, match="search.halving_draw: 'mutation' is not one of"):
        _cfg("search.halving_draw=mutation")
    for bad in ("0", "1.5"):
        with pytest.raises(QuantNASError, match="search.halving_mutation_rate"):
            _cfg(f"search.halving_mutation_rate={bad}")


def test_halving_keeps_the_best_and_the_winner_goes_on(tmp_path):
    cfg = _cfg()
    cands = [(random_genotype(cfg.arch, s), 0.0, "uniform") for s in range(4)]
    res = successive_halving(cfg, tmp_path / "select", cands)
    assert [r["epochs"] for r in res.rungs] == [1, 2]
    first, second = res.rungs
    # rung 0 trains all four for one epoch; the two best by validation PSNR go on
    s0 = {int(k): v for k, v in first["scores"].items()}
    assert sorted(s0) == [0, 1, 2, 3]
    assert first["kept"] == sorted(s0, key=lambda i: (-s0[i], i))[:2]
    assert sorted(int(k) for k in second["scores"]) == sorted(first["kept"])
    assert res.winner.index == second["kept"][0]
    # the losers of rung 0 trained 1 epoch, the finalists 2 (from their checkpoints)
    for i in range(4):
        rows = (tmp_path / "select" / f"cand_{i:02d}" / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == (2 if i in first["kept"] else 1)
    record = json.loads((tmp_path / "select" / "halving.json").read_text())
    assert record["alive"] == [res.winner.index] and len(record["rungs"]) == 2
    # a second call resumes: nothing is trained again, the same winner
    again = successive_halving(cfg, tmp_path / "select", cands)
    assert again.winner.index == res.winner.index and again.rungs == res.rungs


def test_job_races_candidates_and_continues_the_winner(tmp_path):
    cfg = _cfg()
    cands = [(random_genotype(cfg.arch, s), 0.0, "uniform") for s in range(3)]
    job = Job(cfg, tmp_path / "j", network=Network(candidates=cands), pictures=False)
    res = job.run()
    info = job.state.info("select")
    winner = cands[info["index"]][0]
    assert res.genotype == winner
    assert gt.from_dict(info["winner"]) == winner and info["rungs"] == [1, 2]
    # the training continued from the winner's checkpoint: its first two epochs are the
    # winner's rows, then two more
    cand = tmp_path / "j" / "select" / f"cand_{info['index']:02d}" / "metrics.jsonl"
    train = tmp_path / "j" / "train" / "metrics.jsonl"
    cand_rows = [json.loads(r) for r in cand.read_text().splitlines()]
    train_rows = [json.loads(r) for r in train.read_text().splitlines()]
    assert [r["epoch"] for r in train_rows] == [0, 1, 2, 3]
    assert [r["val_psnr"] for r in train_rows[:2]] == [r["val_psnr"] for r in cand_rows]
    assert job.state.info("train")["last_epoch"] == 3


def test_search_with_halving_writes_candidates_and_races_them(tmp_path):
    cfg = _cfg("search.select=halving", "search.select_samples=2")
    job = Job(cfg, tmp_path / "r", pictures=False)
    res = job.run()
    rows = json.loads((tmp_path / "r" / "search" / "candidates.json").read_text())
    assert rows[0]["source"] == "exported"
    assert rows[0]["genotype"] == gt.load(tmp_path / "r" / "search" / "best_arch.json").to_dict()
    assert 2 <= len(rows) <= 3 and all(r["source"] == "alphas" for r in rows[1:])
    assert len({json.dumps(r["genotype"], sort_keys=True) for r in rows}) == len(rows)
    winner = job.state.info("select")
    assert res.genotype.to_dict() == rows[winner["index"]]["genotype"]


def test_sweep_plans_halving_random_at_each_target():
    from quantnas.sweep.runner import _network
    from quantnas.sweep.trials import config_hash, plan

    grid = ["sweep.methods=[search,halving-random]", "sweep.seeds=2", "search.select=halving",
            "search.select_samples=3", "sweep.random_halving_candidates=0"]
    cfg = load_config(preset="sweep-targets", overrides=grid)
    trials = [t for t in plan(cfg) if t.method == "halving-random"]
    assert len(trials) == 4 * 2
    ids = {t.trial_id for t in trials}
    assert {"halving-random_t0.607G_s0", "halving-random_t6.398G_s1"} <= ids
    t0 = trials[0]
    net = _network(t0.to_dict(), cfg, None)
    assert len(net.candidates) == 4 and all(src == "uniform" for _, _, src in net.candidates)
    assert len({g.to_json() for g, _, _ in net.candidates}) == 4
    # the race's settings change the trial (its hash), the plan's other trials keep theirs
    more = load_config(
        preset="sweep-targets",
        overrides=["sweep.methods=[search,halving-random]", "sweep.seeds=2",
                   "search.select=halving", "search.select_samples=3", "search.halving_eta=3",
                   "sweep.random_halving_candidates=0"],
    )
    assert config_hash(cfg, t0) != config_hash(more, t0)
    # where a search draws its finalists does not change a race over uniform draws
    for draw in ("search.halving_draw=mutations", "search.halving_draw_epoch=best",
                 "search.halving_mutation_rate=0.5"):
        other = load_config(preset="sweep-targets", overrides=[*grid, draw])
        assert config_hash(other, t0) == config_hash(cfg, t0), draw
        search_trial = next(t for t in plan(cfg) if t.method == "search")
        assert config_hash(other, search_trial) != config_hash(cfg, search_trial), draw


def test_halving_random_with_mutations_races_a_random_centre_and_its_neighbours():
    """``sweep.random_halving_draw: mutations``: local search without the search."""
    from quantnas.search.choose import choice_of, random_near
    from quantnas.search.constraint import choice_bitops, cost_tables
    from quantnas.search.supernet import Supernet
    from quantnas.space.cost import SupernetCost
    from quantnas.sweep.runner import _network
    from quantnas.sweep.trials import config_hash, plan

    grid = ["sweep.methods=[halving-random]", "sweep.seeds=1", "sweep.targets=[2.28G]",
            "sweep.target_tolerance=0.053", "search.select_samples=5"]
    uniform = load_config(preset="default", overrides=grid)
    cfg = load_config(preset="default", overrides=[*grid, "sweep.random_halving_draw=mutations",
                                                   "search.halving_mutation_rate=0.2"])
    (t,) = plan(cfg)
    cands = _network(t.to_dict(), cfg, None).candidates
    genos = [g for g, _, _ in cands]
    assert [src for _, _, src in cands] == ["uniform"] + ["mutations"] * 5
    assert len({g.to_json() for g in genos}) == 6
    # the centre is the uniform race's first draw of the same seed
    centre = random_near(cfg.arch, int(t.draw_base), target=2.28e9, tolerance=0.053)
    assert genos[0].to_json() == centre.to_json()
    assert _network(t.to_dict(), uniform, None).candidates[0][0].to_json() == centre.to_json()
    # every candidate in the window; neighbours: at rate 0.2 most change 1-2 of 6 layers
    net = Supernet(cfg.arch, mode="quant")
    tables, fixed = cost_tables(SupernetCost(net, lr_size=32))
    head = choice_of(net, centre)
    changed = []
    for g in genos:
        c = choice_of(net, g)
        assert 2.28e9 * (1 - 0.053) <= choice_bitops(c, tables, fixed) <= 2.28e9 * (1 + 0.053)
        changed.append(sum(c[k] != head[k] for k in head))
    assert changed[0] == 0 and all(n >= 1 for n in changed[1:])
    assert sum(changed[1:]) / 5 < 3.0, changed  # uniform draws change about 5 of 6
    # the draw and its rate change the trial's hash; the uniform race keeps its own
    assert config_hash(cfg, t) != config_hash(uniform, t)
    other_rate = load_config(preset="default",
                             overrides=[*grid, "sweep.random_halving_draw=mutations"])
    assert config_hash(other_rate, t) != config_hash(cfg, t)
    with pytest.raises(QuantNASError, match="sweep.random_halving_draw: 'argmax' is not one of"):
        plan(load_config(preset="default", overrides=[*grid, "sweep.random_halving_draw=argmax"]))


def test_random_window_band_draws_where_the_search_exports(tmp_path):
    """``sweep.random_window: band``: random genotypes at a target lie in the search's
    band ``[search.target_band x target, target]``, not +-``target_tolerance`` around it.
    """
    from quantnas.search.choose import choice_of
    from quantnas.search.constraint import choice_bitops, cost_tables
    from quantnas.search.supernet import Supernet
    from quantnas.space.cost import SupernetCost
    from quantnas.sweep.runner import _network
    from quantnas.sweep.trials import config_hash, plan, random_window

    grid = ["sweep.methods=[halving-random,random]", "sweep.seeds=1", "sweep.random=1",
            "sweep.targets=[2.4G]", "search.select_samples=3"]
    tol = load_config(preset="default", overrides=grid)
    band = load_config(preset="default", overrides=[*grid, "sweep.random_window=band",
                                                    "search.target_band=0.9"])
    assert random_window(tol, 2.4e9) == (2.4e9, 0.05)
    centre, half = random_window(band, 2.4e9)
    assert centre * (1 - half) == pytest.approx(0.9 * 2.4e9)
    assert centre * (1 + half) == pytest.approx(2.4e9)
    net = Supernet(band.arch, mode="quant")
    tables, fixed = cost_tables(SupernetCost(net, lr_size=32))
    trials = plan(band)
    race = next(t for t in trials if t.method == "halving-random")
    rand = next(t for t in trials if t.method == "random")
    for trial in (race, rand):
        net_spec = _network(trial.to_dict(), band, tmp_path)
        genos = [g for g, _, _ in net_spec.candidates] if trial is race else [net_spec.genotype]
        for g in genos:
            assert 0.9 * 2.4e9 <= choice_bitops(choice_of(net, g), tables, fixed) <= 2.4e9
        # another window is another trial; the default window keeps the earlier hash
        assert config_hash(band, trial) != config_hash(tol, trial)
    legacy_race = load_config(preset="default", overrides=[*grid, "sweep.target_tolerance=0.05"])
    assert config_hash(legacy_race, race) == config_hash(tol, race)
    wider = load_config(preset="default", overrides=[*grid, "sweep.target_tolerance=0.1"])
    assert config_hash(wider, race) != config_hash(tol, race)
    with pytest.raises(QuantNASError, match="sweep.random_window: 'wide' is not one of"):
        plan(load_config(preset="default", overrides=[*grid, "sweep.random_window=wide"]))


def test_target_table_has_the_halving_random_arm():
    from quantnas.sweep.at_targets import target_rows, target_table

    t = 1e9
    rows = [
        {"method": "search", "psnr_test": 29.4, "target": t, "bitops_32": 0.95e9, "total_s": 300},
        {"method": "search", "psnr_test": 29.6, "target": t, "bitops_32": 0.95e9, "total_s": 310},
        {"method": "halving-random", "psnr_test": 29.0, "target": t, "total_s": 280},
        {"method": "halving-random", "psnr_test": 29.2, "target": t, "total_s": 290},
    ]
    (c,) = target_rows(rows, "test", tolerance=0.05)
    ((name, mean, _, n),) = c["halving_random"]
    assert name == "halving-random" and mean == pytest.approx(29.1) and n == 2
    assert c["best_other"][0] == "halving-random"
    assert c["margin"] == pytest.approx(0.4)
    md = target_table(rows, "test", tolerance=0.05)
    assert "29.10 +- 0.14 (2)" in md and "305 / 285" in md and "found wins" in md


def test_target_table_keeps_merged_sweeps_apart():
    """Rows of one method from two sweeps (``quantnas pareto A B``) are two arms, never
    pooled: each found arm gets its own line against every arm that is not a found one.
    """
    from quantnas.sweep.at_targets import target_rows, target_table

    t = 1e9

    def row(sweep, method, psnr, **kw):
        return {"sweep": sweep, "method": method, "psnr_test": psnr, "target": t,
                "bitops_32": 0.97e9, "total_s": 100, **kw}

    rows = [
        row("alphas", "search", 29.0), row("alphas", "search", 29.2),
        row("mut", "search", 29.6), row("mut", "search", 29.8),
        row("hr", "halving-random", 29.3), row("hr", "halving-random", 29.5),
        row("rm", "halving-random", 29.4), row("rm", "halving-random", 29.4),
        {"sweep": "base", "method": "espcn", "bits": 8, "psnr_test": 28.0,
         "bitops_32": 1.0e9, "target": None},
    ]
    comp = target_rows(rows, "test", tolerance=0.05)
    assert [c["arm"] for c in comp] == ["found (alphas)", "found (mut)"]
    a, m = comp
    assert a["found"][0] == pytest.approx(29.1) and m["found"][0] == pytest.approx(29.7)
    assert [h[0] for h in m["halving_random"]] == ["halving-random (hr)", "halving-random (rm)"]
    assert [h[1] for h in m["halving_random"]] == [pytest.approx(29.4), pytest.approx(29.4)]
    # the other found arm is not an "other": each line pools its own arm with the rest
    sd = 0.2 / math.sqrt(2)  # std of two values 0.2 apart
    assert m["pooled_std"] == pytest.approx(math.sqrt((sd**2 + sd**2 + 0) / 3))
    assert m["best_other"] == ("halving-random (hr)", pytest.approx(29.4))
    assert m["margin"] == pytest.approx(0.3)
    md = target_table(rows, "test", tolerance=0.05)
    assert "| found arm |" in md and "halving-random (rm) 29.40 +- 0.00 (2)" in md
    assert "The found arm 'found (mut)' wins 1 of 1 targets" in md
    assert "The found arm 'found (alphas)' wins 0 of 1 targets" in md


def test_parallel_race_scores_like_the_sequential_one(tmp_path):
    """search.halving_workers=2 trains a rung's candidates in two spawned processes; at
    one torch thread each they give the sequential race's scores to the last digit.
    """
    cands = [(random_genotype(_cfg().arch, s), 0.0, "uniform") for s in range(3)]
    seq = successive_halving(_cfg("threads=1"), tmp_path / "seq", cands)
    par_cfg = _cfg("threads=2", "search.halving_workers=2")
    # the data (the job's, or read from the config) goes to the workers pickled
    par = successive_halving(par_cfg, tmp_path / "par", cands, data=JobData(par_cfg))
    assert par.rungs == seq.rungs and par.winner.index == seq.winner.index
    assert [c.scores for c in par.candidates] == [c.scores for c in seq.candidates]
    assert (tmp_path / "par" / "cand_02" / "best.pt").exists()


class _KillsTheWorker:
    """Data whose unpickling ends the process at once (``os._exit``), as the kernel's OOM
    killer would: the parent sees a broken pool, not a Python exception.
    """

    def __reduce__(self):
        import os

        return os._exit, (3,)


def test_a_dead_worker_is_a_one_line_error(tmp_path):
    cands = [(random_genotype(_cfg().arch, s), 0.0, "uniform") for s in range(2)]
    cfg = _cfg("threads=2", "search.halving_workers=2")
    with pytest.raises(QuantNASError) as ei:
        successive_halving(cfg, tmp_path / "select", cands, data=_KillsTheWorker())
    msg = str(ei.value)
    assert "\n" not in msg and "cand_0" in msg
    assert "process died" in msg and "search.halving_workers=1" in msg


def test_race_on_ray_scores_like_the_sequential_one(tmp_path):
    """search.halving_engine=ray trains a rung's candidates as Ray tasks (a local Ray the
    engine starts and stops); one torch thread each gives the sequential scores."""
    pytest.importorskip("ray")
    cands = [(random_genotype(_cfg().arch, s), 0.0, "uniform") for s in range(2)]
    seq = successive_halving(_cfg("threads=1"), tmp_path / "seq", cands)
    ray_cfg = _cfg("threads=2", "search.halving_workers=2", "search.halving_engine=ray")
    par = successive_halving(ray_cfg, tmp_path / "ray", cands, data=JobData(ray_cfg))
    assert par.rungs == seq.rungs and par.winner.index == seq.winner.index
    assert (tmp_path / "ray" / "cand_01" / "best.pt").exists()


def test_race_engine_settings_are_checked(tmp_path, monkeypatch):
    with pytest.raises(QuantNASError, match="search.halving_engine: 'rays' is not one of"):
        _cfg("search.halving_engine=rays")
    import quantnas.engines

    monkeypatch.setattr(quantnas.engines, "ray_available", lambda: False)  # Ray not installed
    cands = [(random_genotype(_cfg().arch, s), 0.0, "uniform") for s in range(2)]
    cfg = _cfg("search.halving_workers=2", "search.halving_engine=ray")
    with pytest.raises(QuantNASError) as ei:
        successive_halving(cfg, tmp_path / "select", cands)
    assert str(ei.value) == (
        "config key search.halving_engine: ray needs Ray: pip install 'quantnas[ray]' "
        "(or search.halving_engine=processes)"
    )
