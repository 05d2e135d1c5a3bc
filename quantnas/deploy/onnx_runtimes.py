"""Which runtime runs an exported ONNX model: onnxruntime sessions (with the float weights of
:mod:`~quantnas.deploy.ort_graph`), OpenVINO, the export's list of exact runtimes and the
default choice among them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantnas.errors import QuantNASError, import_extra
from quantnas.registry import Registry

__all__ = [
    "META_CHECKED",
    "META_EXACT",
    "META_FORMAT",
    "META_GRAPH_DIGEST",
    "META_HALO",
    "META_MIN_SIDE",
    "META_SCALE",
    "RUNTIMES",
    "check_runtime",
    "default_runtime",
    "file_metadata",
    "onnx_runner",
    "ort_session",
    "share_file",
]

#: ``metadata_props`` keys the exporter writes and the upscaler reads.
META_SCALE = "quantnas.scale"
META_HALO = "quantnas.lr_halo"
META_FORMAT = "quantnas.format"
META_MIN_SIDE = "quantnas.min_side"
#: The runtimes whose self-check the file passed at export, comma-separated.
META_EXACT = "quantnas.exact_runtimes"
#: The runtimes the export's self-check ran in (passed or not), comma-separated.
META_CHECKED = "quantnas.checked_runtimes"
#: SHA-256 of the serialized graph, to recognise a damaged file.
META_GRAPH_DIGEST = "quantnas.graph_sha256"
#: The ONNX runtimes from fastest to slowest.
ONNX_RUNTIMES_BY_SPEED = ("openvino", "ort")


def share_file(path: Path) -> Path:
    """Give a file written atomically (private temp file) the usual umask permissions."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def _for_onnxruntime(src: str | bytes) -> str | bytes:
    """The serialized model onnxruntime runs (:func:`~quantnas.deploy.ort_graph.for_onnxruntime`);
    a file that does not parse as ONNX is passed on as it is, for onnxruntime to report.
    """
    onnx = import_extra("onnx", "onnx", "An ONNX model")

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
    ort = import_extra("onnxruntime", "onnx", "onnxruntime (--runtime ort)")

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


def onnx_runner(
    model: str | Path | bytes, runtime: str, threads: int = 0
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``run(lr) -> outputs`` of an ONNX model in ``runtime`` (``ort`` or ``openvino``)."""
    runner = RUNTIMES.get(runtime).onnx_runner
    if runner is None:
        raise QuantNASError(f"--runtime {runtime!r}: an ONNX model runs in 'ort' or 'openvino'")
    return runner(model, threads)


def _ort_runner(model: str | Path | bytes, threads: int) -> Callable:
    session = ort_session(model, threads)
    return lambda x: session.run(None, {"lr": np.ascontiguousarray(x, dtype=np.float32)})


def _openvino_runner(model: str | Path | bytes, threads: int) -> Callable:
    from quantnas.deploy.openvino_runtime import OpenVinoModel

    return OpenVinoModel(model, threads).run


@dataclass(frozen=True)
class Runtime:
    """A ``--runtime``: the module it needs (with the pip extra that installs it) and how
    it runs an ONNX model (``None``: it runs PyTorch checkpoints only).
    """

    module: str | None
    extra: str | None
    onnx_runner: Callable[[str | Path | bytes, int], Callable] | None


#: The runtimes by ``--runtime`` name.
RUNTIMES: Registry[Runtime] = Registry.of(
    "runtime",
    {
        "ort": Runtime("onnxruntime", "onnx", _ort_runner),
        "openvino": Runtime("openvino", "openvino", _openvino_runner),
        "torch": Runtime(None, None, None),
    },
    key="--runtime",
)


def file_metadata(model: str | Path | bytes) -> dict[str, str]:
    """``metadata_props`` of an ONNX model (empty if it does not parse)."""
    onnx = import_extra("onnx", "onnx", "An ONNX model")

    try:
        if isinstance(model, bytes):
            proto = onnx.load_from_string(model)
        else:
            proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # protobuf's and onnx's own exception types: the runtime reports
        return {}
    return {p.key: p.value for p in proto.metadata_props}


def default_runtime(meta: dict[str, str]) -> str:
    """The fastest installed runtime the export's self-check passed (``ort`` otherwise)."""
    from quantnas.deploy.openvino_runtime import openvino_available

    exact = meta.get(META_EXACT, "ort").split(",")
    for name in ONNX_RUNTIMES_BY_SPEED:
        if name in exact and (name != "openvino" or openvino_available()):
            return name
    return "ort"


def check_runtime(runtime: str | None) -> None:
    """A one-line error for an unknown or uninstalled ``--runtime``."""
    if runtime is None:
        return
    module, extra = RUNTIMES.get(runtime).module, RUNTIMES.get(runtime).extra
    if module is None:
        return
    try:
        __import__(module)
    except ImportError:
        raise QuantNASError(
            f"--runtime {runtime}: {module} is not installed (pip install 'quantnas[{extra}]')"
        ) from None
