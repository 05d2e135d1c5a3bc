"""Reading and writing the typed config: YAML (aliases capped, over-long integers kept as
text), presets shipped in ``quantnas/config/presets``, the typed merge of a mapping into the
dataclasses (keys of earlier releases read through :mod:`quantnas.config.compat`),
``key=value`` overrides and the YAML dump.

Nothing here knows the modules that own the choices of a key: checking a merged config
against them is :func:`quantnas.pipeline.resolve.validate`.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import MISSING, asdict, fields, is_dataclass
from importlib import resources
from typing import Any

import yaml

from quantnas.config.compat import canonical_key, upgrade
from quantnas.config.types import Config
from quantnas.errors import QuantNASError, shown

__all__ = [
    "DEFAULT_PRESET",
    "HugeInt",
    "MAX_YAML_VALUES",
    "YamlAliasError",
    "apply_override",
    "apply_overrides",
    "dump",
    "load_yaml",
    "merge",
    "preset_text",
    "presets",
    "to_dict",
]


class HugeInt(str):
    """The digits of a YAML integer too long for ``int()`` (Python's 4300-digit limit).

    :func:`load_yaml` keeps such a literal as text, so the key it belongs to is named in
    the error (a string key takes it as the text it is).
    """


class YamlAliasError(QuantNASError):
    """A config document whose aliases expand to too many values (or refer to themselves)."""


#: The most values (scalars, lists, mappings) a YAML document may hold once its aliases
#: are expanded.
MAX_YAML_VALUES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """Values ``node`` holds with every alias expanded, counted without expanding."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise YamlAliasError("a YAML alias refers to the value that contains it")
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(v, sizes, open_) for v in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(
            _expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value
        )
    open_.discard(key)
    sizes[key] = total
    return total


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads an over-long integer as :class:`HugeInt` and caps
    what aliases (``*name``) expand to: a document holding more than
    :data:`MAX_YAML_VALUES` values once expanded (an alias bomb: a few lines meaning
    billions of values) is refused before anything is built from it.
    """

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            size = _expanded_size(node, {}, set())
            if size > MAX_YAML_VALUES:
                raise YamlAliasError(
                    f"YAML aliases (*name) expand it to {size:,} values, more than "
                    f"{MAX_YAML_VALUES:,}; write the values out"
                )
        return node

    def construct_yaml_int(self, node: yaml.Node) -> int | HugeInt:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than int() converts
            return HugeInt(self.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` of config text; over-long integers become :class:`HugeInt`."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _too_long(value: HugeInt, key: str) -> QuantNASError:
    return QuantNASError(
        f"config key {key}: an integer of {len(value)} digits is out of range (got {value[:12]}...)"
    )


#: The preset the CLI and :func:`quantnas.api.load_config` apply when none is given (the
#: quick embedded-data job).
DEFAULT_PRESET = "default"


def presets() -> list[str]:
    """Names of the presets shipped in the package."""
    root = resources.files("quantnas") / "config" / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of the preset ``name`` (one line naming the presets when unknown)."""
    path = resources.files("quantnas") / "config" / "presets" / f"{name}.yaml"
    if not path.is_file():
        raise QuantNASError(f"preset {shown(name)} unknown; expected one of {presets()}")
    return path.read_text(encoding="utf-8")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


#: Suffixes a number may carry in a string (``2.4G`` = 2.4e9), e.g. BitOps budgets.
_SUFFIXES = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if len(options := [a for a in args if a is not type(None)]) == 1:
            return _coerce(value, options[0], key)  # X | None: X's own error
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except QuantNASError:
                continue
        raise QuantNASError(f"config key {key}: expected {tp}, got {shown(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise QuantNASError(f"config key {key}: expected true/false, got {shown(value)}")
    if isinstance(value, HugeInt) and tp is not str:
        raise _too_long(value, key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise QuantNASError(f"config key {key}: expected an integer, got {shown(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            text = value.strip()
            mult = _SUFFIXES.get(text[-1:].upper(), 1.0) if text else 1.0
            try:
                return float(text[:-1] if mult != 1.0 else text) * mult
            except ValueError:
                pass
        raise QuantNASError(f"config key {key}: expected a number, got {shown(value)}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise QuantNASError(f"config key {key}: expected a string, got {shown(value)}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise QuantNASError(f"config key {key}: expected a list, got {shown(value)}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise QuantNASError(f"config key {key}: expected a mapping, got {shown(value)}")
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    raise QuantNASError(f"config key {key}: unsupported type {tp}")


def _unknown(key: str, options: list[str]) -> QuantNASError:
    close = difflib.get_close_matches(key.split(".")[-1], options, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return QuantNASError(f"unknown config key {shown(key)}{hint}")


def _default(cls: type, name: str) -> Any:
    """The default value of field ``name`` of the dataclass ``cls`` (None if it has none)."""
    f = next(f for f in fields(cls) if f.name == name)
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


def merge(cfg: Any, data: dict, *, prefix: str = "", source: str = "config") -> Any:
    """Merge a nested mapping into a dataclass config (in place) with type checks.

    Keys of earlier releases are read as their new keys (:mod:`quantnas.config.compat`,
    a deprecation note each). A mapping given to a mapping key that is null starts from
    the key's default (``arch.arch_pattern.head=3`` after ``arch.arch_pattern: null``).
    """
    if not isinstance(data, dict):
        raise QuantNASError(f"{source}: {prefix or 'top level'} must be a mapping")
    data = upgrade(data, prefix, source)
    types_ = _field_types(type(cfg))
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in types_:
            raise _unknown(full, list(types_))
        current = getattr(cfg, key)
        if current is None and isinstance(value, dict):
            current = _default(type(cfg), key)
            if isinstance(current, dict):
                setattr(cfg, key, current)
        if is_dataclass(current):
            merge(current, value, prefix=f"{full}.", source=source)
        elif isinstance(current, dict) and isinstance(value, dict):
            current.update(_coerce(value, types_[key], full))
        else:
            setattr(cfg, key, _coerce(value, types_[key], full))
    return cfg


def _parse_override(override: str) -> tuple[str, Any]:
    """``(key, value)`` of one ``section.key=value`` override (value parsed as YAML)."""
    if "=" not in override:
        raise QuantNASError(
            f"override {shown(override)} must look like key=value, e.g. search.epochs=2"
        )
    key, raw = override.split("=", 1)
    key = key.strip()
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except YamlAliasError as e:
        raise QuantNASError(f"override {shown(key)}: {e}") from None
    except (yaml.YAMLError, RecursionError):
        value = raw
    return key, value


def apply_override(cfg: Config, override: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML)."""
    key, value = _parse_override(override)
    node: dict = {}
    cursor = node
    parts = key.split(".")
    for p in parts[:-1]:
        cursor[p] = {}
        cursor = cursor[p]
    cursor[parts[-1]] = value
    merge(cfg, node, source="override")


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` overrides in order (a later one wins).

    Raises:
        QuantNASError: A deprecated key and its new key both given, with different values.

    """
    given: dict[str, tuple[str, Any]] = {}
    for key, value in map(_parse_override, overrides):
        new = canonical_key(key)
        if new in given and given[new][0] != key and given[new][1] != value:
            old = key if new != key else given[new][0]
            raise QuantNASError(
                f"overrides {given[new][0]}={shown(given[new][1])} and {key}={shown(value)} "
                f"disagree; {old} is deprecated, give only {new}"
            )
        given[new] = (key, value)
    for o in overrides:
        apply_override(cfg, o)
    return cfg


def to_dict(cfg: Config) -> dict:
    """The config as nested plain dicts (what :func:`dump` writes)."""
    return asdict(cfg)


def dump(cfg: Config) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
