"""What a network argument names: a run directory, a trained checkpoint or a genotype.

Every verb that takes a network or a genotype (``eval --model``, ``upscale``, ``export``,
``info``, ``train --genotype``) resolves it here, so they all accept the same things:

* a run directory of ``run``, ``search``, ``train`` or a sweep trial (its trained network
  is ``best.pt`` / ``train/best.pt`` / ``checkpoint.pt`` / ``train/checkpoint.pt``, its
  genotype ``best_arch.json`` / ``genotype.json`` / ``search/best_arch.json``, its
  structure the ``arch`` of its ``config.yaml``);
* a trained checkpoint (``best.pt`` / ``checkpoint.pt``) of a searched, random or uniform
  network (rebuilt from its genotype) or of a hand-designed baseline (rebuilt from its
  ``net_spec``: :mod:`quantnas.space.baselines`), which has no genotype;
* a genotype file, builtin name or text (:func:`quantnas.space.genotype.resolve`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from quantnas.config.io import load_yaml, merge
from quantnas.config.types import ArchConfig
from quantnas.errors import QuantNASError
from quantnas.space import genotype as gt
from quantnas.space.genotype import Genotype
from quantnas.training.checkpoint import (
    BEST,
    KIND_MODEL,
    KIND_SEARCH,
    KIND_TRAIN,
    load_checkpoint,
    load_state,
    require_keys,
)

__all__ = [
    "RUN_DIR_CHECKPOINTS",
    "RUN_GENOTYPES",
    "Trained",
    "find_checkpoint",
    "genotype_of",
    "is_trained_source",
    "load_model",
    "load_trained",
    "run_arch",
    "run_checkpoint",
]

#: Where a run directory keeps its genotype (search, train, or a ``run``'s search).
RUN_GENOTYPES = ("best_arch.json", "genotype.json", "search/best_arch.json")
#: Where a run directory keeps its trained network, in order of preference.
RUN_DIR_CHECKPOINTS = ("best.pt", "train/best.pt", "checkpoint.pt", "train/checkpoint.pt")


@dataclass
class Trained:
    """A trained network rebuilt from its checkpoint.

    Attributes:
        net: The network (eval mode), quantized as it was saved.
        genotype: Its genotype, or None for a hand-designed baseline.
        arch: Its structure (scale, channels, global skip, ...).
        path: The checkpoint it was read from.
        baseline: The baseline's name (e.g. ``"espcn"``), None for a genotype's network.
        bits: The baseline's bit-width (None for a genotype's network).

    """

    net: nn.Module
    genotype: Genotype | None
    arch: ArchConfig
    path: Path
    baseline: str | None = None
    bits: int | None = None

    @property
    def label(self) -> str:
        """The genotype's text, or e.g. ``"espcn (8-bit, hand-designed)"``."""
        if self.genotype is not None:
            return self.genotype.to_text()
        return f"{self.baseline} ({self.bits}-bit, hand-designed)"

    @property
    def min_lr_side(self) -> int:
        """The smallest LR side the network accepts (its space's; 2 for a baseline)."""
        if self.genotype is None:
            return 2
        from quantnas.space.catalog import get_space

        return get_space(self.arch.space).min_lr_side


def run_checkpoint(run_dir: str | Path) -> Path | None:
    """The trained checkpoint of a run directory, or None if it has none (a search, whose
    ``checkpoint.pt`` holds a supernet).
    """
    d = Path(run_dir)
    for name in RUN_DIR_CHECKPOINTS:
        path = d / name
        if os.path.isfile(path) and (
            path.name == BEST or load_checkpoint(path).get("kind") != KIND_SEARCH
        ):
            return path
    return None


def find_checkpoint(source: str | Path) -> Path:
    """The trained checkpoint of a run directory (or the file itself).

    Raises:
        QuantNASError: If ``source`` does not exist or a directory holds no checkpoint.

    """
    src = Path(source)
    if os.path.isdir(src):
        found = run_checkpoint(src)
        if found is None:
            raise QuantNASError(
                f"{src}: no trained network in this run directory (looked for "
                f"{', '.join(RUN_DIR_CHECKPOINTS)})"
            )
        return found
    if not os.path.isfile(src):
        raise QuantNASError(f"{src}: no such run directory, checkpoint or .onnx file")
    return src


def is_trained_source(source: str | Path) -> bool:
    """True for a run directory or a ``.pt`` file (they bring their own structure); False
    for anything else (a genotype file, builtin name or text, however long).
    """
    src = Path(source)
    return os.path.isdir(src) or (src.suffix == ".pt" and os.path.isfile(src))


def _baseline_spec(ck: dict, path: Path) -> tuple[str, int] | None:
    """``(name, bits)`` of a baseline checkpoint (``net_spec``), None for a genotype's."""
    spec = ck.get("net_spec")
    if ck.get("genotype") is not None or not isinstance(spec, dict) or "baseline" not in spec:
        return None
    name, bits = spec.get("baseline"), spec.get("bits")
    if not isinstance(name, str) or isinstance(bits, bool) or not isinstance(bits, int):
        raise QuantNASError(
            f"checkpoint {path}: its net_spec {spec!r} is malformed; expected "
            "{'baseline': NAME, 'bits': N}"
        )
    return name, bits


def no_genotype(path: str | Path, name: str) -> QuantNASError:
    """The error for a genotype asked of a hand-designed network."""
    return QuantNASError(f"{path} is a hand-designed network ({name}), it has no genotype")


def genotype_of(source: str | Path | Genotype) -> Genotype:
    """The genotype of a run directory, a trained checkpoint (``.pt``) or
    :func:`quantnas.space.genotype.resolve`'s inputs (a genotype, a file, builtin name or text).

    Raises:
        QuantNASError: No genotype there (a hand-designed network has none), or a bad file.

    """
    if isinstance(source, Genotype):
        return source
    src = Path(source)
    if os.path.isdir(src):
        found = next((src / n for n in RUN_GENOTYPES if (src / n).exists()), None)
        found = found or run_checkpoint(src)  # a baseline's training has no genotype file
        if found is None:
            raise QuantNASError(
                f"{source}: no best_arch.json, genotype.json or trained checkpoint in this "
                "run directory"
            )
        src = found
    elif src.suffix != ".pt":
        return gt.resolve(str(source))
    if src.suffix != ".pt":
        return gt.resolve(str(src))
    ck = load_checkpoint(src)
    spec = _baseline_spec(ck, src)
    if spec is not None:
        raise no_genotype(src, spec[0])
    if ck.get("genotype") is not None:
        return gt.from_dict(ck["genotype"], source=str(src))
    if ck.get("kind") == KIND_SEARCH:
        raise QuantNASError(f"{src}: export a search from its run directory (best_arch.json)")
    raise QuantNASError(f"{src}: checkpoint holds no genotype")


def run_arch(run_dir: str | Path) -> ArchConfig:
    """The final network's structure of a run directory (``arch`` of its ``config.yaml``).

    Raises:
        QuantNASError: No readable ``config.yaml`` with an ``arch`` section.

    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise QuantNASError(f"{run_dir}: no config.yaml in this run directory")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise QuantNASError(f"{path}: not UTF-8 text") from None
    if not isinstance(data, dict) or not isinstance(data.get("arch"), dict):
        raise QuantNASError(f"{path}: no 'arch' section (expected a quantnas run config)")
    return merge(ArchConfig(), data["arch"], prefix="arch.", source=str(path))


def load_trained(source: str | Path, device: str | torch.device = "cpu") -> Trained:
    """Rebuild the trained network of a run directory or a ``best.pt`` / ``checkpoint.pt``
    (of a searched, random, uniform or hand-designed network).

    Raises:
        QuantNASError: No trained network there, or one that does not match its weights.

    """
    from quantnas.space.build import build_network, set_quantized

    path = find_checkpoint(source)
    ck = load_checkpoint(path)
    if ck.get("kind") not in (KIND_MODEL, KIND_TRAIN):
        raise QuantNASError(f"checkpoint {path} holds no trained network (kind={ck.get('kind')!r})")
    require_keys(ck, ("genotype", "arch", "model"), path=path, what="a trained network")
    arch = merge(ArchConfig(), ck["arch"], source=str(path))
    spec = _baseline_spec(ck, path)
    if spec is None:
        geno = gt.from_dict(ck["genotype"], source=str(path))
        build: Callable[[], nn.Module] = lambda: build_network(geno, arch)  # noqa: E731
        what = "the network rebuilt from its genotype"
    else:
        from quantnas.space.baselines import build_baseline

        geno = None
        name, bits = spec
        build = lambda: build_baseline(name, arch, bits)  # noqa: E731
        what = f"the {name} baseline rebuilt from its net_spec"
    _check_shapes(build, arch, ck["model"], path)
    net = build()
    set_quantized(net, bool(ck.get("quantized", True)))
    load_state(net, ck["model"], path=path, what=what)
    name, bits = spec if spec is not None else (None, None)
    return Trained(net.to(device).eval(), geno, arch, path, name, bits)


def load_model(
    source: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, Genotype | None, ArchConfig]:
    """``(network, genotype or None for a baseline, arch)`` of :func:`load_trained`."""
    t = load_trained(source, device)
    return t.net, t.genotype, t.arch


def _check_shapes(
    build: Callable[[], nn.Module], arch: ArchConfig, state: object, path: str | Path
) -> None:
    """Compare the network a checkpoint describes with its weights, allocating nothing.

    The network is built on PyTorch's ``meta`` device, so an ``arch`` claiming, say,
    100000 channels is refused instead of allocating terabytes; weights whose shapes do
    match such a claim (zero-stride views, a few bytes on disk) are refused when the
    network would not fit in memory (:func:`quantnas.space.footprint.check_weights_budget`).
    """
    from quantnas.space.footprint import check_weights_budget

    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except QuantNASError:
        raise
    except Exception as e:  # noqa: BLE001 - a bad arch makes layer constructors raise anything
        raise QuantNASError(
            f"checkpoint {path}: its arch {asdict(arch)} is invalid ({e})"
        ) from None
    if not isinstance(state, dict):
        raise QuantNASError(f"checkpoint {path}: 'model' is not a state dict")
    have = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    for key, shape in want.items():
        if have.get(key) != shape:
            raise QuantNASError(
                f"checkpoint {path} does not match the network it describes "
                f"({key}: expected shape {shape}, found {have.get(key)})"
            )
    check_weights_budget(want, arch, path)  # e.g. zero-stride weights claiming huge shapes
