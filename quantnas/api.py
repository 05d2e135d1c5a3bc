"""The Python API: the CLI's verbs as functions over the same configs and defaults.

Example (the README's "Python API" section, which ``tests/test_api.py`` runs)::

    from quantnas import api

    cfg = api.load_config("tiny", overrides=["threads=1"])  # no preset: the CLI's default
    found = api.search(cfg, "runs/api-search")
    trained = api.train(cfg, "runs/api-train", genotype=found.best)
    scores = api.evaluate(trained.best_path, benchmarks="embedded:test")
    model = api.load_model(trained.best_path)  # .network, .genotype, .arch
    sr = api.upscale(trained.best_path, [lr_image])  # HxWx3 arrays in, arrays out

Images may also be given in memory: ``train_images`` / ``val_images`` (lists of ``HxWx3``
arrays or ``(name, array)`` pairs) and ``test_sets`` (``{name: images}``) take the place of
``data.train`` / ``data.val`` / ``data.benchmarks`` in :func:`search`, :func:`train` and
:func:`run`, and ``images`` the place of folders in :func:`evaluate`; each job reads its
images once (:class:`~quantnas.data.job_data.JobData`).

``quantnas.load_config``, ``quantnas.load_model``, ``quantnas.run`` and ``quantnas.upscale``
are the same functions; ``search``, ``train`` and ``evaluate`` are only here, because
``quantnas.search``, ``quantnas.training.trainer`` and ``quantnas.evaluation.score`` are modules.

Each call holds its run directory's lock while it writes, as the verbs do; a run directory
that holds a finished or interrupted run is continued with ``resume=True``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantnas.config.io import DEFAULT_PRESET
from quantnas.data.job_data import ImagesLike, JobData
from quantnas.pipeline.resolve import Config
from quantnas.pipeline.resolve import load_config as _load_config

if TYPE_CHECKING:
    from torch import nn

    from quantnas.config.types import ArchConfig
    from quantnas.search.records import SearchResult
    from quantnas.space.genotype import Genotype
    from quantnas.training.records import TrainResult

__all__ = [
    "DEFAULT_PRESET",
    "LoadedModel",
    "evaluate",
    "load_config",
    "load_model",
    "run",
    "search",
    "train",
    "upscale",
]


@dataclass(frozen=True)
class LoadedModel:
    """A trained network read back by :func:`load_model`.

    It also unpacks as the tuple earlier releases returned:
    ``network, genotype, arch = api.load_model(path)``.

    Attributes:
        network: The network in eval mode, quantized as it was saved.
        genotype: Its genotype, or None for a hand-designed baseline (``espcn``, ...).
        arch: Its structure config (scale, channels, global skip, ...).
        path: The checkpoint it was read from.
        label: The genotype's text, or e.g. ``"espcn (8-bit, hand-designed)"``.

    """

    network: nn.Module
    genotype: Genotype | None
    arch: ArchConfig
    path: Path
    label: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.network, self.genotype, self.arch))


def _data(
    cfg: Config,
    train_images: ImagesLike | None,
    val_images: ImagesLike | None,
    test_sets: Mapping[str, ImagesLike] | None = None,
) -> JobData:
    return JobData(cfg, train=train_images, val=val_images, test=test_sets)


def load_config(
    preset: str | None = DEFAULT_PRESET,
    *,
    files: Sequence[str] = (),
    overrides: Sequence[str] = (),
) -> Config:
    """The config the CLI would run with: ``preset`` (the CLI's ``default`` unless given;
    ``None`` = the library defaults) < YAML ``files`` < ``key=value`` ``overrides``.
    """
    return _load_config(preset=preset, files=list(files), overrides=list(overrides))


def search(
    cfg: Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    train_images: ImagesLike | None = None,
    val_images: ImagesLike | None = None,
) -> SearchResult:
    """Search in ``run_dir``; returns a :class:`~quantnas.search.records.SearchResult`
    (``best`` genotype, ``best_epoch``, ``run_dir``, ...).
    """
    from quantnas.search.searcher import search as _search

    return _search(cfg, Path(run_dir), resume=resume, data=_data(cfg, train_images, val_images))


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    genotype: Genotype | str | Path | None = None,
    resume: bool = False,
    train_images: ImagesLike | None = None,
    val_images: ImagesLike | None = None,
) -> TrainResult:
    """QAT of ``genotype`` (a :class:`~quantnas.space.genotype.Genotype`, a genotype file or text,
    a builtin name, a run directory or a trained checkpoint; ``cfg.train.genotype`` when
    None) in ``run_dir``; returns a
    :class:`~quantnas.training.records.TrainResult` (``best_path``, ``best_psnr``,
    ``network``, ...).
    """
    from quantnas.training.artifact import genotype_of
    from quantnas.training.trainer import train as _train

    geno = genotype_of(cfg.train.genotype if genotype is None else genotype)
    return _train(
        cfg, Path(run_dir), geno, resume=resume, data=_data(cfg, train_images, val_images)
    )


def evaluate(
    model: str | Path | LoadedModel,
    *,
    data: Sequence[str] = (),
    benchmarks: str | None = None,
    images: Mapping[str, ImagesLike] | None = None,
    device: str = "cpu",
    scale: int | None = None,
    save_images: str | Path | None = None,
) -> dict[str, dict]:
    """Y-channel PSNR / SSIM (border = scale) of a network on image sets (``quantnas eval``).

    Args:
        model: A run directory, a trained checkpoint (``best.pt``), a :class:`LoadedModel`,
            or ``"bicubic"`` (MATLAB-bicubic upscaling; needs ``scale``).
        data: HR image folders or ``embedded:...`` sources (each a set named by its folder).
        benchmarks: A YAML file of benchmark sets or ``embedded:test``.
        images: In-memory HR image sets, ``{set name: images}``.
        device: Where the network runs.
        scale: The upscaling factor: required for ``bicubic``; for a network it must equal
            the network's (None = the network's).
        save_images: Write each set's SR images to ``save_images/<set>/`` (the folder is
            created before anything is computed).

    Returns:
        ``{set: {"psnr", "ssim", "images"}}``.

    Raises:
        QuantNASError: ``bicubic`` without ``scale``, or a ``scale`` the network does not
            have.

    """
    from quantnas.data.datasets import SRValDataset
    from quantnas.data.job_data import as_named_images
    from quantnas.errors import QuantNASError
    from quantnas.evaluation.score import bicubic_upscaler, eval_sets
    from quantnas.evaluation.score import evaluate as _evaluate

    if save_images is not None:
        Path(save_images).mkdir(parents=True, exist_ok=True)  # fail before computing
    if isinstance(model, str) and model == "bicubic":
        if scale is None:
            raise QuantNASError("--scale is required with --model bicubic")
        net = bicubic_upscaler(scale)
    else:
        loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
        own = loaded.arch.scale
        if scale is not None and scale != own:
            raise QuantNASError(f"--scale {scale} differs from the model's scale {own}")
        net, scale = loaded.network, own
    sets = eval_sets(list(data), benchmarks, scale=scale) if data or benchmarks else {}
    for name, imgs in (images or {}).items():
        hr = as_named_images(imgs, str(name))
        sets[str(name)] = SRValDataset(hr, scale=scale, label=f"image set {name!r}")
    out = {}
    for name, ds in sets.items():
        save = Path(save_images) / Path(name).name.replace(":", "_") if save_images else None
        out[name] = _evaluate(net, ds, device=device, save_dir=save)
    return out


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """The trained network of a run directory or checkpoint (``best.pt``), with its genotype
    (None for a hand-designed baseline) and structure; unpacks as ``(network, genotype,
    arch)``.
    """
    from quantnas.training.artifact import load_trained

    t = load_trained(path, device)
    return LoadedModel(t.net, t.genotype, t.arch, t.path, t.label)


def run(
    cfg: Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    train_images: ImagesLike | None = None,
    val_images: ImagesLike | None = None,
    test_sets: Mapping[str, ImagesLike] | None = None,
) -> dict:
    """The main job (search -> train -> eval -> report) in ``run_dir``; the report dict."""
    from quantnas.pipeline.run import run_pipeline

    return run_pipeline(
        cfg, Path(run_dir), resume=resume, data=_data(cfg, train_images, val_images, test_sets)
    )


def upscale(
    model: str | Path,
    images: ImagesLike,
    *,
    tile: int = 256,
    overlap: int | None = None,
    runtime: str | None = None,
    threads: int = 0,
    max_pixels: int | None = None,
) -> list[np.ndarray]:
    """Upscale in-memory RGB images with a run directory, a trained checkpoint or an
    exported ``.onnx`` file, tiled as the verb tiles (``overlap`` None: the network's exact
    halo).

    ``runtime`` is as ``quantnas upscale --runtime``: by default a run directory or
    checkpoint is exported once (cached beside the checkpoint), self-checked and run on the
    fastest installed runtime that computes it exactly; ``"torch"`` runs the PyTorch
    network. Images over ``max_pixels`` (None or 0: Pillow's ``MAX_IMAGE_PIXELS``, as
    ``data.max_pixels``), or whose output would be, are refused from their shape before
    anything is converted or the model is loaded. The last few models loaded are kept (by
    file content, runtime and threads), so repeated calls do not load them again.

    Returns:
        One ``uint8`` ``(H*s)x(W*s)x3`` array per image, in order.

    Raises:
        QuantNASError: A bad model, runtime or image, or an image over the pixel budget.

    """
    from quantnas.data.job_data import as_named_images, check_array_pixels
    from quantnas.deploy.picture import Picture, picture_array
    from quantnas.deploy.upscale import tile_overlap, upscale_picture

    if isinstance(images, Sequence) and not isinstance(images, np.ndarray):
        for i, item in enumerate(images):  # the inputs' own size, before the model loads
            arr = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if isinstance(arr, np.ndarray):
                check_array_pixels(arr, f"<upscale[{i}]>", max_pixels)
    model_, lock = _loaded_upscaler(model, threads=threads, runtime=runtime)
    pics = as_named_images(images, "upscale", max_pixels=max_pixels, scale=model_.scale)
    overlap = tile_overlap(model_, tile=tile, overlap=overlap)
    out = []
    with lock:
        for _, rgb in pics:
            pic = Picture(rgb.astype(np.float32) / 255.0, None, False, 8)
            out.append(picture_array(upscale_picture(model_, pic, tile=tile, overlap=overlap)))
    return out


#: Models :func:`upscale` loaded, by (file, content, runtime, threads): the last few are kept,
#: so repeated calls with the same run neither read nor compile it again.
_LOADED: OrderedDict[tuple, tuple[Any, threading.Lock]] = OrderedDict()
_LOADED_MAX = 4
_LOADED_LOCK = threading.Lock()


def _loaded_upscaler(model: str | Path, *, threads: int, runtime: str | None) -> tuple:
    """``(upscaler, its lock)`` of ``model``: loaded now, or kept from an earlier call with
    the same file content (a run directory resolves to its checkpoint; a checkpoint or
    ``.onnx`` file that changed is loaded again).
    """
    import hashlib
    import os

    from quantnas.deploy.backends import check_runtime, load_upscaler

    check_runtime(runtime)
    src = Path(model)
    if src.suffix.lower() != ".onnx":
        from quantnas.training.artifact import find_checkpoint

        src = find_checkpoint(src)
    try:
        st = os.stat(src)
    except OSError:
        return load_upscaler(model, threads=threads, runtime=runtime), threading.Lock()
    h = hashlib.sha256()
    with open(src, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    key = (str(src.resolve()), st.st_size, h.hexdigest(), runtime, threads)
    with _LOADED_LOCK:
        hit = _LOADED.get(key)
        if hit is not None:
            _LOADED.move_to_end(key)
            return hit
    loaded = (load_upscaler(model, threads=threads, runtime=runtime), threading.Lock())
    with _LOADED_LOCK:
        _LOADED[key] = loaded
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
    return loaded
