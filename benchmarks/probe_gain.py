"""Does the supernet leave bicubic in its first weight steps? Its probe gain, per candidate.

Each row is one way of starting / warming up the default preset's supernet. For every row
and seed, the preset's search runs through the project's own code path
(:class:`quantnas.search.searcher.Searcher`: its weight and alpha steps, its
``warm_up: auto`` decision, its validation) and, every ``--every`` weight steps and at
every epoch end, the gain over bicubic (dB) of the supernet *as the alpha steps see it*
(noise / quantizers on) is measured with :class:`quantnas.search.probe.AlphaProbe`: RGB
PSNR minus bicubic's on 32 fixed LR crops of the alpha split (the crops ``warm_up: auto``
uses). The probe runs on a copy of the supernet under a forked RNG, so the search itself is
exactly the run it would be without it. ``first alpha`` is the gain at the moment the first
alpha step is taken (the end of the last warm-up epoch).

Rows are config overrides of the preset (what quantnas offers: ``search.branch_init``,
``search.float_warm_up``, ``search.output_scale``, crops, widths, learning rates) or, for
candidates quantnas does not offer, a patch of the freshly built supernet defined here
(named ``patch:`` in the row list); every row sets the options it compares explicitly, so
the rows do not change when the preset's defaults do.

    python benchmarks/probe_gain.py --list
    python benchmarks/probe_gain.py --rows gate zero_last+float --seeds 0 1 2
    python benchmarks/probe_gain.py --out runs/probe.jsonl   # every row; appends, resumes
    python benchmarks/probe_gain.py --out runs/probe.jsonl --table   # only print the table

Prints one JSON line per (row, seed), then a markdown table of the means over seeds.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from quantnas.api import load_config
from quantnas.quant.conv import QConvBase
from quantnas.search.searcher import Searcher
from quantnas.search.supernet import Supernet

#: The options every row sets (the original quantnas supernet: He init, output gate, no
#: float warm-up), so that a row means the same whatever the preset's defaults are.
ORIGINAL = ["search.branch_init=he", "search.output_scale=true", "search.float_warm_up=false"]
NO_GATE = ["search.branch_init=he", "search.output_scale=false", "search.float_warm_up=false"]
ZERO = ["search.branch_init=zero_last", "search.output_scale=false", "search.float_warm_up=false"]
ZERO_FLOAT = [*ZERO[:2], "search.float_warm_up=true"]

Patch = Callable[[Supernet], None]


def _convs(module: nn.Module) -> list[QConvBase]:
    return [m for m in module.modules() if isinstance(m, QConvBase)]


def _last_convs(net: Supernet, block: str, index: int | None = None) -> list[QConvBase]:
    """The last conv of every candidate of ``block``'s layer ``index`` (every layer: None)."""
    out = []
    for layer in net.mixed_layers():
        b, i = layer.key.split(".")
        if b == block and (index is None or int(i) == index):
            for op in layer.ops:
                out += _convs(op)[-1:]
    return out


def _scale_output(factor: float) -> Patch:
    def patch(net: Supernet) -> None:
        with torch.no_grad():
            for conv in net.output_convs():
                conv.weight.mul_(factor)

    return patch


def _zero_cells(net: Supernet) -> None:
    """Fixup on every cell too: the last body layer's and the skip layer's convs at zero."""
    with torch.no_grad():
        for conv in _last_convs(net, "body", net.counts["body"] - 1) + _last_convs(net, "skip"):
            conv.weight.zero_()


def _torch_init(net: Supernet) -> None:
    """PyTorch's default conv init (Kaiming-uniform, a = sqrt(5)), the original's, on every
    conv but the zeroed output convs; LSQ steps re-initialised from it.
    """
    zeroed = {id(c) for c in net.output_convs() if not c.weight.any()}
    with torch.no_grad():
        for conv in _convs(net):
            if id(conv) not in zeroed:
                nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5))
                conv.reset_steps()


def _res_scale(net: Supernet) -> None:
    """EDSR's fixed residual scale: every cell's branches (skip and body) times 0.1."""
    for cell in net.net.body.fn:
        cell.fn.scales = [0.1 * s for s in cell.fn.scales]


class _MeanShift(nn.Module):
    """EDSR's MeanShift: the DIV2K RGB mean subtracted from the LR input."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.mean


def _mean_shift(net: Supernet) -> None:
    net.net.head[0] = nn.Sequential(_MeanShift(), net.net.head[0])


def _darts_bn(net: Supernet) -> None:
    """DARTS's parameter-free BatchNorm after every candidate (but the output layer's)."""
    for layer in net.mixed_layers():
        if layer.key.startswith("upsample"):
            continue
        c_out = _convs(layer.ops[0])[-1].c_out
        layer.ops = nn.ModuleList(
            nn.Sequential(op, nn.BatchNorm2d(c_out, affine=False)) for op in layer.ops
        )


def _icnr(net: Supernet) -> None:
    """ICNR (Aitken et al. 2017): the pixel-shuffle conv's sub-pixel kernels of one output
    colour all equal (nearest-neighbour upsampling of a conv), He-scaled.
    """
    s2 = net.arch.scale**2
    with torch.no_grad():
        for conv in net.output_convs():
            base = conv.weight[::s2].clone()
            conv.weight.copy_(base.repeat_interleave(s2, dim=0))


def _both(*patches: Patch) -> Patch:
    def patch(net: Supernet) -> None:
        for p in patches:
            p(net)

    return patch


#: name -> (description, overrides, patch or None).
ROWS: dict[str, tuple[str, list[str], Patch | None]] = {
    "gate": ("output gate at 0 (the original quantnas supernet)", ORIGINAL, None),
    "no-gate": ("no gate, He init", NO_GATE, None),
    "no-gate+out0.01": (
        "no gate, output convs x0.01 (patch: issue 27's check)",
        NO_GATE,
        _scale_output(0.01),
    ),
    "icnr": ("no gate, ICNR output conv (patch)", NO_GATE, _icnr),
    "zero_last": ("output convs at 0 (branch_init=zero_last)", ZERO, None),
    "zero_last+cells0": (
        "zero_last + every cell's last convs at 0 (patch: Fixup)",
        ZERO,
        _zero_cells,
    ),
    "zero_last+torch_init": ("zero_last + PyTorch default init (patch)", ZERO, _torch_init),
    "zero_last+res_scale": (
        "zero_last + cell branches x0.1 (patch: EDSR res_scale)",
        ZERO,
        _res_scale,
    ),
    "zero_last+mean_shift": (
        "zero_last + input mean shift (patch: EDSR MeanShift)",
        ZERO,
        _mean_shift,
    ),
    "zero_last+bn": (
        "zero_last + parameter-free BN after candidates (patch: DARTS)",
        ZERO,
        _darts_bn,
    ),
    "zero_last+lr2e-3": ("zero_last, weight lr 2e-3", ZERO + ["search.optim.lr=0.002"], None),
    "zero_last+lr_warmup60": (
        "zero_last, 60 lr warm-up steps",
        ZERO + ["search.optim.warmup_steps=60"],
        None,
    ),
    "zero_last+crop32": ("zero_last, 32x32 LR crops", ZERO + ["search.lr_crop=32"], None),
    "zero_last+batch16": ("zero_last, batch 16", ZERO + ["search.batch_size=16"], None),
    "zero_last+width48": (
        "zero_last, 48 channels (final width)",
        ZERO + ["search.c_fixed=48"],
        None,
    ),
    "gate+float": ("gate, float warm-up", ORIGINAL[:2] + ["search.float_warm_up=true"], None),
    "no-gate+float": (
        "no gate, He init, float warm-up",
        NO_GATE[:2] + ["search.float_warm_up=true"],
        None,
    ),
    "zero_last+float": ("zero_last + float warm-up", ZERO_FLOAT, None),
    "zero_last+float+torch_init": (
        "zero_last + float warm-up + PyTorch init (patch)",
        ZERO_FLOAT,
        _torch_init,
    ),
    "zero_last+float+mean_shift": (
        "zero_last + float warm-up + mean shift (patch)",
        ZERO_FLOAT,
        _mean_shift,
    ),
    "zero_last+float+bn": ("zero_last + float warm-up + DARTS BN (patch)", ZERO_FLOAT, _darts_bn),
    "zero_last+float+pytorch_init": (
        "zero_last + float warm-up + search.conv_init=pytorch",
        ZERO_FLOAT + ["search.conv_init=pytorch"],
        None,
    ),
    "zero_last+float+frozen_alphas": (
        "diagnostic: zero_last + float warm-up, alpha lr 1e-9",
        ZERO_FLOAT + ["search.alpha_optim.lr=1e-9"],
        None,
    ),
    "zero_last+float+alpha_lr3e-3": (
        "zero_last + float warm-up, alpha lr 3e-3 (the alphas move 3.3x slower)",
        ZERO_FLOAT + ["search.alpha_optim.lr=0.003"],
        None,
    ),
    "zero_last+float+dual_lr1e-3": (
        "zero_last + float warm-up, dual_lr 1e-3 (the budget's multiplier grows 10x slower)",
        ZERO_FLOAT + ["search.dual_lr=0.001"],
        None,
    ),
    "zero_last+float+no_budget": (
        "diagnostic: zero_last + float warm-up, no BitOps target",
        ZERO_FLOAT + ["search.target_bitops=0"],
        None,
    ),
}


def measure(
    row: str, seed: int, *, preset: str, extra: list[str], every: int, threads: int
) -> dict:
    """One search of ``preset`` with ``row``'s settings; the probe curve and timings."""
    _, overrides, patch = ROWS[row]
    cfg = load_config(
        preset,
        overrides=[
            f"seed={seed}",
            f"threads={threads}",
            "progress=false",
            "tensorboard=false",
            "search.warm_up=auto",
            *overrides,
            *extra,
        ],
    )
    with tempfile.TemporaryDirectory(prefix="probe-gain-") as tmp:
        searcher = Searcher(cfg, tmp)
        if patch is not None:
            patch(searcher.net)
        probe = searcher.probe
        curve: dict[int, float] = {}
        probe_s = 0.0
        log_step = searcher.metrics.step_scalars
        steps = searcher.steps

        def step_scalars(values: dict, step: int) -> None:
            nonlocal probe_s
            log_step(values, step)
            done = step + 1
            if done % every and done % steps:
                return
            t0 = time.time()
            seen = copy.deepcopy(searcher.net)
            seen.set_quantized(True)  # as the alpha steps see it (steps from the weights)
            with torch.random.fork_rng(devices=[]):
                curve[done] = round(probe.gain(seen, searcher.device), 4)
            probe_s += time.time() - t0

        searcher.metrics.step_scalars = step_scalars
        searcher.finish = lambda: None  # plots and records: not measured here
        t0 = time.time()
        searcher.run()
        wall = time.time() - t0 - probe_s
        first = searcher.alpha_from
    return {
        "row": row,
        "seed": seed,
        "preset": preset,
        "overrides": overrides + extra,
        "curve": {str(k): v for k, v in sorted(curve.items())},
        "alpha_from_step": first * steps,
        "first_alpha_gain": curve.get(first * steps),
        "final_gain": curve.get(cfg.search.epochs * steps),
        "search_seconds": round(wall, 1),
        "torch_threads": torch.get_num_threads(),
    }


def table(results: list[dict], every: int) -> str:
    """Markdown table: per row, the mean gain over seeds at each probe point."""
    rows: dict[str, list[dict]] = {}
    for r in results:
        rows.setdefault(r["row"], []).append(r)
    points = sorted({int(k) for r in results for k in r["curve"] if int(k) % every == 0})
    head = (
        "| row | seeds | gain after " + " / ".join(map(str, points)) + " weight steps (dB, mean) "
        "| first alpha step: after (steps) | gain there per seed | search s (mean) |"
    )
    lines = [head, "|" + "---|" * 6]
    for name in [n for n in ROWS if n in rows] + [n for n in rows if n not in ROWS]:
        rs = sorted(rows[name], key=lambda r: r["seed"])
        means = [
            statistics.mean(r["curve"][str(p)] for r in rs if str(p) in r["curve"])
            if any(str(p) in r["curve"] for r in rs)
            else float("nan")
            for p in points
        ]
        firsts = ", ".join(f"{r['first_alpha_gain']:+.3f}" for r in rs)
        starts = "/".join(sorted({str(r["alpha_from_step"]) for r in rs}))
        secs = statistics.mean(r["search_seconds"] for r in rs)
        lines.append(
            f"| {name} | {','.join(str(r['seed']) for r in rs)} | "
            + ", ".join(f"{m:+.3f}" for m in means)
            + f" | {starts} | {firsts} | {secs:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), help="rows to measure")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every row")
    ap.add_argument("--every", type=int, default=40, help="probe every N weight steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="JSONL of results: appended, done rows skipped")
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, (desc, overrides, _) in ROWS.items():
            print(f"{name:28s} {desc}  [{' '.join(overrides)}]")
        return 0
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        print(f"unknown rows {unknown}; see --list", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    done = []
    if args.out and args.out.exists():
        done = [json.loads(x) for x in args.out.read_text().splitlines() if x.strip()]
    results = [r for r in done if r["row"] in args.rows and r["seed"] in args.seeds]
    have = {(r["row"], r["seed"], tuple(r["overrides"])) for r in done}
    if not args.table:
        for row in args.rows:
            for seed in args.seeds:
                if (row, seed, tuple(ROWS[row][1] + args.set)) in have:
                    continue
                r = measure(
                    row,
                    seed,
                    preset=args.preset,
                    extra=args.set,
                    every=args.every,
                    threads=args.threads,
                )
                print(json.dumps(r), flush=True)
                results.append(r)
                if args.out:
                    with args.out.open("a") as f:
                        f.write(json.dumps(r) + "\n")
    print(table(results, args.every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
