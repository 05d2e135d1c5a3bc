import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def quiet_torch_warnings():
    """Silence PyTorch's ``UserWarning``s during a test (tiny runs trigger several)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.fixture(scope="session")
def trained_tiny_run(tmp_path_factory):
    """The run directory of a tiny mixed 2/8-bit network trained for a few steps."""
    from tiny_runs import TRAIN

    from quantnas.pipeline.resolve import load_config
    from quantnas.space import genotype as gt
    from quantnas.training.trainer import train

    out = tmp_path_factory.mktemp("tiny_train")
    cfg = load_config(overrides=[*TRAIN, f"out_dir={out}"])
    train(cfg, out / "run", gt.PAPER_EXAMPLE)
    return out / "run"
