"""One CLI, one set of habits: every verb takes a run directory, a checkpoint (of a searched
or hand-designed network) or a genotype alike; ``info`` sizes a genotype at the ``default``
preset and a run at its own config; every ``--help`` has a description and examples;
``--debug`` before or after the verb; ``sweep --penalties``; per-step TensorBoard scalars
and ETAs.
"""

import json

import numpy as np
import pytest
import torch
from tiny_runs import RUN, TRAIN, one_error

from quantnas.cli import build_parser, main
from quantnas.cli.commands import sweep_config
from quantnas.cli.help_text import VERBS
from quantnas.data.images import load_rgb, save_rgb
from quantnas.errors import QuantNASError
from quantnas.evaluation.score import eval_sets, evaluate
from quantnas.pipeline.resolve import load_config
from quantnas.space import genotype as gt
from quantnas.space.baselines import build_baseline
from quantnas.space.build import build_network
from quantnas.space.cost import network_cost
from quantnas.training.artifact import load_trained
from quantnas.training.checkpoint import load_checkpoint
from quantnas.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")


def json_out(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A sweep-like trial directory of a 4-bit small EDSR trained for a few steps."""
    out = tmp_path_factory.mktemp("baseline")
    cfg = load_config(preset="tiny", overrides=[*TRAIN, f"out_dir={out}"])
    trial = out / "trials" / "edsr_b4_s0"
    spec = {"baseline": "edsr", "bits": 4}
    Trainer(
        cfg, trial / "train", None, build=lambda: build_baseline("edsr", cfg.arch, 4), net_spec=spec
    ).run()
    return cfg, trial


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny ``quantnas run`` directory (search, train, eval, report)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["run", f"out_dir={out}", "name=r", *RUN]) == 0
    return out / "r"


def _reference_net(cfg, trial):
    """The baseline rebuilt by hand from its checkpoint's weights (not via
    quantnas.training.artifact)."""
    net = build_baseline("edsr", cfg.arch, 4)
    net.load_state_dict(load_checkpoint(trial / "train" / "best.pt")["model"])
    return net.eval()


@pytest.mark.parametrize("where", ["trial", "train", "best.pt"])
def test_baseline_info_and_eval(baseline, capsys, where):
    cfg, trial = baseline
    source = {"trial": trial, "train": trial / "train", "best.pt": trial / "train/best.pt"}[where]
    ref = _reference_net(cfg, trial)
    cost = network_cost(ref, lr_size=32)
    info = json_out(capsys, ["info", str(source), "--json"])
    assert info["network"] == "edsr (4-bit, hand-designed)" and info["genotype"] is None
    assert (info["params"], info["bitops"], info["macs"]) == (cost.params, cost.bitops, cost.macs)
    res = json_out(capsys, ["eval", "--model", str(source), "--data", "embedded:val", "--json"])
    want = evaluate(ref, eval_sets(["embedded:val"], None, scale=cfg.arch.scale)["embedded:val"])
    assert res["sets"]["embedded:val"]["psnr"] == pytest.approx(want["psnr"], abs=1e-9)
    assert res["network"] == info["network"] and res["bitops"] == cost.bitops


@pytest.mark.parametrize("fmt", ["json", "text", "png"])
def test_baseline_has_no_genotype(baseline, capsys, tmp_path, fmt):
    _, trial = baseline
    for source in (trial, trial / "train" / "best.pt"):
        code = main(["export", str(source), "--format", fmt, "--out", str(tmp_path / "g")])
        one_error(code, capsys, "is a hand-designed network (edsr), it has no genotype", alone=True)
    code = main(["train", "--genotype", str(trial), f"out_dir={tmp_path}", *TRAIN])
    one_error(code, capsys, "hand-designed network (edsr)", alone=True)


def test_baseline_exports_to_onnx_and_upscales(baseline, capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    cfg, trial = baseline
    onnx_path = tmp_path / "edsr.onnx"
    assert main(["export", str(trial), "--format", "onnx", "--out", str(onnx_path)]) == 0
    assert "self-check passed" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert meta["quantnas.network"] == "edsr (4-bit, hand-designed)"
    assert int(meta["quantnas.lr_halo"]) == 11  # 3x3 head + 2 x 4 blocks + tail + up conv
    rng = np.random.default_rng(0)
    save_rgb(tmp_path / "in" / "p.png", (rng.random((30, 37, 3)) * 255).astype(np.uint8))
    ref = _reference_net(cfg, trial)
    lr = torch.from_numpy(load_rgb(tmp_path / "in" / "p.png")).permute(2, 0, 1)[None] / 255
    with torch.no_grad():
        want = (ref(lr.float())[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    for model, extra in ((trial / "train" / "best.pt", ["--tile", "0"]), (trial, ["--tile", "8"])):
        out = tmp_path / f"out{len(extra[1])}"
        argv = ["upscale", str(model), str(tmp_path / "in"), "--out", str(out), *extra]
        assert main([*argv, "--no-progress"]) == 0
        got = load_rgb(out / "p_x4.png")
        assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    assert (
        main(["upscale", str(onnx_path), str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 0
    )


def test_info_of_a_run_equals_its_report(finished_run, capsys):
    report = json.loads((finished_run / "report.json").read_text())
    for source in (finished_run, finished_run / "train", finished_run / "train" / "best.pt"):
        info = json_out(capsys, ["info", str(source), "--json"])
        assert info["bitops"] == report["bitops_32"] and info["params"] == report["params"]
        assert info["genotype"] == report["genotype_text"]
    # the search's own run directory: its genotype at the run's final structure
    info = json_out(capsys, ["info", str(finished_run / "search"), "--json"])
    assert info["bitops"] == report["bitops_32"]
    code = main(["info", str(finished_run), "--channels", "8"])
    one_error(code, capsys, "--channels does not apply to", "brings its own structure", alone=True)


def test_eval_export_train_take_a_run_dir(finished_run, capsys, tmp_path):
    res = json_out(
        capsys, ["eval", "--model", str(finished_run), "--data", "embedded:val", "--json"]
    )
    direct = json_out(capsys, ["eval", "--model", str(finished_run / "train" / "best.pt"),
                               "--data", "embedded:val", "--json"])  # fmt: skip
    assert res["sets"] == direct["sets"]
    text = json.loads((finished_run / "report.json").read_text())["genotype_text"]
    assert main(["export", str(finished_run), "--format", "text"]) == 0
    assert capsys.readouterr().out.strip() == text
    argv = ["train", "--genotype", str(finished_run), f"out_dir={tmp_path}", "name=t", *TRAIN]
    assert main(argv) == 0
    assert gt.load(tmp_path / "t" / "genotype.json").to_text() == text
    assert load_trained(tmp_path / "t").genotype.to_text() == text


def test_info_of_a_genotype_uses_the_default_preset(capsys):
    plain = json_out(capsys, ["info", "paper-example", "--json"])
    preset = json_out(capsys, ["info", "paper-example", "--preset", "default", "--json"])
    arch = load_config(preset="default").arch
    want = network_cost(build_network(gt.PAPER_EXAMPLE, arch), lr_size=32)
    assert plain == preset and plain["bitops"] == want.bitops
    assert (plain["channels"], plain["body_cells"]) == (arch.c_fixed, arch.body_cells) == (48, 2)
    narrow = json_out(capsys, ["info", "paper-example", "--channels", "36", "--json"])
    assert narrow["channels"] == 36 and narrow["bitops"] < plain["bitops"]


def _verbs():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_verb_is_documented():
    assert _verbs() == sorted(VERBS)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_has_a_description_and_examples(verb, capsys):
    assert main([verb, "--help"]) == 0
    text = capsys.readouterr().out
    summary = VERBS[verb][0]
    assert f"{summary[0].upper()}{summary[1:]}." in text  # the description's first line
    lines = text.splitlines()
    at = lines.index("examples:")
    examples = [ln.strip() for ln in lines[at + 1 :] if ln.strip()]
    assert examples and all(ln.startswith(f"quantnas {verb}") for ln in examples)
    for line in examples:  # every example parses
        build_parser().parse_args(line.split()[1:])


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_verb(where, capsys):
    argv = ["--debug", "info", "no-such-genotype"] if where == "before" else [
        "info", "no-such-genotype", "--debug"]  # fmt: skip
    with pytest.raises(QuantNASError, match="no-such-genotype"):
        main(argv)
    one_error(
        main(["info", "no-such-genotype"]),
        capsys,
        "genotype file no-such-genotype does not exist",
        alone=True,
    )


@pytest.mark.parametrize("flag", ["-v", "--values", "--penalties"])
def test_sweep_penalties_stop_at_the_first_override(flag, tmp_path):
    argv = ["sweep", flag, "0", "0.5", "search.epochs=3", "--repeats", "2", "--name", "x",
            "seed=7", f"out_dir={tmp_path}"]  # fmt: skip
    args = build_parser().parse_args(argv)
    cfg = sweep_config(args)
    assert cfg.sweep.penalties == [0.0, 0.5] and cfg.sweep.seeds == 2
    assert (cfg.search.epochs, cfg.seed, cfg.out_dir) == (3, 7, str(tmp_path))
    args = build_parser().parse_args(["sweep", "-d", "x", "-r", "3", flag, "1e-3"])
    assert sweep_config(args).sweep.penalties == [0.001] and args.name == "x"


def test_sweep_penalties_need_numbers(capsys):
    code = main(["sweep", "-d", "x", "--penalties", "search.epochs=3"])
    one_error(
        code, capsys, "--penalties", "expected at least one number", "search.epochs=3", alone=True
    )
    code = main(["sweep", "-d", "x", "-v", "0", "nan"])
    one_error(code, capsys, "sweep.penalties", alone=True)  # checked with the config, as in YAML
