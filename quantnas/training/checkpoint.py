"""The checkpoint format: what a run's ``.pt`` files hold and how they are read back.

Three kinds, named by the ``kind`` entry: ``search`` (a search's full state:
supernet, optimizers, schedule, RNG, history), ``train`` (a training's full state, a
superset of ``model``) and ``model`` (a trained network with its genotype and ``arch``,
enough to rebuild it: ``best.pt``). Files are written with
:func:`quantnas.rundir.files.atomic_save` and read with ``torch.load(..., weights_only=True)``:
only tensors and plain containers/scalars are unpickled, so a checkpoint cannot execute
code (``trusted=True`` lifts this for files you created yourself).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quantnas.config.types import ArchConfig
from quantnas.errors import QuantNASError
from quantnas.space.genotype import Genotype

__all__ = [
    "BEST",
    "CHECKPOINT",
    "KIND_MODEL",
    "KIND_SEARCH",
    "KIND_TRAIN",
    "load_checkpoint",
    "load_state",
    "model_payload",
    "require_keys",
    "restore_run_state",
]

#: The full state of a run (search or training), rewritten after every epoch.
CHECKPOINT = "checkpoint.pt"
#: The trained network with the best validation PSNR (a ``model`` checkpoint).
BEST = "best.pt"
KIND_SEARCH = "search"
KIND_TRAIN = "train"
KIND_MODEL = "model"


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


def model_payload(net: nn.Module, genotype: Genotype | None, arch: ArchConfig, **extra) -> dict:
    """A self-describing model checkpoint (enough to rebuild the network).

    ``genotype`` is None for a network that is not built from a genotype (a sweep's
    baseline, described by ``extra["net_spec"]``).
    """
    return {
        "kind": KIND_MODEL,
        "genotype": genotype.to_dict() if genotype is not None else None,
        "arch": asdict(arch),
        "model": net.state_dict(),
        **extra,
    }
