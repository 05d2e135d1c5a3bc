"""Memory-lean mixtures for the supernet's mixed convs (same values and gradients as the
straightforward autograd formulas, fewer saved tensors).

A candidate conv of the supernet mixes several bit-width copies of its input and weight.
Written with autograd ops, every copy and every intermediate (clamp, round, product, sum)
is kept for the backward pass: ``3-4 x n_bits`` activation-sized tensors per candidate conv,
which made the RFDN-space search at batch 16 need 20 GB. These functions keep only the
input (a tensor the graph holds anyway, shared by all candidates that read it) and
recompute the cheap per-bit parts in the backward pass; the quantization noise is
re-drawn from a saved seed instead of being stored.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import torch

from quantnas.quant.noise import draw_noise
from quantnas.quant.quantizers import FULL_PRECISION


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum()`` in one pass, without the product tensor."""
    return torch.dot(a.reshape(-1), b.reshape(-1))


class _Shared(threading.local):
    """The last tensor the candidates of a mixed layer read, and what was computed from it."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.x: torch.Tensor | None = None
        self.entries: dict[tuple, Any] = {}


_shared = _Shared()


@torch.no_grad()
def shared(x: torch.Tensor, what: str, quant=None) -> Any:
    """``what`` of ``x`` (``value``, ``mask``, ``both`` of ``quant``, or ``relu``: ``(relu(x),
    range)``), computed once for consecutive calls on the same tensor.

    The candidates of a mixed layer all read the layer's input: its quantized copies, ReLU
    and range are the same for every candidate, so the first computes them and the others
    reuse them (in the forward and again in the backward pass). One tensor is remembered at
    a time (per thread); a new tensor, or an in-place change of this one, starts afresh.
    The results are shared: callers must not modify them.
    """
    key = (x.data_ptr(), x._version, tuple(x.shape), x.stride(), x.dtype, x.device)
    if _shared.key != key:
        _shared.key, _shared.x, _shared.entries = key, x, {}
    qkey = (what, type(quant), getattr(quant, "bits", None), getattr(quant, "step", None))
    hit = _shared.entries.get(qkey)
    if hit is None:
        if what == "relu":
            v = torch.relu(x)
            hit = (v, float(v.max() - v.min()))
        elif what == "value":
            hit = quant.value(x)
        elif what == "mask":
            hit = quant.pass_mask(x)
        else:
            hit = quant.value_and_mask(x)
        _shared.entries[qkey] = hit
    return hit


def clear_shared() -> None:
    """Forget the remembered tensor (e.g. to free its memory after a step)."""
    _shared.key, _shared.x, _shared.entries = None, None, {}


class _MixedActivation(torch.autograd.Function):
    """``sum_b q_b A_b(x)`` for activation quantizers ``A_b`` with straight-through masks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, q: torch.Tensor, quantizers: Sequence) -> torch.Tensor:
        out = None
        for qb, quant in zip(q.tolist(), quantizers, strict=True):
            if qb == 0:
                continue
            value = shared(x, "value", quant)
            out = value * qb if out is None else out.add_(value, alpha=qb)
        ctx.save_for_backward(x, q)
        ctx.quantizers = quantizers
        return out if out is not None else torch.zeros_like(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, q = ctx.saved_tensors
        gx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        gq = torch.zeros_like(q) if ctx.needs_input_grad[1] else None
        for b, (qb, quant) in enumerate(zip(q.tolist(), ctx.quantizers, strict=True)):
            if qb == 0:  # skipped entries get no gradient, as in the plain sum
                continue
            if gq is not None:
                value, mask = shared(x, "both", quant)
                gq[b] = _dot(grad, value)
            else:
                mask = shared(x, "mask", quant)
            if gx is not None:
                gx.add_(grad * mask, alpha=qb)
        return gx, gq, None


def mixed_activation(x: torch.Tensor, q: torch.Tensor, quantizers: Sequence) -> torch.Tensor:
    """``sum_b q_b A_b(x)`` (``A_b``: HWGQ or image quantizers) keeping only ``x`` for backward.

    Entries with ``q_b == 0`` are skipped (no value, no gradient). Same value and gradients
    (w.r.t. ``x`` and ``q``) as ``sum(q[b] * quantizers[b](x))``.
    """
    return _MixedActivation.apply(x, q.to(x.dtype), tuple(quantizers))


class _MixedLSQ(torch.autograd.Function):
    """``sum_b q_b LSQ_b(w)`` over the bit-widths of one weight, in a few passes per bit.

    The autograd form builds about fifteen small tensors per bit-width and candidate (the
    step's gradient scaling, clamps, the straight-through rounding, the products); on a
    supernet of hundreds of candidates their dispatch costs more than the arithmetic.
    Values follow :meth:`LSQ.forward` operation by operation; gradients are LSQ's: the
    weight's passes where ``Qn <= w / s <= Qp``, the step's is
    ``round(w/s) - w/s`` inside that range and ``Qn`` / ``Qp`` outside, scaled by
    ``1 / sqrt(Qp * numel)``, summed per output channel.
    """

    @staticmethod
    def forward(ctx, w, q, quantizers, *steps):
        out = None
        for qb, quant, step in zip(q.tolist(), quantizers, steps, strict=True):
            if qb == 0:
                continue
            term = w.clone() if quant.full_precision else _lsq_value(w, step, quant)
            out = term.mul_(qb) if out is None else out.add_(term, alpha=qb)
        ctx.save_for_backward(w, q, *steps)
        ctx.quantizers = quantizers
        return out if out is not None else torch.zeros_like(w)

    @staticmethod
    def backward(ctx, grad):
        w, q, *steps = ctx.saved_tensors
        gw = torch.zeros_like(w) if ctx.needs_input_grad[0] else None
        gq = torch.zeros_like(q) if ctx.needs_input_grad[1] else None
        gsteps: list[torch.Tensor | None] = [None] * len(steps)
        dims = tuple(range(1, w.dim()))
        for b, (qb, quant, step) in enumerate(zip(q.tolist(), ctx.quantizers, steps, strict=True)):
            if qb == 0:  # skipped entries get no gradient, as in the plain sum
                continue
            if quant.full_precision:
                if gw is not None:
                    gw.add_(grad, alpha=qb)
                if gq is not None:
                    gq[b] = _dot(grad, w)
                continue
            raw = _lsq_raw_step(step, w, quant)
            s = raw.clamp_min(1e-8)
            u = w / s
            inside = (u >= quant.qn) & (u <= quant.qp)
            level = u.clamp(quant.qn, quant.qp)
            level = (level.round() - level) + level
            if gq is not None:
                gq[b] = _dot(grad, level * s)
            if gw is not None:
                gw.add_(grad * inside, alpha=qb)
            if ctx.needs_input_grad[3 + b]:
                # d(level * s)/ds = level - u (inside) or level (outside), through the STE
                ds = (grad * (level - u * inside)).sum(dim=dims, keepdim=True) * qb
                gsteps[b] = ds * (raw >= 1e-8) * _lsq_grad_scale(w, quant)
        return (gw, gq, None, *gsteps)


def _lsq_grad_scale(w: torch.Tensor, quant) -> float:
    return 1.0 / math.sqrt(quant.qp * w.numel())


def _lsq_raw_step(step: torch.Tensor, w: torch.Tensor, quant) -> torch.Tensor:
    """The step value :meth:`LSQ.forward` computes by ``scale_grad`` (before ``clamp_min``)."""
    y = step * _lsq_grad_scale(w, quant)
    return (step - y) + y


def _lsq_value(w: torch.Tensor, step: torch.Tensor, quant) -> torch.Tensor:
    """``LSQ.forward(w)``'s value, computed the same way, as a new tensor."""
    s = _lsq_raw_step(step, w, quant).clamp_min(1e-8)
    level = (w / s).clamp_(quant.qn, quant.qp)
    return ((level.round() - level) + level).mul_(s)


def mixed_lsq(w: torch.Tensor, q: torch.Tensor, quantizers: Sequence) -> torch.Tensor:
    """``sum_b q_b LSQ_b(w)`` with LSQ's gradients for ``w``, every step and ``q``.

    Entries with ``q_b == 0`` are skipped (no value, no gradient). Same value and gradients
    as ``sum(q[b] * quantizers[b](w))``.
    """
    steps = tuple(quant.step for quant in quantizers)
    return _MixedLSQ.apply(w, q.to(w.dtype), tuple(quantizers), *steps)


class _Activation(torch.autograd.Function):
    """``A(x)`` for one activation quantizer, saving only its boolean pass mask."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, quant) -> torch.Tensor:
        value, mask = quant.value_and_mask(x)
        ctx.save_for_backward(mask)
        return value

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def activation(x: torch.Tensor, quant) -> torch.Tensor:
    """``quant(x)`` (HWGQ or image quantizer) with a straight-through gradient, keeping a
    one-byte-per-element mask for backward instead of the float intermediates.
    """
    if not torch.is_grad_enabled() or not x.requires_grad:
        return quant(x)  # a module call (graph-free in no-grad mode), so hooks still see it
    return _Activation.apply(x, quant)


class _OriginalNoisyMix(torch.autograd.Function):
    """``f v + sum_b c_b sg(v + Delta_b eps_b)`` with ``v = relu(x)`` or ``x``.

    Computed as ``(f + sum_b c_b) v + sum_b c_b Delta_b eps_b``: one pass over ``v`` and
    one per noisy copy.
    """

    @staticmethod
    def forward(ctx, x, c, share, bits, relu, kind, seed, source):
        if relu:
            v, span = shared(x, "relu")
        else:
            v, span = x, float(x.max() - x.min())
        cl = c.tolist()
        out = v * (share + sum(cl))
        for b, (cb, bit) in enumerate(zip(cl, bits, strict=True)):
            if cb != 0 and bit < FULL_PRECISION:
                eps = draw_noise(v, seed=seed, index=b, kind=kind, source=source)
                out.add_(eps, alpha=cb * span / (2**bit - 1))
        ctx.save_for_backward(x, c)
        ctx.share, ctx.bits, ctx.relu, ctx.span = share, bits, relu, span
        ctx.kind, ctx.seed, ctx.source = kind, seed, source
        return out

    @staticmethod
    def backward(ctx, grad):
        x, c = ctx.saved_tensors
        gx = gc = None
        if ctx.needs_input_grad[0]:
            if ctx.relu:  # ReLU's gradient mask (x > 0), then the clean share
                gx = torch.ops.aten.threshold_backward(grad, x, 0.0).mul_(ctx.share)
            else:
                gx = grad * ctx.share
        if ctx.needs_input_grad[1]:
            v = shared(x, "relu")[0] if ctx.relu else x
            gc = torch.zeros_like(c)
            base = _dot(grad, v)
            for b, (cb, bit) in enumerate(zip(c.tolist(), ctx.bits, strict=True)):
                if cb == 0:  # skipped entries get no gradient, as in the plain sum
                    continue
                gc[b] = base
                if bit < FULL_PRECISION:
                    eps = draw_noise(v, seed=ctx.seed, index=b, kind=ctx.kind, source=ctx.source)
                    gc[b] = base + ctx.span / (2**bit - 1) * _dot(grad, eps)
        return gx, gc, None, None, None, None, None, None


def original_noisy_mix(
    x: torch.Tensor,
    c: torch.Tensor,
    *,
    share: float,
    bits: Sequence[int],
    relu: bool,
    kind: str,
    seed: int,
    source: str = "rng",
) -> torch.Tensor:
    """The original code's noisy mixture of bit-width copies, keeping only ``x`` for backward.

    ``v = relu(x)`` (inputs) or ``x`` (weights); returns
    ``share * v + sum_b c_b * sg(v + Delta_b eps_b)`` with
    ``Delta_b = (max v - min v) / (2^b - 1)`` (0 at 32 bits) and ``eps_b`` from
    :func:`~quantnas.quant.noise.draw_noise` (from ``source``). Gradients: ``share * dv/dx``
    for ``x`` (the copies are detached) and
    ``<grad, v + Delta_b eps_b>`` for ``c_b``.
    """
    c = c.to(x.dtype)
    return _OriginalNoisyMix.apply(x, c, float(share), tuple(bits), relu, kind, seed, source)
