"""The trials of a sweep: ``(method, setting, seed)`` plus what the method needs, their
per-trial configs and config hashes.

Trials come in two waves: ``search``, ``random`` and the baselines need nothing but the
config; ``uniform`` trials retrain the genotypes found by finished ``search`` trials.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from quantnas.config.compat import legacy
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import Config, from_dict, to_dict
from quantnas.quant.quantizers import check_bits
from quantnas.registry import Registry
from quantnas.space.baselines import BASELINES

#: Method groups a sweep can run (``sweep.methods``).
METHOD_GROUPS: Registry[str] = Registry.of(
    "sweep method",
    {
        "search": "search at each penalty or BitOps target, then train the found genotype",
        "random": "random genotypes of the same space and bit-widths",
        "baseline": "the fixed baselines of sweep.baselines at sweep.baseline_bits",
        "uniform": "found genotypes retrained with every layer at one bit-width",
        "halving-random": "successive halving over uniform random genotypes near each "
        "target (random search with early stopping; search.halving_* settings)",
    },
    key="sweep.methods",
)

#: Config keys that do not change a trial's result (left out of its hash).
_RUNTIME_KEYS = ("out_dir", "name", "threads", "device", "progress", "tensorboard", "sweep")
#: Keys inside a section left out of the hash: resource limits added after sweeps were
#: recorded, which only accept or refuse inputs (earlier sweeps stay valid for --resume),
#: and keys that set how a trial runs, not what it computes (as ``threads`` does).
_UNHASHED_SECTION_KEYS = (
    ("data", "max_total_pixels"),
    ("search", "halving_workers"),
    ("search", "halving_engine"),
    ("search", "halving_address"),
    ("search", "threads"),
)
#: Keys added after sweeps were recorded, with the value every earlier release behaved as:
#: left out of the hash at that value (earlier sweeps resume); another value changes the
#: trial, and the hash with it.
_ADDED_KEYS = {
    ("data", "gray"): "replicate",
    ("search", "halving_eta"): 2,
    ("search", "halving_epochs"): 1,
    ("search", "branch_init"): "he",
    ("search", "conv_init"): "he",
    ("search", "float_warm_up"): False,
    ("search", "halving_draw_epoch"): "last",
    ("search", "halving_draw"): "alphas",
    ("search", "halving_mutation_rate"): 0.3,
}


#: Keys that choose only where a search's drawn finalists come from: a ``halving-random``
#: trial does not read them (except the mutation rate with ``sweep.random_halving_draw:
#: mutations``), so they do not change its hash.
_SEARCH_DRAW_KEYS = ("halving_draw", "halving_draw_epoch", "halving_mutation_rate")


def _hashed(cfg: Config) -> dict:
    """The config as a dict without the keys that do not change a result, in the layout of
    earlier releases (:func:`~quantnas.config.compat.legacy`: the hash of a resolved
    config does not depend on whether it was given with old or new keys, and sweeps
    recorded before the keys were renamed resume).
    """
    data = legacy(to_dict(cfg))
    for key in _RUNTIME_KEYS:
        data.pop(key, None)
    for section, key in _UNHASHED_SECTION_KEYS:
        data.get(section, {}).pop(key, None)
    for (section, key), before in _ADDED_KEYS.items():
        if data.get(section, {}).get(key, before) == before:
            data.get(section, {}).pop(key, None)
    return data


@dataclass(frozen=True)
class Trial:
    """One trial.

    Attributes:
        method: ``search``, ``random``, ``uniform`` or a baseline name.
        setting: Human-readable setting (``penalty=0.01``, ``draw=3``, ``bits=4``, ...).
        seed: Training (and search) seed.
        penalty: Hardware penalty (``search``; the source's for ``uniform``).
        bits: Uniform bit-width (baselines, ``uniform``).
        draw: Index of a random genotype (its draw is seeded by ``draw_base`` and
            ``draw``, so the seeds of one draw train the same genotype).
        draw_base: The sweep's base seed (``random``).
        source: Trial id of the ``search`` trial a ``uniform`` trial retrains.
        genotype: JSON of the source genotype (``uniform``).
        target: BitOps budget (``search`` at a target; ``random`` drawn near it).

    """

    method: str
    setting: str
    seed: int
    penalty: float | None = None
    bits: int | None = None
    draw: int | None = None
    source: str | None = None
    genotype: str | None = None
    draw_base: int | None = None
    target: float | None = None

    @property
    def trial_id(self) -> str:
        at = "" if self.target is None else f"t{self.target / 1e9:g}G_"
        if self.method == "search":
            if self.target is not None:
                return f"search_{at}s{self.seed}"
            return f"search_p{self.penalty:g}_s{self.seed}"
        if self.method == "random":
            return f"random_{at}d{self.draw}_s{self.seed}"
        if self.method == "uniform":
            return f"uniform_b{self.bits}_{self.source}"
        if self.method == "halving-random":
            return f"halving-random_{at}s{self.seed}"
        return f"{self.method}_b{self.bits}_s{self.seed}"

    @property
    def draw_seed(self) -> int:
        """Seed of a random trial's genotype draw (the same for every training seed)."""
        base = self.seed if self.draw_base is None else self.draw_base
        return 100_003 * base + int(self.draw or 0)

    def to_dict(self) -> dict:
        return {"trial_id": self.trial_id, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> Trial:
        """The trial of :meth:`to_dict` (extra keys such as ``trial_id`` ignored)."""
        return cls(**{f: data[f] for f in cls.__dataclass_fields__ if f in data})


def _check(cfg: Config) -> None:
    s = cfg.sweep
    bad = [m for m in s.methods if m not in METHOD_GROUPS]
    if bad or not s.methods:
        raise QuantNASError(
            f"config key sweep.methods: {bad[0] if bad else '[]'!r} is not a method; expected "
            f"some of {list(METHOD_GROUPS)}"
        )
    for key in ("seeds", "uniform_seeds"):
        if getattr(s, key) < 1:
            raise QuantNASError(f"config key sweep.{key}: must be >= 1 (got {getattr(s, key)})")
    if s.random < 0:
        raise QuantNASError(f"config key sweep.random: must be >= 0 (got {s.random})")
    if "search" in s.methods and not s.penalties and not s.targets:
        raise QuantNASError(
            "config key sweep.penalties: no penalty values (or sweep.targets) for the search"
        )
    if "halving-random" in s.methods and not s.targets:
        raise QuantNASError("config key sweep.methods: halving-random needs sweep.targets")
    if s.random_halving_candidates < 0:
        raise QuantNASError(
            "config key sweep.random_halving_candidates: must be >= 0 "
            f"(got {s.random_halving_candidates})"
        )
    if any(t <= 0 for t in s.targets):
        raise QuantNASError("config key sweep.targets: BitOps budgets must be > 0")
    if not 0 < s.target_tolerance < 1:
        raise QuantNASError(
            f"config key sweep.target_tolerance: must be in (0, 1) (got {s.target_tolerance})"
        )
    if any(p < 0 for p in s.penalties):
        raise QuantNASError("config key sweep.penalties: penalties must be >= 0")
    unknown = [b for b in s.baselines if b not in BASELINES]
    if unknown:
        raise QuantNASError(
            f"config key sweep.baselines: {unknown[0]!r} unknown; expected some of "
            f"{sorted(BASELINES)}{BASELINES.hint(unknown[0])}"
        )
    check_bits(s.baseline_bits, where="sweep.baseline_bits")
    check_bits(s.uniform_bits, where="sweep.uniform_bits")


def plan(cfg: Config) -> list[Trial]:
    """The first wave: search, random and baseline trials of ``cfg.sweep``."""
    _check(cfg)
    s = cfg.sweep
    out: list[Trial] = []
    if "search" in s.methods:
        for p in s.penalties:
            for r in range(s.seeds):
                out.append(Trial("search", f"penalty={p:g}", cfg.seed + r, penalty=float(p)))
        for t in s.targets:
            for r in range(s.seeds):
                out.append(Trial("search", f"target={t / 1e9:g}G", cfg.seed + r, target=t))
    if "random" in s.methods and not s.targets:
        for d in range(s.random):
            for r in range(s.seeds):
                out.append(Trial("random", f"draw={d}", cfg.seed + r, draw=d, draw_base=cfg.seed))
    if "random" in s.methods:
        for t in s.targets:
            for d in range(s.random):
                for r in range(s.seeds):
                    out.append(Trial("random", f"target={t / 1e9:g}G,draw={d}", cfg.seed + r,
                                     draw=d, draw_base=cfg.seed, target=t))
    if "halving-random" in s.methods:
        for t in s.targets:
            for r in range(s.seeds):
                out.append(Trial("halving-random", f"target={t / 1e9:g}G", cfg.seed + r,
                                 draw_base=cfg.seed + r, target=t))
    if "baseline" in s.methods:
        for name in s.baselines:
            for bits in s.baseline_bits:
                for r in range(s.seeds):
                    out.append(Trial(name, f"bits={bits}", cfg.seed + r, bits=bits))
    return out


def uniform_plan(cfg: Config, found: list[tuple[Trial, str]]) -> list[Trial]:
    """The second wave: each found genotype of the first ``sweep.uniform_seeds`` seeds,
    retrained at every ``sweep.uniform_bits`` (skipped where it is already uniform at it).

    Args:
        cfg: The sweep config.
        found: ``(search trial, genotype JSON)`` of the finished search trials.

    """
    from quantnas.space import genotype as gt

    s = cfg.sweep
    if "uniform" not in s.methods:
        return []
    out = []
    for trial, geno_json in found:
        if trial.seed >= cfg.seed + s.uniform_seeds:
            continue
        geno = gt.loads(geno_json, source=trial.trial_id)
        for bits in s.uniform_bits:
            if geno.at_bits(bits) == geno:
                continue
            out.append(
                Trial(
                    "uniform",
                    f"{trial.setting},bits={bits}",
                    trial.seed,
                    penalty=trial.penalty,
                    bits=bits,
                    source=trial.trial_id,
                    genotype=geno_json,
                )
            )
    return out


def random_window(cfg: Config, target: float) -> tuple[float, float]:
    """``(centre, tolerance)`` of the BitOps window of random genotypes at ``target``
    (``sweep.random_window``): ``(target, sweep.target_tolerance)``, or for ``band`` the
    search's band ``[search.target_band x target, target]`` as a centre and a relative
    half-width.
    """
    if cfg.sweep.random_window == "band":
        lo = cfg.search.target_band
        return target * (1 + lo) / 2, (1 - lo) / (1 + lo)
    return target, cfg.sweep.target_tolerance


def trial_config(cfg: Config, trial: Trial) -> Config:
    """The config one trial runs with (its seed; its penalty for a search)."""
    c = from_dict(to_dict(cfg))
    c.seed = trial.seed
    if trial.penalty is not None:
        c.search.penalty = float(trial.penalty)
    if trial.method == "search" and trial.target is not None:
        c.search.target_bitops, c.search.penalty = float(trial.target), 0.0
    c.progress, c.tensorboard = False, False
    return c


def base_hash(cfg: Config) -> str:
    """A short hash of a sweep's config without its grid and run-time settings.

    Two sweeps with the same base hash train every trial they share the same way.
    """
    data = _hashed(cfg)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def config_hash(cfg: Config, trial: Trial) -> str:
    """A short hash of everything that determines a trial's result.

    Left out: run-time settings (threads, device, output folder, logging) and the sweep
    section (which only decides which trials exist); the ``search`` section counts only
    for search trials (a uniform trial hashes its source genotype instead).
    """
    data = _hashed(trial_config(cfg, trial))
    if trial.method not in ("search", "halving-random"):
        data.pop("search", None)
    if trial.target is not None and trial.method in ("random", "halving-random"):
        # where the draws lie (the sweep section is not hashed); the default window, +-5%,
        # keeps the hashes of earlier sweeps
        centre, tol = random_window(cfg, float(trial.target))
        if (centre, tol) != (float(trial.target), 0.05):
            data["random_window"] = [centre, tol]
    if trial.method == "halving-random":
        data["random_halving_candidates"] = cfg.sweep.random_halving_candidates
        mutations = cfg.sweep.random_halving_draw == "mutations"
        if mutations:
            data["random_halving_draw"] = "mutations"
        for key in _SEARCH_DRAW_KEYS:  # not read by a race over random draws
            if not (mutations and key == "halving_mutation_rate"):
                data.get("search", {}).pop(key, None)
    text = json.dumps({"trial": asdict(trial), "config": data}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
