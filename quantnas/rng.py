"""Seeding and capturing every random generator a run uses (Python, numpy, torch).

:func:`rng_state` stores all states as tensors or plain Python values, so they pass
``torch.load(..., weights_only=True)`` when saved in a checkpoint.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

from quantnas.errors import QuantNASError

logger = logging.getLogger(__name__)

__all__ = ["rng_state", "seed_everything", "set_rng_state"]


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
