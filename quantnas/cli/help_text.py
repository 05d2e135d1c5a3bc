"""What each verb's ``--help`` says: a one-line summary (the verb list), a description and
examples (shown under the options).
"""

from __future__ import annotations

__all__ = ["VERBS"]

#: The accepted forms of a network or genotype argument, shared by several verbs.
_NETWORK = (
    "A network is a run directory (of run, search, train or a sweep trial), a trained\n"
    "checkpoint (best.pt / checkpoint.pt) of a searched, random, uniform or hand-designed\n"
    "network, or a genotype (JSON or Genotype_SR text file, builtin name, or the text)."
)

#: verb -> (summary, description, examples). Every example line starts with ``quantnas``.
VERBS: dict[str, tuple[str, str, str]] = {
    "search": (
        "differentiable quantization-aware architecture search",
        "Search a supernet of conv operations x bit-widths on the config's data; writes\n"
        "best_arch.json (the genotype to train), per-epoch genotypes, alphas and plots.",
        "quantnas search --preset tiny name=s1\n"
        "quantnas search --bitops 2.4G search.epochs=8 name=s2\n"
        "quantnas search --resume runs/s1",
    ),
    "train": (
        "train a genotype with quantization-aware training",
        "QAT of a genotype from scratch; keeps best.pt (best validation PSNR) and\n"
        "checkpoint.pt (resumable). --genotype takes a genotype file, text or builtin name,\n"
        "or a run directory / checkpoint (its genotype).",
        "quantnas train --genotype runs/s1 name=t1\n"
        "quantnas train --genotype paper-example train.epochs=5\n"
        "quantnas train --resume runs/t1",
    ),
    "eval": (
        "PSNR/SSIM (Y channel) of a model or bicubic on image sets",
        "Evaluate a trained network (a run directory or a best.pt / checkpoint.pt of a\n"
        "searched or hand-designed network) or bicubic upscaling on HR folders or sets.",
        "quantnas eval --model runs/quickstart --benchmarks embedded:test\n"
        "quantnas eval --model runs/sweep/trials/edsr_b4_s0/train/best.pt --data embedded:val\n"
        "quantnas eval --model bicubic --scale 4 --data DIV2K_valid_HR --json",
    ),
    "score": (
        "PSNR/SSIM of SR images against HR images",
        "Score super-resolved images against HR images matched by file name (Y channel,\n"
        "a border of SCALE pixels cropped).",
        "quantnas score --sr upscaled/ --hr Set5/HR --scale 4 --json",
    ),
    "info": (
        "params, size, MACs and BitOps of a network or genotype",
        "Count parameters, size, MACs and BitOps. A run directory or checkpoint is measured\n"
        "at its own structure; a genotype at the structure of --preset (default: the\n"
        "'default' preset, like every verb), changed by --channels/--scale/--body-cells.\n"
        + _NETWORK,
        "quantnas info runs/quickstart\n"
        "quantnas info paper-example --preset paper-basic --layers\n"
        "quantnas info best_arch.json --channels 36 --body-cells 3 --json",
    ),
    "prepare": (
        "cut HR images into training patches",
        "Cut a folder of HR images (e.g. DIV2K) into overlapping training patches.",
        "quantnas prepare DIV2K_train_HR DIV2K_PATCHES --patch 200 --stride 70 --scale 4",
    ),
    "export": (
        "write the genotype of a run (JSON, text, PNG) or its network (ONNX)",
        "Write a genotype (json, text, png) or a trained network (onnx with\n"
        "QuantizeLinear/DequantizeLinear, onnx-fp32), checked in onnxruntime. A\n"
        "hand-designed network has no genotype, but exports to ONNX.\n" + _NETWORK,
        "quantnas export runs/quickstart --format text\n"
        "quantnas export runs/quickstart --format png --out arch.png\n"
        "quantnas export runs/quickstart --format onnx --out sr.onnx",
    ),
    "upscale": (
        "upscale image files with a trained or exported network",
        "Upscale image files and folders with a run directory, a trained checkpoint\n"
        "(searched or hand-designed network) or an exported .onnx file, tiled exactly.",
        "quantnas upscale runs/quickstart photo.png --out upscaled/\n"
        "quantnas upscale sr.onnx photos/ --out upscaled/ --runtime ort --tile 128",
    ),
    "config": (
        "print the resolved config (or --list presets)",
        "Print the config a verb would run with (defaults < preset < files < overrides).",
        "quantnas config --list\nquantnas config --preset tiny search.epochs=3 > my.yaml",
    ),
    "run": (
        "the main job: search -> train -> eval -> report",
        "Search, train the found genotype, evaluate it next to bicubic and write\n"
        "report.md/json into out_dir/name; resumable.",
        "quantnas run name=quickstart\n"
        "quantnas run --bitops 2.4G name=b24\n"
        "quantnas run --resume runs/quickstart",
    ),
    "sweep": (
        "trials (search / random / baselines / uniform) -> results + Pareto front",
        "Run a sweep's trials (search per penalty x seed, random genotypes, hand-designed\n"
        "baselines, uniform retrains) locally or on Ray; writes results.csv/.jsonl and the\n"
        "Pareto front. --penalties takes numbers up to the first token that is not one.",
        "quantnas sweep --preset sweep-cpu --name sweep-cpu\n"
        "quantnas sweep --preset tiny --penalties 0 0.01 --repeats 2 --name s seed=1\n"
        "quantnas sweep --name sweep-cpu --resume",
    ),
    "pareto": (
        "PSNR-vs-BitOps front of one or more sweeps' results",
        "Draw the PSNR-vs-BitOps front of one or more sweeps and print its Markdown table.",
        "quantnas pareto runs/sweep-cpu runs/sweep-alr --out front.png",
    ),
    "list": (
        "list presets, operations, spaces, baselines, runtimes, ... by name",
        "List the names quantnas accepts for one kind of choice, each with a one-line\n"
        "description, read from its registry (names registered by your own code too).\n"
        "Without KIND, the kinds. Listing imports no optional runtime.",
        "quantnas list\nquantnas list presets\nquantnas list ops --json",
    ),
    "completion": (
        "print a shell completion script generated from the parser",
        "Print a bash or zsh completion script for quantnas: verbs, options, their choices,\n"
        "presets and config keys. Save it where the shell loads completions.",
        "quantnas completion bash\nquantnas completion zsh",
    ),
}
