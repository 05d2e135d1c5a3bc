"""What quantnas offers by name: the ``list`` verb (timm's ``list_models``) and the
``completion`` verb (a shell completion script generated from the parser).

Every kind :func:`kinds` names is read from its registry (or, for presets, from the
package's ``configs`` folder) when asked, so ``quantnas list presets`` imports no network
code and ``quantnas list runtimes`` imports no runtime (onnxruntime, OpenVINO, Ray stay
optional).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import sys
from collections.abc import Callable

from quantnas.registry import Registry

__all__ = ["KINDS", "add_verbs", "cmd_completion", "cmd_list", "describe", "entries", "kinds"]

#: ``kind -> (module, registry attribute)`` of what ``quantnas list KIND`` lists, in the
#: order ``quantnas list`` shows them; ``presets`` is read from the package's configs.
KINDS: dict[str, tuple[str, str]] = {
    "presets": ("quantnas.config.io", ""),
    "ops": ("quantnas.space.ops", "OPS"),
    "spaces": ("quantnas.space.catalog", "SPACES"),
    "baselines": ("quantnas.space.baselines", "BASELINES"),
    "runtimes": ("quantnas.deploy.onnx_runtimes", "RUNTIMES"),
    "losses": ("quantnas.training.optim", "LOSSES"),
    "engines": ("quantnas.engines", "ENGINES"),
    "methods": ("quantnas.sweep.trials", "METHOD_GROUPS"),
    "skips": ("quantnas.models.blocks", "GLOBAL_SKIPS"),
    "cells": ("quantnas.models.basic", "CELL_TYPES"),
    "input-quants": ("quantnas.space.build", "INPUT_QUANTS"),
    "modes": ("quantnas.quant.mixed", "MIX_MODES"),
    "noise-mixes": ("quantnas.quant.mixed", "NOISE_MIXES"),
    "noises": ("quantnas.quant.noise", "NOISE_KINDS"),
    "noise-sources": ("quantnas.quant.noise", "NOISE_SOURCES"),
    "transforms": ("quantnas.search.supernet", "TRANSFORMS"),
    "sparse-types": ("quantnas.search.losses", "SPARSE_TYPES"),
    "sparse-ramps": ("quantnas.search.losses", "SPARSE_RAMPS"),
    "penalty-costs": ("quantnas.space.cost", "PENALTY_COSTS"),
    "splits": ("quantnas.search.splits", "SPLITS"),
    "selectors": ("quantnas.search.constraint", "SELECTORS"),
    "weight-samplings": ("quantnas.search.constraint", "WEIGHT_SAMPLINGS"),
}


def kinds() -> tuple[str, ...]:
    """The kinds ``quantnas list`` knows, in its order."""
    return tuple(KINDS)


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (not ``presets``), imported on demand."""
    module, attr = KINDS[kind]
    return getattr(importlib.import_module(module), attr)


def _first_line(text: str | None) -> str:
    """The first paragraph of a docstring or comment, on one line ('' when none)."""
    para: list[str] = []
    for line in (text or "").strip().splitlines():
        line = line.strip().lstrip("#").strip()
        if not line:
            break
        para.append(line)
    return " ".join(para)


def describe(obj: object) -> str:
    """One line about a registered object: a vocabulary's own text, a runtime's module and
    pip extra, a space's or function's first docstring line ('' when there is none).
    """
    if isinstance(obj, str):
        return obj
    if hasattr(obj, "onnx_runner"):  # a deploy Runtime
        module = getattr(obj, "module", None)
        if module is None:
            return "PyTorch (run directories and checkpoints)"
        return f"needs {module} (pip extra: {getattr(obj, 'extra', '')})"
    return _first_line(inspect.getdoc(obj) if callable(obj) else type(obj).__doc__)


def kind_line(kind: str) -> str:
    """What ``kind`` holds and the key or option that names one (``search space
    (arch.space)``).
    """
    if kind == "presets":
        return "preset (--preset)"
    reg = registry(kind)
    return f"{reg.kind} ({reg.key})" if reg.key else reg.kind


def _preset_line(name: str) -> str:
    from quantnas.config.io import preset_text

    head = []
    for line in preset_text(name).splitlines():
        if not line.startswith("#"):
            break
        head.append(line.lstrip("#").strip())
    text = " ".join(head)
    return text.split(": ", 1)[0] if ": " in text[:120] else text.split(". ", 1)[0]


def entries(kind: str) -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every entry of ``kind``, in registry order.

    Raises:
        QuantNASError: ``kind`` is not one of :func:`kinds` (naming them).

    """
    kinds_reg = Registry.of("kind", dict.fromkeys(KINDS, ""), key="quantnas list")
    kinds_reg.check(kind)
    if kind == "presets":
        from quantnas.config.io import presets

        return [(name, _preset_line(name)) for name in presets()]
    return [(name, describe(obj)) for name, obj in registry(kind).items()]


def cmd_list(args: argparse.Namespace) -> int:
    """``quantnas list KIND``: one name per line with its description (or ``--json``)."""
    if args.kind is None:
        rows = [(k, kind_line(k)) for k in KINDS]
    else:
        rows = entries(args.kind)
    if args.json:
        sys.stdout.write(json.dumps(dict(rows), indent=2) + "\n")
        return 0
    width = max((len(name) for name, _ in rows), default=0)
    for name, text in rows:
        sys.stdout.write(f"{name:<{width}}  {text}".rstrip() + "\n")
    return 0


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``quantnas completion bash|zsh``: print the completion script of ``parser``."""
    from quantnas.cli.completion import completion_script

    sys.stdout.write(completion_script(parser, args.shell))
    return 0


def add_verbs(
    sub: argparse._SubParsersAction,
    verb: Callable[..., argparse.ArgumentParser],
    root: argparse.ArgumentParser,
) -> None:
    """Add the ``list`` and ``completion`` verbs to ``root``'s verbs ``sub`` (``verb(sub,
    name)`` makes a subparser; ``completion`` walks ``root``).
    """
    from quantnas.cli.completion import SHELLS

    s = verb(sub, "list")
    s.add_argument("kind", nargs="?", choices=kinds(), help="what to list (default: the kinds)")
    s.add_argument("--json", action="store_true", help="print one JSON object {name: text}")
    s.set_defaults(func=cmd_list)

    s = verb(sub, "completion")
    s.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    s.set_defaults(func=functools.partial(cmd_completion, parser=root))
