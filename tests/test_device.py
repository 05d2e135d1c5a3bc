import subprocess
import sys

import pytest

CODE = "from quantnas.device import tune_allocator; print(tune_allocator(), tune_allocator())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator tuning")
def test_allocator_tuned_once_per_process_and_can_be_turned_off(monkeypatch):
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
    monkeypatch.setenv("QUANTNAS_MALLOC", "0")
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_select_device_refuses_missing_cuda_and_unknown_names():
    import torch

    from quantnas.device import select_device
    from quantnas.errors import QuantNASError

    assert select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(QuantNASError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(QuantNASError, match="unknown"):
        select_device("tpu")


def test_evaluate_run_refuses_an_unknown_device_in_one_line(tmp_path):
    from quantnas.errors import QuantNASError
    from quantnas.pipeline.report import evaluate_run
    from quantnas.pipeline.resolve import Config

    cfg = Config()
    cfg.device = "tpu"
    with pytest.raises(QuantNASError, match="device 'tpu' unknown"):
        evaluate_run(cfg, tmp_path)  # refused before the run directory is read


def test_memory_preflight_counts_gpu_memory_for_cuda(monkeypatch):
    import torch
    from torch import nn

    import quantnas.memory as mem
    from quantnas.errors import QuantNASError
    from quantnas.pipeline.resolve import load_config
    from quantnas.space.footprint import check_network_budget

    gib = 1024**3
    monkeypatch.setattr(mem, "available_ram_bytes", lambda: 64 * gib)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * gib, 8 * gib))
    assert mem.memory_limit(device="cuda") == pytest.approx(0.85 * 2 * gib)
    assert mem.memory_limit(device="cuda:0") == pytest.approx(0.85 * 2 * gib)
    assert mem.memory_limit() == pytest.approx(0.85 * 64 * gib)  # CPU: the machine's RAM
    assert mem.memory_limit(3.0, device="cuda") == 3 * gib  # run.max_memory_gb wins
    net = nn.Conv2d(3, 3, 3, padding=1)
    mem.check_memory(net, batch_size=1, lr_crop=8, scale=1)  # fits in RAM and on the GPU
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1024, 8 * gib))
    mem.check_memory(net, batch_size=1, lr_crop=8, scale=1)  # on the CPU: the GPU is not asked
    with pytest.raises(QuantNASError, match="the search needs about"):
        mem.check_memory(net, batch_size=1, lr_crop=8, scale=1, device="cuda")
    cfg = load_config(overrides=["device=cuda"])
    with pytest.raises(QuantNASError, match="85% of the free memory"):
        check_network_budget(cfg, "search")
    check_network_budget(load_config(), "search")  # device=cpu: 64 GiB of RAM suffice
