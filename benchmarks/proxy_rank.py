"""Do the search's selectors rank genotypes like stand-alone training does?

Part 1 (``--train``): 12 genotypes of the preset's space, drawn at BitOps quantiles of 200
random draws (as ``benchmarks/yardstick.py`` draws its random networks), are trained stand-
alone on the yardstick's budget (4 epochs of ``--budget / 4`` steps, 2 seeds); their best
validation PSNR (mean over seeds) is the reference ranking, recorded in
``--out/standalone.jsonl`` (an interrupted run resumes).

Part 2 (``--score``): for every search seed, one search of the preset (its own settings,
or ``--set`` overrides) is run, and each selector scores the 12 genotypes:

* ``argmax``: the sum over layers of the log-probability of the genotype's (op, bit) choice
  under the final alphas (what the argmax of alphas maximises);
* ``path``: minus the supernet's validation L1 with every layer fixed to the genotype's
  choice (inherited weights);
* ``halving`` (``search.select: halving``, no search needed): the first rung's score, the
  validation PSNR after the first of the 4 epochs of a training with one seed, against the
  stand-alone PSNR of the *other* seed (so the score and the reference are two trainings).

It prints Kendall tau between each selector's score and the stand-alone PSNR. Only the
validation photos are scored: the test split chooses nothing.

    python benchmarks/proxy_rank.py --train --workers 1
    python benchmarks/proxy_rank.py --score --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scipy.stats import kendalltau  # noqa: E402
from yardstick import networks, train_one  # noqa: E402

N_GENOTYPES = 12


def genotypes(preset: str, overrides: list[str]) -> list[dict]:
    """The 12 random genotypes at BitOps quantiles (no baselines)."""
    return [n for n in networks(preset, overrides, N_GENOTYPES) if "genotype" in n]


def train(args: argparse.Namespace, path: Path) -> list[dict]:
    done = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    have = {(r["name"], r["seed"]) for r in done}
    jobs = [
        {"net": n, "budget": args.budget, "seed": s, "preset": args.preset,
         "overrides": args.set, "tag": "proxy", "tmp": str(path.parent / "tmp")}
        for n in genotypes(args.preset, args.set)
        for s in range(args.train_seeds)
        if (n["name"], s) not in have
    ]
    with ProcessPoolExecutor(args.workers) as pool, path.open("a") as f:
        for r in pool.map(train_one, jobs):
            done.append(r)
            f.write(json.dumps(r) + "\n")
            f.flush()
            print(f"{r['name']:>12} seed {r['seed']}: best {r['best']:.3f} "
                  f"(bicubic {r['bicubic']:.3f}) {r['seconds']:.0f} s", flush=True)
    return done


def standalone(rows: list[dict]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["name"], []).append(r["best"])
    return {k: statistics.mean(v) for k, v in by.items()}


def halving_taus(rows: list[dict]) -> list[tuple[int, float]]:
    """Per training seed ``s``: Kendall tau of the epoch-0 validation PSNR of seed ``s``
    against the best validation PSNR of the other seeds (mean), over the genotypes.
    """
    seeds = sorted({r["seed"] for r in rows})
    out = []
    for s in seeds:
        first = {r["name"]: r["val"][0] for r in rows if r["seed"] == s}
        other = standalone([r for r in rows if r["seed"] != s])
        names = sorted(set(first) & set(other))
        if len(names) > 2:
            out.append((s, kendalltau([first[n] for n in names],
                                      [other[n] for n in names]).statistic))
    return out


def score(args: argparse.Namespace, nets: list[dict], seed: int) -> dict[str, dict[str, float]]:
    """One search of the preset (``--set`` overrides) and each selector's score per genotype."""
    import tempfile

    from quantnas.data.roles import validation_images
    from quantnas.pipeline.resolve import load_config
    from quantnas.search.choose import Chooser
    from quantnas.search.constraint import one_hot
    from quantnas.search.probe import AlphaProbe
    from quantnas.search.searcher import Searcher
    from quantnas.space import genotype as gt

    cfg = load_config(preset=args.preset, overrides=[*args.set, *args.search_set])
    cfg.seed, cfg.threads, cfg.progress, cfg.tensorboard = seed, 1, False, False
    with tempfile.TemporaryDirectory(prefix="proxy-") as tmp:
        searcher = Searcher(cfg, Path(tmp) / "search")
        t0 = time.time()
        searcher.run()
        seconds = time.time() - t0
    net = searcher.net
    chooser = Chooser(net, cfg)
    probs = net.probabilities()
    crop = cfg.search.lr_crop or cfg.data.lr_crop
    probe = AlphaProbe(validation_images(cfg), scale=cfg.arch.scale, lr_crop=crop, n=32,
                       seed=cfg.seed + 1)
    out: dict[str, dict[str, float]] = {"argmax": {}, "path": {}}
    net.eval()
    for n in nets:
        choice = chooser.choice_of(gt.loads(n["genotype"], source=n["name"]))
        out["argmax"][n["name"]] = sum(
            math.log(float(probs[k].detach().flatten()[i])) for k, i in choice.items())
        p = one_hot(choice, net.alpha.shapes)
        out["path"][n["name"]] = probe.gain(lambda x, p=p: net(x, probs=p))
    print(f"search seed {seed}: {seconds:.0f} s; supernet gain over bicubic on the "
          f"validation crops {probe.gain(net):+.3f} dB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="sweep-cpu")
    ap.add_argument("--budget", type=int, default=800)
    ap.add_argument("--train-seeds", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="runs/proxy_rank")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--score", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--search-set", nargs="*", default=[], help="overrides of the search only")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "standalone.jsonl"
    if args.train:
        train(args, path)
    if args.score:
        ref = standalone([json.loads(x) for x in path.read_text().splitlines()])
        nets = [n for n in genotypes(args.preset, args.set) if n["name"] in ref]
        print(f"## proxy rank: {len(nets)} genotypes, stand-alone best validation PSNR "
              f"({args.budget} steps) vs selector scores; search {' '.join(args.search_set)}\n")
        print("| seed | selector | Kendall tau |\n|---|---|---|")
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        for s, tau in halving_taus(rows):
            print(f"| training seed {s} | halving (first rung, 1 of 4 epochs) | {tau:.3f} |",
                  flush=True)
        for seed in args.seeds:
            scores = score(args, nets, seed)
            for sel, sc in scores.items():
                names = sorted(sc)
                tau = kendalltau([sc[n] for n in names], [ref[n] for n in names]).statistic
                print(f"| {seed} | {sel} | {tau:.3f} |", flush=True)


if __name__ == "__main__":
    main()
