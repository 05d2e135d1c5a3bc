"""The output quantizer of ``arch.output_quant``: signed 8-bit levels on the tensors that feed
a sum or the pixel shuffle, so that an exported network computes with integers end to end.

Without it, a conv whose output feeds a residual sum, a parallel sum or the pixel shuffle
produces a float tensor, and onnxruntime / OpenVINO keep that conv in float. With it, each
such tensor (and each sum) is ``round(clamp(x / s, -128, 127)) * s`` with a learned step
``s`` (LSQ for activations, Esser et al. 2020): exported as uint8 levels with zero point 128
(onnxruntime's QLinearConv and QLinearAdd take the same type in and out), the convs become
QLinearConv, the sums QLinearAdd, and the next conv's HWGQ a requantization of those levels.
"""

from __future__ import annotations

import math

import torch

from quantnas.quant.quantizers import Quantizer, round_ste, scale_grad

__all__ = ["OUTPUT_BITS", "OutputQuantizer"]

#: Bit-width of the output quantizers (8: the integer kernels of x86 CPUs).
OUTPUT_BITS = 8


class OutputQuantizer(Quantizer):
    """Signed per-tensor LSQ quantizer of a conv output or a sum.

    The step is initialised from the first batch it quantizes in training
    (``2 mean|x| / sqrt(127)``, LSQ's rule) and learned with LSQ's gradient scale. It is
    off (identity) while the network trains at full precision (``enabled = False``, set by
    :func:`quantnas.space.build.set_quantized`); switching it on again re-initialises the step
    at the next training batch, as the weight steps are re-initialised.
    """

    def __init__(self, bits: int = OUTPUT_BITS) -> None:
        super().__init__(bits)
        self.qn, self.qp = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        self.step = torch.nn.Parameter(torch.tensor(0.1))
        self.enabled = True
        self.pending_init = True

    @property
    def zero_point(self) -> int:
        """The uint8 level of 0 in the exported container."""
        return -self.qn

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # a loaded step is trained
        super()._load_from_state_dict(*args, **kwargs)
        self.pending_init = False

    def rearm(self) -> None:
        """Initialise the step again from the next training batch."""
        self.pending_init = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.training and self.pending_init:
            with torch.no_grad():
                mean_abs = x.detach().abs().mean()
                self.step.copy_((2.0 * mean_abs / math.sqrt(self.qp)).clamp_min(1e-6))
            self.pending_init = False
        per_sample = max(x[0].numel() if x.dim() else 1, 1)
        step = self.step.clamp_min(1e-8)
        if torch.is_grad_enabled():
            step = scale_grad(step, 1.0 / math.sqrt(self.qp * per_sample))
        return round_ste(torch.clamp(x / step, self.qn, self.qp)) * step

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed, step={float(self.step):.4g}"
