"""Sweeps: trial plans and hashes, the local and Ray engines, failures, resume after a kill,
and the Pareto maths / ``quantnas pareto`` on hand-made results."""

import csv
import json
import math

import pytest
from tiny_runs import RUN

from quantnas.cli import main
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.sweep import pareto as pm
from quantnas.sweep.trials import Trial, config_hash, plan, uniform_plan

TINY = [*RUN, "data.benchmarks=embedded:test"]

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------ plans and hashes
def test_sweep_cpu_preset_plan():
    cfg = load_config(preset="sweep-cpu")
    trials = plan(cfg)
    ids = [t.trial_id for t in trials]
    assert len(ids) == len(set(ids))
    by = {}
    for t in trials:
        by.setdefault(t.method, []).append(t)
    assert len(by["search"]) == len(cfg.sweep.penalties) * 2 and len(cfg.sweep.penalties) >= 3
    seeds = cfg.sweep.seeds
    assert seeds >= 2
    # every method runs every seed: random draws and baselines too
    assert len(by["random"]) == cfg.sweep.random * seeds and cfg.sweep.random >= 8
    assert {m: len(by[m]) for m in ("espcn", "fsrcnn", "edsr")} == {
        "espcn": 3 * seeds,
        "fsrcnn": 3 * seeds,
        "edsr": 3 * seeds,
    }
    assert {t.bits for t in by["espcn"]} == {4, 8, 32}
    # the seeds of one random draw train the same genotype
    draw0 = [t for t in by["random"] if t.draw == 0]
    assert len({t.seed for t in draw0}) == seeds and len({t.draw_seed for t in draw0}) == 1
    # the same training budget and data for every method: trial configs differ only in
    # seed and (for the search) penalty
    from quantnas.sweep.trials import trial_config

    cfgs = [trial_config(cfg, t) for t in trials]
    assert (
        len({(c.train.epochs, c.train.steps_per_epoch, c.data.train, c.data.lr_crop) for c in cfgs})
        == 1
    )
    assert cfg.data.val == "embedded:val" and cfg.data.benchmarks == "embedded:test"


def test_uniform_plan_and_config_hash():
    cfg = load_config(
        overrides=["sweep.methods=[search,uniform]", "sweep.penalties=[0,1]", "sweep.seeds=2"]
    )
    trials = plan(cfg)
    assert [t.trial_id for t in trials] == [
        "search_p0_s0",
        "search_p0_s1",
        "search_p1_s0",
        "search_p1_s1",
    ]
    from quantnas.space import genotype as gt

    mixed = gt.PAPER_EXAMPLE.to_json()
    all4 = gt.DEFAULT.at_bits(4).to_json()
    found = [(trials[0], mixed), (trials[1], mixed), (trials[2], all4)]
    u = uniform_plan(cfg, found)
    # seed 1 is left out (uniform_seeds=1); the all-4-bit genotype has no 4-bit copy to train
    assert [t.trial_id for t in u] == [
        "uniform_b4_search_p0_s0",
        "uniform_b8_search_p0_s0",
        "uniform_b8_search_p1_s0",
    ]
    h = config_hash(cfg, trials[0])
    assert len(h) == 12 and h == config_hash(cfg, trials[0])
    assert h != config_hash(cfg, trials[1])  # another seed
    # run-time settings do not change the hash; the training budget does
    cfg2 = load_config(overrides=["sweep.methods=[search,uniform]", "threads=2", "out_dir=x"])
    assert config_hash(cfg2, trials[0]) == h
    cfg3 = load_config(overrides=["train.epochs=11"])
    assert config_hash(cfg3, trials[0]) != h
    # the search section does not count for a baseline
    b = Trial("espcn", "bits=4", 0, bits=4)
    assert config_hash(load_config(overrides=["search.epochs=9"]), b) == config_hash(cfg, b)


def test_plan_errors():
    with pytest.raises(QuantNASError, match="sweep.methods: 'grid'"):
        plan(load_config(overrides=["sweep.methods=[grid]"]))
    with pytest.raises(QuantNASError, match="sweep.baselines: 'vdsr'"):
        plan(load_config(overrides=["sweep.methods=[baseline]", "sweep.baselines=[vdsr]"]))
    with pytest.raises(QuantNASError, match="sweep.baseline_bits"):
        plan(load_config(overrides=["sweep.baseline_bits=[5]"]))
    with pytest.raises(QuantNASError, match="sweep.seeds: must be >= 1"):
        plan(load_config(overrides=["sweep.seeds=0"]))


# ------------------------------------------------------------------------------ Pareto
def _row(tid, method, bitops, test, **kw):
    r = {
        "trial_id": tid,
        "method": method,
        "setting": kw.pop("setting", f"trial={tid}"),  # one setting per hand-made point
        "seed": 0,
        "status": "ok",
        "bitops_32": bitops,
        "params": 1000,
        "psnr_test": test,
        "ssim_test": 0.8,
        "psnr_validation": test + 1.0,
        "bicubic_psnr_test": 25.0,
    }
    r.update(kw)
    return r


HAND = [
    _row("a", "search", 1.0e9, 27.0, penalty=0.01, setting="penalty=0.01"),
    _row("b", "search", 3.0e9, 27.5, penalty=0.0, setting="penalty=0"),
    _row("c", "random", 2.0e9, 26.9),
    _row("d", "random", 0.5e9, 26.5),
    _row("e", "espcn", 0.6e9, 26.8, bits=4),
    _row("f", "espcn", 2.4e9, 27.2, bits=8),
    _row("g", "espcn", 40e9, 27.6, bits=32),
    _row("h", "uniform", 0.3e9, 26.0, bits=4, source="a", penalty=0.01),
    _row("i", "uniform", 1.2e9, 26.95, bits=8, source="a", penalty=0.01),
    {
        "trial_id": "j",
        "method": "search",
        "status": "failed",
        "error": "RuntimeError: x",
        "bitops_32": None,
        "psnr_test": None,
    },
]


def test_pareto_maths_hand_made():
    ok = pm.ok_rows(HAND, "test")
    assert [r["trial_id"] for r in ok] == list("abcdefghi")
    front = [ok[i]["trial_id"] for i in pm.overall_front(ok, "test")]
    assert front == ["h", "d", "e", "a", "f", "b", "g"]
    fronts = {
        m: [ok[i]["trial_id"] for i in idx] for m, idx in pm.method_fronts(ok, "test").items()
    }
    assert fronts == {
        "search": ["a", "b"],
        "random": ["d", "c"],
        "espcn": ["e", "f", "g"],
        "uniform": ["h", "i"],
    }
    t = pm.targets(ok, "test")
    assert t["random"] == {"total": 2, "dominated": 1}
    assert t["baselines"] == {"total": 2, "matched": 1, "found_better": 1, "unmatched": 1}
    assert t["uniform"] == {"total": 2, "dominated": 1, "beats_mixed": 0, "trade_off": 1}
    # on validation (all +1 dB) the same front
    assert pm.overall_front(ok, "validation") == pm.overall_front(ok, "test")


def test_pareto_command_marks_the_front_and_merges(tmp_path, capsys):
    sweep = tmp_path / "s1"
    sweep.mkdir()
    (sweep / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HAND))
    out = tmp_path / "front.png"
    assert main(["pareto", str(sweep / "results.jsonl"), "--out", str(out)]) == 0
    md = capsys.readouterr().out
    assert out.is_file() and out.stat().st_size > 10_000
    assert (tmp_path / "front.md").read_text() == md
    front_md = md.split("## Every point")[0]
    table = [ln for ln in front_md.splitlines() if ln.startswith("| ") and "method" not in ln]
    assert [ln.split("|")[1].strip() for ln in table] == [
        "uniform",
        "random",
        "espcn",
        "search",
        "espcn",
        "search",
        "espcn",
    ]
    assert "| 1.000 | 1000 | 27.00 |" in md  # search point a
    assert "1 of 2 random points" in md and "(9 finished trials, 1 failed; 9 points" in md
    # a CSV from a second sweep with one point dominating everything: merged front = it
    other = tmp_path / "s2"
    other.mkdir()
    with open(other / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(HAND[0]) + ["bits"])
        w.writeheader()
        w.writerow({**_row("z", "edsr", 0.2e9, 28.0), "bits": 8})
    assert main(["pareto", str(sweep), str(other), "--out", str(tmp_path / "m.png")]) == 0
    md = capsys.readouterr().out.split("## Every point")[0]
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and "method" not in ln]
    assert len(table) == 1 and table[0].startswith("| s2 | edsr |") and "28.00" in table[0]
    # default output next to the results, and validation on request
    assert main(["pareto", str(sweep), "--set", "validation"]) == 0
    assert (sweep / "pareto.png").is_file() and "PSNR validation" in capsys.readouterr().out


def test_pareto_command_errors(tmp_path, capsys):
    assert main(["pareto", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(HAND[0]) + "\n")
    assert main(["pareto", str(f), "--set", "Set5"]) == 2
    assert "'Set5'" in capsys.readouterr().err
    f.write_text("not json\n")
    assert main(["pareto", str(f)]) == 2
    assert "line 1 is not JSON" in capsys.readouterr().err
    # a failed trial's row carries no BitOps (the driver writes it without a network): read
    # beside the finished ones; a finished row without BitOps is not a sweep result
    failed = {"trial_id": "x", "method": "search", "status": "failed", "error": "boom"}
    f.write_text(json.dumps(HAND[0]) + "\n" + json.dumps(failed) + "\n")
    assert main(["pareto", str(f), "--out", str(tmp_path / "f.png")]) == 0
    assert "1 failed" in capsys.readouterr().out
    f.write_text(json.dumps({k: v for k, v in HAND[0].items() if k != "bitops_32"}) + "\n")
    assert main(["pareto", str(f)]) == 2
    assert "row 1 lacks ['bitops_32']" in capsys.readouterr().err


# ------------------------------------------------------------------- local engine sweeps
def _sweep_args(out, name, *extra):
    return [
        "sweep",
        "-d",
        name,
        "--engine",
        "local",
        f"out_dir={out}",
        *TINY,
        "sweep.methods=[search,random,baseline]",
        "sweep.penalties=[0]",
        "sweep.random=1",
        "sweep.baselines=[espcn]",
        "sweep.baseline_bits=[4]",
        *extra,
    ]


def _wrap(monkeypatch, fn):
    import quantnas.sweep.driver as driver
    import quantnas.sweep.runner as runner

    real = runner.run_trial
    calls = []

    def wrapped(trial, *args, **kwargs):
        calls.append(trial["trial_id"])
        fn(trial["trial_id"])
        return real(trial, *args, **kwargs)

    # runs fn before each trial (a failure or kill between trials): only a patch can
    monkeypatch.setattr(driver, "run_trial", wrapped)
    return calls


def test_failed_trial_recorded_and_others_finish(tmp_path, monkeypatch):
    def fail(tid):
        if tid == "random_d0_s0":
            raise RuntimeError("boom in the random trial")

    calls = _wrap(monkeypatch, fail)
    assert main(_sweep_args(tmp_path, "f", "--max-retries", "1")) == 0
    # the failing trial was tried twice (one retry); the others ran once
    assert calls == ["search_p0_s0", "random_d0_s0", "random_d0_s0", "espcn_b4_s0"]
    rows = {r["trial_id"]: r for r in _csv(tmp_path / "f" / "results.csv")}
    assert rows["random_d0_s0"]["status"] == "failed"
    assert rows["random_d0_s0"]["error"] == "RuntimeError: boom in the random trial"
    assert rows["random_d0_s0"]["psnr_test"] == ""
    for tid in ("search_p0_s0", "espcn_b4_s0"):
        assert rows[tid]["status"] == "ok" and float(rows[tid]["psnr_test"]) > 20
        assert float(rows[tid]["psnr_validation"]) > 20 and int(rows[tid]["bitops_32"]) > 0
    assert rows["espcn_b4_s0"]["bitops_32"] == str(37056 * 1024 * 16)
    assert (tmp_path / "f" / "pareto.png").is_file()
    assert "1 failed" in (tmp_path / "f" / "pareto.md").read_text()
    # --resume reruns the failed trial only
    calls = _wrap(monkeypatch, lambda tid: None)
    assert main([*_sweep_args(tmp_path, "f"), "--resume"]) == 0
    assert calls == ["random_d0_s0"]
    rows = {r["trial_id"]: r for r in _csv(tmp_path / "f" / "results.csv")}
    assert all(r["status"] == "ok" for r in rows.values()) and len(rows) == 3


def test_resume_after_kill_reruns_nothing_finished(tmp_path, monkeypatch, capsys):
    def kill(tid):
        if tid == "random_d0_s0":
            raise KeyboardInterrupt

    _wrap(monkeypatch, kill)
    assert main(_sweep_args(tmp_path, "k")) == 130
    assert "--resume" in capsys.readouterr().err
    done = json.loads((tmp_path / "k" / "trials" / "search_p0_s0" / "result.json").read_text())
    assert done["status"] == "ok"
    assert not (tmp_path / "k" / "trials" / "random_d0_s0" / "result.json").exists()
    # without --resume the sweep refuses the existing folder
    assert main(_sweep_args(tmp_path, "k")) == 2
    assert "--resume" in capsys.readouterr().err
    calls = _wrap(monkeypatch, lambda tid: None)
    assert main([*_sweep_args(tmp_path, "k"), "--resume"]) == 0
    assert calls == ["random_d0_s0", "espcn_b4_s0"]
    rows = {r["trial_id"]: r for r in _csv(tmp_path / "k" / "results.csv")}
    assert rows["search_p0_s0"]["finished_at"] == done["finished_at"]
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows.values())
    # a finished sweep resumed runs nothing; a changed config is refused by hash
    calls = _wrap(monkeypatch, lambda tid: None)
    assert main([*_sweep_args(tmp_path, "k"), "--resume"]) == 0 and calls == []
    capsys.readouterr()
    assert main([*_sweep_args(tmp_path, "k", "train.lr=0.01"), "--resume"]) == 2
    assert "with another config" in capsys.readouterr().err


def test_interrupted_trial_resumes_its_training(tmp_path, monkeypatch):
    """A trial killed inside training continues from its checkpoint on --resume."""
    import quantnas.training.trainer

    args = [
        "sweep",
        "-d",
        "t",
        "--engine",
        "local",
        f"out_dir={tmp_path}",
        *TINY,
        "train.epochs=2",
        "sweep.methods=[baseline]",
        "sweep.baselines=[espcn]",
        "sweep.baseline_bits=[8]",
    ]
    real = quantnas.training.trainer.Trainer.train_epoch

    def stop_at_1(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch)

    # Ctrl-C in a trial's training epoch 1: only a patch stops a sweep at that point
    monkeypatch.setattr(quantnas.training.trainer.Trainer, "train_epoch", stop_at_1)
    assert main(args) == 130
    monkeypatch.setattr(quantnas.training.trainer.Trainer, "train_epoch", real)
    epochs = []
    monkeypatch.setattr(
        quantnas.training.trainer.Trainer,
        "train_epoch",
        lambda self, e: epochs.append(e) or real(self, e),
    )
    assert main([*args, "--resume"]) == 0
    assert epochs == [1]
    row = _csv(tmp_path / "t" / "results.csv")[0]
    assert row["status"] == "ok" and row["best_epoch"] in ("0", "1")


# --------------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_records_failures_after_retries(ray_session, tmp_path):
    from quantnas.engines import Job, RayEngine

    log = tmp_path / "attempts.txt"

    def work(x):
        import torch

        with open(log, "a") as f:
            f.write(f"{x} {torch.get_num_threads()}\n")
        if x == 2:
            raise ValueError(f"bad trial {x}")
        return x * 10

    eng = RayEngine(max_retries=1, cpus_per_trial=1)
    out = {k: (r, e) for k, r, e in eng.run([Job(str(i), work, (i,), {}) for i in range(4)])}
    assert out == {
        "0": (0, None),
        "1": (10, None),
        "2": (None, "ValueError: bad trial 2"),
        "3": (30, None),
    }
    lines = log.read_text().split("\n")[:-1]
    assert sorted(ln.split()[0] for ln in lines) == ["0", "1", "2", "2", "3"]
    assert {ln.split()[1] for ln in lines} == {"1"}  # torch pinned to the task's one CPU
    eng.close()
    assert ray_session.is_initialized()  # the engine did not start it, so it keeps it


def test_ray_trial_holds_the_lock_of_its_directory(ray_session, tmp_path):
    """A trial in a Ray worker is refused while another process writes its folder."""
    from test_rundir import locked_by_child

    from quantnas.engines import Job, RayEngine
    from quantnas.pipeline.resolve import to_dict
    from quantnas.rundir.lock import LOCK_FILE
    from quantnas.sweep.runner import run_trial

    cfg = load_config(overrides=[*TINY, f"out_dir={tmp_path}"])
    trial = Trial("espcn", "bits=8", 0, bits=8).to_dict()
    d = tmp_path / "trials" / trial["trial_id"]
    eng = RayEngine(cpus_per_trial=1)
    with locked_by_child(d) as child:
        out = list(eng.run([Job("t", run_trial, (trial, to_dict(cfg), str(d)), {})]))
    [(key, result, error)] = out
    assert key == "t" and result is None
    assert error.startswith(f"QuantNASError: run directory {d} is in use by process {child.pid} ")
    assert [p.name for p in d.iterdir()] == [LOCK_FILE]


@pytest.mark.slow
def test_tiny_sweep_on_local_ray(ray_session, tmp_path):
    args = [
        "sweep",
        "-d",
        "r",
        "--engine",
        "ray",
        "--cpus-per-trial",
        "1",
        f"out_dir={tmp_path}",
        *TINY,
        "sweep.methods=[search,random,baseline,uniform]",
        "sweep.penalties=[0,1]",
        "sweep.random=1",
        "sweep.baselines=[espcn]",
        "sweep.baseline_bits=[4]",
        "sweep.uniform_bits=[4]",
    ]
    assert main(args) == 0
    sw = tmp_path / "r"
    rows = [json.loads(ln) for ln in (sw / "results.jsonl").read_text().splitlines()]
    by = {r["trial_id"]: r for r in rows}
    assert list(by)[:4] == ["search_p0_s0", "search_p1_s0", "random_d0_s0", "espcn_b4_s0"]
    from quantnas.space import genotype as gt

    n_uniform = sum(
        gt.loads(by[t]["genotype_json"]).at_bits(4) != gt.loads(by[t]["genotype_json"])
        for t in ("search_p0_s0", "search_p1_s0")
    )
    assert len(rows) == 4 + n_uniform
    for r in rows:
        assert r["status"] == "ok" and r["engine"] == "ray" and len(r["config_hash"]) == 12
        assert r["bitops_32"] > 0 and r["params"] > 0
        assert r["psnr_test"] > 20 and r["psnr_validation"] > 20 and r["ssim_test"] > 0
        assert r["total_s"] > 0 and (sw / r["trial_dir"] / "train" / "best.pt").is_file()
    assert (
        by["search_p0_s0"]["genotype"].startswith("Genotype_SR(")
        and by["espcn_b4_s0"]["genotype"] == ""
    )
    assert by["search_p1_s0"]["bitops_32"] <= by["search_p0_s0"]["bitops_32"]
    for r in rows:
        if r["method"] == "uniform":
            assert gt.parse_text(r["genotype"]) == gt.loads(
                by[r["source"]]["genotype_json"]
            ).at_bits(4)
    assert (sw / "pareto.png").is_file() and "| method |" in (sw / "pareto.md").read_text()
    assert json.loads((sw / "sweep.json").read_text())["engine"] == "ray"


def test_engine_choice_and_errors(tmp_path, capsys):
    from quantnas.engines import LocalEngine, RayEngine, make_engine

    assert isinstance(make_engine("local"), LocalEngine)
    assert isinstance(make_engine("auto"), RayEngine)  # Ray is installed with the test extra
    with pytest.raises(QuantNASError, match="--address needs --engine ray"):
        make_engine("local", address="127.0.0.1:6379")
    with pytest.raises(QuantNASError, match="--cpus-per-trial must be > 0"):
        make_engine("ray", cpus_per_trial=0)
    args = ["sweep", "-d", "e", f"out_dir={tmp_path}", "--engine", "local", "--address", "x:1"]
    assert main(args) == 2 and "--address needs --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # nothing written before the checks


# ------------------------------------------------------------ one training, wherever it runs
@pytest.mark.parametrize("method", ["random", "espcn"])
def test_trial_trains_exactly_like_the_train_verb(tmp_path, method):
    """A sweep trial and ``quantnas train`` (same genotype or network, seed and budget)
    give the same initialisation, data order and so the same validation curve."""
    import torch

    from quantnas.pipeline.resolve import to_dict
    from quantnas.space.baselines import build_baseline
    from quantnas.space.build import random_genotype
    from quantnas.sweep.runner import run_trial
    from quantnas.sweep.trials import trial_config
    from quantnas.training.trainer import Trainer

    cfg = load_config(preset="tiny", overrides=[*TINY, "train.steps_per_epoch=3", "seed=3"])
    if method == "random":
        trial = Trial("random", "draw=1", 4, draw=1, draw_base=3)
    else:
        trial = Trial("espcn", "bits=4", 4, bits=4)
    tcfg = trial_config(cfg, trial)
    run_trial(trial.to_dict(), to_dict(tcfg), str(tmp_path / "trial"), threads=1)
    trial_hist = [json.loads(x) for x in (tmp_path / "trial/train/metrics.jsonl").open()]

    if method == "random":
        verb = Trainer(tcfg, tmp_path / "verb", random_genotype(tcfg.arch, trial.draw_seed))
    else:
        verb = Trainer(tcfg, tmp_path / "verb", None,
                       build=lambda: build_baseline("espcn", tcfg.arch, 4))
    verb.run()
    assert [r["val_psnr"] for r in verb.history] == [r["val_psnr"] for r in trial_hist]
    assert [r["train_loss"] for r in verb.history] == [r["train_loss"] for r in trial_hist]
    a = torch.load(tmp_path / "trial/train/best.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "verb/best.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_aggregate_mean_and_std_over_seeds():
    rows = [
        {"method": "random", "setting": "draw=0", "seed": 0, "bitops_32": 2e9, "params": 10,
         "psnr_test": 28.0, "psnr_validation": 29.0, "stalled": False},
        {"method": "random", "setting": "draw=0", "seed": 1, "bitops_32": 2e9, "params": 10,
         "psnr_test": 28.4, "psnr_validation": 29.2, "stalled": "True"},
        {"method": "espcn", "setting": "bits=4", "seed": 0, "bitops_32": 1e9, "params": 5,
         "psnr_test": 27.5, "psnr_validation": 28.5, "stalled": False},
    ]
    agg = {r["method"]: r for r in pm.aggregate(rows)}
    r = agg["random"]
    assert r["n"] == 2 and r["seed"] == "0,1" and r["stalled"] == 1
    assert r["psnr_test"] == pytest.approx(28.2)
    assert r["psnr_test_std"] == pytest.approx(0.28284271, abs=1e-6)  # sample std of 28, 28.4
    assert math.isnan(agg["espcn"]["psnr_test_std"]) and agg["espcn"]["n"] == 1
    table = pm.front_table(list(agg.values()), "test", every=True)
    assert "28.20 +- 0.28" in table and table.count(" yes |") == 2


def test_uniform_pairs_compare_with_the_trial_they_retrain():
    trials = [
        _row("s0", "search", 4e9, 27.9, setting="penalty=0", seed=0),
        _row("s1", "search", 1.5e9, 27.0, setting="penalty=0", seed=1),
        _row("u", "uniform", 1e9, 27.7, setting="penalty=0,bits=4", source="s0", bits=4),
    ]
    agg = pm.aggregate(trials)
    # against the seed mean (2.75 G, 27.45 dB) the copy would look dominant; against its
    # own source (4 G, 27.9 dB) it is a trade-off
    assert pm.targets(agg, "test")["uniform"]["beats_mixed"] == 1
    assert pm.targets(agg, "test", trials=trials)["uniform"] == {
        "total": 1, "dominated": 0, "beats_mixed": 0, "trade_off": 1
    }


def test_front_on_validation_has_no_duplicated_column_and_no_empty_targets():
    rows = [_row("a", "espcn", 1e9, 27.0, setting="bits=4"),
            _row("b", "edsr", 2e9, 27.5, setting="bits=4")]
    table = pm.front_table(pm.aggregate(rows), "validation")
    assert table.splitlines()[0].count("PSNR validation") == 1
    text = pm.targets_text(pm.targets(pm.aggregate(rows), "validation"))
    assert "0 of 0" not in text and text == "- no comparison applies to these results"


def test_missing_front_set_is_warned_once_not_per_trial(caplog):
    import logging

    from quantnas.sweep.front import pareto_set

    rows = [_row("a", "espcn", 1e9, 27.0)]
    for r in rows:
        r.pop("psnr_test")
    with caplog.at_level(logging.WARNING, logger="quantnas"):
        assert pareto_set("test", rows, warn=False) == "validation"  # a trial's log line
        assert pareto_set("test", rows) == "validation"  # the front
    assert sum("no results on set" in r.getMessage() for r in caplog.records) == 1
