"""Seconds per search step and peak RSS, noise vs direct-quantization mode.

Documented config (issue 3): RFDN space, c_fixed 48, bits [4, 8], 4 cells, LR crop 32x32
(HR 128x128), batch 4 and 16, 2 threads. A "search step" is one alpha step (L1 + entropy +
BitOps penalty, Adam) plus one weight step (L1, Adam, grad clipping), as in the search loop.
Each (mode, batch) runs in a fresh subprocess so its peak RSS is its own.

    python benchmarks/search_step.py                # full table (a few minutes on 2 cores)
    python benchmarks/search_step.py --batches 4 --steps 2

The original research code's figures at this config on the same machine kind (quoted from
the issue, not re-measured here) are printed beside ours as ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

# Original research code, same config and machine kind (seconds per step, peak RSS GB).
ORIGINAL = {4: (5.7, 4.2), 16: (17.6, 16.3)}


def child(mode: str, batch: int, steps: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    from quantnas.config import load_config
    from quantnas.cost import SupernetCost
    from quantnas.search.losses import hardware_penalty, sparsity
    from quantnas.search.searcher import build_supernet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = load_config(
        overrides=[
            "arch.space=rfdn",
            "arch.c_fixed=48",
            "arch.body_cells=4",
            "arch.bits=[4,8]",
            f"search.mode={mode}",
            "arch.global_skip=none",
        ]
    )
    net = build_supernet(cfg)
    cost = SupernetCost(net, lr_size=32)
    w_opt = torch.optim.Adam(net.weights(), lr=1e-3)
    a_opt = torch.optim.Adam(net.alphas(), lr=3e-4, betas=(0.5, 0.999))
    with torch.no_grad():
        e0 = float(cost.expected_bitops(net.probabilities()))
    lr = torch.rand(batch, 3, 32, 32)
    hr = torch.rand(batch, 3, 128, 128)

    def step() -> None:
        a_opt.zero_grad(set_to_none=True)
        probs = net.probabilities()
        logits = {k: net.alpha.logits(k) for k in probs}
        loss = (
            F.l1_loss(net(lr), hr)
            + 1e-3 * sparsity("entropy", probs, logits)
            + hardware_penalty(cost.expected_bitops(probs), e0, 0.1).float()
        )
        loss.backward()
        a_opt.step()
        w_opt.zero_grad(set_to_none=True)
        F.l1_loss(net(lr), hr).backward()
        torch.nn.utils.clip_grad_norm_(list(net.weights()), 5.0)
        w_opt.step()

    step()  # warm-up (allocator, lazy init)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sec = (time.perf_counter() - t0) / steps
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return {"mode": mode, "batch": batch, "sec_per_step": sec, "peak_rss_gb": rss_gb}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[4, 16])
    p.add_argument("--modes", nargs="+", default=["noise", "quant"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", nargs=2, metavar=("MODE", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        res = child(args.child[0], int(args.child[1]), args.steps, args.threads)
        sys.stdout.write(json.dumps(res) + "\n")
        return
    rows = []
    for batch in args.batches:
        for mode in args.modes:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    str(batch),
                    "--steps",
                    str(args.steps),
                    "--threads",
                    str(args.threads),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    hdr = (
        f"{'mode':6s} {'batch':>5s} {'s/step':>8s} {'peak RSS GB':>12s} "
        f"{'orig s/step':>12s} {'speedup':>8s} {'orig RSS':>9s} {'RSS ratio':>10s}"
    )
    lines = [
        "RFDN space, c_fixed 48, bits [4,8], 4 cells, LR 32x32, "
        f"{args.threads} threads, {args.steps} timed steps",
        hdr,
    ]
    for r in rows:
        o_s, o_m = ORIGINAL.get(r["batch"], (float("nan"), float("nan")))
        lines.append(
            f"{r['mode']:6s} {r['batch']:5d} {r['sec_per_step']:8.2f} "
            f"{r['peak_rss_gb']:12.2f} {o_s:12.1f} {o_s / r['sec_per_step']:7.2f}x "
            f"{o_m:9.1f} {r['peak_rss_gb'] / o_m:9.2f}x"
        )
    by = {(r["mode"], r["batch"]): r for r in rows}
    for batch in args.batches:
        if ("noise", batch) in by and ("quant", batch) in by:
            ratio = by[("quant", batch)]["sec_per_step"] / by[("noise", batch)]["sec_per_step"]
            lines.append(
                f"batch {batch}: noise mode is {ratio:.2f}x the speed of direct "
                "quantization (measured in this run)"
            )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
