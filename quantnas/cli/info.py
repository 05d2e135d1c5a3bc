"""``quantnas info``: parameters, size, MACs and BitOps of a genotype's network."""

from __future__ import annotations

import argparse
import sys

__all__ = ["cmd_info"]


def _print_json(obj) -> None:
    from quantnas.fileio import json_text

    sys.stdout.write(json_text(obj))


def cmd_info(args: argparse.Namespace) -> int:
    from quantnas import genotype as gt
    from quantnas.budget import check_info_budget
    from quantnas.config import ArchConfig, load_config
    from quantnas.cost import network_cost
    from quantnas.space import build_network

    geno = gt.resolve(args.genotype)
    if args.preset:
        arch = load_config(preset=args.preset).arch
    else:
        arch = ArchConfig(space=geno.space, c_fixed=36, scale=4, body_cells=3, global_skip="none")
    for key, value in (
        ("c_fixed", args.channels),
        ("scale", args.scale),
        ("body_cells", args.body_cells),
    ):
        if value is not None:
            setattr(arch, key, value)
    if args.adq:
        arch.skip_mode = False
    flags = {"--channels": 36, "--lr-size": 32, "--body-cells": 3, "--scale": 4}
    check_info_budget(geno, arch, args.lr_size, flags)  # before anything is allocated
    rep = network_cost(build_network(geno, arch), lr_size=args.lr_size)
    out = {
        **rep.summary(),
        "genotype": geno.to_text(),
        "channels": arch.c_fixed,
        "scale": arch.scale,
        "body_cells": arch.body_cells,
    }
    if args.json:
        _print_json(out)
        return 0
    h, w = rep.lr_size
    sys.stdout.write(
        f"genotype : {geno.to_text()}\n"
        f"params   : {rep.params:,}\n"
        f"size     : {rep.size_bytes / 1024:.2f} KiB (weights at their bit-widths)\n"
        f"MACs     : {rep.macs:,} (LR {h}x{w})\n"
        f"BitOps   : {rep.bitops:,} = {rep.bitops / 1e9:.3f} GBitOps (LR {h}x{w})\n"
    )
    if args.layers:
        for c in rep.convs:
            sys.stdout.write(
                f"  {c.name:50s} {c.c_in:4d}->{c.c_out:<4d} k={c.kernel} "
                f"g={c.groups} bits={c.bits_w} BitOps={c.bitops:,}\n"
            )
    return 0
