"""The search's hardware budget and genotype choice at a budget.

A genotype is one flat index per layer key into its ``(n_ops, n_bits)`` table (the order
of :meth:`Supernet.export`: ``op = i // n_bits``, ``bit = i % n_bits``). Its BitOps at the
final width are additive over layer keys (:class:`~quantnas.space.cost.SupernetCost` at
``arch.c_fixed``), so budgets are checked without building networks.

* :class:`BitopsBudget`: ``search.target_bitops`` as a constraint. The alpha loss gets
  ``lam * E[BitOps] / target``; after each alpha step ``lam <- max(0, lam + dual_lr *
  (E[BitOps] / target - 1))`` (dual ascent), so no penalty scale is tuned by hand.
* :func:`repair`: the argmax genotype moved into ``[band * target, target]`` by single-layer
  changes that cost the least log-probability per BitOps.
* :func:`sample_in_band`: uniform genotypes rejection-sampled into a BitOps band.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import torch

from quantnas.errors import QuantNASError
from quantnas.registry import Registry
from quantnas.space.cost import SupernetCost

log = logging.getLogger(__name__)

#: How a search chooses the genotype it exports, by ``search.select`` (see
#: :mod:`quantnas.search.choose`).
SELECTORS: Registry[str] = Registry.of(
    "selector",
    {
        "argmax": "the alphas' argmax, repaired into the budget band",
        "path": "the sampled one-hot path that scores best on validation crops",
        "halving": "successive halving of short trainings over genotypes drawn from the "
        "alphas within the budget band, plus the repaired argmax",
    },
    key="search.select",
)
#: ``search.halving_draw_epoch``: which epoch's alphas the race's drawn finalists come from.
DRAW_EPOCHS: Registry[str] = Registry.of(
    "draw epoch",
    {
        "last": "the alphas the search ends with",
        "best": "the exported epoch's alphas (lowest validation loss), whose argmax is exported",
    },
    key="search.halving_draw_epoch",
)
#: ``search.halving_draw``: where the race's drawn finalists come from.
DRAWS: Registry[str] = Registry.of(
    "finalist draw",
    {
        "alphas": "the layers' (op, bit) distributions of search.halving_draw_epoch",
        "mutations": "the exported genotype, each layer redrawn uniformly with probability "
        "search.halving_mutation_rate",
    },
    key="search.halving_draw",
)
#: ``sweep.random_halving_draw``: the candidates of a sweep's ``halving-random`` race.
RANDOM_DRAWS: Registry[str] = Registry.of(
    "random race draw",
    {
        "uniform": "distinct uniform genotypes in the target's window",
        "mutations": "one uniform genotype of the window and mutations of it (each layer "
        "redrawn with probability search.halving_mutation_rate): local search, no search",
    },
    key="sweep.random_halving_draw",
)
#: ``sweep.random_window``: the BitOps window of a sweep's random genotypes at a target.
RANDOM_WINDOWS: Registry[str] = Registry.of(
    "random window",
    {
        "tolerance": "within sweep.target_tolerance of the target, on both sides",
        "band": "the search's band [search.target_band x target, target], where the found "
        "networks are exported: found and random networks of one BitOps band",
    },
    key="sweep.random_window",
)
#: What a weight step trains, by ``search.weight_sampling``.
WEIGHT_SAMPLINGS: Registry[str] = Registry.of(
    "weight sampling",
    {"mixture": "the whole mixture", "path": "one path sampled from the alphas"},
    key="search.weight_sampling",
)

__all__ = [
    "DRAWS",
    "DRAW_EPOCHS",
    "RANDOM_DRAWS",
    "RANDOM_WINDOWS",
    "SELECTORS",
    "WEIGHT_SAMPLINGS",
    "BitopsBudget",
    "Choice",
    "choice_bitops",
    "cost_tables",
    "mutation_probs",
    "one_hot",
    "repair",
    "sample_from",
    "sample_in_band",
]

#: ``{layer key: flat (op, bit) index}``.
Choice = dict[str, int]


def cost_tables(cost: SupernetCost) -> tuple[dict[str, list[float]], float]:
    """Per layer key, the BitOps of each flat (op, bit) choice; and the fixed layers' BitOps."""
    tables = {
        k: (m[:, None] * cost.bit_cost[None]).flatten().tolist() for k, m in cost.macs.items()
    }
    return tables, cost.fixed_bitops


def choice_bitops(
    choice: Mapping[str, int], tables: Mapping[str, list[float]], fixed: float
) -> float:
    """BitOps of a genotype given as flat indices."""
    return fixed + sum(tables[k][i] for k, i in choice.items())


def one_hot(choice: Mapping[str, int], shapes: Mapping[str, tuple[int, int]]) -> dict:
    """``{key: (n_ops, n_bits)}`` one-hot probabilities of a choice."""
    out = {}
    for k, (n, b) in shapes.items():
        p = torch.zeros(n * b)
        p[choice[k]] = 1.0
        out[k] = p.view(n, b)
    return out


class BitopsBudget:
    """``search.target_bitops`` as a Lagrangian constraint on the expected BitOps.

    Args:
        cost: The cost model at the final width (``arch.c_fixed``).
        target: BitOps the final network must stay within.
        dual_lr: Step of the multiplier's dual ascent.

    """

    def __init__(self, cost: SupernetCost, *, target: float, dual_lr: float) -> None:
        self.cost, self.target, self.dual_lr = cost, float(target), float(dual_lr)
        self.lam = 0.0

    def term(self, probs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
        """The alpha-loss term ``lam * E[BitOps] / target`` and ``E[BitOps]`` (final width)."""
        expected = self.cost.expected_bitops(probs)
        return self.lam * expected / self.target, float(expected.detach())

    def update(self, expected: float) -> None:
        """One dual-ascent step on ``E[BitOps] / target - 1``."""
        self.lam = max(0.0, self.lam + self.dual_lr * (expected / self.target - 1.0))

    def state_dict(self) -> dict:
        return {"lam": self.lam}

    def load_state_dict(self, state: Mapping) -> None:
        self.lam = float(state["lam"])


def repair(
    logp: Mapping[str, list[float]],
    tables: Mapping[str, list[float]],
    fixed: float,
    *,
    target: float,
    band: float,
) -> Choice:
    """The argmax of ``logp`` moved into ``[band * target, target]`` BitOps.

    While above the target, the single-layer change with the least log-probability lost
    per BitOps saved is made; while below the band, the change within the target with the
    least log-probability lost per BitOps added (a gain first). Stops when in the band or
    when no change helps (logged).
    """
    choice = {k: max(range(len(v)), key=v.__getitem__) for k, v in logp.items()}
    lo = band * target
    for _ in range(10_000):
        now = choice_bitops(choice, tables, fixed)
        if lo <= now <= target:
            break
        best, best_key = None, None
        for k, i in choice.items():
            for j in range(len(tables[k])):
                delta = tables[k][j] - tables[k][i]
                after = now + delta
                useful = delta < 0 if now > target else (delta > 0 and after <= target)
                if not useful:
                    continue
                loss = (logp[k][i] - logp[k][j]) / abs(delta)
                if best is None or loss < best[0]:
                    best, best_key = (loss, j), k
        if best_key is None:
            log.warning(
                "budget repair: %.4g BitOps cannot be moved into [%.4g, %.4g]", now, lo, target
            )
            break
        choice[best_key] = best[1]
    return choice


def _rejection(
    keys: list[str],
    batch: Callable[[], list[list[int]]],
    keep: Callable[[Choice], bool],
    *,
    n: int,
    tries: int,
    what: str,
) -> list[Choice]:
    """Up to ``n`` distinct choices of ``batch()`` draws (1000 rows each, at most ``tries``
    rows) that ``keep`` accepts, in the order they were first drawn.
    """
    found: dict[tuple, Choice] = {}
    for _ in range(math.ceil(tries / 1000)):
        for row in batch():
            choice = dict(zip(keys, row, strict=True))
            if keep(choice):
                found.setdefault(tuple(row), choice)
                if len(found) >= n:
                    return list(found.values())
    log.warning("only %d %s", len(found), what)
    return list(found.values())


def mutation_probs(
    choice: Mapping[str, int], shapes: Mapping[str, tuple[int, int]], rate: float
) -> dict[str, torch.Tensor]:
    """Per layer, the distribution of one mutation of ``choice``: its (op, bit) pair kept
    with probability ``1 - rate``, else replaced by a uniformly drawn pair (possibly the
    same one), as ``(n_ops, n_bits)`` tables for :func:`sample_from`.

    Raises:
        QuantNASError: ``rate`` is not in ``(0, 1]``.

    """
    if not 0 < rate <= 1:
        raise QuantNASError(
            f"search.halving_mutation_rate: {rate!r}, expected a number in (0, 1]"
        )
    out = {}
    for key, (n, b) in shapes.items():
        p = torch.full((n * b,), rate / (n * b), dtype=torch.float64)
        p[choice[key]] += 1 - rate
        out[key] = p.reshape(n, b)
    return out


def sample_from(
    probs: Mapping[str, torch.Tensor],
    tables: Mapping[str, list[float]] | None,
    fixed: float,
    *,
    lo: float,
    hi: float,
    n: int,
    generator: torch.Generator,
    tries: int = 200_000,
) -> list[Choice]:
    """Up to ``n`` distinct genotypes drawn from the layers' (op, bit) distributions
    (independent per layer), with BitOps in ``[lo, hi]`` when ``tables`` are given
    (rejection; without tables every draw is kept).
    """
    keys = list(probs)
    if not keys:
        return []
    flat = [probs[k].detach().cpu().flatten().double().clamp_min(0) for k in keys]

    def batch() -> list[list[int]]:
        cols = [torch.multinomial(p, 1000, replacement=True, generator=generator) for p in flat]
        return torch.stack(cols, dim=1).tolist()

    return _rejection(
        keys,
        batch,
        lambda c: tables is None or lo <= choice_bitops(c, tables, fixed) <= hi,
        n=n,
        tries=tries,
        what=f"distinct genotypes drawn from the alphas in [{lo:.4g}, {hi:.4g}] BitOps",
    )


def sample_in_band(
    tables: Mapping[str, list[float]],
    fixed: float,
    *,
    lo: float,
    hi: float,
    n: int,
    generator: torch.Generator,
    tries: int = 200_000,
) -> list[Choice]:
    """Up to ``n`` distinct uniform genotypes with BitOps in ``[lo, hi]`` (rejection)."""
    keys = list(tables)
    sizes = torch.tensor([len(tables[k]) for k in keys])

    def batch() -> list[list[int]]:
        return (torch.rand(1000, len(keys), generator=generator) * sizes).long().tolist()

    return _rejection(
        keys,
        batch,
        lambda c: lo <= choice_bitops(c, tables, fixed) <= hi,
        n=n,
        tries=tries,
        what=f"genotypes found with BitOps in [{lo:.4g}, {hi:.4g}]",
    )
