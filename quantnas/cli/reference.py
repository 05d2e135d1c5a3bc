"""The reference pages of the documentation, generated from the code so that they cannot
drift: every verb's ``--help`` (from the parser), every config key with its type, default,
allowed values and description (from the config dataclasses and the registries), the
presets, and every registry's entries.

``docs/hooks/reference.py`` adds :func:`pages` to the mkdocs site at build time; nothing
generated is committed. ``tests/test_docs.py`` checks that every key of ``quantnas config``,
every verb and every registered name appears.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from typing import Annotated, Any

__all__ = [
    "KeyDoc",
    "cli_reference",
    "config_reference",
    "key_docs",
    "pages",
    "presets_reference",
    "registries_reference",
]

#: Terminal width the ``--help`` texts are rendered at.
HELP_COLUMNS = 96
#: Choices listed in the config table; longer registries link to their section.
MAX_INLINE_CHOICES = 8


@dataclass(frozen=True)
class KeyDoc:
    """One config key of the reference.

    Attributes:
        key: The dotted key (``search.optim.lr``).
        type: Its type as written in YAML terms (``float > 0``, ``int | null``).
        default: The library default as YAML/JSON text.
        choices: The allowed names (empty when any value of the type is allowed).
        choices_from: Where the choices come from (``quantnas list ops``), if a registry.
        doc: Its description from the dataclass (``Attributes:`` or a ``#:`` comment).

    """

    key: str
    type: str
    default: str
    choices: tuple[str, ...]
    choices_from: str
    doc: str


@contextlib.contextmanager
def _columns(n: int) -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _md(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def cli_reference() -> str:
    """The CLI reference: ``quantnas --help`` and every verb's ``--help``."""
    import argparse

    from quantnas.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    with _columns(HELP_COLUMNS):
        out = [
            "# Command line",
            "",
            "Generated from the argument parser (`quantnas/cli/parser.py`) when the site is "
            "built. Shell completion: `quantnas completion bash` (or `zsh`).",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        for name, p in sub.choices.items():
            out += ["", f"## quantnas {name}", "", "```text", p.format_help().rstrip(), "```"]
    return "\n".join(out) + "\n"


def _type_name(tp: Any) -> str:
    from quantnas.config.fields import POSITIVE_MARK

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        base = _type_name(args[0])
        return f"{base} > 0" if POSITIVE_MARK in tp.__metadata__ else base
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return tp.__name__ if isinstance(tp, type) else str(tp)


def _field_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of ``cls``'s docstring and
    the ``#:`` comments above its fields.
    """
    docs: dict[str, str] = {}
    current, in_section = None, False
    for line in (inspect.getdoc(cls) or "").splitlines():
        if line.strip() == "Attributes:":
            in_section = True
        elif in_section and line and not line.startswith(" "):
            in_section = False
        elif in_section and (m := re.match(r"^    (\w+): (.*)$", line)):
            current = m[1]
            docs[current] = m[2]
        elif in_section and current and line.startswith("        "):
            docs[current] += " " + line.strip()
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        if pending and (m := re.match(r"^\s+(\w+)\s*:", line)):
            docs.setdefault(m[1], " ".join(pending))
        pending = []
    return docs


def _choices() -> dict[str, tuple[str, object]]:
    """``{key: (source, registry or names)}`` of the keys whose values are names."""
    from quantnas.cli.listing import KINDS, registry
    from quantnas.pipeline.resolve import choices
    from quantnas.quant.quantizers import SUPPORTED_BITS
    from quantnas.space.baselines import BASELINES
    from quantnas.space.genotype import BLOCKS
    from quantnas.space.ops import OPS
    from quantnas.sweep.trials import METHOD_GROUPS

    kind_of = {id(registry(k)): k for k, (_, attr) in KINDS.items() if attr}
    out: dict[str, tuple[str, object]] = {}
    regs = {**choices(), "arch.primitives": OPS, "sweep.baselines": BASELINES}
    regs["sweep.methods"] = METHOD_GROUPS
    for key, reg in regs.items():
        kind = kind_of.get(id(reg))
        out[key] = (f"quantnas list {kind}" if kind else "", reg)
    for key in ("arch.bits", "sweep.baseline_bits", "sweep.uniform_bits"):
        out[key] = ("", tuple(str(b) for b in SUPPORTED_BITS))
    out["arch.arch_pattern"] = ("", BLOCKS)
    return out


def key_docs() -> list[KeyDoc]:
    """Every key of the config, in the order ``quantnas config`` prints them."""
    from quantnas.config.types import Config

    choice_of = _choices()
    out: list[KeyDoc] = []

    def walk(obj: Any, prefix: str) -> None:
        cls = type(obj)
        hints = typing.get_type_hints(cls, include_extras=True)
        docs = _field_docs(cls)
        for f in fields(obj):
            value, key = getattr(obj, f.name), f"{prefix}{f.name}"
            if is_dataclass(value):
                walk(value, f"{key}.")
                continue
            source, names = choice_of.get(key, ("", ()))
            out.append(
                KeyDoc(
                    key=key,
                    type=_type_name(hints[f.name]),
                    default=json.dumps(value),
                    choices=tuple(names),  # a Registry iterates over its names
                    choices_from=source,
                    doc=docs.get(f.name, ""),
                )
            )

    walk(Config(), "")
    return out


def config_reference() -> str:
    """The config reference: one table per section, the renamed keys."""
    from quantnas.config.compat import NULL_SENTINELS, RENAMED

    out = [
        "# Config keys",
        "",
        "Generated from the config dataclasses (`quantnas/config/types.py`, "
        "`quantnas/config/fields.py`) and the registries when the site is built. Defaults are "
        "the library's; a preset changes some of them (see [presets](presets.md)); "
        "`quantnas config --preset NAME` prints a resolved config. Every number must be finite "
        "and >= 0, and a type marked `> 0` must be positive. Names registered from your own "
        "code are accepted wherever a registry's names are (see [registries](registries.md)).",
    ]
    section = None
    for k in key_docs():
        top = k.key.split(".")[0] if "." in k.key else "(top level)"
        if top != section:
            section = top
            out += ["", f"## {section}", "", "| key | type | default | allowed | description |"]
            out.append("|---|---|---|---|---|")
        if len(k.choices) > MAX_INLINE_CHOICES and k.choices_from:
            kind = k.choices_from.split()[-1]
            allowed = f"{len(k.choices)} names: [`{k.choices_from}`](registries.md#{kind})"
        else:
            allowed = ", ".join(f"`{c}`" for c in k.choices)
            if k.choices_from:
                allowed += f" (`{k.choices_from}`)"
        cells = [f"`{k.key}`", f"`{k.type}`", f"`{k.default}`", allowed, k.doc]
        out.append("| " + " | ".join(_md(c) for c in cells) + " |")
    out += ["", "## Renamed keys", "", "Old keys still read (with a deprecation warning):", ""]
    out += ["| old key | new key |", "|---|---|"]
    out += [f"| `{old}` | `{new}` |" for old, new in RENAMED.items()]
    out += [f"| `{key}: 0` | `{key}: null` (= `{same}`) |" for key, same in NULL_SENTINELS.items()]
    return "\n".join(out) + "\n"


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and f"{prefix}{k}" not in ("arch.arch_pattern", "arch.primitives"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def presets_reference() -> str:
    """The presets: each one's header comment and the keys it sets differently."""
    from quantnas.config.io import DEFAULT_PRESET, preset_text, presets
    from quantnas.pipeline.resolve import Config, load_config, to_dict

    base = _flat(to_dict(Config()))
    out = [
        "# Presets",
        "",
        f"Generated from `quantnas/config/presets/*.yaml`. Without `--preset` the CLI and "
        f"`api.load_config()` use `{DEFAULT_PRESET}`. Each table lists the keys whose value "
        "differs from the library default ([config keys](config.md)).",
    ]
    for name in presets():
        head = [ln[1:].strip() for ln in preset_text(name).splitlines() if ln.startswith("#")]
        resolved = _flat(to_dict(load_config(preset=name)))
        out += ["", f"## {name}", "", " ".join(head), "", "| key | value | library default |"]
        out.append("|---|---|---|")
        for key, value in resolved.items():
            if value != base.get(key):
                row = [f"`{key}`", f"`{json.dumps(value)}`", f"`{json.dumps(base.get(key))}`"]
                out.append("| " + " | ".join(_md(c) for c in row) + " |")
    return "\n".join(out) + "\n"


def registries_reference() -> str:
    """Every registry (``quantnas list KIND``) with its names and their descriptions."""
    from quantnas.cli.listing import KINDS, entries, kind_line

    out = [
        "# Registries",
        "",
        "Generated from the registries when the site is built; `quantnas list KIND` prints "
        "the same (with names registered by your own code). See "
        "[extending quantnas](../guide/extending.md).",
    ]
    for kind, (module, attr) in KINDS.items():
        where = f"`{module}.{attr}`" if attr else "`quantnas/config/presets/*.yaml`"
        out += ["", f"## {kind}", "", f"{kind_line(kind)}: {where}", "", "| name | description |"]
        out.append("|---|---|")
        out += [f"| `{n}` | {_md(text)} |" for n, text in entries(kind)]
    try:  # the ONNX formats' module needs the onnx extra
        from quantnas.deploy.export import FORMATS
    except ImportError:
        return "\n".join(out) + "\n"
    out += ["", "## formats", "", "ONNX format (--format): `quantnas.deploy.export.FORMATS`"]
    out += ["", "| name | description |", "|---|---|"]
    quantized = {True: "convs quantized (QDQ)", False: "every conv at full precision"}
    out += [f"| `{n}` | {quantized[bool(q)]} |" for n, q in FORMATS.items()]
    return "\n".join(out) + "\n"


def pages() -> dict[str, str]:
    """``{path under docs/: Markdown}`` of every generated page."""
    return {
        "reference/cli.md": cli_reference(),
        "reference/config.md": config_reference(),
        "reference/presets.md": presets_reference(),
        "reference/registries.md": registries_reference(),
    }
