"""Latency of exported networks on one 256x256 LR image: onnxruntime and OpenVINO, fp32 and
integer, and PyTorch, timed interleaved in one process.

Variants (each network with weights from the same seed; weights do not change latency):

* ``ort fp32``: the ``onnx-fp32`` export in onnxruntime (the baseline of the ratios);
* ``ort QDQ``: the ``onnx`` export of the network as it is (exact rewrites: shared Q, integer
  clip, float weights for the convs onnxruntime cannot fuse, one DepthToSpace);
* ``ort integer-only``: the same genotype with ``arch.output_quant`` (every conv QLinearConv);
* ``ort QDQ u8w`` / ``ort integer-only u8w``: the same two files with uint8 weight levels at
  zero point 128 (``quantnas export --weight-dtype uint8``: onnxruntime's u8 x u8 kernels
  instead of u8 x s8, exact on CPUs without VNNI);
* ``openvino fp32`` / ``openvino int8``: the fp32 and QDQ files in OpenVINO (static shape,
  f32 precision hint); ``openvino integer-only``: the output_quant file;
* ``torch fp32`` / ``torch fake quant``: the PyTorch network.

Every round runs each variant once, in turn; a variant's time is its median over the
rounds, and the ratio is ``ort fp32 / variant`` (higher is faster), so slow drifts of the
machine hit every variant alike. ``int convs`` counts the integer convs of the runtime's
optimised graph (of all convs, the bicubic skip's two included); ``max err`` is the largest
difference to the PyTorch network the variant was exported from (fake quant or fp32) on the
random input (a random network's levels often sit at rounding ties, so one tie rounded the
other way moves an output by far more than float noise); ``self-check`` is the export's
own verdict (:func:`quantnas.deploy.export.check_onnx`: photo crops, the runtime's integer
levels read back and checked as roundings of PyTorch's, then fed to PyTorch).

``--profile`` adds where the time goes: the integer (``output_quant``) and QDQ files per
node in onnxruntime (``SessionOptions.enable_profiling``) and OpenVINO (its performance
counters, ``PERF_COUNT``), summed over the rounds and grouped into integer conv work, float
convs of the network, the bicubic skip (its symmetric pad and two fixed convs), Q/DQ,
layout changes, DepthToSpace, sums and the rest.

``--upscale RUN_DIR`` times what a user runs instead: ``quantnas.api.upscale`` of one
256x256 LR photo-like image with a trained run, on the default runtime (the cached,
self-checked export on the fastest exact runtime) against ``runtime="torch"``, interleaved,
with the first (export-building) call timed apart and the largest difference of the 8-bit
outputs.

    python benchmarks/deploy_latency.py                     # default + its 4-bit version
    python benchmarks/deploy_latency.py --genotype paper-example --threads 2
    python benchmarks/deploy_latency.py --genotype default --profile
    python benchmarks/deploy_latency.py --upscale runs/my-run --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict

#: Profile groups, in the order the table shows them.
GROUPS = (
    "integer conv",
    "float conv (network)",
    "bicubic skip",
    "Q/DQ",
    "layout",
    "DepthToSpace",
    "sums",
    "other",
)


def _group(op: str, name: str, integer: bool = False) -> str:
    """The profile group of one executed node (onnxruntime op type or OpenVINO layer type)."""
    low = name.lower()
    if "bicubic" in low or "sym_pad" in low or (op in ("Slice", "Concat") and "slice" in low):
        return "bicubic skip"
    if op in ("QLinearConv", "ConvInteger") or (op == "Convolution" and integer):
        return "integer conv"
    if op in ("Conv", "FusedConv", "NchwcConv", "Convolution"):
        return "float conv (network)"
    if op in ("QuantizeLinear", "DequantizeLinear", "FakeQuantize", "Clip"):
        return "Q/DQ"
    if op in ("ReorderInput", "ReorderOutput", "Reorder", "Transpose", "Reshape"):
        return "layout"
    if op == "DepthToSpace":
        return "DepthToSpace"
    if op in ("Add", "QLinearAdd", "Sum", "Eltwise", "Subgraph", "Mul", "Multiply"):
        return "sums"
    return "other"


def _ort_profile(data: bytes, lr, threads: int, rounds: int):
    """``{(group, op): seconds per run}`` of onnxruntime's node kernels over ``rounds`` runs."""
    import onnx
    import onnxruntime as ort

    from quantnas.deploy.ort_graph import DISABLED_OPTIMIZERS, for_onnxruntime

    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(d, "ort")
        sess = ort.InferenceSession(
            for_onnxruntime(onnx.load_from_string(data)).SerializeToString(),
            opts,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=DISABLED_OPTIMIZERS,
        )
        sess.run(None, {"lr": lr})  # warm-up, profiled too: dropped below
        for _ in range(rounds):
            sess.run(None, {"lr": lr})
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    # model_run events close a run: the kernel events of a run come before its model_run
    totals: dict = defaultdict(float)
    runs = 0
    current: dict = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            current[(_group(op, e["name"]), op)] += e["dur"] / 1e6
        elif e.get("cat") == "Session" and e.get("name") == "model_run":
            if runs > 0:  # the first run is the warm-up
                for k, v in current.items():
                    totals[k] += v
            runs += 1
            current = defaultdict(float)
    n = max(runs - 1, 1)
    return {k: v / n for k, v in totals.items()}


def _openvino_profile(data: bytes, lr, threads: int, rounds: int):
    """``{(group, layer type): seconds per run}`` from OpenVINO's performance counters."""
    from quantnas.deploy.openvino_runtime import OpenVinoModel

    m = OpenVinoModel(data, threads)
    m.config["PERF_COUNT"] = "YES"
    compiled = m._compiled_for(tuple(lr.shape))
    req = compiled.create_infer_request()
    req.infer({0: lr})
    totals: dict = defaultdict(float)
    for _ in range(rounds):
        req.infer({0: lr})
        for info in req.get_profiling_info():
            t = info.real_time.total_seconds()
            if t <= 0:
                continue
            kind = info.node_type
            integer = any(p in info.exec_type.lower() for p in ("i8", "u8"))
            totals[(_group(kind, info.node_name, integer), f"{kind} ({info.exec_type})")] += t
    return {k: v / rounds for k, v in totals.items()}


def _print_profile(title: str, prof: dict, wall: float) -> None:
    total = sum(prof.values())
    print(f"{title}: node time {total * 1e3:.1f} ms per run (wall {wall * 1e3:.1f} ms)")
    print(f"| {'group':22s} | {'ms':>6s} | {'share':>6s} | ops (ms) |")
    print(f"|{'-' * 24}|{'-' * 8}|{'-' * 8}|{'-' * 10}|")
    for g in GROUPS:
        items = sorted(((op, v) for (gg, op), v in prof.items() if gg == g), key=lambda t: -t[1])
        if not items:
            continue
        ms = sum(v for _, v in items) * 1e3
        ops = ", ".join(f"{op} {v * 1e3:.2f}" for op, v in items[:4])
        print(f"| {g:22s} | {ms:6.2f} | {ms / (total * 1e3):5.1%} | {ops} |")
    print()


def _lr(args):
    import numpy as np

    return np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)


def _photo_lr(size: int):
    """A ``size`` x ``size`` uint8 RGB crop of an embedded photo (resized if it is smaller)."""
    import numpy as np
    from PIL import Image

    from quantnas.data.sources import embedded_images

    _, photo = embedded_images("val")[0]
    img = Image.fromarray(photo)
    if min(img.size) < size:
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(img)[:size, :size, :3])


def _upscale_bench(args) -> None:
    """Default runtime vs ``runtime="torch"``: ``api.upscale`` calls (the model loaded by
    each call) and the upscaling of the image by a loaded model.
    """
    import logging

    import numpy as np

    from quantnas import api
    from quantnas.deploy.backends import load_upscaler
    from quantnas.deploy.picture import Picture
    from quantnas.deploy.upscale import upscale_picture

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from quantnas.deploy.export_cache import cache_key, cache_path
    from quantnas.training.artifact import find_checkpoint

    img = _photo_lr(args.size)
    ckpt = find_checkpoint(args.upscale)
    cache_path(ckpt, cache_key(ckpt)).unlink(missing_ok=True)  # time the first call cold
    t0 = time.perf_counter()
    first = api.upscale(args.upscale, [img], threads=args.threads)[0]
    cold = time.perf_counter() - t0
    pic = Picture(img.astype(np.float32) / 255.0, None, False, 8)
    models = {
        rt: load_upscaler(args.upscale, threads=args.threads, runtime=rt)
        for rt in (None, "ort", "torch")
    }
    runs = {
        "api.upscale, default": lambda: api.upscale(args.upscale, [img], threads=args.threads)[0],
        "api.upscale, torch": lambda: api.upscale(
            args.upscale, [img], threads=args.threads, runtime="torch"
        )[0],
        "loaded model, default": lambda: upscale_picture(models[None], pic, tile=256, overlap=0),
        "loaded model, torch": lambda: upscale_picture(models["torch"], pic, tile=256, overlap=0),
        "loaded model, ort": lambda: upscale_picture(models["ort"], pic, tile=256, overlap=0),
    }
    outs = {k: f() for k, f in runs.items()}  # warm-up
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    a, b = outs["api.upscale, default"].astype(int), outs["api.upscale, torch"].astype(int)

    def ratio(what: str) -> float:
        return med[f"{what}, torch"] / med[f"{what}, default"]

    print(
        f"\nupscale of a {args.size}x{args.size} LR photo crop with {args.upscale}, "
        f"{args.threads} thread(s), median of {args.rounds} interleaved rounds; default "
        f"runtime: {models[None].runtime if hasattr(models[None], 'runtime') else 'torch'}"
    )
    print("| call | seconds |\n|---|---|")
    print(f"| api.upscale, default, first call (export made, self-checked, cached) | {cold:.3f} |")
    for k, v in med.items():
        print(f"| {k} | {v:.4f} |")
    print(
        f"speed-up over torch: api.upscale {ratio('api.upscale'):.2f}x, "
        f"loaded model {ratio('loaded model'):.2f}x (onnxruntime, the default without "
        f"OpenVINO: {med['loaded model, torch'] / med['loaded model, ort']:.2f}x); "
        f"max |default - torch| = {int(np.abs(a - b).max())}/255 on the 8-bit outputs "
        f"({int((a != b).sum())} of {a.size} values differ); first call equals the later ones: "
        f"{bool(np.array_equal(first, outs['api.upscale, default']))}"
    )


def _variants(geno, args):
    """``[(name, run, int_convs, max_err)]`` of one genotype."""
    import numpy as np
    import torch

    from quantnas.deploy.backends import ort_session
    from quantnas.deploy.export import check_onnx
    from quantnas.deploy.onnx_export import export_onnx
    from quantnas.deploy.ort_graph import integer_convs
    from quantnas.pipeline.resolve import load_config
    from quantnas.space.build import build_network, set_quantized

    lr = _lr(args)
    x = torch.from_numpy(lr)
    out = []

    def net_of(output_quant: bool):
        torch.manual_seed(0)
        flag = str(output_quant).lower()
        arch = load_config(preset="default", overrides=[f"arch.output_quant={flag}"]).arch
        net = build_network(geno, arch)
        with torch.no_grad():
            net.out_scale.fill_(0.5)
            net.train()(x[..., :64, :64])  # calibrate the output quantizers
        return net.eval()

    net, oq_net = net_of(False), net_of(True)
    fp_net = copy.deepcopy(net)
    set_quantized(fp_net, False)
    with torch.inference_mode():
        refs = {id(m): m(x).numpy() for m in (net, oq_net, fp_net)}
    protos, points = {}, {}
    for kind, m, quantized, wdt in (
        ("fp32", net, False, "int8"),
        ("QDQ", net, True, "int8"),
        ("integer-only", oq_net, True, "int8"),
        ("QDQ u8w", net, True, "uint8"),
        ("integer-only u8w", oq_net, True, "uint8"),
    ):
        points[kind] = []
        protos[kind] = export_onnx(m, quantized=quantized, points=points[kind], weight_dtype=wdt)
    refs_of = {
        "fp32": fp_net,
        "QDQ": net,
        "integer-only": oq_net,
        "QDQ u8w": net,
        "integer-only u8w": oq_net,
    }
    files = [(kind, protos[kind].SerializeToString(), ref) for kind, ref in refs_of.items()]
    args.files = {kind: data for kind, data, _ in files}

    def checked(kind: str, ref, runtime: str) -> str:
        """The export self-check's verdict (real photo crops, levels fed back)."""
        c = check_onnx(protos[kind], ref, 4, points[kind], args.threads, runtime)
        return "pass" if c.passed else "FAIL"

    for kind, data, ref in files:
        sess = ort_session(data, args.threads)
        err = float(np.abs(sess.run(None, {"lr": lr})[0] - refs[id(ref)]).max())
        err = (err, checked(kind, ref, "ort"))
        n_int, n_all = integer_convs(data, args.threads)
        out.append((f"ort {kind}", lambda s=sess: s.run(None, {"lr": lr}), f"{n_int}/{n_all}", err))
    try:  # the module imports without OpenVINO; the runtime itself is optional
        import openvino  # noqa: F401

        from quantnas.deploy.openvino_runtime import OpenVinoModel
    except ImportError:
        OpenVinoModel = None
    if OpenVinoModel is not None:
        for kind, (_, data, ref) in zip(("fp32", "int8", "integer-only"), files[:3], strict=True):
            m = OpenVinoModel(data, args.threads)
            err = float(np.abs(m.run(lr)[0] - refs[id(ref)]).max())
            err = (err, checked({"int8": "QDQ"}.get(kind, kind), ref, "openvino"))
            n_int, n_all = m.convs(lr.shape)
            out.append((f"openvino {kind}", lambda m=m: m.run(lr), f"{n_int}/{n_all}", err))

    def torch_run(m):
        def run():
            with torch.inference_mode():
                m(x)

        return run

    out.append(("torch fp32", torch_run(fp_net), "-", (0.0, "-")))
    out.append(("torch fake quant", torch_run(net), "-", (0.0, "-")))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genotype", help="builtin name or genotype file (default: default + 4-bit)")
    p.add_argument("--size", type=int, default=256, help="LR side (default 256)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--profile", action="store_true", help="per-node profile of the files")
    p.add_argument("--upscale", metavar="RUN_DIR", help="time api.upscale of a trained run")
    args = p.parse_args()
    if args.upscale:
        _upscale_bench(args)
        return

    from quantnas.device import set_threads
    from quantnas.space import genotype as gt

    set_threads(args.threads)
    if args.genotype:
        genos = [(args.genotype, gt.resolve(args.genotype))]
    else:
        default = gt.resolve("default")
        four = gt.Genotype.from_pairs(
            {b: [(c.op, 4) for c in layers] for b, layers in default.blocks.items()}
        )
        genos = [("default (8-bit)", default), ("default ops, 4-bit", four)]
    print(
        f"LR {args.size}x{args.size} -> x4, c_fixed 48, {args.threads} thread(s), median of "
        f"{args.rounds} interleaved rounds; ratio = ort fp32 time / variant time\n"
    )
    for label, geno in genos:
        rows = _variants(geno, args)
        times: dict[str, list[float]] = {name: [] for name, *_ in rows}
        for _name, run, *_ in rows:
            run()  # warm-up (allocations, kernel selection)
        for _ in range(args.rounds):
            for name, run, *_ in rows:
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["ort fp32"])
        print(f"{label}: {geno.to_text()}")
        print(
            f"| {'variant':24s} | {'seconds':>8s} | {'ratio':>6s} | int convs | max err | "
            "self-check |"
        )
        print(f"|{'-' * 26}|{'-' * 10}|{'-' * 8}|{'-' * 11}|{'-' * 9}|{'-' * 12}|")
        for name, _, convs, (err, check) in rows:
            s = statistics.median(times[name])
            print(
                f"| {name:24s} | {s:8.4f} | {base / s:5.2f}x | {convs:>9s} | {err:7.1e} | "
                f"{check:>10s} |"
            )
        print()
        if args.profile:
            x = _lr(args)
            for kind in ("integer-only", "QDQ"):
                data = args.files[kind]
                wall = statistics.median(times[f"ort {kind}"])
                _print_profile(
                    f"onnxruntime, {kind}", _ort_profile(data, x, args.threads, args.rounds), wall
                )
                if f"openvino {kind if kind != 'QDQ' else 'int8'}" in times:
                    wall = statistics.median(times[f"openvino {kind if kind != 'QDQ' else 'int8'}"])
                    prof = _openvino_profile(data, x, args.threads, args.rounds)
                    _print_profile(f"OpenVINO, {kind}", prof, wall)


if __name__ == "__main__":
    main()
