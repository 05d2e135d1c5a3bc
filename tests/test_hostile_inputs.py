"""Hostile and careless input, through the CLI: one ``error:`` line, exit 2, nothing partial.

Every case of the hostile-input battery (decompression bombs, bad numbers, lost or mixed
work, tracebacks, strict JSON, file modes) is one test here. The bombs are built by the
tests in a few lines (tiny files whose headers claim huge images); the ones decoded in a
child process also check its peak memory.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import HOSTILE as TINY
from tiny_runs import QUIET, one_error

from quantnas.cli import main
from quantnas.data.images import load_rgb, save_rgb
from quantnas.training.checkpoint import load_checkpoint

#: Bounded memory for a rejected bomb: the interpreter with torch imported is ~0.4 GiB; the
#: bombs claim images needing 3-20 GiB to decode.
MAX_RSS_BYTES = 1024**3

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")


def photo(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def folder(root: Path, names=("a.png",), size=(64, 64)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        Image.fromarray(photo(*size, seed=i)).save(root / n)
    return root


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bomb(path: Path, width: int = 14000, height: int = 13000, depth: int = 16) -> Path:
    """A ~10 KB PNG whose header claims ``width x height`` RGB pixels at ``depth`` bits."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 10_000_000, 9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
    return path


def tiff_bomb(path: Path, side: int = 30000) -> Path:
    """A small tiled TIFF whose tags claim ``side x side`` RGB pixels (Pillow refuses it)."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, photo(64, 64), tile=(16, 16), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        spots = [(tags[k].valueoffset, tags[k].dtype) for k in ("ImageWidth", "ImageLength")]
    with open(path, "r+b") as fh:
        for offset, dtype in spots:
            fh.seek(offset)
            fh.write(struct.pack("<H" if int(dtype) == 3 else "<I", side))
    return path


#: Runs ``python -m quantnas ARGS`` from a fresh, small process and records its peak RSS.
#: (On Linux a child's ``ru_maxrss`` includes the memory of the process it was forked from
#: before ``exec``: forked straight from a large pytest process it would measure pytest.)
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call([sys.executable, '-m', 'quantnas', *sys.argv[2:]])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(peak))\n"
    "sys.exit(rc)\n"
)


def run_child(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """``python -m quantnas ARGS`` in a grandchild; returns (exit code, stderr, peak RSS bytes)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    err_file, rss_file = cwd / ".child-stderr", cwd / ".child-rss"
    with open(err_file, "wb") as err:
        proc = subprocess.run(
            [sys.executable, "-c", _RSS_WRAPPER, str(rss_file), *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    text = err_file.read_text()
    err_file.unlink()
    peak_kib = int(rss_file.read_text())
    rss_file.unlink()
    return proc.returncode, text, peak_kib * 1024


def assert_child_error(code: int, err: str, *fragments: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert lines and lines[-1].startswith("error:") and "Traceback" not in err, err
    assert sum(ln.startswith("error:") for ln in lines) == 1, err
    for f in fragments:
        assert f in lines[-1], lines[-1]
    return lines[-1]


# ------------------------------------------------------------------------ 1. bombs
def test_png16_bomb_eval_bounded_memory(tmp_path):
    """The own 16-bit PNG decoder: 14000x13000 claimed -> refused from the header."""
    png_bomb(tmp_path / "data" / "bomb.png")
    code, err, rss = run_child(
        ["eval", "--model", "bicubic", "--scale", "4", "--data", "data"], tmp_path
    )
    assert_child_error(code, err, "bomb.png", "14000x13000", "data.max_pixels")
    assert rss < MAX_RSS_BYTES, f"peak RSS {rss / 1024**2:.0f} MiB"


def test_tiff_bomb_prepare_bounded_memory_and_nothing_written(tmp_path):
    """Pillow refuses the TIFF; the imageio fallback is not tried; no patch is written."""
    tiff_bomb(tmp_path / "src" / "bomb.tif")
    code, err, rss = run_child(["prepare", "src", "out", "--patch", "48"], tmp_path)
    assert_child_error(code, err, "bomb.tif", "30000x30000", "data.max_pixels")
    assert rss < MAX_RSS_BYTES, f"peak RSS {rss / 1024**2:.0f} MiB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no out, no temp folder


def test_tiff_bomb_imageio_path_checks_size_first(tmp_path, capsys):
    """A TIFF under Pillow's hard limit but over data.max_pixels fails on every path."""
    tiff_bomb(tmp_path / "data" / "big.tif", side=10000)  # 100 M pixels, Pillow only warns
    code = main(["eval", "--model", "bicubic", "--scale", "4", "--data", str(tmp_path / "data")])
    one_error(code, capsys, "big.tif", "10000", "data.max_pixels")
    from quantnas.data import images
    from quantnas.errors import QuantNASError

    # the imageio fallback on its own refuses it from the header as well
    with pytest.raises(QuantNASError, match="claims shape"):
        images._read_with_imageio(tmp_path / "data" / "big.tif", 1_000_000)


def test_png16_bomb_score_and_train(tmp_path, capsys):
    bomb = png_bomb(tmp_path / "hr" / "x.png")
    code = main(["score", "--sr", str(bomb), "--hr", str(bomb), "--scale", "4"])
    one_error(code, capsys, "x.png", "pixels")
    code = main(["train", f"out_dir={tmp_path}", "name=t", f"data.train={bomb.parent}", *TINY])
    one_error(code, capsys, "x.png", "pixels")
    assert not (tmp_path / "t" / "config.yaml").exists()
    assert not (tmp_path / "t" / "checkpoint.pt").exists()


def test_idat_zlib_bomb_is_inflated_only_to_the_header_size(tmp_path):
    """A 16x16 16-bit PNG whose IDAT inflates to 200 MB: decoding stays small."""
    import tracemalloc

    row = b"\0" + b"\x80" * (16 * 6)
    ihdr = struct.pack(">IIBBBBB", 16, 16, 16, 2, 0, 0, 0)
    idat = zlib.compress(row * 16 + b"\0" * 200_000_000, 9)
    path = tmp_path / "z.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
    tracemalloc.start()
    img = load_rgb(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert img.shape == (16, 16, 3) and int(img[0, 0, 0]) == round(0x8080 / 257)
    assert peak < 5_000_000, peak


def test_pillow_path_checks_size_before_decoding(tmp_path, capsys):
    """A BMP (Pillow path) claiming 20000x20000 and data.max_pixels for ordinary files."""
    Image.fromarray(photo(8, 8)).save(tmp_path / "small.bmp")
    raw = bytearray((tmp_path / "small.bmp").read_bytes())
    raw[18:26] = struct.pack("<ii", 20000, 20000)
    folder_ = tmp_path / "bmp"
    folder_.mkdir()
    (folder_ / "big.bmp").write_bytes(bytes(raw))
    code = main(["eval", "--model", "bicubic", "--scale", "4", "--data", str(folder_)])
    one_error(code, capsys, "big.bmp", "pixel")
    data = folder(tmp_path / "imgs")
    code = main(
        ["train", f"out_dir={tmp_path}", "name=t", f"data.train={data}", "data.max_pixels=1000"]
        + TINY
    )
    one_error(code, capsys, "a.png", "64x64", "1,000")
    assert not (tmp_path / "t" / "checkpoint.pt").exists()


# ---------------------------------------------------------------- 2. bad numbers
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.optim.lr=nan", "train.optim.lr"),
        ("train.optim.lr=-1", "train.optim.lr"),
        ("train.optim.lr=.inf", "train.optim.lr"),
        ("train.steps_per_epoch=-5", "train.steps_per_epoch"),
        ("search.epochs=0", "search.epochs"),
        ("search.epochs=-3", "search.epochs"),
        ("train.epochs=-1", "train.epochs"),
        ("data.num_workers=-1", "data.num_workers"),
        ("search.alpha_optim.betas=[0.5,1.5]", "search.alpha_optim.betas"),
        ("data.max_pixels=-1", "data.max_pixels"),
        ("seed=" + "7" * 5000, "seed"),  # over Python's 4300-digit int() limit
        ("arch.bits=[4, " + "9" * 5000 + "]", "arch.bits[1]"),
        ("search.penalty=" + "1" * 5000, "search.penalty"),
        ("seed=18446744073709551616", "seed"),  # 2**64: no numpy/torch seed
        ("seed=4294967296", "seed"),
        ("train.epochs=0x" + "f" * 5000, "train.epochs"),  # hex has no digit limit
        ("train.optim.lr=1e300", "train.optim.lr"),  # overflows float32
        ("search.optim.lr=-1e39", "search.optim.lr"),
        ("search.alpha_optim.lr=0", "search.alpha_optim.lr"),  # learning rates are > 0
        ("search.w_lr=-1e39", "search.optim.lr"),  # a deprecated key names its new key
        ("search.c_fixed=-2", "search.c_fixed"),
    ],
)
def test_bad_numbers_refused_at_load(tmp_path, capsys, override, key):
    code = main(["run", f"out_dir={tmp_path}", "name=r", override, *QUIET])
    line = one_error(code, capsys, f"config key {key}:")
    assert len(line) < 300  # a huge value is described, not printed
    assert not (tmp_path / "r").exists()


def test_huge_integer_in_a_config_file_names_the_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: " + "3" * 5000 + "\n")
    one_error(main(["config", "--config", str(cfg)]), capsys, "config key train.epochs:", "5000")
    # a string key keeps the digits as its text; the largest seed is taken
    assert main(["config", "name=" + "3" * 5000, "seed=4294967295"]) == 0
    assert "seed: 4294967295" in capsys.readouterr().out


def test_resume_refuses_a_checkpoint_with_a_negative_epoch(tmp_path, capsys):
    args = ["train", f"out_dir={tmp_path}", "name=t", *TINY, "train.epochs=1"]
    assert main(args) == 0
    ck_path = tmp_path / "t" / "checkpoint.pt"
    ck = load_checkpoint(ck_path)
    ck["epoch"] = -5
    torch.save(ck, ck_path)
    capsys.readouterr()
    code = main(["train", "--resume", str(tmp_path / "t"), *TINY, "train.epochs=1"])
    one_error(code, capsys, str(ck_path), "malformed", "'epoch' is -5", ">= 0")


def test_sweep_nan_penalty_refused(tmp_path, capsys):
    code = main(["sweep", f"out_dir={tmp_path}", *QUIET, "-v", "nan", "-d", "s"])
    one_error(code, capsys, "sweep.penalties", "finite")
    assert not (tmp_path / "s").exists()


def test_nan_training_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    import torch.nn.functional as F

    from quantnas.training.optim import LOSSES

    steps = []

    def l1_going_nan(sr, hr):  # a loss of the public registry, chosen by train.loss
        steps.append(1)
        return F.l1_loss(sr, hr) * (1.0 if len(steps) == 1 else float("nan"))

    LOSSES.register("test-l1-going-nan", l1_going_nan)
    try:
        code = main(
            ["train", f"out_dir={tmp_path}", "name=t", *TINY, "train.loss=test-l1-going-nan"]
        )
    finally:
        LOSSES.unregister("test-l1-going-nan")
    assert len(steps) == 2  # one step an epoch: epoch 0 finite, epoch 1 not
    run = tmp_path / "t"
    one_error(code, capsys, "training loss became nan in epoch 1", str(run / "checkpoint.pt"))
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1  # the epoch-0 state
    assert load_checkpoint(run / "best.pt")["epoch"] == 0
    weights = load_checkpoint(run / "best.pt")["model"].values()
    assert all(bool(torch.isfinite(v.float()).all()) for v in weights)


def test_nan_search_loss_in_first_epoch_writes_no_best(tmp_path, capsys):
    # a learning rate of 1e30 blows the supernet's weights up at its first step: the loss of
    # the second step of epoch 0 is no longer finite
    overrides = [*TINY, "search.steps_per_epoch=3", "search.optim.lr=1e30"]
    code = main(["search", f"out_dir={tmp_path}", "name=s", *overrides])
    one_error(
        code, capsys, "search weight loss became nan in epoch 0", "no checkpoint or best result"
    )
    assert not (tmp_path / "s" / "best_arch.json").exists()
    assert not (tmp_path / "s" / "checkpoint.pt").exists()


# ------------------------------------------------------------- 3. lost/mixed work
def test_interrupted_run_is_not_restarted_silently(tmp_path, monkeypatch, capsys):
    import quantnas.search.searcher as searcher

    real_epoch = searcher.Searcher.train_epoch

    def interrupted_in_epoch_1(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, epoch)

    # Ctrl-C in search epoch 1: only a patch stops a run at that point
    monkeypatch.setattr(searcher.Searcher, "train_epoch", interrupted_in_epoch_1)
    args = ["run", f"out_dir={tmp_path}", "name=x", *TINY]
    assert main(args) == 130
    run = tmp_path / "x"
    rows = (run / "search" / "metrics.jsonl").read_text()
    capsys.readouterr()
    one_error(main(args), capsys, f"quantnas run --resume {run}", "--restart")
    assert (run / "search" / "metrics.jsonl").read_text() == rows  # untouched
    one_error(main([*args, "--restart", "--resume", str(run)]), capsys, "exclude")
    # --restart discards it on purpose: a fresh search, no stale rows
    assert main([*args, "--restart"]) == 130
    assert len((run / "search" / "metrics.jsonl").read_text().splitlines()) == 1


def test_restart_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    code = main(["train", f"out_dir={tmp_path}", "name=x", *TINY, "--restart"])
    one_error(code, capsys, "not a quantnas run directory")
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_sweep_resume_refuses_other_config_or_grid(tmp_path, capsys):
    missing = tmp_path / "nope"
    base = ["sweep", f"out_dir={tmp_path}", f"data.train={missing}", *QUIET, "-d", "s"]
    base += ["--engine", "local"]
    # the trial fails (missing data): recorded as failed, after the sweep recorded its
    # config and grid
    assert main([*base, "-v", "0"]) == 0
    capsys.readouterr()
    grid = json.loads((tmp_path / "s" / "grid.json").read_text())
    assert grid["trials"] == ["search_p0_s0"] and len(grid["config_hash"]) == 12
    lines = (tmp_path / "s" / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["status"] for r in rows] == ["failed"] and "nope" in rows[0]["error"]
    one_error(
        main([*base[:3], "train.lr=0.1", *base[3:], "-v", "0", "--resume"]),
        capsys,
        "another config",
    )
    one_error(main([*base, "-v", "0", "1", "--resume"]), capsys, "--extend")
    # --extend accepts the larger grid (the trials then fail on the data again)
    assert main([*base, "-v", "0", "1", "--resume", "--extend"]) == 0
    grid = json.loads((tmp_path / "s" / "grid.json").read_text())
    assert grid["trials"] == ["search_p0_s0", "search_p1_s0"]
    # and --extend never lets another config in
    one_error(
        main([*base[:3], "train.lr=0.1", *base[3:], "-v", "0", "1", "--resume", "--extend"]),
        capsys,
        "another config",
    )


def test_prepare_bad_image_leaves_nothing(tmp_path, capsys):
    src = folder(tmp_path / "src", ("a.png", "b.png"))
    (src / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    code = main(["prepare", str(src), str(out), "--patch", "32", "--stride", "32"])
    one_error(code, capsys, "c.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_prepare_skip_bad_lists_skipped(tmp_path, capsys):
    src = folder(tmp_path / "src", ("a.png", "b.png"))
    (src / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    png_bomb(src / "d.png")
    out = tmp_path / "out"
    code = main(["prepare", str(src), str(out), "--patch", "32", "--stride", "32", "--skip-bad"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "skipped 2 bad image(s): c.png" in err and "d.png" in err
    assert len(list(out.glob("*.png"))) == 8  # 2 images x 4 tiles


def test_prepare_names_cannot_collide(tmp_path, capsys):
    src = folder(tmp_path / "src", ("a.png", "a.jpg", "b.png"))
    out = tmp_path / "out"
    assert main(["prepare", str(src), str(out), "--patch", "32", "--stride", "32"]) == 0
    err = capsys.readouterr().err
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 12 and "wrote 12 patches" in err
    assert files[0] == "a.jpg_s001.png" and "a.png_s004.png" in files


def test_prepare_refuses_a_non_empty_output(tmp_path, capsys):
    src = folder(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    one_error(main(["prepare", str(src), str(out), "--patch", "32"]), capsys, "not an empty")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# -------------------------------------------------------------- 4. one-line errors
@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["score", "--sr", "x.png", "--hr", "x.png", "--scale", "0"], "--scale"),
        (["eval", "--model", "bicubic", "--scale", "0", "--data", "embedded:val"], "--scale"),
        (["prepare", "src", "out", "--scale", "0"], "--scale"),
        (["info", "default", "--channels", "0"], "--channels"),
        (["info", "default", "--lr-size", "0"], "--lr-size"),
        (["info", "default", "--scale", "-4"], "--scale"),
        (["sweep", "-v", "0", "-r", "0", "-d", "x"], "--repeats"),
    ],
)
def test_bad_argument_values(args, flag, capsys):
    one_error(main(args), capsys, flag, "positive integer")


def test_non_utf8_genotype_and_config_files(tmp_path, capsys):
    bad = tmp_path / "g.json"
    bad.write_bytes(b"\xff\xfe{\x00}")
    one_error(main(["info", str(bad)]), capsys, str(bad), "not UTF-8")
    code = main(["train", "--genotype", str(bad), f"out_dir={tmp_path}", *TINY])
    one_error(code, capsys, str(bad), "not UTF-8")
    one_error(main(["config", "--config", str(bad)]), capsys, str(bad), "not UTF-8")


def test_checkpoint_holding_only_kind(tmp_path, capsys):
    ck = tmp_path / "ck.pt"
    torch.save({"kind": "train"}, ck)
    code = main(["eval", "--model", str(ck), "--data", "embedded:val"])
    one_error(code, capsys, str(ck), "incomplete", "'genotype'")
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"kind": "train"}, run / "checkpoint.pt")
    code = main(["train", "--resume", str(run), *TINY])
    one_error(code, capsys, "checkpoint.pt", "incomplete")


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("state.json", b"{}", "state.json is corrupt"),
        ("state.json", b"[]", "state.json is corrupt"),
        ("config.yaml", b"arch: [", "invalid YAML"),
        ("config.yaml", b"\xff\xfe", "not UTF-8"),
        ("config.yaml", b"- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_run_resume_with_corrupt_files(tmp_path, capsys, name, content, fragment):
    run = tmp_path / "r"
    run.mkdir()
    (run / name).write_bytes(content)
    code = main(["run", "--resume", str(run), *TINY])
    one_error(code, capsys, fragment)


@pytest.mark.parametrize(
    "cmd",
    [
        ["run", "out_dir={f}", "name=x", *TINY],
        ["sweep", "out_dir={f}", *QUIET, "-v", "0", "-d", "s"],
        ["prepare", "{src}", "{f}/out", "--patch", "32"],
        [
            "eval",
            "--model",
            "bicubic",
            "--scale",
            "4",
            "--data",
            "{src}",
            "--save-images",
            "{f}/sr",
        ],
        ["export", "default", "--out", "{f}/g.json"],
    ],
)
def test_output_path_under_a_file(tmp_path, capsys, cmd):
    f = tmp_path / "afile"
    f.write_text("x")
    src = folder(tmp_path / "src")
    args = [a.format(f=f, src=src) for a in cmd]
    one_error(main(args), capsys, str(f), "expected a folder")
    assert f.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_output_folder_not_writable(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_error(main(["export", "default", "--out", str(ro / "g.json")]), capsys, "ermission")
        code = main(["train", f"out_dir={ro}", "name=t", *TINY])
        one_error(code, capsys, str(ro))
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_full_disk_during_training(tmp_path, monkeypatch, capsys):
    """ENOSPC while the checkpoint is written: one line, resume hint, no temp file left."""
    import quantnas.rundir.files

    real_fsync = os.fsync

    def fsync(fd):
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(quantnas.rundir.files.os, "fsync", fsync)
    code = main(["train", f"out_dir={tmp_path}", "name=t", *TINY])
    run = tmp_path / "t"
    one_error(code, capsys, str(run / "checkpoint.pt"), "no space left", f"--resume {run}")
    assert not list(run.glob(".*.tmp")) and not (run / "checkpoint.pt").exists()


# ------------------------------------------------------------------- 5. smaller
def test_random_bytes_checkpoint_is_called_corrupt(tmp_path, capsys):
    ck = tmp_path / "r.pt"
    ck.write_bytes(np.random.default_rng(0).bytes(4096))
    msg = one_error(main(["eval", "--model", str(ck), "--data", "embedded:val"]), capsys)
    assert "corrupt or not a quantnas checkpoint" in msg and "trusted" not in msg


def test_json_output_is_strict(tmp_path, capsys):
    x = tmp_path / "x.png"
    save_rgb(x, photo())
    assert main(["score", "--sr", str(x), "--hr", str(x), "--scale", "4", "--json"]) == 0

    def refuse(const):
        raise AssertionError(f"non-JSON constant {const}")

    res = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert res["psnr"] is None and res["images"][0]["psnr"] is None


def test_resume_with_genotype_refused(tmp_path, capsys):
    run = tmp_path / "t"
    run.mkdir()
    code = main(["train", "--resume", str(run), "--genotype", "paper-example", *TINY])
    one_error(code, capsys, "--genotype", "--resume")


def test_atomic_files_get_umask_mode_and_stale_tmp_removed(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        out = tmp_path / "g.json"
        assert main(["export", "default", "--out", str(out)]) == 0
        assert out.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    run = tmp_path / "t"
    assert main(["train", f"out_dir={tmp_path}", "name=t", *TINY, "train.epochs=1"]) == 0
    assert (run / "checkpoint.pt").stat().st_mode & 0o777 == 0o666 & ~old
    stale = run / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"partial")
    assert main(["train", "--resume", str(run)]) == 0  # finished: a no-op that cleans up
    assert not stale.exists()


# ------------------------------------------------- further cases found on the way
def test_deeply_nested_genotype_and_config(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    one_error(main(["info", str(deep)]), capsys, str(deep), "nested too deeply")
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("arch: " + "[" * 100_000 + "]" * 100_000)
    one_error(main(["config", "--config", str(cfg)]), capsys, str(cfg), "invalid YAML")


def test_restart_never_deletes_a_folder_quantnas_did_not_write(tmp_path, capsys):
    mine = tmp_path / "x"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own settings\n")
    (mine / "checkpoint.pt").write_bytes(b"precious")
    code = main(["train", f"out_dir={tmp_path}", "name=x", *TINY, "--restart"])
    one_error(code, capsys, "not deleted")
    assert (mine / "checkpoint.pt").read_bytes() == b"precious"


def test_genotype_with_huge_blocks_refused(tmp_path, capsys):
    from quantnas.space import genotype as gt

    path = tmp_path / "huge.json"
    data = gt.DEFAULT.to_dict()
    data["blocks"]["head"] = [{"op": "simple_3x3", "bits": 8}] * 200_000
    path.write_text(json.dumps(data))
    one_error(main(["info", str(path)]), capsys, "head", "200000 layers", "at most")


def test_checkpoint_arch_claiming_huge_network_refused_without_allocating(tmp_path, capsys):
    from quantnas.pipeline.resolve import ArchConfig
    from quantnas.space import genotype as gt
    from quantnas.space.build import build_network
    from quantnas.training.checkpoint import model_payload

    arch = ArchConfig(c_fixed=8, body_cells=1)
    ck = model_payload(build_network(gt.DEFAULT, arch), gt.DEFAULT, arch)
    ck["arch"]["c_fixed"] = 100_000  # a 1.9 TB network, claimed by a few kilobytes
    path = tmp_path / "claim.pt"
    torch.save(ck, path)
    code = main(["eval", "--model", str(path), "--data", "embedded:val"])
    # refused from the shapes of a network built on the meta device (nothing allocated)
    one_error(code, capsys, str(path), "does not match", "head.0.weight")


# ------------------------------------------------------------ 6. one resource budget
GIB = 1024**3


@pytest.fixture
def memory_16gib(monkeypatch):
    """The machine has 16 GiB available (every memory check reads this)."""
    import quantnas.memory

    monkeypatch.setattr(quantnas.memory, "available_ram_bytes", lambda: 16 * GIB)


@pytest.mark.parametrize(
    ("make", "claim"),
    [
        (lambda p: png_bomb(p / "big.png", 10000, 10000, depth=8), "10000x10000"),
        (lambda p: tiff_bomb(p / "big.tif", side=40000), "40000x40000"),
    ],
)
def test_upscale_bombs_refused_from_the_header(trained_tiny_run, tmp_path, make, claim):
    bomb = make(tmp_path)
    args = ["upscale", str(trained_tiny_run), bomb.name, "--out", "out", "--no-progress"]
    code, err, rss = run_child(args, tmp_path)
    assert_child_error(code, err, bomb.name, claim, "pixels")
    assert rss < MAX_RSS_BYTES, f"peak RSS {rss / 1024**2:.0f} MiB"
    assert not list((tmp_path / "out").glob("*"))


def test_upscale_refuses_an_output_over_the_limit(trained_tiny_run, tmp_path, capsys):
    src = tmp_path / "a.png"
    save_rgb(src, photo(64, 64))  # 4,096 pixels in, 65,536 out at x4
    out = tmp_path / "out"
    args = ["upscale", str(trained_tiny_run), str(src), "--out", str(out), "--no-progress"]
    one_error(main([*args, "--max-pixels", "10000"]), capsys, "a.png", "256x256", "--max-pixels")
    assert not list(out.glob("*.png"))
    assert main([*args, "--max-pixels", "70000"]) == 0


def test_set_pixel_budget_refused_before_decoding(tmp_path, capsys, monkeypatch):
    """Four 88-megapixel PNGs (headers only: decoding any of them would fail)."""
    data = tmp_path / "big"
    for name in "abcd":
        png_bomb(data / f"{name}.png", width=11000, height=8000, depth=8)
    code = main(
        ["train", f"out_dir={tmp_path}", "name=t", f"data.train={data}", *TINY]
        + ["data.max_total_pixels=300000000"]
    )
    one_error(code, capsys, f"data folder {data}", "352,000,000 pixels", "300,000,000")
    assert not (tmp_path / "t" / "checkpoint.pt").exists()
    # the default budget is half the available memory (here 1 GiB: 178,956,970 pixels)
    import quantnas.memory

    monkeypatch.setattr(quantnas.memory, "available_ram_bytes", lambda: GIB)
    code = main(["eval", "--model", "bicubic", "--scale", "4", "--data", str(data)])
    one_error(code, capsys, f"data folder {data}", "178,956,970", "half the available memory")


def alias_bomb(levels: int = 9) -> str:
    """A one-line YAML list whose aliases expand to 9**levels values (billion laughs)."""
    parts = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    for i in range(1, levels):
        parts.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "[" + ", ".join(parts) + "]"


def test_yaml_alias_bomb_refused(tmp_path, capsys):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(f"sweep:\n  penalties: {alias_bomb()}\n")
    one_error(main(["config", "--config", str(cfg)]), capsys, str(cfg), "aliases", "100,000")
    one_error(main(["config", f"sweep.penalties={alias_bomb()}"]), capsys, "sweep.penalties")
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text(f"sweep:\n  penalties: {alias_bomb()}\n")
    one_error(main(["run", "--resume", str(run), *TINY]), capsys, "saved config", "aliases")
    loop = tmp_path / "loop.yaml"
    loop.write_text("sweep:\n  penalties: &a [0.1, *a]\n")
    one_error(main(["config", "--config", str(loop)]), capsys, str(loop), "refers to")
    # a few aliases, as the paper-basic preset uses, are fine
    fine = tmp_path / "fine.yaml"
    fine.write_text("sweep:\n  penalties: &p [0.0, 0.1]\n  uniform_bits: [4, 8]\n")
    assert main(["config", "--config", str(fine)]) == 0
    assert "- 0.1" in capsys.readouterr().out


def test_values_in_error_messages_are_cut(capsys):
    line = one_error(
        main(["config", "train.optim.lr=" + "x" * 100_000]), capsys, "train.optim.lr", "..."
    )
    assert len(line) < 200
    line = one_error(main(["config", "arch.bits=[" + "4," * 50_000 + "x]"]), capsys, "arch.bits")
    assert len(line) < 200
    line = one_error(main(["config", "y" * 100_000 + "=1"]), capsys, "unknown config key")
    assert len(line) < 200


@pytest.mark.usefixtures("memory_16gib")
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("arch.c_fixed=99996", "arch.c_fixed"),
        ("arch.body_cells=1000000", "arch.body_cells"),
        ("arch.arch_pattern.head=100000", "arch.arch_pattern.head"),
        ("data.repeat=1000000000", "data.repeat"),
    ],
)
def test_sizes_that_cannot_exist_refused_naming_the_key(tmp_path, capsys, override, key):
    import time

    t0 = time.monotonic()
    code = main(["run", f"out_dir={tmp_path}", "name=r", *QUIET, override])
    one_error(code, capsys, f"config key {key}:", "13.60 GiB", f"lower {key}")
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "r" / "config.yaml").exists()


@pytest.mark.usefixtures("memory_16gib")
def test_search_and_train_refuse_huge_networks_before_building(tmp_path, capsys):
    code = main(["search", f"out_dir={tmp_path}", "name=s", *TINY, "arch.body_cells=1000000"])
    one_error(code, capsys, "config key arch.body_cells:", "supernet")
    code = main(["train", f"out_dir={tmp_path}", "name=t", *TINY, "arch.c_fixed=99996"])
    one_error(code, capsys, "config key arch.c_fixed:", "trained network")
    code = main(["train", f"out_dir={tmp_path}", "name=u", *TINY, "data.repeat=1000000000"])
    one_error(code, capsys, "config key data.repeat:", "shuffling")


@pytest.mark.usefixtures("memory_16gib")
@pytest.mark.parametrize(
    ("args", "flag"),
    [(["--lr-size", "100000"], "--lr-size 100000"), (["--channels", "1000000"], "--channels")],
)
def test_info_sizes_that_cannot_exist(capsys, args, flag):
    one_error(main(["info", "default", *args]), capsys, flag, "TiB", "available")


@pytest.mark.usefixtures("memory_16gib")
def test_checkpoint_with_zero_stride_weights_claiming_huge_shapes(tmp_path, capsys):
    """Weights stored as zero-stride views (a few bytes) with shapes of 60000 channels."""
    from quantnas.pipeline.resolve import ArchConfig
    from quantnas.space import genotype as gt
    from quantnas.space.build import build_network
    from quantnas.training.checkpoint import model_payload

    small = ArchConfig(c_fixed=8, body_cells=1)
    ck = model_payload(build_network(gt.DEFAULT, small), gt.DEFAULT, small)
    huge = ArchConfig(c_fixed=60000, body_cells=1)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_network(gt.DEFAULT, huge).state_dict().items()}
    ck["model"] = {k: torch.zeros(()).expand(s) for k, s in shapes.items()}
    ck["arch"]["c_fixed"] = 60000
    path = tmp_path / "zero_stride.pt"
    torch.save(ck, path)
    assert path.stat().st_size < 1_000_000
    code = main(["eval", "--model", str(path), "--data", "embedded:val"])
    one_error(code, capsys, str(path), "arch.c_fixed=60000", "refused before building")


# --------------------------------------------------------------- 7. nothing silent
def float_tiff(path: Path, values: np.ndarray) -> Path:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, values.astype(np.float32))
    return path


@pytest.mark.parametrize(("bad", "fragment"), [(np.nan, "NaN or Inf"), (np.inf, "NaN or Inf")])
def test_float_tiff_with_non_finite_values_refused(tmp_path, capsys, bad, fragment):
    values = np.random.default_rng(0).random((64, 64))
    values[5, 7] = bad
    tif = float_tiff(tmp_path / "data" / "f.tif", values)
    code = main(["eval", "--model", "bicubic", "--scale", "4", "--data", str(tif.parent)])
    one_error(code, capsys, "f.tif", fragment)


def test_float_images_the_one_rule(tmp_path):
    from quantnas.deploy.upscale import read_picture
    from quantnas.errors import QuantNASError

    values = np.random.default_rng(0).random((16, 16))
    ok = float_tiff(tmp_path / "ok.tif", values)
    img = load_rgb(ok, allow_gray=True)
    assert np.array_equal(img[:, :, 0], np.round(values.astype(np.float32) * 255).astype(np.uint8))
    assert np.allclose(read_picture(ok).rgb[:, :, 0], values, atol=1e-6)
    wide = float_tiff(tmp_path / "wide.tif", values * 300)
    for read in (lambda p: load_rgb(p, allow_gray=True), read_picture):
        with pytest.raises(QuantNASError, match=r"wide.tif.*\[0, 1\]"):
            read(wide)


def test_upscale_refuses_non_finite_network_output(trained_tiny_run, tmp_path, monkeypatch, capsys):
    from quantnas.deploy.backends import TorchUpscaler

    real = TorchUpscaler.__call__
    monkeypatch.setattr(TorchUpscaler, "__call__", lambda self, lr: real(self, lr) * np.nan)
    src = tmp_path / "a.png"
    save_rgb(src, photo(32, 32))
    out = tmp_path / "out"
    args = ["upscale", str(trained_tiny_run), str(src), "--out", str(out), "--no-progress"]
    code = main([*args, "--runtime", "torch"])  # the PyTorch network made to fail
    one_error(code, capsys, str(src), "non-finite")
    assert not list(out.glob("*.png"))


@pytest.fixture(scope="module")
def exported_onnx(trained_tiny_run, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("forged") / "net.onnx"
    assert main(["export", str(trained_tiny_run), "--format", "onnx", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("scale", "fragment"),
    [
        ("0", "'quantnas.scale' is '0'"),
        ("four", "'four'"),
        ("2", "to (1, 3, 8, 8), not (1, 3, 4, 4)"),
    ],
)
def test_forged_onnx_scale_refused(exported_onnx, tmp_path, capsys, scale, fragment):
    import onnx

    model = onnx.load(str(exported_onnx))
    for prop in model.metadata_props:
        if prop.key == "quantnas.scale":
            prop.value = scale
    forged = tmp_path / "forged.onnx"
    onnx.save(model, str(forged))
    src = tmp_path / "a.png"
    save_rgb(src, photo(32, 32))
    code = main(["upscale", str(forged), str(src), "--out", str(tmp_path / "o"), "--no-progress"])
    one_error(code, capsys, str(forged), fragment)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))


# ------------------------------------------------------------------ 8. resume gaps
def test_resume_of_a_finished_search_rewrites_what_the_checkpoint_holds(tmp_path, capsys):
    args = ["search", f"out_dir={tmp_path}", "name=s", *TINY]
    assert main(args) == 0
    run = tmp_path / "s"
    derived = ["alpha_history.json", "last_arch.json", "best_arch.json"]
    derived += sorted(str(p.relative_to(run)) for p in (run / "genotypes").glob("*.json"))
    before = {name: (run / name).read_bytes() for name in derived}
    assert len(before) == 5  # three files + one genotype per epoch
    (run / "alpha_history.json").unlink()
    (run / "best_arch.json").write_text('{"trunc')
    (run / "genotypes" / "epoch_000.json").unlink()
    (run / "last_arch.json").write_text("")
    for plot in ("alphas.png", "arch.png"):
        (run / plot).unlink()
    capsys.readouterr()
    assert main(["search", "--resume", str(run), *TINY]) == 0
    assert {name: (run / name).read_bytes() for name in derived} == before
    assert (run / "alphas.png").stat().st_size > 0 and (run / "arch.png").stat().st_size > 0


def test_resume_of_a_finished_training_rewrites_what_the_checkpoint_holds(tmp_path, capsys):
    run = tmp_path / "t"
    assert main(["train", f"out_dir={tmp_path}", "name=t", *TINY]) == 0
    derived = ["genotype.json", "metrics.jsonl", "training.png", "arch.png"]
    before = {name: (run / name).read_bytes() for name in derived}
    (run / "genotype.json").write_text('{"trunc')
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text(lines[0])  # a row lost
    (run / "training.png").write_bytes(b"\x89PNG cut")
    (run / "arch.png").unlink()
    assert main(["train", "--resume", str(run)]) == 0
    assert {name: (run / name).read_bytes() for name in derived} == before


def test_resume_of_a_finished_run_rewrites_every_derived_file(tmp_path, capsys):
    from killpoints import artifacts, differences
    from tiny_runs import RUN

    run = tmp_path / "r"
    assert main(["run", f"out_dir={tmp_path}", "name=r", *RUN]) == 0
    before = artifacts(run)
    sample = sorted((run / "samples").rglob("*.png"))[0]
    sample.write_bytes(sample.read_bytes()[:100])
    for name in [
        "search/alpha_history.json",
        "search/metrics.jsonl",
        "search/alphas.png",
        "train/training.png",
        "eval.json",
        "side_by_side.png",
        "report.md",
    ]:
        (run / name).unlink()
    (run / "search" / "genotypes" / "epoch_000.json").write_text("garbage")
    (run / "train" / "genotype.json").write_text("{}")
    assert main(["run", "--resume", str(run)]) == 0
    assert differences(artifacts(run), before) == []


def test_prepare_removes_stale_partial_folders_of_the_same_out(tmp_path, capsys):
    src = folder(tmp_path / "src")
    out = tmp_path / "out"
    dead = tmp_path / ".out.999999999.abc123.partial"  # no such process
    dead.mkdir()
    save_rgb(dead / "a_s001.png", photo(32, 32))
    alive = tmp_path / f".out.{os.getpid()}.def456.partial"  # a prepare still running
    alive.mkdir()
    foreign = tmp_path / ".out.999999999.xyz.partial"  # holds something not a tile
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    other = tmp_path / ".other.999999999.abc.partial"  # another OUT's
    other.mkdir()
    assert main(["prepare", str(src), str(out), "--patch", "32", "--stride", "32"]) == 0
    assert not dead.exists()
    assert alive.is_dir() and foreign.is_dir() and other.is_dir()
    assert len(list(out.glob("*.png"))) == 4


def test_sweep_resume_refuses_a_missing_grid_record(tmp_path, capsys):
    base = ["sweep", f"out_dir={tmp_path}", f"data.train={tmp_path / 'nope'}", *QUIET]
    base += ["-d", "s", "--engine", "local", "-v", "0"]
    assert main(base) == 0  # the trial fails on the missing data; the sweep is recorded
    rows = (tmp_path / "s" / "results.jsonl").read_text()
    (tmp_path / "s" / "grid.json").unlink()
    capsys.readouterr()
    one_error(main([*base, "--resume"]), capsys, "grid.json", "cannot be checked")
    assert (tmp_path / "s" / "results.jsonl").read_text() == rows
    assert not (tmp_path / "s" / "grid.json").exists()


# ------------------------------------------------------------ 9. one line, naming the thing
@pytest.mark.parametrize(
    "flag,value,want",
    [
        ("--cpus-per-trial", "nan", "> 0"),
        ("--cpus-per-trial", "0", "> 0"),
        ("--gpus-per-trial", "-1", ">= 0"),
        ("--gpus-per-trial", "inf", ">= 0"),
    ],
)
def test_sweep_resource_flags_must_be_finite(tmp_path, capsys, flag, value, want):
    code = main(["sweep", "--preset", "tiny", "-d", "x", f"out_dir={tmp_path}", flag, value])
    one_error(code, capsys, flag, want)


def test_tiny_images_error_names_the_image(tmp_path, capsys):
    folder(tmp_path / "tiny", names=("t0.png", "t1.png"), size=(8, 8))
    code = main(["eval", "--model", "bicubic", "--scale", "4", "--data", str(tmp_path / "tiny")])
    one_error(code, capsys, "image t0", "empty after cropping 4")


# --------------------------------------------- 10. run directories, tried carelessly
def test_a_lock_file_that_is_a_link_or_a_folder_is_refused_and_nothing_written(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    link, folder_lock = tmp_path / "a", tmp_path / "b"
    link.mkdir()
    (link / ".quantnas-lock").symlink_to(notes)  # writing the pid would clobber the notes
    folder_lock.mkdir()
    (folder_lock / ".quantnas-lock").mkdir()
    for name, what in (("a", "is a symbolic link"), ("b", "is a folder")):
        code = main(["train", f"out_dir={tmp_path}", f"name={name}", *TINY])
        one_error(code, capsys, str(tmp_path / name / ".quantnas-lock"), what, "remove it")
    assert notes.read_text() == "my notes"
    assert [p.name for p in link.iterdir()] == [".quantnas-lock"]


def test_resume_of_a_file_says_it_is_not_a_folder(tmp_path, capsys):
    f = tmp_path / "run.txt"
    f.write_text("x")
    one_error(main(["search", "--resume", str(f), *TINY]), capsys, str(f), "is not a folder")


def test_a_run_name_too_long_for_the_file_system(tmp_path, capsys):
    code = main(["train", f"out_dir={tmp_path}", "name=" + "x" * 300, *TINY])
    one_error(code, capsys, "File name too long")
    assert list(tmp_path.iterdir()) == []


def test_a_huge_lock_file_is_read_only_in_part(tmp_path):
    from quantnas.rundir.lock import LOCK_FILE, RunLock, holder

    run = tmp_path / "r"
    run.mkdir()
    with open(run / LOCK_FILE, "wb") as fh:  # 8 GiB, sparse: reading it whole would not fit
        fh.truncate(8 * 1024**3)
    assert holder(run / LOCK_FILE) == {}
    with RunLock(run, command="train"):  # no process holds it: taken over
        assert holder(run / LOCK_FILE)["command"] == "train"


def test_a_metrics_file_cut_inside_its_first_row_is_repaired_on_resume(tmp_path, capsys):
    run = tmp_path / "t"
    args = ["train", f"out_dir={tmp_path}", "name=t", *TINY]
    assert main([*args, "train.epochs=1"]) == 0
    whole = (run / "metrics.jsonl").read_bytes()
    (run / "checkpoint.pt").unlink()  # as if killed while the first epoch was recorded
    (run / "metrics.jsonl").write_bytes(whole[:25])
    assert main(["train", "--resume", str(run)]) == 0
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0]
