"""The ONNX export formats by ``--format`` name, importable without the ``onnx`` extra (the
command line lists them in every install; :mod:`~quantnas.deploy.export` needs onnx).
"""

from __future__ import annotations

from quantnas.registry import Registry

__all__ = ["FORMATS", "ONNX_EXTRA", "WEIGHT_DTYPES"]

#: The pip extra that installs what an ONNX export and its self-check need.
ONNX_EXTRA = "onnx"

#: The ONNX formats by ``--format`` name: whether the convs are exported quantized.
FORMATS: Registry[bool] = Registry.of(
    "ONNX format", {"onnx": True, "onnx-fp32": False}, key="--format"
)

#: Containers of weight levels up to 8 bits (``--weight-dtype``, ``export_onnx(weight_dtype=...)``).
#: ``int8`` is the default; ``uint8`` (zero point 128) is exact in onnxruntime on CPUs without
#: VNNI, whose u8 x s8 kernel adds pairs of products in saturating 16-bit arithmetic.
WEIGHT_DTYPES = ("int8", "uint8")
