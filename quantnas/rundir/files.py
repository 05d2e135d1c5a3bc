"""Crash-safe file writes: every file a run must keep is written atomically.

A file is written to a temporary file in the destination directory, flushed and fsync'ed,
then moved onto the final name with :func:`os.replace`, which is atomic on POSIX and
Windows. A reader therefore sees either the old complete file or the new complete file,
never a partial one. JSON is written strictly (NaN/Infinity become ``null``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Called with every destination before it is written: while a run directory is tracked,
#: :mod:`quantnas.rundir.manifest` (which adds its ``record`` here) lists the file there first.
BEFORE_WRITE: list[Callable[[Path], None]] = []

__all__ = [
    "BEFORE_WRITE",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "json_safe",
    "json_text",
    "remove_stale_tmp",
]


def _fsync_dir(directory: Path) -> None:
    """Fsync a directory so a completed rename survives power loss (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TMP_SUFFIX = ".tmp"


def _umask_mode() -> int:
    """``0o666`` less the process umask (the mode ``open(path, "w")`` creates files with)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def remove_stale_tmp(directory: str | Path, *, recursive: bool = False) -> int:
    """Remove temporary files left in ``directory`` by atomic writes that were killed.

    Only names of the form ``.<file>.<random>.tmp`` (what :func:`atomic_save` and friends
    create) are removed; call this when a run (re)starts in ``directory``, i.e. when no
    other writer is active there. ``recursive`` also cleans every folder below it.

    Returns:
        The number of files removed.

    """
    removed = 0
    folder = Path(directory)
    if not folder.is_dir():
        return 0
    for p in (folder.rglob if recursive else folder.glob)(f".*{TMP_SUFFIX}"):
        if p.is_file() and p.name.count(".") >= 3:
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
    if removed:
        logger.info("removed %d leftover temporary file(s) in %s", removed, folder)
    return removed


@contextlib.contextmanager
def _atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` and move it onto ``path`` on success.

    Args:
        path: Final destination.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).

    Yields:
        The open temporary file. On any exception inside the ``with`` block the
        temporary file is removed and ``path`` is left untouched.

    """
    dest = Path(path)
    for before in BEFORE_WRITE:
        before(dest)  # e.g. listed in the run directory's manifest before it exists
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TMP_SUFFIX, dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600; the final file gets the mode a plain open() would give.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _umask_mode())
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.filename is None:  # e.g. ENOSPC from write(): name the file being written
            raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from exc
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """Save ``obj`` with :func:`torch.save` atomically.

    The object is written to a temporary file in the same directory, flushed, fsync'ed
    and renamed onto ``path``. If saving fails, an existing file at ``path`` is kept
    intact and no temporary file is left behind.

    Args:
        obj: Anything :func:`torch.save` accepts (normally a dict).
        path: Destination file; parent directories are created.

    Returns:
        The destination path.

    """
    dest = Path(path)
    buffer = io.BytesIO()
    # Serialised first: torch.save hides write errors (a full disk) in a RuntimeError.
    torch.save(obj, buffer)
    with _atomic_open(dest, "wb") as handle:
        handle.write(buffer.getbuffer())
    return dest


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created); returns ``path``."""
    dest = Path(path)
    with _atomic_open(dest, "wb") as handle:
        handle.write(data)
    return dest


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8, as is (no newline added or translated), atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    """Convert common non-JSON types (numpy, torch scalars, paths, sets) for json.dumps."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN/Infinity replaced by ``None`` and non-JSON types converted.

    ``json.dumps`` would write ``NaN``/``Infinity``, which are not JSON; a PSNR of identical
    images (infinite) is written as ``null``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return json_safe(_json_default(obj))


def json_text(obj: Any) -> str:
    """Strict JSON text of ``obj`` (indent 2, no NaN/Infinity; see :func:`json_safe`)."""
    return json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON (indent 2, keys in insertion order) to ``path`` atomically.

    Numpy scalars/arrays, one-element tensors and paths are converted to plain JSON
    values; NaN and infinities become ``null`` (strict JSON).

    Args:
        path: Destination file; parent directories are created.
        obj: JSON-serializable object.

    Returns:
        The destination path.

    """
    return atomic_write_text(path, json_text(obj))
