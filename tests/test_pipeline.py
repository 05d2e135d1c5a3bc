"""The main job (search -> train -> eval -> report), its stage reuse on resume, and sweeps."""

import json
import shutil
import warnings

import pytest
import torch
from tiny_runs import RUN as TINY

from quantnas.cli import DEFAULT_PRESET, main
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.pipeline.run import STAGES as ALL_STAGES
from quantnas.pipeline.run import RunState, preflight, run_pipeline
from quantnas.space import genotype as gt
from quantnas.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")

#: The stages of a run whose search exports its argmax (``select`` races finalists only with
#: ``search.select: halving``, tests/test_finalists.py).
STAGES = tuple(s for s in ALL_STAGES if s != "select")


def run_cli(out, name, *extra):
    return main(["run", f"out_dir={out}", f"name={name}", *TINY, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert run_cli(out, "full") == 0
    return out / "full"


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


def counting(monkeypatch, target, name):
    """Replace ``target.name`` with a wrapper counting its calls."""
    calls = []
    real = getattr(target, name)

    def wrapper(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(target, name, wrapper)
    return calls


def forbid(monkeypatch, target, name):
    """Fail fast if ``target.name`` is called (quantnas/pipeline/job.py looks the stage functions up
    on their modules at call time); ``assert_not_rerun`` checks the same by the run's files.
    """

    def boom(*a, **k):
        raise AssertionError(f"{name} must not run again")

    monkeypatch.setattr(target, name, boom)


def stage_trace(run_dir):
    """What a rerun of a stage would change: how often each stage started (the run's
    ``log.txt``), its ``state.json`` entry and seconds, and its checkpoints' mtimes.
    """
    log_text = (run_dir / "log.txt").read_text()
    state = json.loads((run_dir / "state.json").read_text())
    return {
        s: (
            log_text.count(f"=== stage {s} ==="),
            state["done"].get(s),
            state["seconds"].get(s),
            {p.name: p.stat().st_mtime_ns for p in sorted((run_dir / s).glob("*.pt"))},
        )
        for s in STAGES
    }


def assert_not_rerun(before, after, stages=("search", "train")):
    for s in stages:
        assert after[s] == before[s], s
        assert before[s][0] >= 1 and before[s][1] is not None  # it ran once, and finished


# --------------------------------------------------------------------------- full run
def test_run_outputs(finished):
    d = finished
    for name in (
        "report.md",
        "report.json",
        "summary.txt",
        "side_by_side.png",
        "eval.json",
        "config.yaml",
        "log.txt",
        "search/alphas.png",
        "search/arch.png",
        "search/best_arch.json",
        "search/checkpoint.pt",
        "train/training.png",
        "train/best.pt",
        "train/checkpoint.pt",
    ):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    state = json.loads((d / "state.json").read_text())
    assert set(state["done"]) == set(STAGES)
    assert all(state["seconds"][s] > 0 for s in STAGES), state["seconds"]

    rep = json.loads((d / "report.json").read_text())
    assert rep["bitops_32"] > 0 and rep["bitops_256"] == 64 * rep["bitops_32"]
    val = rep["sets"]["validation"]
    assert 15 < val["psnr"] < 60 and 15 < val["bicubic_psnr"] < 60
    assert len(val["images"]) == 3  # the embedded validation photos
    for img in val["images"]:
        assert img["bitops"] > 0 and "bicubic_psnr" in img
        h, w = img["lr_size"]
        assert img["bitops"] == rep["bitops_32"] * h * w // (32 * 32)
    # the trained genotype is the searched one
    searched = gt.load(d / "search" / "best_arch.json")
    assert gt.from_dict(rep["genotype"]) == searched
    assert gt.loads(rep["genotype_text"]) == searched
    md = (d / "report.md").read_text()
    assert "BitOps" in md and "bicubic" in md and searched.to_text() in md
    assert "validation" in (d / "summary.txt").read_text()


def test_train_config_records_the_searched_genotype(finished):
    """train/config.yaml names the genotype trained (the searched one), not 'default'."""
    searched = gt.load(finished / "search" / "best_arch.json")
    saved = load_config(files=[finished / "train" / "config.yaml"])
    assert gt.resolve(saved.train.genotype) == searched
    assert saved.train.genotype == searched.to_text()
    assert load_config(files=[finished / "config.yaml"]).train.genotype == "default"


def test_recorded_config_keeps_a_config_naming_the_genotype():
    from quantnas.training.records import recorded_config

    cfg = load_config()
    assert recorded_config(cfg, gt.DEFAULT) is cfg  # quantnas train: train.genotype kept
    assert recorded_config(cfg, None) is cfg  # a sweep's hand-designed baseline
    other = recorded_config(cfg, gt.PAPER_EXAMPLE)
    assert other.train.genotype == gt.PAPER_EXAMPLE.to_text()
    assert cfg.train.genotype == "default" and other.arch == cfg.arch


def test_run_state_roundtrip(tmp_path):
    st = RunState(tmp_path)
    assert not st.done("search")
    st.finish("search", 1.5, best_epoch=2)
    st.add_time("train", 2.0)
    again = RunState(tmp_path)
    assert again.done("search") and not again.done("train")
    assert again.info("search") == {"best_epoch": 2}
    assert again.record["seconds"] == {"search": 1.5, "train": 2.0}
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(QuantNASError, match="corrupt"):
        RunState(tmp_path)


# ----------------------------------------------------------------------- stage reuse
def test_resume_reuses_search_and_train(tmp_path, monkeypatch, finished):
    import quantnas.pipeline.report
    import quantnas.search.searcher
    import quantnas.training.trainer

    d = copy_run(finished, tmp_path / "copy")
    (d / "report.md").unlink()
    state = json.loads((d / "state.json").read_text())
    for s in ("eval", "report"):
        del state["done"][s]
    (d / "state.json").write_text(json.dumps(state))
    ck_search = (d / "search" / "checkpoint.pt").stat().st_mtime_ns
    ck_train = (d / "train" / "checkpoint.pt").stat().st_mtime_ns
    before = stage_trace(d)

    forbid(monkeypatch, quantnas.search.searcher, "search")
    forbid(monkeypatch, quantnas.training.trainer, "train")
    evals = counting(monkeypatch, quantnas.pipeline.report, "evaluate_run")
    assert main(["run", "--resume", str(d)]) == 0
    assert len(evals) == 1
    after = stage_trace(d)
    assert_not_rerun(before, after)
    assert after["eval"][0] == before["eval"][0] + 1  # the eval stage did run again
    assert (d / "report.md").is_file()
    assert set(json.loads((d / "state.json").read_text())["done"]) == set(STAGES)
    assert (d / "search" / "checkpoint.pt").stat().st_mtime_ns == ck_search
    assert (d / "train" / "checkpoint.pt").stat().st_mtime_ns == ck_train


def test_killed_during_eval_resumes_at_eval(tmp_path, monkeypatch):
    import quantnas.pipeline.report
    import quantnas.search.searcher
    import quantnas.training.trainer

    real = quantnas.pipeline.report.evaluate_run

    def killed(*a, **k):
        raise KeyboardInterrupt

    # Ctrl-C inside the eval stage: only a patch stops a run at that point
    monkeypatch.setattr(quantnas.pipeline.report, "evaluate_run", killed)
    assert run_cli(tmp_path, "k") == 130
    d = tmp_path / "k"
    state = json.loads((d / "state.json").read_text())
    assert set(state["done"]) == {"search", "train"}
    assert not (d / "report.md").exists()
    assert state["seconds"]["eval"] > 0  # time of the interrupted stage is kept

    monkeypatch.setattr(quantnas.pipeline.report, "evaluate_run", real)
    forbid(monkeypatch, quantnas.search.searcher, "search")
    forbid(monkeypatch, quantnas.training.trainer, "train")
    before = stage_trace(d)
    assert main(["run", "--resume", str(d)]) == 0
    after = stage_trace(d)
    assert_not_rerun(before, after)
    assert after["eval"][0] == before["eval"][0] + 1
    assert (d / "report.md").is_file() and (d / "report.json").is_file()
    assert set(json.loads((d / "state.json").read_text())["done"]) == set(STAGES)


def test_killed_mid_search_resumes_from_checkpoint(tmp_path, monkeypatch, finished):
    from quantnas.search.searcher import Searcher

    real = Searcher.end_epoch

    def record(self, epoch, train, started):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch, train, started)

    # Ctrl-C after epoch 1's steps, before its files: only a patch stops a run there
    monkeypatch.setattr(Searcher, "end_epoch", record)
    assert run_cli(tmp_path, "m") == 130
    d = tmp_path / "m"
    assert load_checkpoint(d / "search" / "checkpoint.pt")["epoch"] == 1
    g0 = d / "search" / "genotypes" / "epoch_000.json"
    stamp = g0.stat().st_mtime_ns
    assert not (d / "search" / "genotypes" / "epoch_001.json").exists()

    monkeypatch.setattr(Searcher, "end_epoch", real)
    epochs = []
    real_epoch = Searcher.train_epoch

    def epoch_spy(self, epoch):
        epochs.append(epoch)
        return real_epoch(self, epoch)

    # which epochs the resume runs: its files show only the last one
    monkeypatch.setattr(Searcher, "train_epoch", epoch_spy)
    assert main(["run", "--resume", str(d)]) == 0
    assert epochs == [1, 2]  # epoch 0 was not searched again
    assert g0.stat().st_mtime_ns == stamp
    # same result as the uninterrupted run with the same config
    assert gt.load(d / "search" / "best_arch.json") == gt.load(
        finished / "search" / "best_arch.json"
    )
    a = load_checkpoint(d / "search" / "checkpoint.pt")["model"]
    b = load_checkpoint(finished / "search" / "checkpoint.pt")["model"]
    for k in a:
        if k.startswith("alpha."):
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    assert (d / "report.md").is_file()


def test_killed_mid_train_resumes_from_checkpoint(tmp_path, monkeypatch):
    import quantnas.search.searcher
    from quantnas.training.trainer import Trainer

    real_epoch = Trainer.train_epoch

    def killed(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, epoch)

    # Ctrl-C in training epoch 1: only a patch stops a run at that point
    monkeypatch.setattr(Trainer, "train_epoch", killed)
    assert run_cli(tmp_path, "t", "train.epochs=2") == 130
    d = tmp_path / "t"
    assert set(json.loads((d / "state.json").read_text())["done"]) == {"search"}
    assert load_checkpoint(d / "train" / "checkpoint.pt")["epoch"] == 1

    epochs = []

    def spy(self, epoch):
        epochs.append(epoch)
        return real_epoch(self, epoch)

    # which epochs the resume runs: its files show only the last one
    monkeypatch.setattr(Trainer, "train_epoch", spy)
    forbid(monkeypatch, quantnas.search.searcher, "search")
    before = stage_trace(d)
    assert main(["run", "--resume", str(d)]) == 0
    assert_not_rerun(before, stage_trace(d), stages=("search",))
    assert epochs == [1]
    assert (d / "report.md").is_file()

    # same weights as an uninterrupted training of the searched genotype
    cfg = load_config(preset=DEFAULT_PRESET, overrides=[*TINY, "train.epochs=2"])
    ref = Trainer(cfg, tmp_path / "ref", gt.load(d / "search" / "best_arch.json"))
    ref.run()
    got = load_checkpoint(d / "train" / "checkpoint.pt")["model"]
    for k, v in ref.net.state_dict().items():
        assert torch.equal(v, got[k]), k


def test_run_into_existing_dir_refused(capsys, finished):
    code = main(["run", f"out_dir={finished.parent}", f"name={finished.name}", *TINY])
    assert code == 2
    assert "--resume" in capsys.readouterr().err


# -------------------------------------------------------------------------- preflight
def test_memory_preflight_refuses(tmp_path, capsys):
    code = run_cli(tmp_path, "mem", "run.max_memory_gb=0.0001")
    err = capsys.readouterr().err
    assert code == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "iB" in errors[0] and "batch_size" in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "mem" / "search" / "checkpoint.pt").exists()


def test_memory_error_message_shows_distinct_numbers():
    import re

    cfg = load_config(preset=DEFAULT_PRESET, overrides=[*TINY, "run.max_memory_gb=0.0001"])
    with pytest.raises(QuantNASError) as ei:
        preflight(cfg)
    nums = re.findall(r"([0-9.]+(?:e[-+]?[0-9]+)?) ([KMG]iB)", str(ei.value))
    assert len(nums) == 2, str(ei.value)
    (need, u1), (limit, u2) = nums
    scale = {"GiB": 1024.0**2, "MiB": 1024.0, "KiB": 1.0}
    assert float(need) * scale[u1] > float(limit) * scale[u2] > 0, str(ei.value)


def test_preflight_function(tmp_path):
    cfg = load_config(preset=DEFAULT_PRESET, overrides=[*TINY, "run.max_memory_gb=0.0001"])
    with pytest.raises(QuantNASError, match="iB"):
        preflight(cfg)
    preflight(load_config(preset=DEFAULT_PRESET, overrides=[*TINY, "run.max_memory_gb=50"]))


def test_preflight_small_training_image(tmp_path):
    from quantnas.data.images import save_rgb

    folder = tmp_path / "small"
    folder.mkdir()
    save_rgb(folder / "s.png", torch.zeros(20, 20, 3, dtype=torch.uint8).numpy())
    cfg = load_config(
        preset=DEFAULT_PRESET, overrides=[*TINY, f"data.train={folder}", "data.lr_crop=16"]
    )
    with pytest.raises(QuantNASError, match="lr_crop"):
        preflight(cfg)


def test_run_pipeline_api_finished_run_only_rewrites_report(tmp_path, monkeypatch, finished):
    import quantnas.pipeline.report

    d = copy_run(finished, tmp_path / "api")
    cfg = load_config(preset=DEFAULT_PRESET, overrides=[*TINY, f"out_dir={tmp_path}", "name=api"])
    forbid(monkeypatch, quantnas.pipeline.report, "evaluate_run")
    before = stage_trace(d)
    rep = run_pipeline(cfg, d, resume=True)
    assert_not_rerun(before, stage_trace(d), stages=("search", "train", "eval"))
    assert rep["bitops_32"] > 0 and "validation" in rep["sets"]


# ------------------------------------------------------------------------------ sweep
# (the sweep itself is tested in test_sweep.py)


def test_sweep_bad_arguments(tmp_path, capsys):
    code = main(["sweep", f"out_dir={tmp_path}", "-v", "0", "-r", "0", "-d", "x"])
    assert code == 2 and "repeats" in capsys.readouterr().err
    code = main(["sweep", f"out_dir={tmp_path}", "-v", "-1", "-d", "x"])
    assert code == 2 and "penalties" in capsys.readouterr().err
