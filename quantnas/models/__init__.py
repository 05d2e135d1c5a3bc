"""Network topologies shared by the final network and the supernet.

A topology is built from a *layer function* ``layer_fn(block=..., index=..., c_in=...,
c_out=...) -> nn.Module`` that returns the module of one searchable layer: a fixed
operation at a fixed bit-width for the final network (:func:`quantnas.space.build.build_network`),
or a mixed layer over all candidates for the supernet.
"""

from quantnas.models.basic import BasicSRNet
from quantnas.models.blocks import LayerFn, Residual
from quantnas.models.rfdn import RFDNSRNet

__all__ = ["BasicSRNet", "LayerFn", "RFDNSRNet", "Residual"]
