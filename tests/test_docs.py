"""The generated reference (quantnas.cli.reference) lists every config key, verb, preset and
registered name, so the docs site cannot drift from the code."""

import argparse
import re

import pytest
import yaml

from quantnas.cli import main
from quantnas.cli.listing import KINDS, entries, registry
from quantnas.cli.parser import build_parser
from quantnas.cli.reference import (
    cli_reference,
    config_reference,
    key_docs,
    pages,
    presets_reference,
    registries_reference,
)
from quantnas.config.compat import RENAMED
from quantnas.config.io import presets
from quantnas.pipeline.resolve import choices, load_config, to_dict
from quantnas.space.ops import OPS


def flat_keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        leaf = not isinstance(v, dict) or f"{prefix}{k}" in ("arch.arch_pattern", "arch.primitives")
        out += [f"{prefix}{k}"] if leaf else flat_keys(v, f"{prefix}{k}.")
    return out


def test_every_key_of_quantnas_config_is_in_the_config_reference(capsys):
    page = config_reference().split("\n## Renamed keys\n")[0]
    assert main(["config"]) == 0
    keys = flat_keys(yaml.safe_load(capsys.readouterr().out))
    assert keys == flat_keys(to_dict(load_config(preset="default"))) and len(keys) > 90
    listed = re.findall(r"^\| `([\w.]+)` \|", page, flags=re.M)
    assert listed == [k.key for k in key_docs()]
    assert set(keys) == set(listed)


def test_every_key_has_a_type_a_default_and_a_description():
    docs = {k.key: k for k in key_docs()}
    assert all(k.doc and k.type and k.default for k in docs.values())
    lr = docs["search.optim.lr"]
    assert (lr.type, lr.default) == ("float > 0", "0.001")
    assert docs["search.c_fixed"].type == "int > 0 | null"
    assert docs["arch.space"].choices == ("basic", "rfdn")
    assert docs["arch.space"].choices_from == "quantnas list spaces"
    assert "Channels of the feature maps" in docs["arch.c_fixed"].doc  # from Attributes:
    assert "dual ascent" in docs["search.dual_lr"].doc  # from a #: comment


def test_the_config_reference_shows_every_choice_of_a_registry():
    page = config_reference()
    for key, reg in choices().items():
        (row,) = [ln for ln in page.splitlines() if ln.startswith(f"| `{key}` |")]
        for name in reg:
            assert f"`{name}`" in row, (key, name)
    (ops_row,) = [ln for ln in page.splitlines() if ln.startswith("| `arch.primitives` |")]
    assert f"{len(OPS)} names" in ops_row and "registries.md#ops" in ops_row
    for old, new in RENAMED.items():
        assert f"| `{old}` | `{new}` |" in page


def test_every_verb_and_option_is_in_the_cli_reference():
    page = cli_reference()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"list", "completion", "run", "search"} <= set(sub.choices)
    for name, parser in sub.choices.items():
        assert f"\n## quantnas {name}\n" in page
        section = page.split(f"\n## quantnas {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            for option in action.option_strings:
                assert option in section, (name, option)


def test_every_registered_name_is_in_the_registries_reference():
    page = registries_reference()
    for kind in KINDS:
        assert f"\n## {kind}\n" in page
        for name, _ in entries(kind):
            assert f"| `{name}` |" in page, (kind, name)
    for kind, (_, attr) in KINDS.items():
        if attr:
            assert list(registry(kind)) == [n for n, _ in entries(kind)]


def test_a_registered_name_appears_in_the_reference(monkeypatch):
    from quantnas.training.optim import LOSSES

    LOSSES.register("l1_docs_test", lambda sr, hr: (sr - hr).abs().mean())
    try:
        assert "| `l1_docs_test` |" in registries_reference()
        (row,) = [ln for ln in config_reference().splitlines() if ln.startswith("| `train.loss` |")]
        assert "`l1_docs_test`" in row
    finally:
        LOSSES.unregister("l1_docs_test")


def test_every_preset_is_in_the_presets_reference():
    page = presets_reference()
    for name in presets():
        assert f"\n## {name}\n" in page
    default = page.split("\n## default\n", 1)[1].split("\n## ", 1)[0]
    assert "| `search.target_bitops` | `2400000000.0` | `0.0` |" in default


def test_pages_are_the_generated_reference():
    assert set(pages()) == {
        "reference/cli.md",
        "reference/config.md",
        "reference/presets.md",
        "reference/registries.md",
    }


@pytest.mark.parametrize("path", ["guide", "research"])
def test_the_moved_readme_sections_exist(path):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "docs" / path
    assert len(list(root.glob("*.md"))) >= 7


def test_the_readme_extending_example_registers_a_loss():
    from pathlib import Path

    from quantnas.training.optim import LOSSES

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Extending\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    scope: dict = {}
    try:
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
        assert scope["cfg"].train.loss == "l1_plus_mse" and "l1_plus_mse" in LOSSES
    finally:
        LOSSES.unregister("l1_plus_mse")
