"""The two alternating steps of the search (first-order DARTS), as plain functions.

The alpha step minimises ``L1 + ramp * sparse_coef * regularizer + penalty * cost / cost_0``
over the architecture weights on a batch of the alpha split; the weight step minimises L1
over the network weights on a batch of the weight split, with grad-norm clipping. The
searcher and ``benchmarks/speed.py`` both call these.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from quantnas.config.types import SearchConfig
from quantnas.search.constraint import BitopsBudget
from quantnas.search.losses import hardware_penalty, ramp, sparsity
from quantnas.search.supernet import Supernet
from quantnas.space.cost import SupernetCost
from quantnas.training import distributed as qdist

__all__ = ["alpha_step", "weight_step"]

#: ``check(value, what)`` stops a run on a non-finite loss (before its backward pass).
Check = Callable[[float, str], None]


def _no_check(value: float, what: str) -> None:
    del value, what


def alpha_step(
    net: Supernet,
    cost: SupernetCost,
    opt: torch.optim.Optimizer,
    lr: torch.Tensor,
    hr: torch.Tensor,
    *,
    cfg: SearchConfig,
    epoch: int,
    initial_cost: float,
    alpha_from: int | None = None,
    budget: BitopsBudget | None = None,
    check: Check = _no_check,
) -> dict[str, float]:
    """One update of the architecture weights.

    Args:
        net: The supernet.
        cost: Its BitOps cost model.
        opt: The optimizer of ``net.alphas()``.
        lr: LR batch of the alpha split.
        hr: Its HR batch.
        cfg: The ``search`` section (regularizer, ramp, penalty and its cost).
        epoch: The current epoch (sets the regularizer's ramp).
        initial_cost: The penalty cost at uniform alphas (the normaliser ``cost_0``).
        alpha_from: The epoch alpha steps started at (``cfg.warm_up`` when None).
        budget: ``search.target_bitops`` as a constraint: its Lagrangian term is added and
            its multiplier takes one dual-ascent step.
        check: Called with the loss before its backward pass.

    Returns:
        ``alpha_l1``, ``reg``, ``penalty`` and ``expected_bitops`` of the step (with a
        budget also ``lagrange`` and ``expected_final_bitops``).

    """
    opt.zero_grad(set_to_none=True)
    l1 = F.l1_loss(net(lr), hr)
    probs = net.probabilities()
    logits = {k: net.alpha.logits(k) for k in probs}
    start = cfg.warm_up if alpha_from is None else alpha_from
    w_reg = cfg.sparse_coef * ramp(
        epoch, epochs=cfg.epochs, warm_up=start, shape=cfg.sparse_ramp, kind=cfg.sparse_type
    )
    reg = sparsity(cfg.sparse_type, probs, logits)
    expected = cost.expected_bitops(probs)
    pen = hardware_penalty(cost.penalty_cost(probs, cfg.penalty_cost), initial_cost, cfg.penalty)
    loss = l1 + w_reg * reg + pen.float()
    out = {}
    if budget is not None:
        term, final = budget.term(probs)
        loss = loss + term.float()
        out = {"lagrange": budget.lam, "expected_final_bitops": final}
    check(loss.item(), "search alpha loss")
    loss.backward()
    qdist.average_gradients(net.alphas())
    opt.step()
    if budget is not None:
        budget.update(out["expected_final_bitops"])
    return {
        "alpha_l1": l1.item(),
        "reg": float(reg.detach()),
        "penalty": pen.item(),
        "expected_bitops": expected.item(),
        **out,
    }


def weight_step(
    net: Supernet,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    lr: torch.Tensor,
    hr: torch.Tensor,
    *,
    grad_clip: float,
    probs: dict[str, torch.Tensor] | None = None,
    check: Check = _no_check,
) -> float:
    """One update of the supernet's weights (the alphas get no gradient; ``probs`` runs
    another distribution, e.g. one sampled path; ``grad_clip`` 0 = no clipping); returns
    the L1.
    """
    opt.zero_grad(set_to_none=True)
    loss = F.l1_loss(net(lr, alpha_grad=False, probs=probs), hr)
    check(loss.item(), "search weight loss")
    loss.backward()
    qdist.average_gradients(net.weights())
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(list(net.weights()), grad_clip)
    opt.step()
    sched.step()
    return loss.item()
