"""The export a trained checkpoint is upscaled with: made once, self-checked, cached beside it.

``quantnas upscale RUN_DIR`` (and :func:`quantnas.api.upscale`) run a trained network on the
fastest installed runtime that computes it exactly. The first call exports the checkpoint
(:func:`~quantnas.deploy.export.export_checked`: the ``onnx`` format, checked in onnxruntime
and, if installed, OpenVINO) and writes the file atomically beside the checkpoint as
``<checkpoint name>.<key>.onnx``; later calls load it. The key is a hash of the checkpoint's
bytes, the quantnas version and :data:`EXPORT_FORMAT_VERSION`, so a retrained checkpoint or a
newer exporter gets a new file (older files of the same checkpoint are removed).

A cached file is never trusted blindly: it is rebuilt when it does not parse, when its
metadata names another key, when its graph no longer matches the digest written with it
(damaged on disk), or when a runtime installed now was not installed (so not checked) when
it was made, or was checked in another version. A folder that cannot be written is no
error: the export is then made in memory for this call only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from quantnas.errors import import_extra

__all__ = [
    "EXPORT_FORMAT_VERSION",
    "META_CACHE_KEY",
    "CachedExport",
    "cache_key",
    "cache_path",
    "cached_export",
    "installed_runtimes",
    "runtime_versions",
]

log = logging.getLogger(__name__)

#: Raised whenever the exporter writes a different graph for the same checkpoint (the key
#: of every cached file changes with it).
EXPORT_FORMAT_VERSION = 2
#: The metadata key holding the cache key a file was made for.
META_CACHE_KEY = "quantnas.cache_key"
#: The metadata key holding the runtime versions the self-check ran in.
META_RUNTIME_VERSIONS = "quantnas.runtime_versions"
#: The export format upscale runs (the network as trained, fake quantization on integers).
CACHE_FORMAT = "onnx"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class CachedExport:
    """A checked export of a checkpoint.

    Attributes:
        data: The serialized model (what the runtimes load).
        path: The cache file, or None when it could not be written (made in memory).
        exact: The runtimes whose self-check passed.
        rebuilt: Whether this call made the export (False: a valid cache file was read).

    """

    data: bytes
    path: Path | None
    exact: tuple[str, ...]
    rebuilt: bool


def _version(package: str = "quantnas") -> str:
    """The installed version of ``package`` (its package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def runtime_versions() -> str:
    """``ort=1.x,openvino=2y.z`` of the installed runtimes: a cache file checked in other
    versions is checked again (a runtime update can change what it computes).
    """
    names = {"ort": "onnxruntime", "openvino": "openvino"}
    return ",".join(f"{r}={_version(names.get(r, r))}" for r in installed_runtimes())


def cache_key(checkpoint: str | Path) -> str:
    """A 16-hex-digit key of the checkpoint's bytes, the quantnas version and the export
    format (:data:`EXPORT_FORMAT_VERSION`, :data:`CACHE_FORMAT`).
    """
    h = hashlib.sha256()
    h.update(f"quantnas {_version()} export {EXPORT_FORMAT_VERSION} {CACHE_FORMAT}\n".encode())
    with open(checkpoint, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()[:16]


def cache_path(checkpoint: str | Path, key: str) -> Path:
    """Where the export of ``checkpoint`` with ``key`` is kept (beside the checkpoint)."""
    ckpt = Path(checkpoint)
    return ckpt.with_name(f"{ckpt.name}.{key}.onnx")


def installed_runtimes() -> list[str]:
    """The ONNX runtimes that are installed (and so checked): onnxruntime, OpenVINO."""
    from quantnas.deploy.openvino_runtime import openvino_available

    return ["ort", "openvino"] if openvino_available() else ["ort"]


def _valid(path: Path, key: str) -> tuple[bytes, tuple[str, ...]] | str:
    """``(bytes, exact runtimes)`` of a usable cache file, or why it is not usable."""
    onnx = import_extra("onnx", "onnx", "ONNX export")
    from quantnas.deploy.export import graph_digest
    from quantnas.deploy.onnx_runtimes import META_CHECKED, META_EXACT, META_GRAPH_DIGEST

    try:
        data = path.read_bytes()
        model = onnx.load_from_string(data)
    except Exception as e:  # OSError, protobuf's DecodeError, ...
        return f"it does not parse ({type(e).__name__})"
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(META_CACHE_KEY) != key:
        return "it was made for another checkpoint or exporter"
    if meta.get(META_GRAPH_DIGEST) != graph_digest(model):
        return "its graph does not match the digest written with it (damaged)"
    if meta.get(META_RUNTIME_VERSIONS) != runtime_versions():
        return "it was checked in other runtime versions"
    checked = set(filter(None, meta.get(META_CHECKED, "").split(",")))
    missing = [r for r in installed_runtimes() if r not in checked]
    if missing:
        return f"{', '.join(missing)} was not checked when it was made"
    exact = tuple(filter(None, meta.get(META_EXACT, "").split(",")))
    if "ort" not in exact:
        return "it does not list onnxruntime as exact"
    return data, exact


def _remove_stale(checkpoint: Path, keep: Path) -> None:
    """Remove the exports of older versions of ``checkpoint`` (other keys)."""
    prefix = f"{checkpoint.name}."
    try:
        entries = list(checkpoint.parent.iterdir())
    except OSError:
        return
    for p in entries:
        name = p.name
        if p == keep or not (name.startswith(prefix) and name.endswith(".onnx")):
            continue
        middle = name[len(prefix) : -len(".onnx")]
        if len(middle) == 16 and all(c in "0123456789abcdef" for c in middle):
            try:
                p.unlink()
            except OSError:
                pass


def cached_export(checkpoint: str | Path, *, threads: int = 0) -> CachedExport:
    """The checked ``onnx`` export of a trained checkpoint, from its cache file or made now.

    Args:
        checkpoint: A trained ``.pt`` checkpoint (see
            :func:`quantnas.training.artifact.find_checkpoint`).
        threads: Runtime threads of the self-check (0 = default).

    Returns:
        The export; ``exact`` lists the runtimes that computed it exactly.

    Raises:
        QuantNASError: The network cannot be exported, or onnxruntime's self-check fails.

    """
    from quantnas.deploy.export import export_checked
    from quantnas.deploy.onnx_runtimes import share_file
    from quantnas.rundir.files import atomic_write_bytes

    ckpt = Path(checkpoint)
    key = cache_key(ckpt)
    path = cache_path(ckpt, key)
    if os.path.isfile(path):
        found = _valid(path, key)
        if not isinstance(found, str):
            log.debug("using the cached export %s", path)
            return CachedExport(found[0], path, found[1], rebuilt=False)
        log.info("rebuilding the cached export %s: %s", path, found)
    done = export_checked(
        ckpt,
        fmt=CACHE_FORMAT,
        threads=threads,
        metadata={META_CACHE_KEY: key, META_RUNTIME_VERSIONS: runtime_versions()},
        where=path,
    )
    data = done.model.SerializeToString()
    written: Path | None = None
    try:
        written = share_file(atomic_write_bytes(path, data))
    except OSError as e:
        log.info("the export is not cached (%s cannot be written: %s)", path, e.strerror or e)
    if written is not None:
        _remove_stale(ckpt, written)
    return CachedExport(data, written, tuple(done.exact), rebuilt=True)
