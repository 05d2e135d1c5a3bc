"""Quantizers and quantized convolutions."""

from quantnas.quant.conv import ConvFactory, QConv2d, QConvBase
from quantnas.quant.mixed import MixedQConv2d
from quantnas.quant.quantizers import (
    HWGQ,
    HWGQ_STEPS,
    LSQ,
    SUPPORTED_BITS,
    ImageQuantizer,
    NoiseQuantizer,
    Quantizer,
    check_bits,
)

__all__ = [
    "HWGQ",
    "HWGQ_STEPS",
    "ImageQuantizer",
    "LSQ",
    "SUPPORTED_BITS",
    "ConvFactory",
    "MixedQConv2d",
    "NoiseQuantizer",
    "QConv2d",
    "QConvBase",
    "Quantizer",
    "check_bits",
]
