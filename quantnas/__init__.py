"""quantnas: quantization-aware differentiable architecture search for super-resolution."""

import os

# numpy's OpenBLAS worker threads busy-wait after every call and starve PyTorch's OpenMP
# threads on small machines (the training data pipeline ran 17x slower on 2 cores).
# quantnas only uses BLAS for small per-image products, so one thread is enough. This must
# happen before numpy is imported; device.set_threads() also limits it at run time.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from quantnas.errors import QuantNASError

__version__ = "0.1.0"
__all__ = ["QuantNASError", "__version__"]
