"""kill -9 at a write point of search, train, run, sweep and prepare, then ``--resume`` (or,
for ``prepare``, a rerun): every file is the same as an uninterrupted run's, byte for byte
but for wall-clock times (see :mod:`killpoints`), the alpha history included.

The quick tests kill each cheap verb at one point; the slow ones kill every verb at a
spread of points (``QN_KILL_POINTS=all`` tries every write point: minutes per verb).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from killpoints import artifacts, differences, run_verb
from PIL import Image
from tiny_runs import HOSTILE as TINY
from tiny_runs import RUN

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")

SWEEP = [
    *RUN,
    "data.benchmarks=embedded:test",
    "sweep.methods=[search,baseline]",
    "sweep.penalties=[0]",
    "sweep.baselines=[espcn]",
    "sweep.baseline_bits=[4]",
]


def command(verb: str, *, again: bool) -> list[str]:
    """The verb's command line; ``again``: the one that continues it after a kill."""
    if verb == "prepare":
        return ["prepare", "src", "out", "--patch", "32", "--stride", "16"]
    if verb == "sweep":
        return ["sweep", "-d", "out", "--engine", "local", "out_dir=.", *SWEEP] + (
            ["--resume"] if again else []
        )
    args = [verb, "out_dir=.", "name=out", *(RUN if verb == "run" else TINY)]
    return [*args, "--resume", "out"] if again else args


def workdir(root: Path, verb: str) -> Path:
    """A fresh working folder (with the source images of ``prepare``)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if verb == "prepare":
        (root / "src").mkdir()
        for i, name in enumerate(("a.png", "b.png", "c.png")):
            pixels = np.random.default_rng(i).integers(0, 256, (64, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "src" / name)
    return root


def files(root: Path) -> dict:
    """What a verb left in its working folder (the counter file and sources aside)."""
    kept = artifacts(root)
    return {k: v for k, v in kept.items() if k != ".write-points" and not k.startswith("src/")}


_REFERENCES: dict[str, tuple[dict, int]] = {}


def reference(verb: str, tmp_path_factory) -> tuple[dict, int]:
    """The files of an uninterrupted run of ``verb`` and its number of write points."""
    if verb not in _REFERENCES:
        root = workdir(tmp_path_factory.mktemp(f"ref-{verb}"), verb)
        code, err, points = run_verb(command(verb, again=False), root)
        assert code == 0, err
        _REFERENCES[verb] = files(root), points
    return _REFERENCES[verb]


def kill_and_continue(verb: str, point: int, root: Path) -> dict:
    """Kill ``verb`` just before write point ``point``, continue it; returns its files."""
    code, err, _ = run_verb(command(verb, again=False), workdir(root, verb), kill_at=point)
    assert code == -9, err
    again = verb != "prepare" and (root / "out").exists()
    code, err, _ = run_verb(command(verb, again=again), root)
    if verb == "prepare" and (root / "out").is_dir() and code == 2:
        assert "already exists" in err  # killed after its last write: nothing to redo
    else:
        assert code == 0, err
    assert "Traceback" not in err
    return files(root)


def points(n: int, spread: int) -> list[int]:
    """``spread`` write points from the first to the last (every one with QN_KILL_POINTS)."""
    if os.environ.get("QN_KILL_POINTS") == "all":
        return list(range(1, n + 1))
    return sorted({round(1 + i * (n - 1) / max(1, spread - 1)) for i in range(spread)})


def check(verb: str, spread: int, tmp_path, tmp_path_factory) -> None:
    want, n = reference(verb, tmp_path_factory)
    assert n > 3
    for k in points(n, spread) if spread else [n]:
        got = kill_and_continue(verb, k, tmp_path / f"k{k}")
        assert differences(got, want) == [], f"killed before write point {k} of {n}"


@pytest.mark.parametrize("verb", ["search", "train", "prepare"])
def test_killed_after_its_last_write_and_resumed(verb, tmp_path, tmp_path_factory):
    """The issue's case: killed right after the last checkpoint (before the files derived
    from it, e.g. the alpha history, were all written)."""
    check(verb, 0, tmp_path, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("verb", "spread"), [("search", 4), ("train", 3), ("prepare", 3), ("run", 3), ("sweep", 2)]
)
def test_killed_anywhere_and_resumed(verb, spread, tmp_path, tmp_path_factory):
    check(verb, spread, tmp_path, tmp_path_factory)
