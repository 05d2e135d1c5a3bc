"""Shell completion for ``quantnas``, generated from the argument parser (no extra package).

:func:`completion_script` walks the parser: the verbs, each verb's options, the choices of
an option or positional (``export --format``, ``list KIND``), the presets after
``--preset`` and the config keys (``key=``) where a verb takes overrides. ``zsh`` runs the
bash function through ``bashcompinit``. Install::

    quantnas completion bash > ~/.local/share/bash-completion/completions/quantnas
    quantnas completion zsh > ~/.zfunc/quantnas.zsh   # source it from ~/.zshrc
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import fields, is_dataclass

__all__ = ["SHELLS", "completion_script", "config_keys"]

#: The shells :func:`completion_script` writes for.
SHELLS = ("bash", "zsh")


def config_keys(node: object | None = None, prefix: str = "") -> list[str]:
    """Every dotted key of the config (``search.optim.lr``, ...), in declaration order."""
    from quantnas.config.types import Config

    node = Config() if node is None else node
    keys: list[str] = []
    for f in fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if is_dataclass(value):
            keys += config_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(items) -> str:
    return shlex.quote(" ".join(items))


def _verb_case(name: str, p: argparse.ArgumentParser, presets: list[str]) -> list[str]:
    """The bash ``case`` arm of one verb: its options, option choices and positionals."""
    opts = [s for a in p._actions for s in a.option_strings]
    lines = [f"    {name})", f"      opts={_words(opts)}"]
    positional = [a for a in p._actions if not a.option_strings]
    for a in p._actions:
        if not a.option_strings or a.nargs == 0:
            continue
        values = a.choices if a.choices is not None else presets if a.dest == "preset" else None
        if values is not None:
            pattern = "|".join(a.option_strings)
            lines.append(
                f'      case "$prev" in {pattern}) '
                f'COMPREPLY=($(compgen -W {_words(values)} -- "$cur")); return;; esac'
            )
    choices = [c for a in positional if a.choices for c in a.choices]
    takes_keys = any(a.dest == "overrides" for a in positional)
    lines.append(f"      words={_words(choices)}; keys={1 if takes_keys else 0}")
    lines.append("      ;;")
    return lines


def completion_script(parser: argparse.ArgumentParser, shell: str = "bash") -> str:
    """A completion script for ``shell`` (``bash`` or ``zsh``) of the ``quantnas`` parser.

    Raises:
        ValueError: ``shell`` is not one of :data:`SHELLS`.

    """
    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r}; expected one of {list(SHELLS)}")
    from quantnas.config.io import presets

    verbs = _subparsers(parser)
    top = [s for a in parser._actions for s in a.option_strings]
    keys = [f"{k}=" for k in config_keys()]
    out = [
        "# quantnas completion (generated from the parser by `quantnas completion`)",
        *(["autoload -U +X bashcompinit && bashcompinit"] if shell == "zsh" else []),
        "_quantnas() {",
        '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '  local verb="" opts="" words="" keys=0 w',
        '  for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do',
        '    case "$w" in -*) ;; *) verb="$w"; break;; esac',
        "  done",
        '  case "$verb" in',
        f'    "") COMPREPLY=($(compgen -W {_words([*top, *verbs])} -- "$cur")); return;;',
    ]
    for name, sub in verbs.items():
        out += _verb_case(name, sub, presets())
    out += [
        "  esac",
        '  if [[ "$cur" == -* ]]; then',
        '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        '  elif [[ -n "$words" ]]; then',
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        '  elif [[ $keys == 1 && "$cur" != */* && "$cur" != *=* ]]; then',
        f'    COMPREPLY=($(compgen -W {_words(keys)} -- "$cur"))',
        "    [[ ${#COMPREPLY[@]} -gt 0 ]] && compopt -o nospace 2>/dev/null",
        "  fi",
        '  [[ ${#COMPREPLY[@]} -gt 0 ]] || COMPREPLY=($(compgen -f -- "$cur"))',
        "}",
        "complete -o filenames -F _quantnas quantnas",
        "",
    ]
    return "\n".join(out)
