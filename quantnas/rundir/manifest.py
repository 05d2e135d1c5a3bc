"""What quantnas wrote into a run directory: its manifest, ``.quantnas-manifest``.

While a command runs in a run directory (:func:`tracking`), every file quantnas writes
there is listed in the manifest before it is created: atomic writes
(:mod:`quantnas.rundir.files`, through its ``BEFORE_WRITE`` hook), the log, the metric rows,
TensorBoard's folder and saved images call :func:`record`. ``--restart`` removes exactly
what the manifest lists (:func:`remove_written`) and never a file someone else put into
the folder; a folder without a manifest has nothing quantnas knows it wrote, so nothing
there is removed. A fresh run, or one resumed from a folder with a manifest, also refuses
to overwrite a file that exists but is not listed.

The manifest is JSON, ``{"format": 1, "written": [...]}``: paths relative to the run
directory with ``/`` separators. ``a/b`` is a file; ``a/`` a folder quantnas created (it is
removed when nothing else is left in it); ``a/*`` a folder whose whole content quantnas
wrote (TensorBoard's, whose file names are chosen by TensorBoard).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from quantnas.errors import QuantNASError
from quantnas.rundir.files import BEFORE_WRITE, atomic_write_json, remove_stale_tmp
from quantnas.rundir.lock import drop_stale

__all__ = ["MANIFEST", "Manifest", "read_manifest", "record", "remove_written", "tracking"]

log = logging.getLogger(__name__)

#: The manifest file inside a run directory.
MANIFEST = ".quantnas-manifest"

_active: list[Manifest] = []


def _valid(entry: object) -> bool:
    """A manifest entry that stays inside its run directory."""
    if not isinstance(entry, str) or "\0" in entry or "\\" in entry:
        return False
    p = PurePosixPath(entry.removesuffix("*"))
    if not p.parts or "*" in str(p):
        return False
    return not p.is_absolute() and ".." not in p.parts and p.parts != (MANIFEST,)


def read_manifest(run_dir: str | Path) -> list[str] | None:
    """The entries of ``run_dir``'s manifest (None when it has none).

    Raises:
        QuantNASError: The manifest is unreadable, not the expected JSON, or lists a path
            outside the run directory.

    """
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["written"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise QuantNASError(f"{path} is corrupt ({type(e).__name__}); nothing is deleted") from None
    if not isinstance(entries, list) or not all(_valid(e) for e in entries):
        raise QuantNASError(
            f"{path} is corrupt (expected a list of paths inside {run_dir}); nothing is deleted"
        )
    return entries


class Manifest:
    """The manifest of one run directory, rewritten atomically when an entry is added.

    Args:
        run_dir: The run directory.
        strict: Refuse to list (and so to overwrite) a path that exists but is not
            listed yet.

    """

    def __init__(self, run_dir: str | Path, *, strict: bool) -> None:
        self.root = Path(os.path.abspath(run_dir))
        self.path = self.root / MANIFEST
        self.entries = set(read_manifest(self.root) or [])
        self.strict = strict

    def _listed(self, rel: str) -> bool:
        parts = rel.rstrip("/*").split("/")
        trees = ("/".join(parts[:i]) + "/*" for i in range(1, len(parts)))
        return rel in self.entries or any(t in self.entries for t in trees)

    def add(self, path: str | Path, *, kind: str = "file") -> None:
        """List ``path`` if it is in the run directory and not listed yet.

        Args:
            path: What is about to be written.
            kind: ``file``; ``folder``, a folder about to be created (an existing one is
                not listed); ``tree``, a folder whose whole content quantnas writes.

        Raises:
            QuantNASError: ``strict`` and the file or tree exists but quantnas did not
                write it.

        """
        rel = os.path.relpath(os.path.abspath(path), self.root).replace(os.sep, "/")
        if rel == "." or rel == ".." or rel.startswith("../") or rel == MANIFEST:
            return
        rel += {"file": "", "folder": "/", "tree": "/*"}[kind]
        if self._listed(rel) or (kind == "folder" and os.path.lexists(path)):
            return
        if self.strict and os.path.lexists(path):
            raise QuantNASError(
                f"{path} exists but quantnas did not write it (it is not in {self.path}); it "
                "is not overwritten: move it out of the run directory or choose another name=..."
            )
        self.entries.add(rel)
        atomic_write_json(self.path, {"format": 1, "written": sorted(self.entries)})


def record(path: str | Path, *, kind: str = "file") -> None:
    """List ``path`` in the manifest of the run directory being written, if any (called
    before it is created; ``kind`` as in :meth:`Manifest.add`).
    """
    for manifest in _active:
        manifest.add(path, kind=kind)


BEFORE_WRITE.append(record)  # every atomic write is listed before it happens


@contextlib.contextmanager
def tracking(run_dir: str | Path, *, strict: bool) -> Iterator[Manifest]:
    """List every file quantnas writes into ``run_dir`` while the block runs."""
    manifest = Manifest(run_dir, strict=strict)
    _active.append(manifest)
    try:
        yield manifest
    finally:
        _active.remove(manifest)


def _through_link(root: Path, rel: str) -> bool:
    """Whether a folder on the way from ``root`` to ``rel`` is a symbolic link."""
    parts = rel.rstrip("/*").split("/")
    return any((root.joinpath(*parts[:i])).is_symlink() for i in range(1, len(parts)))


def remove_written(run_dir: str | Path) -> list[str]:
    """Remove what the manifest of ``run_dir`` lists, then the manifest and the folders
    this left empty; nothing else is touched (nothing at all without a manifest).

    Returns:
        The names left in ``run_dir`` (files quantnas did not write), sorted.

    """
    root = Path(run_dir)
    entries = read_manifest(root) or []
    folders: set[Path] = set()
    for rel in entries:
        if _through_link(root, rel):
            log.warning("--restart: %s is reached through a symbolic link; kept", root / rel)
            continue
        target = root / rel.rstrip("/*")
        folders.update(p for p in target.parents if root in p.parents)
        if rel.endswith("/"):
            folders.add(target)
        elif target.is_symlink() or target.is_file():
            target.unlink()
        elif rel.endswith("/*") and target.is_dir():
            shutil.rmtree(target)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        remove_stale_tmp(folder)
        drop_stale(folder)  # the lock file a killed run left in a subfolder
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: a foreign file keeps its folder
    remove_stale_tmp(root)
    with contextlib.suppress(FileNotFoundError):
        (root / MANIFEST).unlink()
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []
