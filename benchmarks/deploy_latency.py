"""Latency of exported networks on one 256x256 LR image: onnxruntime and OpenVINO, fp32 and
integer, and PyTorch, timed interleaved in one process.

Variants (each network with weights from the same seed; weights do not change latency):

* ``ort fp32``: the ``onnx-fp32`` export in onnxruntime (the baseline of the ratios);
* ``ort QDQ``: the ``onnx`` export of the network as it is (exact rewrites: shared Q, integer
  clip, float weights for the convs onnxruntime cannot fuse, one DepthToSpace);
* ``ort integer-only``: the same genotype with ``arch.output_quant`` (every conv QLinearConv);
* ``openvino fp32`` / ``openvino int8``: the fp32 and QDQ files in OpenVINO (static shape,
  f32 precision hint); ``openvino integer-only``: the output_quant file;
* ``torch fp32`` / ``torch fake quant``: the PyTorch network.

Every round runs each variant once, in turn; a variant's time is its median over the
rounds, and the ratio is ``ort fp32 / variant`` (higher is faster), so slow drifts of the
machine hit every variant alike. ``int convs`` counts the integer convs of the runtime's
optimised graph (of all convs, the bicubic skip's two included); ``max err`` is the largest
difference to the PyTorch network the variant was exported from (fake quant or fp32).

    python benchmarks/deploy_latency.py                     # default + its 4-bit version
    python benchmarks/deploy_latency.py --genotype paper-example --threads 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time


def _variants(geno, args):
    """``[(name, run, int_convs, max_err)]`` of one genotype."""
    import numpy as np
    import torch

    from quantnas.config import load_config
    from quantnas.deploy.onnx_export import export_onnx
    from quantnas.deploy.ort_graph import integer_convs
    from quantnas.deploy.runtime import ort_session
    from quantnas.space import build_network, set_quantized

    lr = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
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
    files = [
        ("fp32", export_onnx(net, quantized=False).SerializeToString(), fp_net),
        ("QDQ", export_onnx(net).SerializeToString(), net),
        ("integer-only", export_onnx(oq_net).SerializeToString(), oq_net),
    ]
    for kind, data, ref in files:
        sess = ort_session(data, args.threads)
        err = float(np.abs(sess.run(None, {"lr": lr})[0] - refs[id(ref)]).max())
        n_int, n_all = integer_convs(data, args.threads)
        out.append((f"ort {kind}", lambda s=sess: s.run(None, {"lr": lr}), f"{n_int}/{n_all}", err))
    try:
        from quantnas.deploy.openvino_runtime import OpenVinoModel
    except ImportError:
        OpenVinoModel = None
    if OpenVinoModel is not None:
        for kind, (_, data, ref) in zip(("fp32", "int8", "integer-only"), files, strict=True):
            m = OpenVinoModel(data, args.threads)
            err = float(np.abs(m.run(lr)[0] - refs[id(ref)]).max())
            n_int, n_all = m.convs(lr.shape)
            out.append((f"openvino {kind}", lambda m=m: m.run(lr), f"{n_int}/{n_all}", err))

    def torch_run(m):
        def run():
            with torch.inference_mode():
                m(x)

        return run

    out.append(("torch fp32", torch_run(fp_net), "-", 0.0))
    out.append(("torch fake quant", torch_run(net), "-", 0.0))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genotype", help="builtin name or genotype file (default: default + 4-bit)")
    p.add_argument("--size", type=int, default=256, help="LR side (default 256)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = p.parse_args()

    from quantnas import genotype as gt
    from quantnas.device import set_threads

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
        print(f"| {'variant':24s} | {'seconds':>8s} | {'ratio':>6s} | int convs | max err |")
        print(f"|{'-' * 26}|{'-' * 10}|{'-' * 8}|{'-' * 11}|{'-' * 9}|")
        for name, _, convs, err in rows:
            s = statistics.median(times[name])
            print(f"| {name:24s} | {s:8.4f} | {base / s:5.2f}x | {convs:>9s} | {err:7.1e} |")
        print()


if __name__ == "__main__":
    main()
