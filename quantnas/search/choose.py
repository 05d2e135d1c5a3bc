"""From alphas to the genotype a search exports (``search.select``, ``search.target_bitops``).

* ``argmax``: the (op, bit) pair of highest probability per layer; with a budget, repaired
  into ``[target_band * target, target]`` BitOps (:func:`~quantnas.search.constraint.repair`).
* ``halving``: the repaired argmax and ``select_samples`` distinct genotypes drawn from the
  alphas (each layer's (op, bit) from its probabilities, within the budget band) are the
  candidates (``candidates.json``); the job trains them by successive halving
  (:mod:`quantnas.search.finalists`), which needs training and so happens after the search.
* ``path``: ``select_samples`` genotypes drawn uniformly within the budget band (the whole
  space without a budget) and the repaired argmax are each run through the supernet as a
  one-hot path (inherited weights) on fixed crops of the validation images; the highest
  PSNR gain over bicubic wins. Scores are written to ``selection.json``.

BitOps here are the final network's (``arch.c_fixed`` channels, LR ``bitops_lr_size``),
from the additive per-layer table of a final-width supernet.
"""

from __future__ import annotations

import logging
import math

import torch

from quantnas.config.types import Config, search_crop
from quantnas.errors import QuantNASError
from quantnas.search.constraint import (
    BitopsBudget,
    Choice,
    choice_bitops,
    cost_tables,
    mutation_probs,
    one_hot,
    repair,
    sample_from,
    sample_in_band,
)
from quantnas.search.probe import AlphaProbe
from quantnas.search.setup import build_supernet
from quantnas.search.supernet import Supernet
from quantnas.space.build import primitives
from quantnas.space.cost import SupernetCost
from quantnas.space.genotype import Genotype

log = logging.getLogger(__name__)

__all__ = ["Chooser", "choice_of", "random_draws_near", "random_mutations_near", "random_near"]


class Chooser:
    """Turns a supernet's distribution into its genotype under a config's budget.

    Args:
        net: The (search-width) supernet.
        cfg: Resolved configuration.

    """

    def __init__(self, net: Supernet, cfg: Config) -> None:
        self.net, self.cfg = net, cfg
        s = cfg.search
        self.target = float(s.target_bitops)
        self.lo = s.target_band * self.target
        self.tables: dict[str, list[float]] | None = None
        self.fixed = math.nan
        try:
            final = build_supernet(cfg, final_width=True)
        except QuantNASError as err:  # an op that cannot take the final width
            if self.target > 0 or s.select != "argmax":
                raise
            log.debug("no final-width cost table: %s", err)
            return
        self.cost = SupernetCost(final, lr_size=s.bitops_lr_size)
        self.tables, self.fixed = cost_tables(self.cost)

    def budget(self) -> BitopsBudget | None:
        """The Lagrangian budget of ``search.target_bitops`` (None without one)."""
        if self.target <= 0:
            return None
        return BitopsBudget(self.cost, target=self.target, dual_lr=self.cfg.search.dual_lr)

    def bitops(self, geno: Genotype) -> float:
        """The final network's BitOps of a genotype of this space (NaN without a table)."""
        if self.tables is None:
            return math.nan
        return choice_bitops(self.choice_of(geno), self.tables, self.fixed)

    def choice_of(self, geno: Genotype) -> Choice:
        return choice_of(self.net, geno)

    def genotype_of(self, choice: Choice) -> Genotype:
        return self.net.export(one_hot(choice, self.net.alpha.shapes))

    def argmax(self, probs: dict[str, torch.Tensor] | None = None) -> Genotype:
        """The argmax genotype of ``probs`` (the current alphas by default), repaired into
        the budget band when there is a budget.
        """
        probs = self.net.probabilities() if probs is None else probs
        if self.target <= 0:
            return self.net.export(probs)
        logp = {k: torch.log(p.detach().flatten().double()).tolist() for k, p in probs.items()}
        choice = repair(
            logp, self.tables, self.fixed, target=self.target, band=self.cfg.search.target_band
        )
        return self.genotype_of(choice)

    def sample_path(self) -> dict[str, torch.Tensor]:
        """One-hot probabilities of a uniform genotype (within the budget band if any),
        drawn from the global torch RNG (so a resumed search draws the same paths).
        """
        if self.target > 0:
            (choice,) = sample_in_band(
                self.tables, self.fixed, lo=self.lo, hi=self.target, n=1, generator=None
            )
        else:
            choice = {
                k: int(torch.randint(n * b, ())) for k, (n, b) in self.net.alpha.shapes.items()
            }
        return one_hot(choice, self.net.alpha.shapes)

    def candidates(
        self,
        n: int,
        *,
        draw: str = "alphas",
        first: Genotype | None = None,
        probs: dict[str, torch.Tensor] | None = None,
        rate: float = 0.3,
    ) -> list[tuple[Genotype, float, str]]:
        """``first`` (the exported genotype; the repaired argmax when None) and up to ``n``
        other distinct genotypes within the budget band, drawn from the alphas
        (``draw="alphas"``: ``probs``, the current alphas' probabilities when None), as
        mutations of ``first`` (``"mutations"``: each layer redrawn uniformly with
        probability ``rate``) or uniformly (``"uniform"``), seeded by ``search.seed``;
        ``(genotype, final BitOps, source)`` each.
        """
        g = torch.Generator().manual_seed(self.cfg.seed + 9_191)
        hi = self.target if self.target > 0 else math.inf
        lo = self.lo if self.target > 0 else 0.0
        first = self.argmax() if first is None else first
        head = self.choice_of(first)
        if draw in ("alphas", "mutations"):
            tables = self.tables if self.target > 0 else None
            if draw == "mutations":
                probs = mutation_probs(head, self.net.alpha.shapes, rate)
            elif probs is None:
                probs = self.net.probabilities()
            drawn = sample_from(probs, tables, self.fixed, lo=lo, hi=hi, n=n + 1, generator=g)
        else:
            drawn = sample_in_band(self.tables, self.fixed, lo=lo, hi=hi, n=n + 1, generator=g)
        out = [(first, self.bitops(first), "exported")]
        for choice in drawn:
            if choice != head and len(out) <= n:
                geno = self.genotype_of(choice)
                out.append((geno, self.bitops(geno), draw))
        return out

    def select_path(self, val_images: list, device: torch.device) -> tuple[Genotype, list]:
        """The ``path`` selector: the candidate whose one-hot path scores best on fixed
        crops of the validation images; returns it and every ``(genotype, bitops, gain)``.
        """
        s, cfg = self.cfg.search, self.cfg
        g = torch.Generator().manual_seed(cfg.seed + 7_777)
        hi = self.target if self.target > 0 else math.inf
        lo = self.lo if self.target > 0 else 0.0
        cands = [self.choice_of(self.argmax())]
        cands += sample_in_band(
            self.tables, self.fixed, lo=lo, hi=hi, n=s.select_samples, generator=g
        )
        probe = AlphaProbe(
            val_images, scale=cfg.arch.scale, lr_crop=search_crop(cfg), n=32, seed=cfg.seed + 1
        )
        scored = []
        was = self.net.training
        self.net.eval()
        try:
            for choice in cands:
                probs = one_hot(choice, self.net.alpha.shapes)
                gain = probe.gain(lambda x, p=probs: self.net(x, probs=p), device)
                geno = self.genotype_of(choice)
                scored.append((geno, choice_bitops(choice, self.tables, self.fixed), gain))
        finally:
            self.net.train(was)
        best = max(scored, key=lambda t: t[2])
        log.info(
            "path selection: %d candidates, best %s (%.3g BitOps, %+.3f dB over "
            "bicubic; the argmax's %+.3f dB)",
            len(scored),
            best[0],
            best[1],
            best[2],
            scored[0][2],
        )
        return best[0], scored


def choice_of(net: Supernet, geno: Genotype) -> Choice:
    """The (op, bit) index of each of ``net``'s layers that ``geno`` chooses."""
    out = {}
    for key in net.alpha.keys():
        block, i = key.split(".")
        layer = geno.blocks[block][int(i)]
        ops = primitives(net.arch, block)
        out[key] = ops.index(layer.op) * len(net.bits) + net.bits.index(layer.bits)
    return out


def random_near(
    arch, seed: int, *, target: float, tolerance: float, index: int = 0, lr_size: int = 32
):
    """The ``index``-th distinct uniform random genotype of ``arch`` (every (op, bit) pair
    of a layer equally likely, as :func:`~quantnas.space.build.random_genotype`) whose
    final-network BitOps lie within ``tolerance`` of ``target``, by rejection from a stream
    seeded by ``seed`` and the target (so draws ``0, 1, ...`` of one target differ, and two
    targets whose windows overlap do not share their draws).

    Raises:
        QuantNASError: Fewer than ``index + 1`` draws fit (the target is outside the space
            or its window holds too few genotypes).

    """
    return random_draws_near(
        arch, seed, target=target, tolerance=tolerance, n=index + 1, lr_size=lr_size
    )[index]


def random_draws_near(
    arch, seed: int, *, target: float, tolerance: float, n: int, lr_size: int = 32
) -> list:
    """Draws ``0 .. n - 1`` of :func:`random_near` (the same genotypes), from one supernet,
    one cost table and one pass over the stream.

    Raises:
        QuantNASError: Fewer than ``n`` draws fit.

    """
    net = Supernet(arch, mode="quant")
    tables, fixed = cost_tables(SupernetCost(net, lr_size=lr_size))
    found = _uniform_near(tables, fixed, seed, target=target, tolerance=tolerance, n=n)
    return [net.export(one_hot(c, net.alpha.shapes)) for c in found]


def _uniform_near(
    tables: dict[str, list[float]],
    fixed: float,
    seed: int,
    *,
    target: float,
    tolerance: float,
    n: int,
) -> list[Choice]:
    """The first ``n`` choices :func:`random_near` draws (the space given by its cost
    tables): the stream keeps its draws in the order they came, so draw ``k`` is the same
    whatever ``n > k`` asks for.
    """
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + round(target / 1e6))
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    found = sample_in_band(tables, fixed, lo=lo, hi=hi, n=n, generator=g, tries=2_000_000)
    if len(found) < n:
        raise QuantNASError(
            f"sweep.targets: {len(found)} distinct random genotypes within {tolerance:.0%} of "
            f"{target:.4g} BitOps, draw {n - 1} asked for"
        )
    return found


def random_mutations_near(
    arch,
    seed: int,
    *,
    target: float,
    tolerance: float,
    n: int,
    rate: float,
    lr_size: int = 32,
) -> list:
    """A uniform random genotype within ``tolerance`` of ``target`` (the draw ``0`` of
    :func:`random_near` with the same ``seed``) and up to ``n - 1`` distinct mutations of it
    in the same window (each layer redrawn uniformly with probability ``rate``): local
    search around a random centre, the control of a race around the search's argmax.

    Raises:
        QuantNASError: No genotype fits the window.

    """
    net = Supernet(arch, mode="quant")
    tables, fixed = cost_tables(SupernetCost(net, lr_size=lr_size))
    (head,) = _uniform_near(tables, fixed, seed, target=target, tolerance=tolerance, n=1)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + round(target / 1e6) + 9_191)
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    probs = mutation_probs(head, net.alpha.shapes, rate)
    drawn = sample_from(probs, tables, fixed, lo=lo, hi=hi, n=n, generator=g)
    out = [head] + [c for c in drawn if c != head][: n - 1]
    return [net.export(one_hot(c, net.alpha.shapes)) for c in out]
