"""What the hand-designed baselines of :mod:`quantnas.space.baselines` compute, as ONNX nodes:
the sub-pixel wrapper (features -> DepthToSpace [* out_scale] [+ global skip]) and the
small EDSR's residual blocks and long skip. Their convs, quantizers and global skips are
the search space's (:mod:`quantnas.deploy.onnx_converters`).

Importing this module registers the converters with :func:`~quantnas.deploy.onnx_emitter.converter`.
"""

from __future__ import annotations

from quantnas.deploy.onnx_converters import _global_skip, _pixel_shuffle
from quantnas.deploy.onnx_emitter import Emitter, converter
from quantnas.space.baselines import SubPixelNet, _EDSRFeatures, _ResBlock

__all__: list[str] = []


@converter(SubPixelNet)
def _sub_pixel(e: Emitter, m: SubPixelNet, x: str) -> str:
    return _global_skip(e, m, x, _pixel_shuffle(e, m.shuffle, e(m.features, x)))


@converter(_ResBlock)
def _res_block(e: Emitter, m: _ResBlock, x: str) -> str:
    return e.g.op("Add", [x, e(m.body, x)], "residual")


@converter(_EDSRFeatures)
def _edsr_features(e: Emitter, m: _EDSRFeatures, x: str) -> str:
    h = e(m.head, x)
    return e(m.up, e.g.op("Add", [h, e(m.body, h)], "long_skip"))
