"""quantnas: quantization-aware differentiable architecture search for super-resolution."""

import os

# numpy's OpenBLAS worker threads busy-wait after every call and starve PyTorch's OpenMP
# threads on small machines (the training data pipeline ran 17x slower on 2 cores).
# quantnas only uses BLAS for small per-image products, so one thread is enough. This must
# happen before numpy is imported; device.set_threads() also limits it at run time.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from quantnas.errors import QuantNASError

__version__ = "0.1.0"
#: The Python API's names that no submodule shadows (:mod:`quantnas.api`; ``search``,
#: ``train`` and ``evaluate`` are also module names, so they are ``quantnas.api.search``
#: etc.), imported on first use so that ``import quantnas`` stays light.
_API = ("load_config", "load_model", "run", "upscale")
__all__ = ["QuantNASError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from quantnas import api

        return getattr(api, name)
    raise AttributeError(f"module 'quantnas' has no attribute {name!r}")
