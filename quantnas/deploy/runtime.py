"""Load a model to run: a trained checkpoint / run directory (PyTorch) or an exported ``.onnx``
file (onnxruntime), behind one small interface.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from quantnas.errors import QuantNASError, shown

__all__ = [
    "OnnxUpscaler",
    "TorchUpscaler",
    "Upscaler",
    "load_upscaler",
    "ort_session",
    "share_file",
]

log = logging.getLogger(__name__)

#: Where a run directory keeps the trained network, in order of preference.
RUN_DIR_CHECKPOINTS = ("best.pt", "train/best.pt", "checkpoint.pt", "train/checkpoint.pt")

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


def _for_onnxruntime(src: str | bytes) -> str | bytes:
    """The serialized model onnxruntime runs (:func:`~quantnas.deploy.ort_graph.for_onnxruntime`);
    a file that does not parse as ONNX is passed on as it is, for onnxruntime to report.
    """
    import onnx

    from quantnas.deploy.ort_graph import for_onnxruntime

    try:
        proto = onnx.load_from_string(src) if isinstance(src, bytes) else onnx.load(src)
    except Exception:  # protobuf's and onnx's own exception types
        return src
    return for_onnxruntime(proto).SerializeToString()


def ort_session(model: str | Path | bytes, threads: int = 0):
    """An onnxruntime CPU session (``threads`` intra-op threads; 0 = onnxruntime's default)
    of an exported model, with float weights for the convs it cannot fuse.
    """
    import onnxruntime as ort

    from quantnas.deploy.ort_graph import DISABLED_OPTIMIZERS

    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    src = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(
            _for_onnxruntime(src),
            opts,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=DISABLED_OPTIMIZERS,
        )
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = "the exported model" if isinstance(model, bytes) else str(model)
        raise QuantNASError(f"{where}: onnxruntime cannot load it ({first})") from e


class OnnxUpscaler(Upscaler):
    """An exported quantnas ``.onnx`` file run in onnxruntime."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.session = ort_session(path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
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
            out = self.session.run(None, {"lr": np.ascontiguousarray(lr, dtype=np.float32)})[0]
        except Exception as e:  # onnxruntime's own exception types
            raise QuantNASError(f"onnxruntime failed on a {_size(lr)} input ({_first(e)})") from e
        return self._checked(np.asarray(out), lr, self.path)


def find_checkpoint(source: str | Path) -> Path:
    """The trained checkpoint of a run directory (or the file itself).

    Raises:
        QuantNASError: If ``source`` does not exist or a directory holds no checkpoint.

    """
    src = Path(source)
    if src.is_dir():
        for name in RUN_DIR_CHECKPOINTS:
            if (src / name).is_file():
                return src / name
        raise QuantNASError(
            f"{src}: no trained network in this run directory (looked for "
            f"{', '.join(RUN_DIR_CHECKPOINTS)})"
        )
    if not src.is_file():
        raise QuantNASError(f"{src}: no such run directory, checkpoint or .onnx file")
    return src


def load_upscaler(source: str | Path, *, threads: int = 0) -> Upscaler:
    """An :class:`Upscaler` for a run directory, a trained checkpoint or an ``.onnx`` file."""
    src = Path(source)
    if src.suffix.lower() == ".onnx":
        if not src.is_file():
            raise QuantNASError(f"{src}: no such .onnx file")
        return OnnxUpscaler(src, threads)
    from quantnas.checkpoint import load_model

    net, _, arch = load_model(find_checkpoint(src))
    return TorchUpscaler(net, arch.scale)
