"""Crash-safe file writes, RNG state capture and checkpoint loading.

Every file a run produces that must survive a crash (checkpoints, JSON, CSV) is written
to a temporary file in the destination directory, flushed and fsync'ed, then moved onto
the final name with :func:`os.replace`, which is atomic on POSIX and Windows. A reader
therefore sees either the old complete file or the new complete file, never a partial
one.

Checkpoints are loaded with ``torch.load(..., weights_only=True)``: only tensors and
plain Python containers/scalars are unpickled, so a checkpoint cannot execute code.
:func:`rng_state` stores all random-generator states in such simple types so they pass
this check. Files written with arbitrary Python objects can still be read by passing
``trusted=True`` to :func:`load_checkpoint` (only do so for files you created).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from quantnas.errors import QuantNASError

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_save",
    "atomic_write_bytes",
    "load_state",
    "atomic_write_json",
    "atomic_write_text",
    "json_safe",
    "json_text",
    "load_checkpoint",
    "remove_stale_tmp",
    "require_keys",
    "rng_state",
    "seed_everything",
    "set_rng_state",
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


def remove_stale_tmp(directory: str | Path) -> int:
    """Remove temporary files left in ``directory`` by atomic writes that were killed.

    Only names of the form ``.<file>.<random>.tmp`` (what :func:`atomic_save` and friends
    create) are removed; call this when a run (re)starts in ``directory``, i.e. when no
    other writer is active there.

    Returns:
        The number of files removed.

    """
    removed = 0
    folder = Path(directory)
    if not folder.is_dir():
        return 0
    for p in folder.glob(f".*{TMP_SUFFIX}"):
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
    """Write ``data`` to ``path`` atomically.

    Args:
        path: Destination file; parent directories are created.
        data: Bytes to write.

    Returns:
        The destination path.

    """
    dest = Path(path)
    with _atomic_open(dest, "wb") as handle:
        handle.write(data)
    return dest


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Args:
        path: Destination file; parent directories are created.
        text: Text to write, written as is (no newline added).

    Returns:
        The destination path.

    """
    dest = Path(path)
    with _atomic_open(dest, "w") as handle:
        handle.write(text)
    return dest


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


def rng_state() -> dict[str, Any]:
    """Capture the states of Python ``random``, numpy's global RNG and torch's RNGs.

    All states are stored as tensors or plain Python values so that the result can be
    saved in a checkpoint and loaded back with ``weights_only=True``.

    Returns:
        A dict with keys ``"python"``, ``"numpy"``, ``"torch"`` and, when CUDA is
        available, ``"cuda"`` (one state per device).

    """
    np_state = np.random.get_state(legacy=False)
    if not isinstance(np_state, dict):  # pragma: no cover - numpy always returns a dict
        raise RuntimeError("unexpected numpy RNG state format")
    inner = np_state["state"]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(np_state["bit_generator"]),
            "key": torch.from_numpy(np.asarray(inner["key"], dtype=np.int64).copy()),
            "pos": int(inner["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states captured by :func:`rng_state`.

    Missing entries are left alone (e.g. a CPU checkpoint restored on a GPU machine);
    a ``"cuda"`` entry is ignored when CUDA is not available.

    Args:
        state: Dict returned by :func:`rng_state`, possibly after a save/load
            roundtrip.

    Raises:
        QuantNASError: If ``state`` is not a dict or an entry has the wrong format.

    """
    if not isinstance(state, dict):
        raise QuantNASError(f"rng state: expected a dict, got {type(state).__name__}")
    try:
        if "python" in state:
            version, internal, gauss = state["python"]
            random.setstate((int(version), tuple(int(v) for v in internal), gauss))
        if "numpy" in state:
            np_state = state["numpy"]
            key = np_state["key"]
            key_arr = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
            np.random.set_state(
                (
                    str(np_state["bit_generator"]),
                    key_arr.astype(np.uint32),
                    int(np_state["pos"]),
                    int(np_state["has_gauss"]),
                    float(np_state["gauss"]),
                )
            )
        if "torch" in state:
            torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
        if "cuda" in state and torch.cuda.is_available():
            cuda_states = [torch.as_tensor(s, dtype=torch.uint8).cpu() for s in state["cuda"]]
            n_dev = torch.cuda.device_count()
            if len(cuda_states) != n_dev:
                logger.warning(
                    "rng state has %d CUDA generator(s) but %d device(s) are visible; "
                    "restoring the first %d",
                    len(cuda_states),
                    n_dev,
                    min(len(cuda_states), n_dev),
                )
            for device, cuda_state in enumerate(cuda_states[:n_dev]):
                torch.cuda.set_rng_state(cuda_state, device)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise QuantNASError(f"rng state: malformed entry ({exc})") from exc


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, numpy's global RNG and torch (CPU and all CUDA devices).

    Args:
        seed: Non-negative integer seed.

    Raises:
        QuantNASError: If ``seed`` is not a non-negative integer.

    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise QuantNASError(f"seed: expected a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def load_checkpoint(
    path: str | Path,
    *,
    map_location: str | torch.device | Callable[..., Any] | None = "cpu",
    trusted: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint written with :func:`atomic_save`.

    Args:
        path: Checkpoint file.
        map_location: Passed to :func:`torch.load` (default: everything on the CPU).
        trusted: If False (default) the file is loaded with ``weights_only=True``: only
            tensors and plain Python containers/scalars are accepted, so a malicious file
            cannot run code. Set to True only for files you created yourself that contain
            other Python objects.

    Returns:
        The checkpoint dict.

    Raises:
        QuantNASError: If the file does not exist, is truncated/corrupt, holds objects
            that ``weights_only`` loading refuses, or does not contain a dict.

    """
    src = Path(path)
    if not src.is_file():
        raise QuantNASError(f"checkpoint {src} does not exist")
    if not zipfile.is_zipfile(src):
        raise QuantNASError(
            f"checkpoint {src} is corrupt or not a quantnas checkpoint (not a PyTorch zip archive)"
        )
    try:
        obj = torch.load(src, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise QuantNASError(
                f"checkpoint {src} contains Python objects that safe loading refuses "
                f"({first}); pass trusted=True only if you created this file"
            ) from exc
        raise QuantNASError(
            f"checkpoint {src} is corrupt or not a quantnas checkpoint ({first})"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - garbage input makes unpicklers raise anything
        msg = str(exc).strip()
        first = msg.splitlines()[0] if msg else type(exc).__name__
        raise QuantNASError(
            f"checkpoint {src} is corrupt or not a quantnas checkpoint ({first})"
        ) from exc
    if not isinstance(obj, dict):
        raise QuantNASError(
            f"checkpoint {src} is corrupt or not a quantnas checkpoint "
            f"(expected a dict, found {type(obj).__name__})"
        )
    return obj


def require_keys(ck: dict, keys: tuple[str, ...], *, path: str | Path, what: str) -> None:
    """Refuse a checkpoint that lacks an entry ``what`` needs (one line naming it).

    Args:
        ck: The loaded checkpoint.
        keys: Entries that must be present.
        path: The checkpoint file (for the message).
        what: What it should be, e.g. ``"a training checkpoint"``.

    Raises:
        QuantNASError: Naming the first missing key.

    """
    missing = [k for k in keys if k not in ck]
    if missing:
        raise QuantNASError(
            f"checkpoint {path} is incomplete: {what} needs {missing[0]!r} "
            f"({len(missing)} of {len(keys)} entries missing)"
        )


def restore_run_state(
    path: Path, *, kind: str, keys: tuple[str, ...], what: str, restore: Any
) -> bool:
    """Load a run's checkpoint of ``kind`` into its owner with ``restore(ck, path)``.

    The one resume path of the search and the training: a missing file means a fresh
    start (False); a checkpoint of another kind, one that lacks ``keys`` or whose entries
    do not fit gives one line naming the file.

    Args:
        path: The checkpoint file.
        kind: Its ``kind`` entry (``search`` or ``train``).
        keys: Entries ``restore`` needs.
        what: What it is called in messages, e.g. ``"training checkpoint"``.
        restore: ``restore(ck, path)`` puts the state into the owner.

    """
    if not path.exists():
        return False
    ck = load_checkpoint(path)
    if ck.get("kind") != kind:
        raise QuantNASError(f"checkpoint {path} is not a {what}")
    require_keys(ck, keys, path=path, what=f"a {what}")
    try:
        restore(ck, path)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        msg = f"checkpoint {path} is malformed ({type(e).__name__}: {e})"
        raise QuantNASError(msg) from None
    return True


def load_state(module: Any, state: dict, *, path: str | Path, what: str) -> None:
    """``module.load_state_dict(state)`` with a one-line error naming the checkpoint.

    Args:
        module: The network to restore.
        state: Its saved ``state_dict``.
        path: The checkpoint file (for the message).
        what: What the module is, e.g. ``"the config's supernet"``.

    """
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as e:
        first = str(e).splitlines()[0]
        raise QuantNASError(f"checkpoint {path} does not match {what} ({first})") from None
