"""docs/architecture.md states the same layers as the import-linter contract."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent


def contract_layers() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in data["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return layers["layers"]


def test_architecture_doc_matches_the_layers_contract():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) `([^`]+)` \|", doc, flags=re.M)
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1))
    assert [layer.replace("\\|", "|") for _, layer in rows] == contract_layers()
    assert len(rows) >= 5


def test_every_top_level_module_has_a_layer():
    named = {m.strip() for layer in contract_layers() for m in re.split(r"[|:]", layer)}
    pkg = ROOT / "quantnas"
    found = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    found |= {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    assert named == found
