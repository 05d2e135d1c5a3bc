"""kill -9 at every point where a verb writes, then ``--resume`` (or a rerun), compared with
an uninterrupted run file by file.

A *write point* is each ``os.replace`` (every atomic write, and ``prepare``'s final rename),
each PNG saved to a path (half of it is written before the kill) and each row appended
to ``metrics.jsonl`` (half a line is written before the kill). :func:`run_verb` runs
``python -m quantnas`` in a child process that counts them and kills itself with SIGKILL
just before write point ``kill_at``.

:func:`artifacts` reads a run directory for comparison: every file byte for byte, except
what holds wall-clock time (``log.txt`` is left out; ``seconds`` and ``*_s`` values,
``finished_at``, a sweep's count of ``reused`` trials and the time lines of reports are
blanked; checkpoints are compared by their contents with the same keys blanked).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Counts write points and kills this process just before the one numbered $QN_KILL_AT.
_HOOK = r"""
import os, signal, sys
import PIL.Image

count = [0]
kill_at = int(os.environ.get("QN_KILL_AT", "0"))

def point(partial=None):
    count[0] += 1
    with open(os.environ["QN_COUNT"], "w") as f:
        f.write(str(count[0]))
    if count[0] == kill_at:
        if partial is not None:
            partial()
        os.kill(os.getpid(), signal.SIGKILL)

real_replace = os.replace
def replace(src, dst, *a, **k):
    point()
    return real_replace(src, dst, *a, **k)
os.replace = replace

real_save = PIL.Image.Image.save
def save(self, fp, *a, **k):
    if isinstance(fp, (str, os.PathLike)):
        import io
        buf = io.BytesIO()
        real_save(self, buf, *a, **k)
        data = buf.getvalue()
        def half():
            with open(fp, "wb") as f:
                f.write(data[: len(data) // 2])
        point(half)
    return real_save(self, fp, *a, **k)
PIL.Image.Image.save = save

from quantnas.rundir import metric_rows as metrics_log
real_log = metrics_log.MetricLogger.log
def log(self, row):
    def half():
        with open(self.jsonl_path, "a") as f:
            f.write('{"epoch": 0, "trai')
    point(half)
    return real_log(self, row)
metrics_log.MetricLogger.log = log

from quantnas.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_verb(args: list[str], cwd: Path, *, kill_at: int = 0) -> tuple[int, str, int]:
    """``quantnas ARGS`` in a child in ``cwd``; returns (exit code, stderr, write points).

    With ``kill_at`` the child kills itself with SIGKILL just before that write point
    (exit code -9).
    """
    cwd.mkdir(parents=True, exist_ok=True)
    counter = cwd / ".write-points"
    counter.write_text("0")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "QN_KILL_AT": str(kill_at),
        "QN_COUNT": str(counter),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _HOOK, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stderr, int(counter.read_text() or 0)


# ----------------------------------------------------------------------- comparison
#: Values that describe the invocation, not the result: wall-clock times, and how many
#: finished trials a (resumed) sweep reused.
_TIME_KEYS = {"seconds", "finished_at", "wall_s", "reused"}
_TIME_LINE = re.compile(r"^(- (search|train|eval|report): |time +: ).*$", re.MULTILINE)


def _timeless(obj):
    """``obj`` with the values of wall-clock keys blanked (recursively)."""
    if isinstance(obj, dict):
        return {
            k: None if k in _TIME_KEYS or str(k).endswith("_s") else _timeless(v)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [_timeless(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return "NaN"  # equal to itself
    return obj


def _tensors(obj):
    """Tensors as (dtype, shape, bytes), so two loaded checkpoints compare with ``==``."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        return (str(t.dtype), tuple(t.shape), t.numpy().tobytes() if t.numel() else b"")
    if isinstance(obj, dict):
        return {k: _tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tensors(v) for v in obj]
    return obj


def _content(path: Path):
    try:
        return _parsed(path)
    except Exception as e:  # noqa: BLE001 - an unreadable file is a difference
        return f"unreadable ({type(e).__name__}): {path.read_bytes()[:200]!r}"


def _parsed(path: Path):
    name = path.name
    data = path.read_bytes()
    if name.endswith(".pt"):
        import torch

        return _timeless(_tensors(torch.load(io.BytesIO(data), weights_only=False)))
    if name.endswith(".jsonl"):
        return [_timeless(json.loads(ln)) for ln in data.decode().splitlines()]
    if name in ("report.json", "state.json", "sweep.json", "result.json", "search_info.json"):
        return _timeless(json.loads(data))
    if name.endswith(".csv"):
        return _timeless(list(csv.DictReader(io.StringIO(data.decode()))))
    if name in ("report.md", "summary.txt"):
        return _TIME_LINE.sub("<time>", data.decode())
    return data


def artifacts(root: Path) -> dict[str, object]:
    """Every file under ``root`` (but ``log.txt`` files) by relative path, ready to compare."""
    return {
        str(p.relative_to(root)): _content(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "log.txt"
    }


def differences(got: dict, want: dict) -> list[str]:
    """The paths whose content differs, is missing or is extra."""
    return sorted(k for k in set(got) | set(want) if got.get(k, "<missing>") != want.get(k))
