#!/usr/bin/env bash
# The accelerator check of issue #27, as one script for a lent CUDA machine (16 CPU cores, one
# GPU, no network; its python3 holds torch): install quantnas without dependencies, then, in
# parallel (trials on the GPU through the `processes` sweep engine, several per GPU, one CPU
# thread each):
#   1. the comparison at equal BitOps (preset sweep-targets, 3 seeds): a halving search
#      (search.select=halving, 8 finalists) vs successive halving over 10 uniform random
#      genotypes per target (halving-random) vs the baselines;
#   2. the default run's job, 3 seeds, with the argmax and with the halving selector;
#   3. a short paper-rfdn search + training on CUDA (step times, the supernet's validation
#      gain over bicubic per epoch);
#   4. benchmarks/proxy_rank.py (stand-alone trainings on CPU workers, 3 searches).
# Logs and results (results.jsonl of each sweep) are bundled into $OUT/bundle.tar.gz as they
# come, so a run stopped at its time limit still returns what finished.
#
# Usage: OUT=/some/dir bash benchmarks/gpu_check.sh [SECONDS]   (default 540)
set -uo pipefail
LIMIT=${1:-540}
FINAL=${OUT:-/tmp/gpu_check_out}
OUT=/tmp/gpu_check_logs
mkdir -p "$OUT" "$FINAL"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
    || { tail -20 "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
SW=/tmp/sweeps

sweep() {  # NAME WORKERS PRESET [overrides...]
    local name=$1 workers=$2 preset=$3
    shift 3
    python3 -m quantnas sweep --preset "$preset" -d "$name" --engine processes --cpus-per-trial 1 \
        --gpus-per-trial "$(python3 -c "print(1 / $workers - 1e-6)")" out_dir="$SW" "$@" \
        >"$OUT/$name.log" 2>&1
}

sweep targets "${WORKERS:-8}" sweep-targets &
S1=$!
sweep default-argmax 3 default "sweep.methods=[search]" "sweep.penalties=[0]" sweep.seeds=3 &
S2=$!
sweep default-halving 3 default "sweep.methods=[search]" "sweep.penalties=[0]" sweep.seeds=3 \
    search.select=halving search.select_samples=3 search.halving_epochs=2 &
S3=$!
python3 benchmarks/proxy_rank.py --train --workers "${PROXY_WORKERS:-2}" --out /tmp/proxy \
    >"$OUT/proxy_train.log" 2>&1 &
PROXY=$!

copy() {
    for name in targets default-argmax default-halving; do
        cp -f "$SW/$name/results.jsonl" "$OUT/$name.results.jsonl" 2>/dev/null
    done
    tar czf "$FINAL/.bundle.tmp" -C "$OUT" . 2>/dev/null && mv -f "$FINAL/.bundle.tmp" \
        "$FINAL/bundle.tar.gz"
    true
}

# 3. paper-rfdn on CUDA: 3 search epochs (1 weight-only) of 40 steps at batch 32, 2 training
# epochs of 100 steps; the embedded photos repeated so an epoch has that many crops
python3 -m quantnas run --preset paper-rfdn name=rfdn out_dir=/tmp/rfdn device=cuda threads=1 \
    data.repeat=400 search.epochs=3 search.warm_up=1 search.steps_per_epoch=40 \
    train.epochs=2 train.steps_per_epoch=100 >"$OUT/rfdn.log" 2>&1
echo "rfdn run: exit $? after $(( $(date +%s) - T0 )) s"
python3 - <<'PY' >"$OUT/rfdn_summary.txt" 2>&1
import json
from pathlib import Path

run = Path("/tmp/rfdn/rfdn")
for stage, steps in (("search", 40), ("train", 100)):
    for line in (run / stage / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        keys = ("epoch", "val_psnr", "val_gain", "probe_gain", "seconds")
        print(stage, {k: round(r[k], 4) for k in keys if isinstance(r.get(k), float | int)},
              f"s/step {r['seconds'] / steps:.3f}")
PY
cat "$OUT/rfdn_summary.txt"
copy

# 4. proxy rank: 3 searches (argmax / path scores) and the halving selector's tau
wait $PROXY
python3 benchmarks/proxy_rank.py --score --seeds 0 1 2 --out /tmp/proxy \
    --search-set search.split=regions search.warm_up=auto search.alpha_optim.lr=0.01 \
    >"$OUT/proxy_score.md" 2>&1
cp -f /tmp/proxy/standalone.jsonl "$OUT/proxy_standalone.jsonl" 2>/dev/null
cat "$OUT/proxy_score.md"

while { kill -0 $S1 || kill -0 $S2 || kill -0 $S3; } 2>/dev/null \
    && [ $(( $(date +%s) - T0 )) -lt "$LIMIT" ]; do
    copy
    sleep 10
done
copy
for p in $S1 $S2 $S3; do kill "$p" 2>/dev/null && echo "stopped sweep $p at the time limit"; done
for name in targets default-argmax default-halving; do
    echo "$name: $(grep -c '"status": "ok"' "$OUT/$name.results.jsonl" 2>/dev/null) trials ok"
done
echo "total $(( $(date +%s) - T0 )) s"
