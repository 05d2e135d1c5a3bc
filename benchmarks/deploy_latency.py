"""Latency of the exported network on one 256x256 LR image: onnxruntime fp32 vs QDQ vs PyTorch.

The network is the default preset's final architecture (basic space, c_fixed 48, x4,
bicubic global skip) with the default genotype (8-bit) or any genotype / trained run given
with --genotype / --model. Weights do not change the latency, so a freshly built network is
timed unless --model is given. Every variant runs in this process on the same threads; the
median of --reps runs after one warm-up run is reported, with ratios to onnxruntime fp32.

    python benchmarks/deploy_latency.py                       # default genotype, 1 thread
    python benchmarks/deploy_latency.py --genotype paper-example --threads 2
    python benchmarks/deploy_latency.py --model runs/my_run   # a trained network

What fake quantization does and does not speed up: the QDQ graph and PyTorch's fake-quant
network compute their convolutions in float32 and add quantize/dequantize work around them,
so on a CPU they are not faster than full precision. onnxruntime swaps a conv for an 8-bit
integer kernel (QLinearConv) only where a QuantizeLinear directly follows it; in these
networks most conv outputs first go through a residual sum or the pixel shuffle, so only a
few convs become integer (the script counts them in onnxruntime's optimized graph), the
Q/DQ work around the others costs more than those few save, and no CPU kernel computes at
2-4 bits. The BitOps savings the search optimizes materialize only on hardware or kernels
with low-bit integer arithmetic; on a CPU the exported QDQ file is a faithful, portable
simulation of the quantized network, not a faster one.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path


def _median_seconds(fn, reps: int) -> float:
    fn()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _integer_convs(model_bytes: bytes, threads: int) -> int:
    """QLinearConv / ConvInteger nodes in onnxruntime's optimized graph."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3  # no warning about hardware-specific saved graphs
        opts.optimized_model_filepath = str(Path(d) / "opt.onnx")
        ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath).graph
    return sum(1 for n in graph.node if n.op_type in ("QLinearConv", "ConvInteger"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genotype", default="default", help="builtin name or genotype file")
    p.add_argument("--model", help="trained run dir or checkpoint (instead of --genotype)")
    p.add_argument("--size", type=int, default=256, help="LR side (default 256)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()

    import numpy as np
    import torch

    from quantnas import genotype as gt
    from quantnas.checkpoint import load_model
    from quantnas.config import load_config
    from quantnas.deploy.onnx_export import export_onnx
    from quantnas.deploy.runtime import find_checkpoint, ort_session
    from quantnas.device import set_threads
    from quantnas.space import build_network, set_quantized

    set_threads(args.threads)
    torch.manual_seed(0)
    if args.model:
        net, geno, arch = load_model(find_checkpoint(args.model))
    else:
        geno = gt.resolve(args.genotype)
        arch = load_config(preset="default").arch
        net = build_network(geno, arch).eval()
    fp_net = copy.deepcopy(net)
    set_quantized(fp_net, False)
    qdq = export_onnx(net, quantized=True).SerializeToString()
    fp32 = export_onnx(net, quantized=False).SerializeToString()
    lr = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
    x = torch.from_numpy(lr)

    def ort_run(model: bytes):
        sess = ort_session(model, args.threads)
        return lambda: sess.run(None, {"lr": lr})

    def torch_run(m):
        def run():
            with torch.inference_mode():
                m(x)

        return run

    rows = [
        ("onnxruntime fp32", ort_run(fp32)),
        ("onnxruntime QDQ (fake quant)", ort_run(qdq)),
        ("PyTorch fp32", torch_run(fp_net)),
        ("PyTorch fake quant", torch_run(net)),
    ]
    print(
        f"genotype: {geno.to_text()}\nLR {args.size}x{args.size} -> x{arch.scale}, "
        f"c_fixed {arch.c_fixed}, {args.threads} thread(s), median of {args.reps} runs\n"
        f"integer convs in onnxruntime's optimized QDQ graph: {_integer_convs(qdq, args.threads)}"
        f" of {sum(1 for n in net.modules() if hasattr(n, 'w_quant'))}\n"
    )
    base = None
    print(f"{'variant':32s} {'seconds':>8s} {'vs ort fp32':>12s}")
    for name, fn in rows:
        s = _median_seconds(fn, args.reps)
        base = base or s
        print(f"{name:32s} {s:8.3f} {s / base:11.2f}x")


if __name__ == "__main__":
    main()
