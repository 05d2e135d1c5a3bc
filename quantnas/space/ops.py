"""Operation registry: candidate layers built by name with keyword-only factories.

Every operation maps ``c_in`` channels to ``c_out`` channels at the same resolution and is
assembled from convs made by a :class:`~quantnas.quant.conv.ConvFactory`, so the same
catalogue builds the final quantized network (``QConv2d`` with one bit-width) and the
supernet's candidates (``MixedQConv2d``). Channel plans (they decide BitOps):

* ``simple_KxK``: one KxK conv ``c_in -> c_out``.
* ``simple_KxK_grouped_G``: grouped KxK conv, ``G`` in 2, 3 or ``full`` (depthwise, needs
  ``c_in == c_out``).
* ``simple_3x3_d2``: dilated 3x3 conv (dilation 2).
* ``conv_Kx1_1xK``: (K,1) conv ``c_in -> c_fixed`` then (1,K) conv ``c_fixed -> c_out``.
* ``growthG_KxK``: KxK ``c_in -> c_fixed*G`` then KxK ``-> c_out``.
* ``decenc_KxK_R``: KxK ``c_in -> c_fixed/R``, KxK ``c_fixed/R -> c_fixed/R``, KxK ``-> c_out``.
* ``decenc_KxK_R_g3``: the same with every conv grouped by 3.
* ``DWS_KxK``: the original code's layer of that name (its ``K`` is ignored there too):
  1x1 ``c_in -> 4 c_in`` then grouped 1x1 (``groups = c_in``) ``-> c_out``; needs
  ``c_in == c_out``.
* ``dwsep_KxK``: depthwise-separable (a quantnas op): depthwise KxK ``c_in -> c_in`` then
  1x1 ``-> c_out``.
* ``skip_connect``: identity (needs ``c_in == c_out``); ``zero``: zeros.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from quantnas.errors import QuantNASError
from quantnas.quant.conv import ConvFactory
from quantnas.registry import Registry

OpFactory = Callable[..., nn.Module]

#: Operation factories ``factory(*, c_in, c_out, c_fixed, conv)`` by name.
OPS: Registry[OpFactory] = Registry("operation", key="arch.primitives")


def register_op(name: str, factory: OpFactory) -> None:
    """Register an operation factory ``factory(*, c_in, c_out, c_fixed, conv)`` under ``name``."""
    OPS.register(name, factory)


def available_ops() -> list[str]:
    """Names of all registered operations."""
    return sorted(OPS)


def check_op(name: str, *, where: str = "op") -> None:
    """Raise a one-line error if ``name`` is not a registered operation."""
    OPS.check(name, where=where)


def build_op(
    name: str, *, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory, where: str = "op"
) -> nn.Module:
    """Build operation ``name``.

    Args:
        name: Registered operation name.
        c_in: Input channels.
        c_out: Output channels.
        c_fixed: The network's base channel count (inner width of multi-conv ops).
        conv: Factory for the convs inside the operation.
        where: Layer name for error messages.

    Raises:
        QuantNASError: Unknown name, or channels the operation cannot handle.

    """
    check_op(name, where=where)
    try:
        return OPS.get(name)(c_in=c_in, c_out=c_out, c_fixed=c_fixed, conv=conv)
    except QuantNASError as e:
        raise QuantNASError(f"{where} ({name}, {c_in}->{c_out} channels): {e}") from None


class Identity(nn.Module):
    """``skip_connect``: returns its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """``zero``: returns zeros with ``c_out`` channels."""

    def __init__(self, c_out: int) -> None:
        super().__init__()
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.new_zeros(n, self.c_out, h, w)


def _simple(k: int, *, groups: str | int = 1, dilation: int = 1) -> OpFactory:
    def make(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
        g = c_in if groups == "full" else int(groups)
        if groups == "full" and c_in != c_out:
            raise QuantNASError("a depthwise (grouped_full) conv needs c_in == c_out")
        return conv(c_in=c_in, c_out=c_out, kernel_size=k, dilation=dilation, groups=g)

    return make


def _factorized(k: int) -> OpFactory:
    def make(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
        return nn.Sequential(
            conv(c_in=c_in, c_out=c_fixed, kernel_size=(k, 1)),
            conv(c_in=c_fixed, c_out=c_out, kernel_size=(1, k)),
        )

    return make


def _growth(k: int, g: int) -> OpFactory:
    def make(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
        return nn.Sequential(
            conv(c_in=c_in, c_out=c_fixed * g, kernel_size=k),
            conv(c_in=c_fixed * g, c_out=c_out, kernel_size=k),
        )

    return make


def _decenc(k: int, r: int, groups: int = 1) -> OpFactory:
    def make(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
        if c_fixed % r:
            raise QuantNASError(f"c_fixed={c_fixed} is not divisible by the reduction {r}")
        mid = c_fixed // r
        return nn.Sequential(
            conv(c_in=c_in, c_out=mid, kernel_size=k, groups=groups),
            conv(c_in=mid, c_out=mid, kernel_size=k, groups=groups),
            conv(c_in=mid, c_out=c_out, kernel_size=k, groups=groups),
        )

    return make


def _dws_original() -> OpFactory:
    def make(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
        if c_in != c_out:
            raise QuantNASError("DWS needs c_in == c_out")
        return nn.Sequential(
            conv(c_in=c_in, c_out=4 * c_in, kernel_size=1),
            conv(c_in=4 * c_in, c_out=c_out, kernel_size=1, groups=c_in),
        )

    return make


def _dwsep(k: int) -> OpFactory:
    def make(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
        return nn.Sequential(
            conv(c_in=c_in, c_out=c_in, kernel_size=k, groups=c_in),
            conv(c_in=c_in, c_out=c_out, kernel_size=1),
        )

    return make


def _skip(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
    if c_in != c_out:
        raise QuantNASError("skip_connect needs c_in == c_out")
    return Identity()


def _zero(*, c_in: int, c_out: int, c_fixed: int, conv: ConvFactory) -> nn.Module:
    return Zero(c_out)


def _register_catalogue() -> None:
    for k in (1, 3, 5, 7):
        register_op(f"simple_{k}x{k}", _simple(k))
        for g in ("2", "3", "4", "full"):
            register_op(
                f"simple_{k}x{k}_grouped_{g}", _simple(k, groups=g if g == "full" else int(g))
            )
    register_op("simple_3x3_d2", _simple(3, dilation=2))
    register_op("simple_5x5_d2", _simple(5, dilation=2))
    for k in (3, 5, 7):
        register_op(f"conv_{k}x1_1x{k}", _factorized(k))
        register_op(f"DWS_{k}x{k}", _dws_original())
        register_op(f"dwsep_{k}x{k}", _dwsep(k))
    for k in (1, 3, 5):
        for g in (1, 2, 3):
            register_op(f"growth{g}_{k}x{k}", _growth(k, g))
        for r in (2, 4):
            register_op(f"decenc_{k}x{k}_{r}", _decenc(k, r))
            register_op(f"decenc_{k}x{k}_{r}_g3", _decenc(k, r, groups=3))
    register_op("skip_connect", _skip)
    register_op("zero", _zero)


_register_catalogue()
