"""Search / training / inference speed against this machine's convolution floor.

For each case, in a fresh process (so its peak RSS is its own):

* **ours**: median seconds of the real step -- a search step
  (``quantnas.search.steps.alpha_step`` + ``weight_step`` on a ``Searcher``'s supernet and
  optimizers), a QAT training step (``Trainer.step``) or inference of a trained network on
  a 256x256 LR image;
* **floor**: the convolutions that step cannot avoid, recorded from the same network in
  one forward pass (every conv's input shape and geometry) and replayed as plain fp32
  ``F.conv2d`` calls, with no quantization, no mixing and no Python model code: forward +
  input and weight gradients for each of the two search steps, once for a training step,
  forward only for inference;
* ``ratio = ours / floor``, both measured in the same process, timed in turns (a step,
  then its floor, ``--steps`` times: a machine whose speed drifts slows both alike);
* peak RSS of the process after two real steps (before the floor's tensors exist).

The ``sampled`` cases search with ``search.alpha_transform=hard_gumbel``: every layer runs
only the one (op, bit) pair drawn for the step (single path), so their floor is that of
the sampled network; the table also gives their speed-up over the full search step.

    python benchmarks/speed.py                        # every case (several minutes)
    python benchmarks/speed.py --cases search-basic --steps 3
    python benchmarks/speed.py --list

Prints one JSON line per case, then a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_GENOTYPE = (
    "Genotype_SR(head=[('simple_3x3', 8), ('simple_3x3', 8)], "
    "body=[('simple_3x3_grouped_3', 8), ('simple_3x3_grouped_3', 8)], "
    "skip=[('simple_1x1', 8)], upsample=[('simple_3x3_grouped_3', 8)], tail=[])"
)
# The RFDN space with its default candidates (no preset): c_fixed 48, bits [4, 8], 4 cells.
RFDN = ["arch.space=rfdn", "arch.c_fixed=48", "arch.body_cells=4", "arch.bits=[4,8]"]


def _cases() -> dict[str, dict]:
    cases: dict[str, dict] = {}
    # noise-table: noise mode with search.noise_source=table (noise windows of a fixed table)
    modes = {
        "noise": ["search.mode=noise"],
        "noise-table": ["search.mode=noise", "search.noise_source=table"],
        "quant": ["search.mode=quant"],
    }
    for mode, extra in modes.items():
        for batch in (4, 16):
            cases[f"search-basic-{mode}-b{batch}"] = {
                "kind": "search",
                "overrides": extra + [f"search.batch_size={batch}"],
            }
            cases[f"search-rfdn-{mode}-b{batch}"] = {
                "kind": "search",
                "overrides": RFDN + ["search.lr_crop=32", f"search.batch_size={batch}"] + extra,
            }
    for space, extra in (("basic", []), ("rfdn", RFDN + ["search.lr_crop=32"])):
        cases[f"search-{space}-sampled-b16"] = {
            "kind": "search",
            "overrides": extra
            + ["search.mode=noise", "search.batch_size=16", "search.alpha_transform=hard_gumbel"],
        }
    cases["train-default"] = {"kind": "train", "overrides": [], "genotype": DEFAULT_GENOTYPE}
    cases["train-rfdn"] = {
        "kind": "train",
        "overrides": RFDN + ["train.batch_size=8", "data.lr_crop=32"],
        "genotype": "rfdn",
    }
    cases["infer-default"] = {"kind": "infer", "overrides": [], "genotype": DEFAULT_GENOTYPE}
    cases["infer-rfdn"] = {"kind": "infer", "overrides": RFDN, "genotype": "rfdn"}
    return cases


def _rfdn_genotype(cells: int):
    from quantnas.space.genotype import Genotype

    body = [("simple_3x3", 4)] * (4 * cells)
    skip = [("simple_1x1", 8)] * (3 * cells)
    pairs = {"body": body, "skip": skip, "upsample": [("simple_3x3", 8)], "tail": []}
    pairs["tail"] = [("simple_3x3", 8)]
    return Genotype.from_pairs(pairs, space="rfdn")


def conv_records(net, x) -> list[tuple]:
    """Input shape and geometry of every conv the forward pass of ``net`` on ``x`` runs."""
    import torch

    from quantnas.quant.conv import QConvBase

    records: list[tuple] = []
    hooks = [
        m.register_forward_hook(
            lambda m, inp, out: records.append(
                (
                    tuple(inp[0].shape),
                    tuple(m.weight.shape),
                    m.stride,
                    m.padding,
                    m.dilation,
                    m.groups,
                )
            )
        )
        for m in net.modules()
        if isinstance(m, QConvBase)
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return records


def floor_fn(records: list[tuple], *, backward: bool):
    """The recorded convs as plain fp32 convs (and their gradients), warmed up once."""
    import torch
    import torch.nn.functional as F

    xs = [torch.randn(r[0], requires_grad=backward) for r in records]
    ws = [torch.randn(r[1], requires_grad=backward) for r in records]
    grads = None

    def once() -> None:
        nonlocal grads
        if not backward:
            with torch.no_grad():
                for x, w, r in zip(xs, ws, records, strict=True):
                    F.conv2d(x, w, None, r[2], r[3], r[4], r[5])
            return
        outs = [
            F.conv2d(x, w, None, r[2], r[3], r[4], r[5])
            for x, w, r in zip(xs, ws, records, strict=True)
        ]
        if grads is None:
            grads = [torch.ones_like(o) for o in outs]
        torch.autograd.backward(outs, grads)
        for t in xs + ws:
            t.grad = None

    once()
    return once


def measure(step, floor_of, steps: int) -> tuple[float, float, float]:
    """Median seconds of ``step`` and of its floor, timed alternately, and the peak RSS.

    ``step`` runs twice first (warm-up, then a step whose memory is the peak the RSS
    reports); then the floor's tensors are made (``floor_of()``) and the two are timed in
    turns, so a machine whose speed drifts during the run slows both alike.
    """
    step()
    step()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    floor = floor_of()
    ours_t, floor_t = [], []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        ours_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        floor()
        floor_t.append(time.perf_counter() - t)
    return statistics.median(ours_t), statistics.median(floor_t), rss


def child(name: str, steps: int, threads: int) -> dict:
    import torch

    from quantnas.pipeline.resolve import load_config
    from quantnas.search.searcher import Searcher
    from quantnas.search.setup import search_crop
    from quantnas.search.steps import alpha_step, weight_step
    from quantnas.space.build import build_network
    from quantnas.space.genotype import parse_text
    from quantnas.training.trainer import Trainer

    case = _cases()[name]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    common = ["progress=false", "tensorboard=false", f"threads={threads}"]
    rfdn = "arch.space=rfdn" in case["overrides"]
    cfg = load_config(preset=None if rfdn else "default", overrides=common + case["overrides"])
    tmp = tempfile.mkdtemp(prefix="quantnas-bench-")
    scale = cfg.arch.scale
    if case["kind"] == "search":
        s = Searcher(cfg, tmp)
        crop, b = search_crop(cfg), cfg.search.batch_size
        lr, hr = torch.rand(b, 3, crop, crop), torch.rand(b, 3, crop * scale, crop * scale)
        epoch = cfg.search.warm_up if isinstance(cfg.search.warm_up, int) else 1

        def step() -> None:
            alpha_step(
                s.net,
                s.cost,
                s.a_opt,
                lr,
                hr,
                cfg=cfg.search,
                epoch=epoch,
                initial_cost=s.initial_cost,
            )
            weight_step(s.net, s.w_opt, s.w_sched, lr, hr, grad_clip=cfg.search.optim.grad_clip)

        def floor_of():
            s.net.train()
            return floor_fn(conv_records(s.net, lr), backward=True)

        ours, floor, rss = measure(step, floor_of, steps)
        floor *= 2  # the alpha step and the weight step each need forward + both gradients
        net = s.net
    else:
        geno = (
            _rfdn_genotype(cfg.arch.body_cells)
            if case["genotype"] == "rfdn"
            else parse_text(case["genotype"])
        )
        if case["kind"] == "train":
            t = Trainer(cfg, tmp, geno)
            b, crop = cfg.train.batch_size, cfg.data.lr_crop
            lr, hr = torch.rand(b, 3, crop, crop), torch.rand(b, 3, crop * scale, crop * scale)
            loss_fn = t.loss_at(0)
            t.net.train()
            ours, floor, rss = measure(
                lambda: t.step(lr, hr, loss_fn),
                lambda: floor_fn(conv_records(t.net, lr), backward=True),
                steps,
            )
            net = t.net
        else:
            net = build_network(geno, cfg.arch).eval()
            lr = torch.rand(1, 3, 256, 256)

            def infer() -> None:
                with torch.no_grad():
                    net(lr)

            ours, floor, rss = measure(
                infer, lambda: floor_fn(conv_records(net, lr), backward=False), steps
            )
    records = conv_records(net, lr)
    gmac = 0.0
    for inp, w, stride, pad, dil, _groups in records:
        h = (inp[2] + 2 * pad[0] - dil[0] * (w[2] - 1) - 1) // stride[0] + 1
        wd = (inp[3] + 2 * pad[1] - dil[1] * (w[3] - 1) - 1) // stride[1] + 1
        gmac += inp[0] * w[0] * w[1] * w[2] * w[3] * h * wd / 1e9
    return {
        "case": name,
        "seconds": ours,
        "floor_seconds": floor,
        "ratio": ours / floor,
        "peak_rss_gb": rss,
        "convs": len(records),
        "gmac_forward": gmac,
        "threads": threads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=None, help="case names or prefixes")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.threads)))
        return
    names = list(_cases())
    if args.list:
        print("\n".join(names))
        return
    if args.cases:
        names = [n for n in names if any(n.startswith(c) for c in args.cases)]
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps)]
        cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            row = {"case": name, "error": out.stderr.strip().splitlines()[-1:]}
        else:
            row = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    head = f"{'case':28s} {'s/step':>8s} {'floor s':>8s} {'ratio':>6s} {'RSS GB':>7s}"
    print(f"\n{head} {'convs':>6s}")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:28s} error: {r['error']}")
            continue
        print(
            f"{r['case']:28s} {r['seconds']:8.3f} {r['floor_seconds']:8.3f} {r['ratio']:6.2f} "
            f"{r['peak_rss_gb']:7.2f} {r['convs']:6d}"
        )
    by = {r["case"]: r for r in rows if "error" not in r}
    for space in ("basic", "rfdn"):
        full, samp = by.get(f"search-{space}-noise-b16"), by.get(f"search-{space}-sampled-b16")
        if full and samp:
            print(
                f"sampled (hard_gumbel) vs full noise search step, {space} b16: "
                f"{full['seconds'] / samp['seconds']:.1f}x faster, "
                f"{full['peak_rss_gb'] / samp['peak_rss_gb']:.1f}x less peak RSS"
            )
    for space in ("basic", "rfdn"):
        for b in (4, 16):
            q = by.get(f"search-{space}-quant-b{b}")
            for noise in ("noise", "noise-table"):
                n = by.get(f"search-{space}-{noise}-b{b}")
                if n and q:
                    ratio = n["seconds"] / q["seconds"]
                    print(f"{noise} / quant step time, {space} b{b}: {ratio:.2f}")


if __name__ == "__main__":
    main()
