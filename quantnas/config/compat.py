"""Config keys of earlier releases: read onto the keys of today, and written back for hashes.

The optimiser keys of the search and the training moved into one section shape
(``search.optim``, ``search.alpha_optim``, ``train.optim``; :data:`RENAMED`) and the
0-sentinels ``search.c_fixed`` / ``search.lr_crop`` became null (:data:`NULL_SENTINELS`).
:func:`upgrade` maps one mapping of a config (a YAML file, a preset, an override, a
resumed run's ``config.yaml``) onto the new keys, with one deprecation note per old key
per process; giving an old key and its new key with different values is an error.
:func:`legacy` writes a resolved config dict in the old layout, so hashes computed from it
(sweep trials) stay what they were for the same resolved config.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from quantnas.errors import QuantNASError, shown

__all__ = [
    "LEGACY_ARCH_PATTERN",
    "NULL_SENTINELS",
    "RENAMED",
    "canonical_key",
    "legacy",
    "reset_notes",
    "upgrade",
]

log = logging.getLogger(__name__)

#: ``{old dotted key: new dotted key}``; every old key is a direct child of its section
#: and every new key lies in the same section.
RENAMED: dict[str, str] = {
    "search.w_lr": "search.optim.lr",
    "search.w_lr_min": "search.optim.lr_min",
    "search.w_weight_decay": "search.optim.weight_decay",
    "search.w_grad_clip": "search.optim.grad_clip",
    "search.lr_warmup_steps": "search.optim.warmup_steps",
    "search.step_lr_scale": "search.optim.step_lr_scale",
    "search.alpha_lr": "search.alpha_optim.lr",
    "search.alpha_betas": "search.alpha_optim.betas",
    "search.alpha_weight_decay": "search.alpha_optim.weight_decay",
    "train.lr": "train.optim.lr",
    "train.lr_min": "train.optim.lr_min",
    "train.weight_decay": "train.optim.weight_decay",
    "train.grad_clip": "train.optim.grad_clip",
    "train.lr_warmup_steps": "train.optim.warmup_steps",
    "train.step_lr_scale": "train.optim.step_lr_scale",
}

#: ``{key: the key it defaults to}`` of keys whose 0 meant "the same as that key" and
#: whose null means it now.
NULL_SENTINELS: dict[str, str] = {
    "search.c_fixed": "arch.c_fixed",
    "search.lr_crop": "data.lr_crop",
}

#: ``arch.arch_pattern`` as every earlier config resolved it unless set (also for the
#: rfdn space, which ignores it; its preset now sets null).
LEGACY_ARCH_PATTERN: dict[str, int] = {"head": 2, "body": 2, "skip": 1, "upsample": 1, "tail": 0}

_noted: set[str] = set()


def reset_notes() -> None:
    """Forget which deprecation notes were logged (each is logged once per process)."""
    _noted.clear()


def _note(key: str, text: str, source: str) -> None:
    if key not in _noted:
        _noted.add(key)
        log.warning("%s: %s", source, text)


def canonical_key(key: str) -> str:
    """The key of today for a dotted key (old keys renamed, others unchanged)."""
    return RENAMED.get(key, key)


def _is_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def upgrade(data: dict, prefix: str, source: str) -> dict:
    """One mapping of a config with its old keys moved onto the new ones.

    Args:
        data: The mapping at ``prefix`` (e.g. ``"search."``; ``""`` for the top level);
            not changed.
        prefix: The dotted prefix of its keys.
        source: What it was read from, for notes and errors.

    Returns:
        ``data`` itself when it holds no old key, else a new mapping.

    Raises:
        QuantNASError: An old key and its new key given with different values.

    """
    old_keys = [k for k in data if f"{prefix}{k}" in RENAMED]
    zeros = [k for k in data if f"{prefix}{k}" in NULL_SENTINELS and _is_zero(data[k])]
    if not old_keys and not zeros:
        return data
    out = {k: v for k, v in data.items() if k not in old_keys}
    for k in zeros:
        full = f"{prefix}{k}"
        _note(
            full, f"{full}: 0 is deprecated, use null (the same as {NULL_SENTINELS[full]})", source
        )
        out[k] = None
    for k in old_keys:
        old, new = f"{prefix}{k}", RENAMED[f"{prefix}{k}"]
        section, name = new[len(prefix) :].split(".")
        if section not in out:
            out[section] = {}
        elif not isinstance(out[section], dict):
            continue  # the merge refuses the section that is not a mapping
        elif out[section] is data.get(section):
            out[section] = dict(out[section])  # the caller's mapping stays as it was
        sub = out[section]
        if name in sub and sub[name] != data[k]:
            raise QuantNASError(
                f"{source}: {old}={shown(data[k])} and {new}={shown(sub[name])} disagree; "
                f"{old} is deprecated, give only {new}"
            )
        _note(old, f"{old} is deprecated, use {new}", source)
        sub[name] = data[k]
    return out


def legacy(data: dict) -> dict:
    """A resolved config dict (:func:`quantnas.config.io.to_dict`) in the layout of earlier
    releases: old optimiser keys, 0 for null sentinels, :data:`LEGACY_ARCH_PATTERN` for a
    null ``arch.arch_pattern``. Equal resolved configs give equal dicts, old or new keys.
    """
    out = copy.deepcopy(data)
    for old, new in RENAMED.items():
        section, sub, name = new.split(".")
        parent = out.get(section)
        if isinstance(parent, dict) and isinstance(parent.get(sub), dict):
            parent[old.split(".")[1]] = parent[sub].pop(name)
    for key in NULL_SENTINELS:
        section, name = key.split(".")
        if isinstance(out.get(section), dict) and out[section].get(name, 0) is None:
            out[section][name] = 0
    for section in ("search", "train"):
        for sub in ("optim", "alpha_optim"):
            if isinstance(out.get(section), dict) and out[section].get(sub) == {}:
                del out[section][sub]
    arch = out.get("arch")
    if isinstance(arch, dict) and "arch_pattern" in arch and arch["arch_pattern"] is None:
        arch["arch_pattern"] = dict(LEGACY_ARCH_PATTERN)
    return out
