"""Load a model to run: a trained checkpoint / run directory (PyTorch) or an exported ``.onnx``
file (onnxruntime or OpenVINO), behind one small interface.

Runtimes (``upscale --runtime``): ``ort`` (onnxruntime), ``openvino`` (the optional extra),
``torch`` (the fake-quant network of a checkpoint). A checkpoint run in ``ort`` or
``openvino`` is exported in memory first. The default for an ``.onnx`` file is the fastest
runtime that is installed and passed the file's export self-check (its metadata lists them:
OpenVINO, then onnxruntime); for a checkpoint it is PyTorch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from quantnas.deploy.onnx_runtimes import (
    META_EXACT,
    RUNTIMES,
    check_runtime,
    default_runtime,
    file_metadata,
    onnx_runner,
    ort_session,
)
from quantnas.errors import QuantNASError, shown

__all__ = [
    "META_EXACT",
    "RUNTIMES",
    "OnnxUpscaler",
    "TorchUpscaler",
    "Upscaler",
    "load_upscaler",
    "ort_session",
    "share_file",
]

log = logging.getLogger(__name__)

#: ``metadata_props`` keys the exporter writes and :class:`OnnxUpscaler` reads.
META_SCALE = "quantnas.scale"
META_HALO = "quantnas.lr_halo"
META_FORMAT = "quantnas.format"
META_MIN_SIDE = "quantnas.min_side"
#: The largest scale and smallest-side an export's metadata may claim.
MAX_SCALE = 64
MAX_MIN_SIDE = 1024


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _size(lr: np.ndarray) -> str:
    return f"{lr.shape[-2]}x{lr.shape[-1]}"


def share_file(path: Path) -> Path:
    """Give a file written atomically (private temp file) the usual umask permissions."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def _meta_int(meta: dict, key: str, path: str | Path, *, low: int, high: int, default: str) -> int:
    """An integer of an export's metadata in ``[low, high]`` (one line naming the file)."""
    text = str(meta.get(key, default))
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise QuantNASError(
            f"{path}: its metadata {key!r} is {shown(text)}; expected an integer in "
            f"[{low}, {high}] (export the run again with `quantnas export RUN --format onnx`)"
        )
    return value


class Upscaler:
    """Maps a float ``(1, 3, h, w)`` LR array in ``[0, 1]`` to ``(1, 3, h*s, w*s)``.

    Attributes:
        scale: Upscaling factor.
        halo: LR pixels of context an output pixel needs (tiling is exact with at least
            this overlap), or ``None`` when the network uses whole-image statistics.
        min_side: Smallest LR side the network accepts.

    """

    scale: int
    halo: int | None
    min_side: int = 2

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _checked(self, out: np.ndarray, lr: np.ndarray, source: object) -> np.ndarray:
        """``out`` if it is ``(n, 3, h*scale, w*scale)`` for ``lr`` of ``(n, 3, h, w)``."""
        n, _, h, w = lr.shape
        want = (n, 3, h * self.scale, w * self.scale)
        if tuple(out.shape) != want:
            raise QuantNASError(
                f"{source}: the network maps a {h}x{w} input to {tuple(out.shape)}, not "
                f"{want} as its scale x{self.scale} says"
            )
        return out


class TorchUpscaler(Upscaler):
    """A PyTorch network (fake quantization as trained)."""

    def __init__(self, net: torch.nn.Module, scale: int) -> None:
        from quantnas.deploy.receptive import lr_halo
        from quantnas.models.rfdn import MIN_LR_SIZE, RFDNSRNet

        self.net = net.eval()
        self.scale = int(scale)
        self.halo = lr_halo(net)
        self.min_side = MIN_LR_SIZE if isinstance(net, RFDNSRNet) else 2

    @torch.no_grad()
    def __call__(self, lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))
        try:
            return self._checked(self.net(x).numpy(), lr, "the network")
        except RuntimeError as e:  # e.g. out of memory: one line, the next file still runs
            raise QuantNASError(f"PyTorch failed on a {_size(lr)} input ({_first(e)})") from e


class OnnxUpscaler(Upscaler):
    """An exported quantnas ``.onnx`` file (path or bytes) run in onnxruntime or OpenVINO."""

    def __init__(
        self, path: str | Path | bytes, threads: int = 0, runtime: str | None = None
    ) -> None:
        meta = file_metadata(path)
        self.runtime = runtime or default_runtime(meta)
        self.run = onnx_runner(path, self.runtime, threads)
        path = path if not isinstance(path, bytes) else "the exported network"
        if META_SCALE not in meta:
            raise QuantNASError(
                f"{path}: not a quantnas export (no {META_SCALE!r} in its metadata); "
                "export it with `quantnas export RUN --format onnx`"
            )
        self.path = path
        self.scale = _meta_int(meta, META_SCALE, path, low=1, high=MAX_SCALE, default="")
        halo = _meta_int(meta, META_HALO, path, low=-1, high=2**31 - 1, default="-1")
        self.halo = halo if halo >= 0 else None
        self.min_side = _meta_int(meta, META_MIN_SIDE, path, low=1, high=MAX_MIN_SIDE, default="2")
        probe = np.full((1, 3, self.min_side, self.min_side), 0.5, dtype=np.float32)
        self(probe)  # the output size must match the scale the metadata claims

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        try:
            out = self.run(lr)[0]
        except QuantNASError:
            raise
        except Exception as e:  # onnxruntime's own exception types
            raise QuantNASError(f"onnxruntime failed on a {_size(lr)} input ({_first(e)})") from e
        return self._checked(np.asarray(out), lr, self.path)


def load_upscaler(source: str | Path, *, threads: int = 0, runtime: str | None = None) -> Upscaler:
    """An :class:`Upscaler` for a run directory, a trained checkpoint or an ``.onnx`` file,
    in ``runtime`` (one of :data:`RUNTIMES`; None: see the module's docstring).
    """
    check_runtime(runtime)
    src = Path(source)
    if src.suffix.lower() == ".onnx":
        if not src.is_file():
            raise QuantNASError(f"{src}: no such .onnx file")
        if runtime == "torch":
            raise QuantNASError(
                f"{src}: --runtime torch runs a run directory or checkpoint, not an .onnx file"
            )
        return OnnxUpscaler(src, threads, runtime)
    from quantnas.artifact import load_trained

    trained = load_trained(src)
    net, arch = trained.net, trained.arch
    if runtime in (None, "torch"):
        return TorchUpscaler(net, arch.scale)
    from quantnas.deploy.onnx_export import export_onnx
    from quantnas.deploy.receptive import lr_halo

    halo = lr_halo(net)
    meta = {
        META_SCALE: arch.scale,
        META_HALO: -1 if halo is None else halo,
        META_MIN_SIDE: trained.min_lr_side,
    }
    return OnnxUpscaler(export_onnx(net, metadata=meta).SerializeToString(), threads, runtime)
