"""Load a model to run: a trained checkpoint / run directory (PyTorch) or an exported ``.onnx``
file (onnxruntime or OpenVINO), behind one small interface.

Runtimes (``upscale --runtime``): ``ort`` (onnxruntime), ``openvino`` (the optional extra),
``torch`` (the fake-quant network of a checkpoint). The default is the fastest runtime that
is installed and computed the export exactly in its self-check (the file's metadata lists
them; OpenVINO, then onnxruntime). A run directory or checkpoint is exported once and the
checked file cached beside the checkpoint (:mod:`~quantnas.deploy.export_cache`); without
the ``[onnx]`` extra, or when its export fails the check, it runs in PyTorch, and the log
line says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from quantnas.deploy.onnx_runtimes import (
    META_CHECKED,
    META_EXACT,
    META_GRAPH_DIGEST,
    META_HALO,
    META_MIN_SIDE,
    META_SCALE,
    RUNTIMES,
    check_runtime,
    default_runtime,
    file_metadata,
    onnx_runner,
    ort_session,
    share_file,
)
from quantnas.errors import QuantNASError, shown

__all__ = [
    "META_CHECKED",
    "META_EXACT",
    "META_GRAPH_DIGEST",
    "RUNTIMES",
    "OnnxUpscaler",
    "TorchUpscaler",
    "Upscaler",
    "load_upscaler",
    "onnx_installed",
    "ort_session",
    "share_file",
]

log = logging.getLogger(__name__)

#: How log lines name the runtimes.
RUNTIME_NAMES = {"ort": "onnxruntime", "openvino": "OpenVINO", "torch": "PyTorch"}

#: The largest scale and smallest-side an export's metadata may claim.
MAX_SCALE = 64
MAX_MIN_SIDE = 1024


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _size(lr: np.ndarray) -> str:
    return f"{lr.shape[-2]}x{lr.shape[-1]}"


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
    """An exported quantnas ``.onnx`` file (path or bytes) run in onnxruntime or OpenVINO.

    Args:
        path: The file, or the serialized model.
        threads: Runtime threads (0 = the runtime's default).
        runtime: ``ort`` or ``openvino`` (None: the fastest installed runtime the file's
            self-check passed).
        where: How errors name serialized bytes.
        probe: Run the model once on a ``min_side`` square to check that its output size
            matches the scale its metadata claims (skipped for a cached export, which the
            self-check ran at two sizes when it was made).

    """

    def __init__(
        self,
        path: str | Path | bytes,
        threads: int = 0,
        runtime: str | None = None,
        where: str = "the exported network",
        probe: bool = True,
    ) -> None:
        meta = file_metadata(path)
        self.runtime = runtime or default_runtime(meta)
        self.run = onnx_runner(path, self.runtime, threads)
        path = path if not isinstance(path, bytes) else where
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
        if probe:  # the output size must match the scale the metadata claims
            self(np.full((1, 3, self.min_side, self.min_side), 0.5, dtype=np.float32))

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        try:
            out = self.run(lr)[0]
        except QuantNASError:
            raise
        except Exception as e:  # onnxruntime's own exception types
            raise QuantNASError(f"onnxruntime failed on a {_size(lr)} input ({_first(e)})") from e
        return self._checked(np.asarray(out), lr, self.path)


def onnx_installed() -> bool:
    """Whether onnx and onnxruntime (the ``[onnx]`` extra) can be imported."""
    from quantnas.errors import MissingExtraError, import_extra

    try:
        import_extra("onnx", "onnx", "ONNX export")
        import_extra("onnxruntime", "onnx", "onnxruntime")
    except MissingExtraError:
        return False
    return True


def _torch_upscaler(ckpt: Path) -> TorchUpscaler:
    from quantnas.training.artifact import load_trained

    trained = load_trained(ckpt)
    return TorchUpscaler(trained.net, trained.arch.scale)


def load_upscaler(source: str | Path, *, threads: int = 0, runtime: str | None = None) -> Upscaler:
    """An :class:`Upscaler` for a run directory, a trained checkpoint or an ``.onnx`` file,
    in ``runtime`` (one of :data:`RUNTIMES`; None: the fastest installed runtime that the
    export's self-check found exact, see the module's docstring). The choice is logged in
    one line.
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
        model = OnnxUpscaler(src, threads, runtime)
        why = "as asked" if runtime else "the fastest installed runtime its self-check passed"
        log.info("upscale: %s runs in %s (%s)", src, RUNTIME_NAMES[model.runtime], why)
        return model
    from quantnas.training.artifact import find_checkpoint

    ckpt = find_checkpoint(src)
    if runtime == "torch" or ckpt.suffix.lower() != ".pt":
        log.info("upscale: %s runs in PyTorch (--runtime torch)", ckpt)
        return _torch_upscaler(ckpt)
    if runtime is None and not onnx_installed():
        log.info(
            "upscale: %s runs in PyTorch; pip install 'quantnas[onnx]' would run it several "
            "times faster (onnxruntime on integer kernels, self-checked)",
            ckpt,
        )
        return _torch_upscaler(ckpt)
    from quantnas.deploy.export_cache import cached_export

    try:
        export = cached_export(ckpt, threads=threads)
    except QuantNASError as e:
        if runtime is not None:
            raise
        log.warning("upscale: %s runs in PyTorch: its ONNX export is not usable (%s)", ckpt, e)
        return _torch_upscaler(ckpt)
    chosen = runtime or default_runtime({META_EXACT: ",".join(export.exact)})
    where = str(export.path) if export.path is not None else f"the export of {ckpt}"
    model = OnnxUpscaler(export.data, threads, chosen, where=where, probe=False)
    cache = "made now" if export.rebuilt else "cached"
    if chosen not in export.exact:
        log.warning(
            "upscale: %s runs in %s as asked, which did NOT compute its export exactly in the "
            "self-check (exact: %s)",
            ckpt,
            RUNTIME_NAMES[chosen],
            ", ".join(export.exact),
        )
    else:
        why = "as asked" if runtime else "the fastest installed runtime that computes it exactly"
        log.info(
            "upscale: %s runs in %s (%s; export %s: %s)",
            ckpt,
            RUNTIME_NAMES[chosen],
            why,
            cache,
            where,
        )
    return model
