"""mkdocs hook: add the generated reference pages (quantnas.cli.reference.pages) and the
changelog to the site at build time, so that nothing generated is committed.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

from quantnas.cli.reference import pages

ROOT = Path(__file__).resolve().parents[2]


def on_files(files: Files, config) -> Files:
    """Append every generated page (and CHANGELOG.md as changelog.md) to the site's files."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").replace("](docs/", "](")
    for path, text in {**pages(), "changelog.md": changelog}.items():
        files.append(File.generated(config, path, content=text))
    return files
