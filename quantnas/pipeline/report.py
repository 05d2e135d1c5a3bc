"""Evaluation of a finished run and its report (``report.md`` + ``report.json``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from quantnas.config.types import Config
from quantnas.data.datasets import SRValDataset
from quantnas.data.job_data import JobData
from quantnas.device import select_device
from quantnas.evaluation.metrics import sr_metrics, to_uint8_image
from quantnas.evaluation.score import bicubic_upscaler, evaluate
from quantnas.plots import plot_side_by_side
from quantnas.rundir.files import atomic_write_json, atomic_write_text
from quantnas.search.records import margins
from quantnas.space.cost import network_cost
from quantnas.space.genotype import Genotype

log = logging.getLogger(__name__)


def set_role(name: str) -> str:
    """The role of an evaluated set: ``validation`` (it chose the checkpoint) or ``test``."""
    return "validation" if name == "validation" else "test"


def _per_image_bitops(net: torch.nn.Module, rows: list[dict]) -> None:
    cache: dict[tuple[int, int], int] = {}
    for row in rows:
        size = tuple(row["lr_size"])
        if size not in cache:
            cache[size] = network_cost(net, lr_size=size).bitops
        row["bitops"] = cache[size]


def _side_by_side(net, ds: SRValDataset, path: Path, device) -> None:
    name, lr, hr = ds[0]
    with torch.no_grad():
        sr = net(lr[None].to(device)).cpu()[0]
        bic = bicubic_upscaler(ds.scale)(lr[None])[0]
    hr8, sr8, bic8 = to_uint8_image(hr), to_uint8_image(sr), to_uint8_image(bic)
    p_sr = sr_metrics(sr8, hr8, scale=ds.scale)["psnr"]
    p_bic = sr_metrics(bic8, hr8, scale=ds.scale)["psnr"]
    plot_side_by_side(
        [(f"Bicubic {p_bic:.2f} dB", bic8), (f"QuantNAS {p_sr:.2f} dB", sr8), ("HR", hr8)], path
    )


def evaluate_run(
    cfg: Config,
    run_dir: Path,
    *,
    network: torch.nn.Module | None = None,
    genotype: Genotype | None = None,
    data: JobData | None = None,
    pictures: bool = True,
) -> dict:
    """Evaluate the trained network of a run next to bicubic on every set; writes
    ``eval.json`` (and with ``pictures`` the SR samples and ``side_by_side.png``).

    Args:
        cfg: The run's config.
        run_dir: The run directory.
        network: The trained network (with its ``genotype``; None for a hand-designed
            network); rebuilt from ``train/best.pt`` when None.
        genotype: The genotype of ``network``.
        data: The job's images (the config's sources when None).
        pictures: Write the SR samples and the side-by-side picture.

    Returns:
        ``sets`` (per set: role, PSNR/SSIM and bicubic's, per image rows with BitOps),
        ``cost`` (at LR 32 and 256) and ``genotype`` (a dict, or None).

    """
    from quantnas.training.artifact import load_model

    device = select_device(cfg.device)
    if network is None:
        network, genotype, _ = load_model(run_dir / "train" / "best.pt", device)
    net, geno = network, genotype
    data = data if data is not None else JobData(cfg)
    out: dict = {"sets": {}}
    for name, ds in data.eval_sets().items():
        save = run_dir / "samples" / name if pictures and cfg.run.sample_images else None
        res = evaluate(net, ds, device=device, save_dir=save)
        bic = evaluate(bicubic_upscaler(ds.scale), ds)
        for row, brow in zip(res["images"], bic["images"], strict=True):
            row["bicubic_psnr"], row["bicubic_ssim"] = brow["psnr"], brow["ssim"]
        _per_image_bitops(net, res["images"])
        out["sets"][name] = {
            "role": set_role(name),
            "psnr": res["psnr"],
            "ssim": res["ssim"],
            "bicubic_psnr": bic["psnr"],
            "bicubic_ssim": bic["ssim"],
            "images": res["images"],
        }
        log.info(
            "%s: PSNR %.2f dB (bicubic %.2f), SSIM %.4f (bicubic %.4f)",
            name,
            res["psnr"],
            bic["psnr"],
            res["ssim"],
            bic["ssim"],
        )
        if name == "validation" and pictures:
            _side_by_side(net, ds, run_dir / "side_by_side.png", device)
    out["cost"] = {str(s): network_cost(net, lr_size=s).summary() for s in (32, 256)}
    out["genotype"] = geno.to_dict() if geno is not None else None
    atomic_write_json(run_dir / "eval.json", out)
    return out


def _fmt_bitops(b: float) -> str:
    return f"{b / 1e9:.3f} G"


def summary_table(report: dict) -> str:
    """The plain-text summary printed at the end of ``quantnas run``."""
    lines = [
        f"run        : {report['run_dir']}",
        f"genotype   : {report['genotype_text']}",
        f"params     : {report['params']:,}   size {report['size_kib']:.1f} KiB",
        f"BitOps     : {_fmt_bitops(report['bitops_32'])} @32x32 LR, "
        f"{_fmt_bitops(report['bitops_256'])} @256x256 LR",
        f"time       : search {report['seconds'].get('search', 0):.0f} s, "
        + (
            f"select {report['seconds']['select']:.0f} s, "
            if "select" in report["seconds"]
            else ""
        )
        + f"train {report['seconds'].get('train', 0):.0f} s, "
        f"eval {report['seconds'].get('eval', 0):.0f} s",
        "",
        f"{'set':14s} {'role':10s} {'PSNR':>8s} {'bicubic':>8s} {'gain':>7s} {'SSIM':>7s} "
        f"{'bicubic':>8s}",
    ]
    for name, s in report["sets"].items():
        lines.append(
            f"{name:14s} {s.get('role', set_role(name)):10s} "
            f"{s['psnr']:8.2f} {s['bicubic_psnr']:8.2f} "
            f"{s['psnr'] - s['bicubic_psnr']:+7.2f} {s['ssim']:7.4f} "
            f"{s['bicubic_ssim']:8.4f}"
        )
    return "\n".join(lines)


def search_decisions(cfg: Config, run_dir: Path, bitops_32: float) -> list[str]:
    """Markdown lines: the budget (if any) beside the genotype's BitOps, and per searchable
    layer the last epoch's best (op, bit) probability and its margin over the second,
    ``log(p_best / p_second)`` (nats; near 0 = the choice was a tie).
    """
    path = run_dir / "search" / "alpha_history.json"
    if not path.is_file():
        return []
    hist = json.loads(path.read_text(encoding="utf-8"))
    lines = ["## Search decisions\n"]
    t = cfg.search.target_bitops
    if t > 0:
        lines.append(
            f"BitOps budget {t:.4g} (final network, LR {cfg.search.bitops_lr_size}x"
            f"{cfg.search.bitops_lr_size}); the genotype's {bitops_32:.4g} at 32x32 "
            f"({bitops_32 / t:.3f} x the budget).\n"
        )
    lines += ["| layer | best p | margin (nats) |", "|---|---|---|"]
    last = {k: torch.tensor(epochs[-1], dtype=torch.float64) for k, epochs in hist.items()}
    for key, gap in margins(last).items():
        lines.append(f"| {key} | {float(last[key].max()):.3f} | {gap:.3f} |")
    return [*lines, ""]


def write_report(cfg: Config, run_dir: Path, state: dict, ev: dict | None = None) -> dict:
    """Write ``report.md``, ``report.json`` and ``summary.txt`` of the evaluation ``ev``
    (read from ``eval.json`` when None); log the summary table.
    """
    if ev is None:
        ev = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    from quantnas.space import genotype as gt

    geno = gt.from_dict(ev["genotype"])
    c32, c256 = ev["cost"]["32"], ev["cost"]["256"]
    report = {
        "run_dir": str(run_dir),
        "genotype": ev["genotype"],
        "genotype_text": geno.to_text(),
        "params": c32["params"],
        "size_kib": c32["size_bytes"] / 1024,
        "bitops_32": c32["bitops"],
        "bitops_256": c256["bitops"],
        "seconds": state.get("seconds", {}),
        "sets": ev["sets"],
        "scale": cfg.arch.scale,
        "space": cfg.arch.space,
        "bits": cfg.arch.bits,
        "penalty": cfg.search.penalty,
        "search_mode": cfg.search.mode,
        "seed": cfg.seed,
    }
    atomic_write_json(run_dir / "report.json", report)
    table = summary_table(report)
    md = [
        "# quantnas run report\n",
        f"Scale x{cfg.arch.scale}, {cfg.arch.space} space, "
        f"bits {cfg.arch.bits}, search mode `{cfg.search.mode}`, penalty {cfg.search.penalty}, "
        f"seed {cfg.seed}.\n",
        "## Genotype\n",
        f"`{geno.to_text()}`\n",
        "![architecture](search/arch.png)\n",
        *search_decisions(cfg, run_dir, c32["bitops"]),
        "## Cost\n",
        "| LR input | BitOps | MACs |",
        "|---|---|---|",
        f"| 32x32 | {c32['bitops']:,} | {c32['macs']:,} |",
        f"| 256x256 | {c256['bitops']:,} | {c256['macs']:,} |",
        f"\nParams {c32['params']:,}; weights {c32['size_bytes'] / 1024:.1f} KiB at their "
        f"bit-widths.\n",
        "## Quality (Y channel, border = scale)\n",
        "Validation chose the search's best epoch and the best checkpoint; test sets chose "
        "nothing.\n",
        "| set | role | PSNR | bicubic PSNR | SSIM | bicubic SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in ev["sets"].items():
        md.append(
            f"| {name} | {s.get('role', set_role(name))} | {s['psnr']:.2f} | "
            f"{s['bicubic_psnr']:.2f} | {s['ssim']:.4f} | "
            f"{s['bicubic_ssim']:.4f} |"
        )
    md += [
        "\n### Per image\n",
        "| set | image | LR size | BitOps | PSNR | bicubic |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in ev["sets"].items():
        for r in s["images"]:
            md.append(
                f"| {name} | {r['name']} | {r['lr_size'][0]}x{r['lr_size'][1]} | "
                f"{r['bitops']:,} | {r['psnr']:.2f} | {r['bicubic_psnr']:.2f} |"
            )
    secs = state.get("seconds", {})
    md += [
        "\n## Time\n",
        # the stages before the report (its own time is not known while it is written)
        *(f"- {k}: {v:.1f} s" for k, v in secs.items() if k != "report"),
        "\n## Pictures\n",
        "![alpha evolution](search/alphas.png)\n",
        "![training](train/training.png)\n",
        "![side by side](side_by_side.png)\n",
        "## Summary\n",
        "```",
        table,
        "```",
    ]
    atomic_write_text(run_dir / "report.md", "\n".join(md) + "\n")
    atomic_write_text(run_dir / "summary.txt", table + "\n")
    log.info("summary\n%s", table)
    return report
