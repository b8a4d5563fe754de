#!/usr/bin/env bash
# Issue 3's GPU checks in one call of the device machine (about 9 minutes on an H100/H200):
#   PYTHONPATH=src bash benchmarks/gpu.sh            # results under $OUT (the device tool's), else runs/gpu
#   SMOKE=1 bash benchmarks/gpu.sh                   # a seconds-long rehearsal of the same commands on the CPU
# 1. training throughput, ours vs the plain nn.Transformer loop, fp32 and bf16, batch 64 and 512;
# 2. decoding with and without the KV cache, and beam 4;
# 3. the time to reach 99% at 5% tolerance on 5x5 eigenvalues with the paper's model shape
#    (configs/eigenvalues-5x5-fp15.yaml in bf16), as far as TRAIN_MINUTES allows; resumable: the run
#    lives in $RUN (its checkpoint is too large to bring back), its metrics.jsonl is copied to $OUT.
# Each step writes a table (.txt) and JSON; a failed step does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu}
PY=${PY:-python3}
export PYTHONPATH=${PYTHONPATH:-src}
RUN=${RUN:-runs/gpu-eigenvalues-5x5}
mkdir -p "$OUT"
if [[ ${SMOKE:-0} == 1 ]]; then
    DEVICE=cpu; ROUNDS="--rounds 1 --per-round 1 --eigen-rounds 1 --warmup 0"; CONFIGS=reference
    BIG=8; SMALL=4; TRAIN_MINUTES=${TRAIN_MINUTES:-0.2}; TRAIN_SET="--set train.max_steps=4 --set train.eval_every=2 --set train.valid_count=4 --set model.width=32 --set model.enc_layers=1"
else
    DEVICE=cuda; ROUNDS="--rounds 5 --per-round 5 --eigen-rounds 5 --warmup 3"; CONFIGS=reference,eigen
    BIG=512; SMALL=64; TRAIN_MINUTES=${TRAIN_MINUTES:-5}; TRAIN_SET="--set train.eval_every=1000"
fi
status=0
step() {  # step NAME COMMAND...: run it, keep its output in $OUT/NAME.txt, remember a failure
    local name=$1; shift
    echo "== $name: $*"
    "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err" || { echo "   failed: see $OUT/$name.err"; status=1; }
    cat "$OUT/$name.txt"
}
{ nvidia-smi || true; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } > "$OUT/machine.txt" 2>&1
step train-b$SMALL $PY benchmarks/train.py --device $DEVICE --configs $CONFIGS --precisions fp32,bf16 \
    --batch $SMALL $ROUNDS --save "$OUT/train-b$SMALL.json"
step train-b$BIG $PY benchmarks/train.py --device $DEVICE --configs $CONFIGS --precisions fp32,bf16 \
    --batch $BIG $ROUNDS --save "$OUT/train-b$BIG.json"
step decoding $PY benchmarks/decoding.py --device $DEVICE --batch $SMALL --rounds 2 --precisions fp32,bf16
# shellcheck disable=SC2086  # TRAIN_SET is a list of flags
step eigenvalues-train $PY -m linalgformer train --config configs/eigenvalues-5x5-fp15.yaml --out "$RUN" \
    --device $DEVICE --precision bf16 --set train.target_metric=0.99 --set train.max_minutes=$TRAIN_MINUTES $TRAIN_SET --quiet
cp "$RUN/metrics.jsonl" "$RUN/config.json" "$OUT/" 2>/dev/null
step time-to-99 $PY - "$RUN" <<'EOF'
import sys
from linalgformer.tracking import read_metrics
evals = [r for r in read_metrics(sys.argv[1]) if r.get("kind") == "eval"]
for r in evals:
    print(f"step {r['step']:>7,}  examples {r['examples']:>10,}  {r['elapsed']:8.1f} s  acc@0.05 {r.get('acc@0.05', 0):.3f}")
hit = next((r for r in evals if r.get("acc@0.05", 0) >= 0.99), None)
print(f"99% at 5% reached after {hit['elapsed']:.0f} s, {hit['examples']:,} examples" if hit else
      f"99% at 5% not reached in {evals[-1]['elapsed'] if evals else 0:.0f} s (best {max((r.get('acc@0.05', 0) for r in evals), default=0):.3f})")
EOF
exit $status
