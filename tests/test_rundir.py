"""Run directories that cannot be clobbered: the manifest ``--restart`` goes by, the lock of
one writer per run directory, and names that stay inside ``out_dir``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import HOSTILE as TINY
from tiny_runs import QUIET, one_error

from quantnas.cli import main
from quantnas.errors import QuantNASError
from quantnas.rundir.files import atomic_write_text
from quantnas.rundir.lock import LOCK_FILE, RunLock, holder
from quantnas.rundir.manifest import MANIFEST, read_manifest, tracking

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")


def interrupt_search_in_epoch(monkeypatch, epoch: int) -> None:
    """Make every search stop with Ctrl-C when it reaches ``epoch``."""
    import quantnas.search.searcher as searcher

    real_epoch = searcher.Searcher.train_epoch

    def interrupted(self, e):
        if e == epoch:
            raise KeyboardInterrupt
        return real_epoch(self, e)

    # Ctrl-C in a given epoch: only a patch stops a run at that point
    monkeypatch.setattr(searcher.Searcher, "train_epoch", interrupted)


def project_folder(root: Path, capsys) -> Path:
    """A user's folder: ``quantnas config > config.yaml``, notes and a data folder."""
    root.mkdir()
    assert main(["config"]) == 0
    (root / "config.yaml").write_text(capsys.readouterr().out)
    (root / "notes.txt").write_text("my notes")
    (root / "data").mkdir()
    (root / "data" / "x.png").write_bytes(b"my image")
    return root


# ------------------------------------------------------------------ manifest
def test_restart_keeps_a_project_folder_that_only_looks_like_a_run(tmp_path, capsys):
    mine = project_folder(tmp_path / "proj", capsys)
    before = {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    args = ["train", f"out_dir={tmp_path}", "name=proj", *TINY, "--restart"]
    one_error(main(args), capsys, "no .quantnas-manifest", "not deleted")
    assert {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before
    assert not (mine / LOCK_FILE).exists()


def test_restart_removes_only_what_quantnas_wrote(tmp_path, monkeypatch, capsys):
    interrupt_search_in_epoch(monkeypatch, 1)
    args = ["search", f"out_dir={tmp_path}", "name=s", *TINY]
    assert main(args) == 130
    run = tmp_path / "s"
    written = read_manifest(run)
    assert {"config.yaml", "log.txt", "checkpoint.pt", "metrics.jsonl"} <= set(written)
    (run / "notes.txt").write_text("mine")
    (run / "data").mkdir()
    (run / "data" / "x.png").write_bytes(b"mine too")
    interrupt_search_in_epoch(monkeypatch, 0)  # the restarted search writes no checkpoint
    assert main([*args, "--restart"]) == 130
    assert not (run / "checkpoint.pt").exists()  # the first run's epoch-0 state is gone
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "data" / "x.png").read_bytes() == b"mine too"
    listed = set(read_manifest(run))
    assert "notes.txt" not in listed and not any(e.startswith("data") for e in listed)
    assert "kept what quantnas did not write: data, notes.txt" in capsys.readouterr().err


def test_restart_with_a_corrupt_manifest_deletes_nothing(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"keep")
    (tmp_path / "outside.txt").write_text("keep")
    (run / MANIFEST).write_text(json.dumps({"format": 1, "written": ["../outside.txt"]}))
    code = main(["train", f"out_dir={tmp_path}", "name=r", *TINY, "--restart"])
    one_error(code, capsys, MANIFEST, "corrupt", "nothing is deleted")
    assert (tmp_path / "outside.txt").exists() and (run / "checkpoint.pt").exists()


def test_a_folder_with_only_the_hidden_files_left_is_reused(tmp_path):
    from quantnas.cli.target_dir import claim_run_dir

    run = tmp_path / "r"
    run.mkdir()
    (run / MANIFEST).write_text(json.dumps({"format": 1, "written": ["checkpoint.pt"]}))
    claim_run_dir(run, restart=False, command="train")  # its files were deleted by hand
    (run / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(QuantNASError, match="already holds a run"):
        claim_run_dir(run, restart=False, command="train")


def test_a_tracked_run_never_overwrites_a_file_it_did_not_write(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "report.md").write_text("mine")
    with tracking(run, strict=True):
        atomic_write_text(run / "config.yaml", "a: 1\n")
        atomic_write_text(run / "config.yaml", "a: 2\n")  # its own file: rewritten
        with pytest.raises(QuantNASError, match="did not write it"):
            atomic_write_text(run / "report.md", "theirs")
    atomic_write_text(run / "report.md", "untracked")  # nothing is tracked any more
    assert read_manifest(run) == ["config.yaml"]


# ---------------------------------------------------------------------- lock
def test_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "s"
    with RunLock(run, command="search"):
        assert holder(run / LOCK_FILE)["pid"] == os.getpid()
        code = main(["search", f"out_dir={tmp_path}", "name=s", *TINY])
        one_error(code, capsys, f"{run} is in use by process {os.getpid()}", "quantnas search")
        code = main(["search", "--resume", str(run), *TINY])
        one_error(code, capsys, f"in use by process {os.getpid()}")
        code = main(["sweep", f"out_dir={tmp_path}", *QUIET, "-d", "s", "--resume"])
        one_error(code, capsys, f"in use by process {os.getpid()}")
    assert not run.exists()  # the lock was all that was in it


def test_lock_released_on_errors(tmp_path, capsys):
    missing = tmp_path / "nope"
    code = main(["train", f"out_dir={tmp_path}", "name=t", f"data.train={missing}", *TINY])
    one_error(code, capsys, f"data folder {missing} does not exist")
    assert not (tmp_path / "t" / LOCK_FILE).exists()
    with RunLock(tmp_path / "t", command="train"):
        pass


@contextlib.contextmanager
def locked_by_child(*runs: Path):
    """Another process holds the locks of ``runs``; yields it (killed -9 on exit)."""
    code = (
        "import sys, time\n"
        "from quantnas.rundir.lock import RunLock\n"
        f"for d in {[str(r) for r in runs]!r}: RunLock(d, command='train').acquire()\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=root)
    try:
        assert child.stdout.readline().strip() == b"ready"
        yield child
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()


def test_lock_of_a_live_process_refuses_and_of_a_dead_one_is_taken_over(tmp_path, capsys):
    run = tmp_path / "r"
    with locked_by_child(run) as child:
        one_error(main(["train", "--resume", str(run), *TINY]), capsys, f"process {child.pid}")
    assert holder(run / LOCK_FILE)["pid"] == child.pid  # left behind by the killed holder
    with RunLock(run, command="train"):
        assert holder(run / LOCK_FILE)["pid"] == os.getpid()
    assert not (run / LOCK_FILE).exists()


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    a, b = RunLock(tmp_path / "r", command="search"), RunLock(tmp_path / "r", command="train")
    with a:
        with pytest.raises(QuantNASError, match="in use"):
            b.acquire()
    with b:
        assert holder(tmp_path / "r" / LOCK_FILE)["command"] == "train"


# --------------------------------------------------------------------- names
@pytest.mark.parametrize("name", ["../..", "..", "a/../../b", "/tmp/elsewhere", ".", "./"])
def test_run_names_stay_inside_out_dir(tmp_path, capsys, name):
    out = tmp_path / "runs"
    code = main(["train", f"out_dir={out}", f"name={name}", *TINY, "--restart"])
    one_error(code, capsys, "config key name:", "folder inside out_dir")
    assert not out.exists()


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/../..", "."])
def test_sweep_names_stay_inside_out_dir(tmp_path, capsys, name):
    out = tmp_path / "runs"
    code = main(["sweep", f"out_dir={out}", *QUIET, "-d", name])
    one_error(code, capsys, "-d/--name:", "folder inside out_dir")
    assert not out.exists() and not (tmp_path / "x").exists()


def test_nested_run_names_are_fine(capsys):
    assert main(["config", "name=exp/a"]) == 0
    assert "name: exp/a" in capsys.readouterr().out


# ---------------------------------------------- every writer holds the lock, not only verbs
def _tiny_cfg(tmp_path: Path, *extra: str):
    from quantnas.pipeline.resolve import load_config

    return load_config(preset="default", overrides=[*TINY, f"out_dir={tmp_path}", *extra])


def test_library_runs_and_sweep_trials_are_refused_while_another_process_writes(tmp_path):
    from quantnas.pipeline.resolve import to_dict
    from quantnas.pipeline.run import run_pipeline
    from quantnas.search.searcher import Searcher
    from quantnas.space import genotype as gt
    from quantnas.sweep.runner import run_trial
    from quantnas.sweep.trials import Trial
    from quantnas.training.trainer import Trainer

    cfg = _tiny_cfg(tmp_path)
    dirs = [tmp_path / n for n in ("t", "s", "r", "trial")]
    trial = Trial("espcn", "bits=8", 0, bits=8).to_dict()
    starts = [
        lambda: Trainer(cfg, dirs[0], gt.DEFAULT),
        lambda: Searcher(cfg, dirs[1]),
        lambda: run_pipeline(cfg, dirs[2]),
        lambda: run_trial(trial, to_dict(cfg), str(dirs[3])),
    ]
    with locked_by_child(*dirs) as child:
        for start, d in zip(starts, dirs, strict=True):
            with pytest.raises(QuantNASError, match=f"{d} is in use by process {child.pid} "):
                start()
            assert [p.name for p in d.iterdir()] == [LOCK_FILE]  # nothing written


def test_a_library_run_holds_its_lock_from_construction_to_the_end_of_run(tmp_path, monkeypatch):
    from quantnas.space import genotype as gt
    from quantnas.training.trainer import Trainer

    run = tmp_path / "t"
    seen = []
    real = Trainer.train_epoch

    def spy(self, epoch):
        seen.append(holder(run / LOCK_FILE).get("pid"))
        with pytest.raises(QuantNASError, match=f"in use by process {os.getpid()}"):
            RunLock(run, command="train").acquire()  # as a second process would be
        return real(self, epoch)

    # the lock as seen while training runs: only a patch runs code at that moment
    monkeypatch.setattr(Trainer, "train_epoch", spy)
    t = Trainer(_tiny_cfg(tmp_path), run, gt.DEFAULT)
    assert holder(run / LOCK_FILE)["command"] == "training"
    t.run(stop_after=1)
    assert not (run / LOCK_FILE).exists()  # released when run() returns
    t.run()  # taken again for the rest of the run
    assert seen == [os.getpid(), os.getpid()] and not (run / LOCK_FILE).exists()


def test_a_failing_constructor_releases_the_lock(tmp_path):
    from quantnas.search.searcher import Searcher
    from quantnas.space import genotype as gt
    from quantnas.training.trainer import Trainer

    cfg = _tiny_cfg(tmp_path, f"data.train={tmp_path / 'missing'}")
    for start, d in [
        (lambda d: Trainer(cfg, d, gt.DEFAULT), tmp_path / "t"),
        (lambda d: Searcher(cfg, d), tmp_path / "s"),
    ]:
        with pytest.raises(QuantNASError, match="missing"):
            start(d)
        assert not (d / LOCK_FILE).exists()
        with RunLock(d, command="x"):
            pass


def test_a_killed_library_run_leaves_a_lock_that_the_next_one_takes_over(tmp_path, caplog):
    from quantnas.space import genotype as gt
    from quantnas.training.trainer import Trainer

    run = tmp_path / "t"
    with locked_by_child(run) as child:
        pass
    assert holder(run / LOCK_FILE)["pid"] == child.pid
    with caplog.at_level("INFO", logger="quantnas.rundir.lock"):
        Trainer(_tiny_cfg(tmp_path, "train.epochs=1"), run, gt.DEFAULT).run()
    assert f"taking over the lock of process {child.pid}" in caplog.text
    assert (run / "best.pt").is_file() and not (run / LOCK_FILE).exists()


def test_sweep_trial_held_by_another_process_fails_alone_and_resumes_later(tmp_path, capsys):
    args = ["sweep", "-d", "w", "--engine", "local", f"out_dir={tmp_path}", *TINY]
    args += ["sweep.methods=[baseline]", "sweep.baselines=[espcn]"]
    assert main([*args, "sweep.baseline_bits=[8]"]) == 0
    args += ["sweep.baseline_bits=[4,8]", "--resume"]
    with locked_by_child(tmp_path / "w" / "trials" / "espcn_b4_s0") as child:
        assert main([*args, "--extend"]) == 0
    rows = {r["trial_id"]: r for r in map(json.loads, (tmp_path / "w" / "results.jsonl").open())}
    assert rows["espcn_b4_s0"]["status"] == "failed"
    assert f"is in use by process {child.pid}" in rows["espcn_b4_s0"]["error"]
    assert rows["espcn_b8_s0"]["status"] == "ok"
    assert main(args) == 0  # the killed holder's lock is taken over
    rows = [json.loads(ln) for ln in (tmp_path / "w" / "results.jsonl").open()]
    assert {r["trial_id"]: r["status"] for r in rows} == {"espcn_b4_s0": "ok", "espcn_b8_s0": "ok"}
    assert not list((tmp_path / "w").rglob(LOCK_FILE))


def test_restart_drops_the_lock_file_a_killed_run_left_in_a_subfolder(tmp_path):
    from quantnas.rundir.manifest import remove_written

    run = tmp_path / "r"

    def write():
        with tracking(run, strict=True):
            atomic_write_text(run / "search" / "config.yaml", "a: 1\n")

    write()
    with locked_by_child(run / "search"):
        remove_written(run)
        assert (run / "search" / LOCK_FILE).exists()  # a live holder's lock is kept
    write()
    assert remove_written(run) == [] and not (run / "search").exists()  # a dead one's is not
