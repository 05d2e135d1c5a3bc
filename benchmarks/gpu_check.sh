#!/usr/bin/env bash
# The accelerator check of issue #27, as one script for a lent CUDA machine (16 CPU cores, one
# GPU, no network; its python3 holds torch): install quantnas without dependencies, then
#   1. in the background, the comparison at equal BitOps (preset sweep-targets, 3 seeds):
#      a halving search (search.select=halving) vs successive halving over uniform random
#      genotypes (halving-random) vs the baselines, on the `processes` engine, trials on the
#      GPU (several per GPU, one CPU thread each);
#   2. in the foreground, a short paper-rfdn search + training on CUDA (step times, the
#      supernet's validation gain over bicubic per epoch);
#   3. then benchmarks/proxy_rank.py (stand-alone trainings on CPU workers, 3 searches).
# Results are copied to $OUT (results.jsonl, pareto.md, rfdn metrics, logs) as they come, so
# a run stopped at its time limit still returns what finished.
#
# Usage: OUT=/some/dir bash benchmarks/gpu_check.sh [SECONDS]   (default 540)
set -uo pipefail
LIMIT=${1:-540}
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
    || { tail -20 "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

SW=/tmp/sweeps
WORKERS=${WORKERS:-10}
quantnas sweep --preset sweep-targets -d gpu-targets --engine processes \
    --cpus-per-trial 1 --gpus-per-trial "$(python3 -c "print(1 / $WORKERS)")" \
    out_dir="$SW" "sweep.methods=[search,halving-random,baseline]" \
    search.select=halving search.select_samples=7 sweep.random_halving_candidates=10 \
    >"$OUT/sweep.log" 2>&1 &
SWEEP=$!

python3 benchmarks/proxy_rank.py --train --workers "${PROXY_WORKERS:-4}" --out /tmp/proxy \
    >"$OUT/proxy_train.log" 2>&1 &
PROXY=$!

copy() {
    cp -f "$SW/gpu-targets/results.jsonl" "$SW/gpu-targets/pareto.md" "$OUT/" 2>/dev/null
    true
}

# 2. paper-rfdn on CUDA: 3 search epochs (1 weight-only) of 40 steps at batch 32, 2 training
# epochs of 100 steps; the embedded photos repeated so an epoch has that many crops
quantnas run --preset paper-rfdn name=rfdn out_dir=/tmp/rfdn device=cuda threads=2 \
    data.repeat=400 search.epochs=3 search.warm_up=1 search.steps_per_epoch=40 \
    train.epochs=2 train.steps_per_epoch=100 >"$OUT/rfdn.log" 2>&1
echo "rfdn run: exit $? after $(( $(date +%s) - T0 )) s"
python3 - <<'PY' >"$OUT/rfdn_summary.txt" 2>&1
import json
from pathlib import Path

run = Path("/tmp/rfdn/rfdn")
for stage in ("search", "train"):
    rows = [json.loads(x) for x in (run / stage / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        steps = 40 if stage == "search" else 100
        keys = ("epoch", "val_psnr", "val_gain", "probe_gain", "seconds")
        print(stage, {k: round(r[k], 4) for k in keys if isinstance(r.get(k), float | int)},
              f"s/step {r['seconds'] / steps:.3f}")
PY
cat "$OUT/rfdn_summary.txt"
cp -f /tmp/rfdn/rfdn/report.md "$OUT/rfdn_report.md" 2>/dev/null

# 3. proxy rank (#27 item 5): 12 genotypes x 2 seeds trained stand-alone on CPU workers
# (started above), then 3 searches (argmax / path scores) and the halving selector's tau
wait $PROXY
python3 benchmarks/proxy_rank.py --score --seeds 0 1 2 --out /tmp/proxy \
    --search-set search.split=regions search.warm_up=auto search.alpha_optim.lr=0.01 \
    >"$OUT/proxy_score.md" 2>&1
cp -f /tmp/proxy/standalone.jsonl "$OUT/proxy_standalone.jsonl" 2>/dev/null
cat "$OUT/proxy_score.md"

while kill -0 $SWEEP 2>/dev/null && [ $(( $(date +%s) - T0 )) -lt "$LIMIT" ]; do
    copy
    sleep 10
done
copy
if kill -0 $SWEEP 2>/dev/null; then
    echo "sweep still running after $LIMIT s: stopped; finished trials are in results.jsonl"
    kill $SWEEP
fi
echo "finished trials: $(grep -c '"status": "ok"' "$OUT/results.jsonl" 2>/dev/null)"
tail -3 "$OUT/sweep.log"
