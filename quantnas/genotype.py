"""The old import path of :mod:`quantnas.space.genotype`, kept for user code.

``import quantnas.genotype`` and ``from quantnas import genotype`` give the very module
:mod:`quantnas.space.genotype`; quantnas itself imports it by that name.
"""

import sys

from quantnas.space import genotype as _genotype

sys.modules[__name__] = _genotype
