"""``upscale`` of a run directory / checkpoint: exported once, self-checked, cached beside the
checkpoint and run on the fastest exact runtime; a corrupt, damaged or stale cache file is
rebuilt; ``--runtime torch`` and a base install without onnxruntime run PyTorch."""

import logging
import shutil
import sys

import numpy as np
import onnx
import pytest
import torch

from quantnas import api
from quantnas.deploy import export_cache
from quantnas.deploy.backends import OnnxUpscaler, TorchUpscaler, load_upscaler
from quantnas.deploy.export_cache import cache_key, cache_path, cached_export

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def run(trained_tiny_run, tmp_path):
    """A private copy of the tiny trained run (its cache files are this test's own)."""
    dest = tmp_path / "run"
    shutil.copytree(trained_tiny_run, dest, ignore=shutil.ignore_patterns("*.onnx"))
    return dest


def lr_array(h, w, seed=0):
    return np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)


def choice_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("upscale:")]


def test_default_runtime_exports_once_and_reuses_the_cache(run, caplog):
    caplog.set_level(logging.INFO, logger="quantnas")
    ckpt = run / "best.pt"
    model = load_upscaler(run, threads=1)
    assert isinstance(model, OnnxUpscaler)
    cached = cache_path(ckpt, cache_key(ckpt))
    assert cached.is_file() and cached.parent == ckpt.parent
    lines = choice_lines(caplog)
    assert len(lines) == 1 and "export made now" in lines[0]
    exact = export_cache._valid(cached, cache_key(ckpt))
    assert not isinstance(exact, str) and model.runtime == (
        "openvino" if "openvino" in exact[1] else "ort"
    )
    mtime = cached.stat().st_mtime_ns
    caplog.clear()
    again = load_upscaler(run, threads=1)
    assert again.runtime == model.runtime and cached.stat().st_mtime_ns == mtime
    lines = choice_lines(caplog)
    assert len(lines) == 1 and "export cached" in lines[0]
    # the same numbers as the PyTorch network (within one 8-bit level)
    lr = lr_array(33, 27)
    want = load_upscaler(run, runtime="torch")(lr)
    assert np.abs(again(lr) - want).max() <= 1 / 255


def test_runtime_torch_makes_no_export(run, caplog):
    caplog.set_level(logging.INFO, logger="quantnas")
    model = load_upscaler(run, runtime="torch")
    assert isinstance(model, TorchUpscaler)
    assert not list(run.glob("*.onnx"))
    assert choice_lines(caplog) == [f"upscale: {run / 'best.pt'} runs in PyTorch (--runtime torch)"]


def test_without_onnxruntime_pytorch_runs_and_names_the_extra(run, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="quantnas")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    out = api.upscale(run, [np.zeros((9, 8, 3), np.uint8)])
    assert out[0].shape == (36, 32, 3)
    lines = choice_lines(caplog)
    assert len(lines) == 1 and "runs in PyTorch" in lines[0]
    assert "pip install 'quantnas[onnx]' would run it" in lines[0]
    assert not list(run.glob("*.onnx"))


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated", "weights", "other key", "unchecked", "runtime update"]
)
def test_a_bad_cache_file_is_rebuilt(run, caplog, damage, monkeypatch):
    ckpt = run / "best.pt"
    first = cached_export(ckpt, threads=1)
    path = first.path
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not onnx at all")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        model = onnx.load_from_string(data)
        if damage == "weights":  # parses, but a weight changed: the digest tells
            t = next(t for t in model.graph.initializer if t.raw_data and len(t.raw_data) > 8)
            raw = bytearray(t.raw_data)
            raw[0] ^= 0x01
            t.raw_data = bytes(raw)
        elif damage == "other key":  # e.g. copied over from another checkpoint
            meta = next(p for p in model.metadata_props if p.key == export_cache.META_CACHE_KEY)
            meta.value = "0" * 16
        path.write_bytes(model.SerializeToString())
        if damage == "unchecked":  # made before a runtime was installed
            monkeypatch.setattr(
                export_cache, "installed_runtimes", lambda: ["ort", "openvino", "new"]
            )
        if damage == "runtime update":  # checked in an older onnxruntime
            now = export_cache.runtime_versions()
            monkeypatch.setattr(export_cache, "runtime_versions", lambda: now + ".post1")
    caplog.set_level(logging.INFO, logger="quantnas")
    again = cached_export(ckpt, threads=1)
    assert again.rebuilt and again.path == path
    assert any("rebuilding the cached export" in r.getMessage() for r in caplog.records)
    if damage in ("unchecked", "runtime update"):
        return  # rebuilt and checked again (the patched runtimes do not exist)
    monkeypatch.undo()
    assert not cached_export(ckpt, threads=1).rebuilt  # the rebuilt file is valid
    assert onnx.load(path).graph == onnx.load_from_string(data).graph


def test_a_new_checkpoint_gets_a_new_export_and_the_old_one_goes(run):
    ckpt = run / "best.pt"
    old = cached_export(ckpt, threads=1).path
    state = torch.load(ckpt, weights_only=False)
    key = next(k for k, v in state["model"].items() if k.endswith("weight") and v.ndim == 4)
    state["model"][key] = state["model"][key] * 1.01
    torch.save(state, ckpt)
    new = cached_export(ckpt, threads=1)
    assert new.rebuilt and new.path != old and new.path.is_file()
    assert not old.exists()


def test_a_folder_that_cannot_be_written_exports_in_memory(run, monkeypatch, caplog):
    def refuse(path, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("quantnas.rundir.files.atomic_write_bytes", refuse)
    caplog.set_level(logging.INFO, logger="quantnas")
    model = load_upscaler(run, threads=1)
    assert isinstance(model, OnnxUpscaler)
    assert not list(run.glob("*.onnx"))
    assert any("is not cached" in r.getMessage() for r in caplog.records)


def test_api_upscale_keeps_the_loaded_model_until_the_checkpoint_changes(run, caplog):
    caplog.set_level(logging.INFO, logger="quantnas")
    img = np.zeros((9, 8, 3), np.uint8)
    first = api.upscale(run, [img], threads=1)
    assert len(choice_lines(caplog)) == 1
    caplog.clear()
    assert np.array_equal(api.upscale(run, [img], threads=1)[0], first[0])
    assert choice_lines(caplog) == []  # kept from the first call: not loaded again
    ckpt = run / "best.pt"
    state = torch.load(ckpt, weights_only=False)
    torch.save(state, ckpt)  # the same network, new bytes (or not): loaded by content
    state["model"] = {
        k: v * 1.01 if v.is_floating_point() else v for k, v in state["model"].items()
    }
    torch.save(state, ckpt)
    api.upscale(run, [img], threads=1)
    assert len(choice_lines(caplog)) == 1 and "export made now" in choice_lines(caplog)[0]
