"""``quantnas info``: parameters, size, MACs and BitOps of a network.

The network is a genotype built at a preset's structure (``--preset``, else the
``default`` preset every verb uses; ``--channels`` / ``--scale`` / ``--body-cells`` /
``--adq`` change it), or the network of a run directory or trained checkpoint at that
run's own structure (a hand-designed baseline included).
"""

from __future__ import annotations

import argparse
import os
import sys

from quantnas.errors import QuantNASError

__all__ = ["cmd_info"]

#: The flags that change a genotype's structure (refused for a run's own network).
STRUCTURE_FLAGS = {
    "--preset": "preset",
    "--channels": "channels",
    "--scale": "scale",
    "--body-cells": "body_cells",
    "--adq": "adq",
}


def _print_json(obj) -> None:
    from quantnas.rundir.files import json_text

    sys.stdout.write(json_text(obj))


def _run_network(args: argparse.Namespace):
    """``(network, genotype or None, arch, label)`` of a run directory or checkpoint."""
    from quantnas.space.build import build_network
    from quantnas.space.footprint import check_info_budget
    from quantnas.training import artifact

    given = [flag for flag, key in STRUCTURE_FLAGS.items() if getattr(args, key)]
    if given:
        raise QuantNASError(
            f"{given[0]} does not apply to {args.genotype}: a run directory or checkpoint "
            "brings its own structure (pass a genotype file to size it differently)"
        )
    if not os.path.isdir(args.genotype) or artifact.run_checkpoint(args.genotype) is not None:
        t = artifact.load_trained(args.genotype)
        return t.net, t.genotype, t.arch, t.label
    geno = artifact.genotype_of(args.genotype)  # a search's run directory: no trained network
    arch = artifact.run_arch(args.genotype)
    check_info_budget(geno, arch, args.lr_size, {"--lr-size": 32})
    return build_network(geno, arch), geno, arch, geno.to_text()


def _genotype_network(args: argparse.Namespace):
    """``(network, genotype, arch, label)`` of a genotype at a preset's structure."""
    from quantnas.api import DEFAULT_PRESET, load_config
    from quantnas.space import genotype as gt
    from quantnas.space.build import build_network
    from quantnas.space.footprint import check_info_budget

    geno = gt.resolve(args.genotype)
    arch = load_config(preset=args.preset or DEFAULT_PRESET).arch
    if geno.space != arch.space:
        if args.preset:
            raise QuantNASError(
                f"{args.genotype} is a genotype of the {geno.space!r} space, preset "
                f"{args.preset!r} builds the {arch.space!r} space; pick a preset of its space"
            )
        arch.space = geno.space  # the default preset's structure in the genotype's space
    defaults = {"--channels": arch.c_fixed, "--scale": arch.scale, "--body-cells": arch.body_cells}
    for key, value in (
        ("c_fixed", args.channels),
        ("scale", args.scale),
        ("body_cells", args.body_cells),
    ):
        if value is not None:
            setattr(arch, key, value)
    if args.adq:
        arch.skip_mode = False
    check_info_budget(geno, arch, args.lr_size, {**defaults, "--lr-size": 32})
    return build_network(geno, arch), geno, arch, geno.to_text()


def cmd_info(args: argparse.Namespace) -> int:
    from quantnas.space.cost import network_cost
    from quantnas.training.artifact import is_trained_source

    if is_trained_source(args.genotype):
        net, geno, arch, label = _run_network(args)
    else:
        net, geno, arch, label = _genotype_network(args)
    rep = network_cost(net, lr_size=args.lr_size)
    out = {
        **rep.summary(),
        "network": label,
        "genotype": geno.to_text() if geno is not None else None,
        "channels": arch.c_fixed,
        "scale": arch.scale,
        "body_cells": arch.body_cells,
    }
    if args.json:
        _print_json(out)
        return 0
    h, w = rep.lr_size
    sys.stdout.write(
        f"{'genotype' if geno is not None else 'network '} : {label}\n"
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
