"""Genotypes: the architecture a search exports, one (operation, bit-width) per layer.

Stored as versioned JSON::

    {"format": "quantnas-genotype", "version": 1, "space": "basic",
     "blocks": {"head": [{"op": "simple_3x3", "bits": 8}, ...], "body": [...], ...}}

The research code's text form is also read, without ``eval``::

    Genotype_SR(head=[('simple_5x5_grouped_3', 8), ('simple_3x3', 8)], body=[...],
                tail=[], skip=[...], upsample=[...])
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from quantnas.errors import QuantNASError, read_user_text, shown
from quantnas.quant.quantizers import check_bits
from quantnas.space.ops import check_op

BLOCKS: tuple[str, ...] = ("head", "body", "skip", "upsample", "tail")
FORMAT = "quantnas-genotype"
VERSION = 1
#: What a search space's name may be: a genotype stores any such name; whether a space of
#: that name is registered is asked where the genotype meets a space
#: (:func:`quantnas.space.build.check_genotype`, against the registry of
#: :mod:`quantnas.space.catalog`, spaces registered from outside the package included).
SPACE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
#: Most layers one block may hold (searched genotypes have a handful; a genotype file with
#: hundreds of thousands would build a network for minutes and exhaust memory).
MAX_LAYERS = 256


@dataclass(frozen=True)
class LayerChoice:
    """The operation and bit-width chosen for one layer."""

    op: str
    bits: int

    def __str__(self) -> str:
        return f"{self.op}@{self.bits}b"


@dataclass(frozen=True)
class Genotype:
    """An architecture: for each block, the list of layer choices in order.

    Attributes:
        blocks: ``{block: (LayerChoice, ...)}`` for every block in :data:`BLOCKS`.
        space: The name of the search space the genotype belongs to (``basic``, ``rfdn``
            or a space registered with :func:`quantnas.space.catalog.register_space`).

    """

    blocks: Mapping[str, tuple[LayerChoice, ...]]
    space: str = "basic"

    def __post_init__(self) -> None:
        check_space_name(self.space, where="genotype space")
        unknown = set(self.blocks) - set(BLOCKS)
        if unknown:
            raise QuantNASError(
                f"genotype: unknown block(s) {sorted(unknown)}; expected {list(BLOCKS)}"
            )
        full = {b: tuple(self.blocks.get(b, ())) for b in BLOCKS}
        object.__setattr__(self, "blocks", full)
        for block, layers in full.items():
            if len(layers) > MAX_LAYERS:
                raise QuantNASError(
                    f"genotype {block}: {len(layers)} layers; expected at most {MAX_LAYERS}"
                )
            for i, layer in enumerate(layers):
                check_op(layer.op, where=f"genotype {block}[{i}]")
                check_bits(layer.bits, where=f"genotype {block}[{i}] bits")

    @classmethod
    def from_pairs(
        cls, blocks: Mapping[str, Sequence[tuple[str, int]]], *, space: str = "basic"
    ) -> Genotype:
        """Build from ``{block: [(op, bits), ...]}``."""
        return cls(
            {
                b: tuple(LayerChoice(str(op), int(bits)) for op, bits in layers)
                for b, layers in blocks.items()
            },
            space=space,
        )

    def pairs(self) -> dict[str, list[tuple[str, int]]]:
        """``{block: [(op, bits), ...]}``."""
        return {b: [(c.op, c.bits) for c in layers] for b, layers in self.blocks.items()}

    def at_bits(self, bits: int) -> Genotype:
        """The same operations with every layer at ``bits`` (a uniform-precision copy)."""
        return Genotype(
            {b: tuple(LayerChoice(c.op, bits) for c in ls) for b, ls in self.blocks.items()},
            space=self.space,
        )

    def counts(self) -> dict[str, int]:
        """Number of layers per block."""
        return {b: len(layers) for b, layers in self.blocks.items()}

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "space": self.space,
            "blocks": {
                b: [{"op": c.op, "bits": c.bits} for c in layers]
                for b, layers in self.blocks.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_text(self) -> str:
        """The research code's ``Genotype_SR(...)`` form."""
        parts = [f"{b}={[(c.op, c.bits) for c in self.blocks[b]]!r}" for b in BLOCKS]
        if self.space != "basic":
            parts.append(f"space={self.space!r}")
        return f"Genotype_SR({', '.join(parts)})"

    def __str__(self) -> str:
        return self.to_text()


def check_space_name(name: object, *, where: str) -> None:
    """Raise a one-line error naming ``where`` if ``name`` cannot name a search space."""
    if not isinstance(name, str) or not SPACE_NAME.fullmatch(name):
        raise QuantNASError(
            f"{where} {shown(name)} is not a space name (1-64 letters, digits, '_', '.', '-')"
        )


def from_dict(data: object, *, source: str = "genotype") -> Genotype:
    """Parse the JSON form (already decoded)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise QuantNASError(f"{source}: not a quantnas genotype (missing format={FORMAT!r})")
    version = data.get("version")
    if version != VERSION:
        raise QuantNASError(
            f"{source}: genotype version {version!r} unsupported; expected {VERSION}"
        )
    blocks = data.get("blocks")
    if not isinstance(blocks, dict):
        raise QuantNASError(f"{source}: 'blocks' must be a mapping of block -> list of layers")
    parsed: dict[str, tuple[LayerChoice, ...]] = {}
    for block, layers in blocks.items():
        if not isinstance(layers, list):
            raise QuantNASError(f"{source}: blocks.{block} must be a list")
        out = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict) or set(layer) != {"op", "bits"}:
                raise QuantNASError(
                    f'{source}: blocks.{block}[{i}] must be {{"op": name, "bits": int}}'
                )
            out.append(LayerChoice(str(layer["op"]), layer["bits"]))
        parsed[block] = tuple(out)
    return _checked(parsed, space=data.get("space", "basic"), source=source)


def _checked(blocks: dict, *, space: str, source: str) -> Genotype:
    try:
        return Genotype(blocks, space=space)
    except QuantNASError as e:
        raise QuantNASError(f"{source}: {e}") from None


def parse_text(text: str, *, source: str = "genotype", space: str = "basic") -> Genotype:
    """Parse ``Genotype_SR(head=[('op', bits), ...], ...)`` without evaluating it."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise QuantNASError(f"{source}: malformed Genotype_SR text ({e.msg})") from None
    call = tree.body
    if (
        not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id in ("Genotype_SR", "Genotype")
        )
        or call.args
    ):
        raise QuantNASError(f"{source}: expected Genotype_SR(head=[...], body=[...], ...)")
    blocks: dict[str, tuple[LayerChoice, ...]] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise QuantNASError(f"{source}: '**' is not allowed in Genotype_SR")
        if kw.arg == "space":
            if not isinstance(kw.value, ast.Constant):
                raise QuantNASError(f"{source}: space= must be a string")
            check_space_name(kw.value.value, where=f"{source}: space=")
            space = kw.value.value
            continue
        try:
            value = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise QuantNASError(f"{source}: {kw.arg}= must be a literal list") from None
        if not isinstance(value, (list, tuple)):
            raise QuantNASError(f"{source}: {kw.arg}= must be a list of (op, bits)")
        layers = []
        for i, item in enumerate(value):
            if (
                not isinstance(item, (list, tuple))
                or len(item) != 2
                or not isinstance(item[0], str)
                or not isinstance(item[1], int)
            ):
                raise QuantNASError(f"{source}: {kw.arg}[{i}] must be ('op', bits), got {item!r}")
            layers.append(LayerChoice(item[0], item[1]))
        blocks[kw.arg] = tuple(layers)
    return _checked(blocks, space=space, source=source)


def loads(text: str, *, source: str = "genotype") -> Genotype:
    """Parse a genotype from JSON or ``Genotype_SR(...)`` text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise QuantNASError(f"{source}: invalid JSON ({e.msg}, line {e.lineno})") from None
        except RecursionError:
            raise QuantNASError(f"{source}: invalid JSON (nested too deeply)") from None
        return from_dict(data, source=source)
    return parse_text(stripped, source=source)


def load(path: str | Path) -> Genotype:
    """Load a genotype file (JSON or ``Genotype_SR`` text)."""
    p = Path(path)
    if not p.is_file():
        raise QuantNASError(f"genotype file {p} does not exist")
    return loads(read_user_text(p, "genotype file"), source=str(p))


def save(genotype: Genotype, path: str | Path) -> Path:
    """Write the JSON form atomically."""
    from quantnas.rundir.files import atomic_write_text

    return atomic_write_text(Path(path), genotype.to_json())


def resolve(spec: str | Path | Genotype) -> Genotype:
    """Accept a Genotype, a path, a builtin name (``default``, ``paper-example``) or text."""
    if isinstance(spec, Genotype):
        return spec
    s = str(spec)
    if s in BUILTIN:
        return BUILTIN[s]
    if s.lstrip().startswith(("{", "Genotype")):
        return loads(s)
    return load(s)


#: The example genotype printed in the paper / original repository.
PAPER_EXAMPLE = parse_text(
    "Genotype_SR(head=[('simple_5x5_grouped_3', 8), ('simple_3x3', 8)], "
    "body=[('simple_1x1_grouped_3', 2), ('simple_1x1', 2)], tail=[], "
    "skip=[('decenc_3x3_2', 2)], upsample=[('simple_3x3_grouped_3', 8)])",
    source="PAPER_EXAMPLE",
)

#: A small 8-bit network used as the default for ``quantnas train``.
DEFAULT = Genotype.from_pairs(
    {
        "head": [("simple_3x3", 8), ("simple_3x3", 8)],
        "body": [("simple_3x3", 8), ("simple_3x3", 8)],
        "skip": [("simple_1x1", 8)],
        "upsample": [("simple_3x3", 8)],
        "tail": [],
    }
)

BUILTIN: dict[str, Genotype] = {"default": DEFAULT, "paper-example": PAPER_EXAMPLE}
