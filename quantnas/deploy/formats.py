"""The ONNX export formats by ``--format`` name, importable without the ``onnx`` extra (the
command line lists them in every install; :mod:`~quantnas.deploy.export` needs onnx).
"""

from __future__ import annotations

from quantnas.registry import Registry

__all__ = ["FORMATS", "ONNX_EXTRA"]

#: The pip extra that installs what an ONNX export and its self-check need.
ONNX_EXTRA = "onnx"

#: The ONNX formats by ``--format`` name: whether the convs are exported quantized.
FORMATS: Registry[bool] = Registry.of(
    "ONNX format", {"onnx": True, "onnx-fp32": False}, key="--format"
)
