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
