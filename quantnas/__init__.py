"""quantnas: quantization-aware differentiable architecture search for super-resolution."""

from quantnas.errors import QuantNASError

__version__ = "0.1.0"
__all__ = ["QuantNASError", "__version__"]
