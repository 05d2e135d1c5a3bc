"""One optimiser section shape (``search.optim``, ``search.alpha_optim``, ``train.optim``),
the keys of earlier releases read onto it, null sentinels and the positive keys."""

import logging

import pytest
import torch
import yaml

from quantnas.cli import main
from quantnas.cli.target_dir import resumed_config
from quantnas.config import compat as config_compat
from quantnas.config.checks import POSITIVE, check_ranges
from quantnas.config.compat import NULL_SENTINELS, RENAMED, legacy
from quantnas.config.types import search_arch, search_crop
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import Config, dump, load_config, to_dict
from quantnas.sweep.trials import base_hash, config_hash, plan

#: Every old key with a value none of the presets uses.
OLD = {
    "search.w_lr": 0.0021,
    "search.w_lr_min": 2e-6,
    "search.w_weight_decay": 1e-7,
    "search.w_grad_clip": 3.0,
    "search.lr_warmup_steps": 7,
    "search.step_lr_scale": 0.5,
    "search.alpha_lr": 0.0042,
    "search.alpha_betas": [0.8, 0.9],
    "search.alpha_weight_decay": 0.001,
    "train.lr": 0.0031,
    "train.lr_min": 3e-6,
    "train.weight_decay": 2e-7,
    "train.grad_clip": 0.0,
    "train.lr_warmup_steps": 9,
    "train.step_lr_scale": 0.25,
}


def value(cfg: Config, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def nested(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        section, name = key.split(".")
        out.setdefault(section, {})[name] = v
    return out


@pytest.fixture
def notes(caplog):
    """The deprecation notes logged during a test (each note is logged once a process)."""
    config_compat.reset_notes()
    with caplog.at_level(logging.WARNING, logger="quantnas.config.compat"):
        yield lambda: [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    config_compat.reset_notes()


def test_rename_table_points_to_existing_keys():
    cfg = Config()
    assert set(OLD) == set(RENAMED)
    for old, new in RENAMED.items():
        value(cfg, new)  # exists
        with pytest.raises(AttributeError):
            value(cfg, old)
    for key, same_as in NULL_SENTINELS.items():
        assert value(cfg, key) is None and isinstance(value(cfg, same_as), int)


def test_old_keys_in_a_yaml_file(tmp_path, notes):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(nested(OLD)))
    cfg = load_config(preset="tiny", files=[path])
    for old, new in RENAMED.items():
        assert value(cfg, new) == OLD[old], new
    assert cfg.train.optim.grad_clip == 0.0 and cfg.search.alpha_optim.betas == [0.8, 0.9]
    logged = notes()
    assert len(logged) == len(OLD)
    assert f"{path}: search.w_lr is deprecated, use search.optim.lr" in logged
    # a second load (and an override of the same key) logs nothing new: one note per key
    load_config(preset="tiny", files=[path], overrides=["train.lr=0.004"])
    assert len(notes()) == len(OLD)


def test_old_keys_as_overrides(notes):
    cfg = load_config(preset="tiny", overrides=[f"{k}={v}" for k, v in OLD.items()])
    assert all(value(cfg, RENAMED[k]) == v for k, v in OLD.items())
    assert "override: train.lr is deprecated, use train.optim.lr" in notes()
    # the old spelling and the new one resolve to the same config
    new = load_config(preset="tiny", overrides=[f"{RENAMED[k]}={v}" for k, v in OLD.items()])
    assert new == cfg


def test_resumed_config_of_an_old_run(tmp_path, notes):
    """A run directory written before the rename resumes with its settings."""
    run = tmp_path / "old_run"
    run.mkdir()
    saved = legacy(to_dict(load_config(preset="paper-rfdn")))  # the old layout, every key
    saved["search"].update(w_lr=0.0005, c_fixed=0, lr_crop=0, alpha_betas=[0.6, 0.99])
    saved["train"].update(lr=0.0002, grad_clip=1.5)
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    cfg = resumed_config(run, ["train.epochs=31"])
    assert (cfg.search.optim.lr, cfg.search.optim.weight_decay) == (0.0005, 3e-8)
    assert cfg.search.alpha_optim.betas == [0.6, 0.99] and cfg.search.alpha_optim.lr == 3e-4
    assert (cfg.train.optim.lr, cfg.train.optim.grad_clip, cfg.train.epochs) == (2e-4, 1.5, 31)
    assert cfg.search.c_fixed is None and cfg.search.lr_crop is None
    assert any(n.startswith(f"saved config {run / 'config.yaml'}: ") for n in notes())
    # what the resumed run writes back is the new layout, which reads without a note
    config_compat.reset_notes()
    (run / "config.yaml").write_text(dump(cfg))
    logged = len(notes())
    assert resumed_config(run, []) == cfg and len(notes()) == logged


@pytest.mark.parametrize(
    "data",
    [
        {"train": {"lr": 0.1, "optim": {"lr": 0.2}}},
        {"search": {"optim": {"grad_clip": 1.0}, "w_grad_clip": 2.0}},
        {"search": {"alpha_betas": [0.5, 0.9], "alpha_optim": {"betas": [0.5, 0.999]}}},
    ],
)
def test_old_and_new_key_disagreeing_is_an_error(tmp_path, data):
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(QuantNASError, match=r"disagree; .* is deprecated, give only") as e:
        load_config(files=[path])
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_old_and_new_key_agreeing_is_accepted(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 0.1, "optim": {"lr": 1.0e-1}}}))
    assert load_config(files=[path]).train.optim.lr == 0.1
    cfg = load_config(overrides=["train.lr=0.1", "train.optim.lr=0.1", "train.lr=0.1"])
    assert cfg.train.optim.lr == 0.1


def test_conflicting_overrides_one_line(capsys):
    code = main(["config", "--preset", "tiny", "train.lr=0.1", "train.optim.lr=0.2"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [
        "error: overrides train.lr=0.1 and train.optim.lr=0.2 disagree; train.lr is "
        "deprecated, give only train.optim.lr"
    ]


def test_null_sentinels(notes):
    cfg = load_config(preset="default", overrides=["search.c_fixed=null", "search.lr_crop=null"])
    assert search_arch(cfg) == cfg.arch and search_crop(cfg) == cfg.data.lr_crop == 48
    assert notes() == []
    dumped = yaml.safe_load(dump(cfg))["search"]
    assert dumped["c_fixed"] is None and dumped["lr_crop"] is None
    old = load_config(preset="default", overrides=["search.c_fixed=0", "search.lr_crop=0"])
    assert old == cfg
    assert "override: search.c_fixed: 0 is deprecated, use null (the same as arch.c_fixed)" in (
        notes()
    )
    set_ = load_config(preset="default", overrides=["search.c_fixed=12", "search.lr_crop=20"])
    assert search_arch(set_).c_fixed == 12 and search_crop(set_) == 20
    for bad in ("search.c_fixed=-1", "search.lr_crop=-4"):
        with pytest.raises(QuantNASError, match=bad.split("=")[0]):
            load_config(overrides=[bad])


def test_rfdn_preset_has_no_basic_pattern():
    rfdn = load_config(preset="paper-rfdn")
    assert rfdn.arch.arch_pattern is None
    assert yaml.safe_load(dump(rfdn))["arch"]["arch_pattern"] is None
    # the basic space needs its pattern: a null one is refused naming the key
    with pytest.raises(QuantNASError, match="arch.arch_pattern"):
        load_config(preset="paper-rfdn", overrides=["arch.space=basic"])
    # one block given to a null pattern starts from the default pattern
    basic = load_config(
        preset="paper-rfdn", overrides=["arch.space=basic", "arch.arch_pattern.tail=2"]
    )
    assert basic.arch.arch_pattern == {**Config().arch.arch_pattern, "tail": 2}


#: What each preset resolved to before the rename, in the old keys (``quantnas config
#: --preset P`` of the release before): learning rates, decays, clips, warm-ups, step
#: scales, alpha optimiser, sentinels.
# fmt: off
BEFORE = {
    "default": (1e-3, 1e-5, 3e-8, 5.0, 20, 0.01, 0.01, [0.5, 0.999], 0.0, 24, 24,
                1e-3, 1e-5, 0.0, 5.0, 20, 0.01),
    "paper-basic": (1e-3, 0.0, 3e-8, 5.0, 0, 1.0, 3e-4, [0.5, 0.999], 0.0, 0, 0,
                    1e-4, 0.0, 0.0, 0.0, 0, 1.0),
    "paper-rfdn": (1e-3, 0.0, 3e-8, 5.0, 0, 1.0, 3e-4, [0.5, 0.999], 0.0, 0, 0,
                   1e-4, 0.0, 0.0, 0.0, 0, 1.0),
    "sweep-cpu": (1e-3, 1e-5, 3e-8, 5.0, 20, 0.01, 3e-3, [0.5, 0.999], 0.0, 24, 24,
                  5e-4, 1e-5, 0.0, 5.0, 20, 0.01),
    "sweep-targets": (1e-3, 1e-5, 3e-8, 5.0, 20, 0.01, 0.01, [0.5, 0.999], 0.0, 24, 24,
                      5e-4, 1e-5, 0.0, 5.0, 20, 0.01),
    "tiny": (1e-3, 1e-5, 3e-8, 5.0, 20, 0.01, 3e-4, [0.5, 0.999], 0.0, 0, 0,
             2e-3, 1e-5, 0.0, 5.0, 20, 0.01),
}
ORDER = [*[k for k in RENAMED if k.startswith("search.")], "search.c_fixed", "search.lr_crop",
         *[k for k in RENAMED if k.startswith("train.")]]

#: ``quantnas.sweep.trials`` hashes of the release before the rename: the base hash and
#: one search trial's, of each preset alone and with overrides (old keys then).
HASHES = {
    # the default preset's search changed (issue 27: search.branch_init zero_last, no gate,
    # float warm-up, warm_up_margin 0.3; then trained finalists, search.select halving, 7
    # drawn; then search.halving_draw mutations), so its hashes did; the others' did not
    # (search.halving_workers and search.threads are not hashed, as threads)
    "default": ("search_p0_s0", "43be8a191bd6", "ef14aab436f3", "1375411e8b3c",
                "215fdcbea556"),
    "paper-basic": ("search_p0_s777", "54b00f97d5a1", "48a4c9ecaae3", "131f07f42c03",
                    "08acd9b71bb4"),
    "paper-rfdn": ("search_p0_s777", "190fecd9108f", "670a3639fec5", "7d0d0a2ac39d",
                   "99211b91dff3"),
    "sweep-cpu": ("search_p0.003_s0", "adfb51ee0fbe", "284164436410", "9b5dd59213ab",
                  "884ea5db39fa"),
    # the preset's search changed with issue 27 (supernet, halving), its hashes with it
    "sweep-targets": ("search_t0.607G_s0", "d64c1b6527d2", "d48286353a34", "85013edcdbae",
                      "f25ed3ce507a"),
    "tiny": ("search_p0_s0", "a09c1e1ecf55", "1bafe1a0d7a9", "8586b5eb6828", "64f2e23cf28f"),
}
OLD_OVERRIDES = ["search.w_lr=0.002", "train.lr=0.003", "search.c_fixed=0", "search.lr_crop=16"]
NEW_OVERRIDES = ["search.optim.lr=0.002", "train.optim.lr=0.003", "search.c_fixed=null",
                 "search.lr_crop=16"]
# fmt: on


@pytest.mark.parametrize("preset", sorted(BEFORE))
def test_presets_resolve_to_the_numbers_before(preset):
    cfg = load_config(preset=preset)
    old = legacy(to_dict(cfg))
    got = tuple(old[k.split(".")[0]][k.split(".")[1]] for k in ORDER)
    assert got == BEFORE[preset]
    # the same numbers through the new keys (c_fixed/lr_crop 0 = null)
    for key, before in zip(ORDER, BEFORE[preset], strict=True):
        now = value(cfg, RENAMED.get(key, key))
        assert now == (None if key in NULL_SENTINELS and before == 0 else before), key


@pytest.mark.parametrize("preset", sorted(HASHES))
def test_sweep_hashes_unchanged_by_the_rename(preset):
    """``sweep --resume`` of a sweep recorded before the rename finds its trials' hashes."""
    trial_id, base, trial, base_plus, trial_plus = HASHES[preset]
    grid = ["sweep.methods=[search,random,baseline]"]
    for extra, want in (
        ([], (base, trial)),
        (OLD_OVERRIDES, (base_plus, trial_plus)),
        (NEW_OVERRIDES, (base_plus, trial_plus)),
    ):
        cfg = load_config(preset=preset, overrides=grid + extra)
        (t,) = [t for t in plan(cfg) if t.trial_id == trial_id]
        assert (base_hash(cfg), config_hash(cfg, t)) == want, extra


def test_positive_keys_derived_from_the_dataclasses():
    cfg = Config()
    for key in POSITIVE:
        value(cfg, key)  # every listed key exists
    # the keys the hand-written list of the release before named, under today's names
    # (search.w_grad_clip left it: 0 now means no clipping, as train.optim.grad_clip)
    before = [
        "arch.c_fixed",
        "arch.scale",
        "arch.body_cells",
        "data.lr_crop",
        "data.repeat",
        "search.epochs",
        "search.batch_size",
        "search.temp_max",
        "search.temp_min",
        "search.w_lr",
        "search.alpha_lr",
        "search.bitops_lr_size",
        "search.select_samples",
        "train.epochs",
        "train.batch_size",
        "train.lr",
    ]
    assert {config_compat.canonical_key(k) for k in before} <= set(POSITIVE)
    assert {"search.optim.lr", "train.optim.lr", "search.alpha_optim.lr"} <= set(POSITIVE)
    assert "search.optim.grad_clip" not in POSITIVE and "train.optim.lr_min" not in POSITIVE
    for key in POSITIVE:  # and each is checked
        bad = load_config(preset="tiny")
        *path, name = key.split(".")
        setattr(value(bad, ".".join(path)) if path else bad, name, 0)
        with pytest.raises(QuantNASError, match=f"config key {key}: must be "):
            check_ranges(bad)


def test_search_grad_clip_zero_means_no_clipping():
    """``search.optim.grad_clip: 0`` leaves the gradient as it is (as in the training)."""
    from quantnas.search.setup import build_supernet
    from quantnas.search.steps import weight_step

    cfg = load_config(preset="tiny", overrides=["search.output_scale=false"])
    moved = {}
    for clip in (0.0, 1e-6):
        torch.manual_seed(0)
        net = build_supernet(cfg)
        before = [p.detach().clone() for p in net.weights()]
        opt = torch.optim.SGD(list(net.weights()), lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _s: 1.0)
        lr, hr = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 48, 48)
        weight_step(net, opt, sched, lr, hr, grad_clip=clip)
        moved[clip] = sum(
            float((p.detach() - b).norm()) for p, b in zip(net.weights(), before, strict=True)
        )
    assert moved[1e-6] < 1e-5 < moved[0.0]


def test_halving_workers_and_threads_do_not_change_a_trials_hash():
    """How many finalists train at once and the search's threads set the run's speed (and
    float rounding, as threads does), not the trial: a sweep resumed with another value
    finds its trials.
    """
    grid = ["sweep.methods=[search]"]
    hashes = {
        base_hash(load_config(preset="default", overrides=[*grid, *extra]))
        for extra in (
            [],
            ["search.halving_workers=1"],
            ["search.halving_workers=4", "threads=3"],
            ["search.threads=0"],
            ["search.halving_engine=ray", "search.halving_address=auto"],
        )
    }
    assert len(hashes) == 1
    other = base_hash(load_config(preset="default", overrides=[*grid, "search.halving_eta=3"]))
    assert other not in hashes
