"""Is the sweep's training budget a sound yardstick? Rank agreement with a longer budget.

Trains 12 networks stratified over BitOps (random genotypes of the preset's space, drawn
at BitOps quantiles, plus ESPCN / FSRCNN / small EDSR at 4 and 8 bits) at each candidate
QAT budget and at a reference budget at least 4x longer, with 2 seeds each, and prints:

* Kendall tau between each candidate budget's ranking and the reference ranking
  (networks ranked by their best validation PSNR, averaged over the seeds);
* the per-network seed std (dB) at each budget;
* how many trainings stalled (best validation PSNR within ``train.stall_margin`` of
  bicubic) and the share of trainings whose best epoch is their last.

Only the validation photos (``data.val``) are scored: the test split chooses nothing.
Every budget keeps the preset's 4 epochs (``train.steps_per_epoch = budget / 4``).
Trainings run in worker processes (``--workers``, one thread each) and are recorded in
``--out/yardstick.jsonl``, so an interrupted run resumes where it stopped.

    python benchmarks/yardstick.py --budgets 400 800 --reference 3200 --seeds 2 \
        --set train.optim.lr=0.0005 --tag lr5e-4
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from scipy.stats import kendalltau

from quantnas.pipeline.resolve import load_config
from quantnas.space.baselines import build_baseline
from quantnas.space.build import build_network, random_genotype
from quantnas.space.cost import network_cost

BASELINES = [("espcn", 4), ("espcn", 8), ("fsrcnn", 4), ("fsrcnn", 8), ("edsr", 4), ("edsr", 8)]
EPOCHS = 4


def networks(preset: str, overrides: list[str], n_random: int, pool: int = 200) -> list[dict]:
    """The networks: ``n_random`` random genotypes at BitOps quantiles + the baselines."""
    cfg = load_config(preset=preset, overrides=overrides)
    drawn = []
    for d in range(pool):
        g = random_genotype(cfg.arch, 7_919 * 1000 + d)
        drawn.append((network_cost(build_network(g, cfg.arch), lr_size=32).bitops, d, g))
    drawn.sort(key=lambda t: t[0])
    out = []
    for i in range(n_random):
        bitops, d, g = drawn[int((i + 0.5) / n_random * len(drawn))]
        out.append({"name": f"random{d}", "genotype": g.to_json(), "bitops": bitops})
    for name, bits in BASELINES:
        net = build_baseline(name, cfg.arch, bits)
        out.append({"name": f"{name}{bits}", "baseline": [name, bits],
                    "bitops": network_cost(net, lr_size=32).bitops})
    return sorted(out, key=lambda n: n["bitops"])


def train_one(job: dict) -> dict:
    """Train one network at one budget and seed (in a worker process)."""
    from quantnas.space import genotype as gt
    from quantnas.training.trainer import Trainer

    logging.basicConfig(level=logging.WARNING)
    net = job["net"]
    steps = job["budget"] // EPOCHS
    cfg = load_config(
        preset=job["preset"],
        overrides=[*job["overrides"], f"train.epochs={EPOCHS}", f"train.steps_per_epoch={steps}"],
    )
    cfg.seed, cfg.threads, cfg.progress, cfg.tensorboard = job["seed"], 1, False, False
    run = Path(job["tmp"]) / f"{net['name']}_b{job['budget']}_s{job['seed']}"
    shutil.rmtree(run, ignore_errors=True)
    if "baseline" in net:
        name, bits = net["baseline"]
        trainer = Trainer(cfg, run, None, build=lambda: build_baseline(name, cfg.arch, bits),
                          net_spec={"baseline": name, "bits": bits})
    else:
        trainer = Trainer(cfg, run, gt.loads(net["genotype"], source=net["name"]))
    t0 = time.time()
    res = trainer.run()
    shutil.rmtree(run, ignore_errors=True)
    vals = [r["val_psnr"] for r in trainer.history]
    return {
        "tag": job["tag"], "name": net["name"], "bitops": net["bitops"],
        "budget": job["budget"], "seed": job["seed"], "val": vals,
        "best": max(vals), "best_epoch": res.best_epoch, "last_epoch": len(vals) - 1,
        "bicubic": res.bicubic_psnr, "stalled": res.stalled, "seconds": time.time() - t0,
    }


def summary(rows: list[dict], budgets: list[int], reference: int) -> str:
    names = sorted({r["name"] for r in rows}, key=lambda n: next(
        r["bitops"] for r in rows if r["name"] == n))
    by = {(r["name"], r["budget"]): [] for r in rows}
    for r in rows:
        by[(r["name"], r["budget"])].append(r)

    def mean(name: str, b: int) -> float:
        return statistics.mean(x["best"] for x in by.get((name, b), [])) if by.get(
            (name, b)) else math.nan

    lines = ["| network | GBitOps | " + " | ".join(f"{b} steps" for b in [*budgets, reference])
             + " |", "|---|---|" + "---|" * (len(budgets) + 1)]
    for n in names:
        bo = next(r["bitops"] for r in rows if r["name"] == n)
        cells = []
        for b in [*budgets, reference]:
            xs = [x["best"] for x in by.get((n, b), [])]
            sd = statistics.stdev(xs) if len(xs) > 1 else math.nan
            flag = "*" if any(x["stalled"] for x in by.get((n, b), [])) else ""
            cells.append(f"{statistics.mean(xs):.3f} +- {sd:.3f}{flag}" if xs else "-")
        lines.append(f"| {n} | {bo / 1e9:.2f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| budget (steps) | Kendall tau vs reference | mean seed std (dB) | stalled | "
                 "best epoch = last |")
    lines.append("|---|---|---|---|---|")
    ref = [mean(n, reference) for n in names]
    for b in [*budgets, reference]:
        cur = [mean(n, b) for n in names]
        ok = [i for i in range(len(names)) if not (math.isnan(cur[i]) or math.isnan(ref[i]))]
        tau = kendalltau([cur[i] for i in ok], [ref[i] for i in ok]).statistic if len(
            ok) > 2 else math.nan
        rs = [r for r in rows if r["budget"] == b]
        sds = [statistics.stdev([x["best"] for x in by[(n, b)]]) for n in names
               if len(by.get((n, b), [])) > 1]
        last = sum(r["best_epoch"] == r["last_epoch"] for r in rs)
        lines.append(
            f"| {b} | {tau:.3f} ({len(ok)} networks) | "
            f"{statistics.mean(sds) if sds else math.nan:.3f} | "
            f"{sum(r['stalled'] for r in rs)} of {len(rs)} | {last} of {len(rs)} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="sweep-cpu")
    ap.add_argument("--budgets", type=int, nargs="+", default=[400, 800])
    ap.add_argument("--reference", type=int, default=3200)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--random", type=int, default=6, help="random genotypes (plus 6 baselines)")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    ap.add_argument("--tag", default="default")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="runs/yardstick")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    if args.reference < 4 * max(args.budgets):
        print(f"note: reference {args.reference} < 4x the largest candidate budget")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "yardstick.jsonl"
    done = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
    done = [r for r in done if r["tag"] == args.tag]
    have = {(r["name"], r["budget"], r["seed"]) for r in done}
    if not args.report_only:
        nets = networks(args.preset, args.set, args.random)
        jobs = [
            {"net": n, "budget": b, "seed": s, "preset": args.preset, "overrides": args.set,
             "tag": args.tag, "tmp": str(out / "tmp")}
            for b in sorted({*args.budgets, args.reference}, reverse=True)
            for n in nets
            for s in range(args.seeds)
            if (n["name"], b, s) not in have
        ]
        with ProcessPoolExecutor(args.workers) as pool, log_path.open("a") as f:
            for r in pool.map(train_one, jobs):
                done.append(r)
                f.write(json.dumps(r) + "\n")
                f.flush()
                flag = " STALLED" if r["stalled"] else ""
                print(f"{r['name']:>12} budget {r['budget']:>5} seed {r['seed']}: best "
                      f"{r['best']:.3f} (bicubic {r['bicubic']:.3f}){flag} {r['seconds']:.0f} s",
                      flush=True)
    print(f"\n## yardstick '{args.tag}' ({args.preset} {' '.join(args.set)}), validation PSNR\n")
    print(summary(done, args.budgets, args.reference))


if __name__ == "__main__":
    main()
