"""quantnas: quantization-aware differentiable architecture search for super-resolution.

``import quantnas`` changes nothing in the process: the thread settings (numpy's BLAS at one
thread, PyTorch's threads, the allocator) are made where a run starts
(:func:`quantnas.device.set_threads`, called by the CLI and by every search or training).
"""

from quantnas.errors import QuantNASError

#: The package version; ``pyproject.toml`` reads it from here (``dynamic = ["version"]``).
__version__ = "0.1.0"
#: The Python API's names that no subpackage shadows (:mod:`quantnas.api`; ``search`` is
#: also a subpackage name, so it is ``quantnas.api.search``), imported on first use so
#: that ``import quantnas`` stays light.
_API = ("evaluate", "load_config", "load_model", "run", "train", "upscale")
__all__ = ["QuantNASError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from quantnas import api

        return getattr(api, name)
    raise AttributeError(f"module 'quantnas' has no attribute {name!r}")
