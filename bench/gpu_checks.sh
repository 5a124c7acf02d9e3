#!/usr/bin/env bash
# Every claim that only a GPU can check, in one call (about 8 minutes on an H100):
#   1. compiled vs eager gradients of the quantizers (bench/compile_backward_probe.py, bench/compile_grad_check.py);
#   2. the engine's s/epoch table, CUDA-graph and compiled paths (bench/engine_gpu.py);
#   3. a short ResNet-20 W2/A2 run through the orchestrator, exported and reloaded on the GPU and on the CPU
#      (the reload must score what training scored, within 0.1 point);
#   4. the epoch-time ratios of issue 6 item 4, compiled (opted in) and with the CUDA-graph step;
#   5. with 2 or more GPUs: 2 GPUs vs 1 (bench/ddp_scaling.py), the job's step eager and captured (opted in).
# Every result is written under OUT_DIR as it comes (a call cut off at its limit still returns what finished).
# Usage (repo root, CIFAR-10 in $CIFAR10_DIR, `npm run build` done, worker Python in $DMBQ_PYTHON or python3):
#   bash bench/gpu_checks.sh OUT_DIR
set -uo pipefail
OUT=${1:?usage: bench/gpu_checks.sh OUT_DIR}
PY=${DMBQ_PYTHON:-python3}
export PYTHONPATH=$PWD/py_worker${PYTHONPATH:+:$PYTHONPATH}
export DMBQ_COMPILE_QUANT_CUDA=1  # the compiled quantized path is what these checks verify
mkdir -p "$OUT"
: "${CIFAR10_DIR:?set CIFAR10_DIR to a folder holding cifar-10-batches-py}"
status=0
run() { local name=$1; shift; echo "== $name: $*"; "$@" > "$OUT/$name.txt" 2>&1 || { echo "   FAILED (exit $?), see $OUT/$name.txt"; status=1; }; tail -n 25 "$OUT/$name.txt" | grep '^|' ; }
run probe timeout 120 "$PY" bench/compile_backward_probe.py --device cuda
run gradcheck timeout 240 "$PY" bench/compile_grad_check.py --device cuda --models conv-relu-conv,conv-bn-avgpool
run histograms timeout 120 "$PY" bench/histogram_cost.py --device cuda --steps 40
run engine timeout 420 "$PY" bench/engine_gpu.py --data "$CIFAR10_DIR" --precision bf16 --epochs 2 --warmup 1 --skip-extra
RUNS=$(mktemp -d)
run train timeout 300 node dist/examples/reproduce-cifar.js --data "$CIFAR10_DIR" --runs "$RUNS" --rows r20-fp,r20-w2a2-cp \
  --fp-epochs 3 --q-epochs 2 --precision bf16 --devices cuda:0
for dev in cuda cpu; do
  run "reload-$dev" timeout 300 "$PY" -m dmbq_worker.export --check "$RUNS/r20-w2a2-cp/model.dmbq" --evaluate --device $dev \
    --data-path "$CIFAR10_DIR"
  grep -o '"top1": [0-9.]*\|"reloadedTop1": [0-9.]*\|"top1Delta": [-0-9.e]*' "$OUT/reload-$dev.txt" | tr '\n' ' '; echo
done
for path in compiled graph; do
  flag=""; [ $path = compiled ] && flag="--compile"
  run "timing-$path" timeout 420 node dist/examples/reproduce-cifar.js --data "$CIFAR10_DIR" --runs "$RUNS-timing-$path" --timing \
    --timing-epochs 4 --devices cuda:0 --precision bf16 $flag
  cp "$RUNS-timing-$path/timing.md" "$OUT/timing-$path.md" 2>/dev/null
done
if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
  run ddp-eager timeout 300 "$PY" bench/ddp_scaling.py --data "$CIFAR10_DIR" --epochs 4 --configs plain,ddp1,ddp2 --out "$OUT/ddp-eager"
  export DMBQ_DDP_CUDA_GRAPH=1
  run ddp-graph timeout 300 "$PY" bench/ddp_scaling.py --data "$CIFAR10_DIR" --epochs 4 --configs ddp1,ddp2 --out "$OUT/ddp-graph"
  unset DMBQ_DDP_CUDA_GRAPH
fi
exit $status
