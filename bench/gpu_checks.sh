#!/usr/bin/env bash
# Every claim that only a GPU can check, by named step (all of them take about 20 minutes on one H100: split them
# over calls, or over the GPUs of one machine with CUDA_VISIBLE_DEVICES and one OUT_DIR each):
#   fused             the fused Triton quantizers against the torch ops, bit for bit (python -m dmbq_worker.quant.fused_check),
#                     and their µs per quantizer and tile (bench/fused_tiles.py)
#   probe, gradcheck  compiled vs eager gradients of the quantizers (bench/compile_backward_probe.py, compile_grad_check.py)
#   histograms        what histogram epochs cost (bench/histogram_cost.py)
#   engine            the engine's s/epoch table, CUDA-graph and compiled paths (bench/engine_gpu.py)
#   weight-batch      the graph path's table with one weight-quantizer launch per layer (DMBQ_WEIGHT_BATCH=0) and with
#                     the forward only in one launch (=forward), against `engine` (the default: both directions in
#                     one launch for every layer); run after `fused`, beside `engine`
#   fp-step           where the FP step's time goes (bench/fp_step_parts.py: the one-launch operand cast off, no
#                     metrics, cudnn.benchmark off, and the eager FP step's kernel list) and the graph path's table with
#                     DMBQ_OPERAND_CAST=0, against `engine`; CUDA only
#   export            a short ResNet-20 W2/A2 run through the orchestrator (BatchNorm recalibrated at its end),
#                     exported, reloaded on the GPU and the CPU
#                     (the reload must score what training scored, within 0.1 point)
#   timing-compiled, timing-graph   the epoch-time ratios of issue 6 item 4 (compiled: opted in)
#   ddp               2 GPUs vs 1 (bench/ddp_scaling.py), the job's step captured, then eager; needs 2 GPUs
#   bn                what a job's global-batch BatchNorm costs against torch's (bench/global_bn_cost.py)
# After every step, OUT_DIR holds summary.txt (the tables so far) and gpu_checks.tgz (every log so far): two files,
# so a call cut off at its limit still returns what finished, within the device's 8-file limit.
# Usage (repo root, CIFAR-10 in $CIFAR10_DIR, `npm run build` done, worker Python in $DMBQ_PYTHON or python3):
#   bash bench/gpu_checks.sh OUT_DIR [STEP ...]          (no STEP: all, in the order above)
#   GPU_CHECKS_DEVICE=cpu bash bench/gpu_checks.sh OUT_DIR [STEP ...]   a smoke test of the script on a CPU, tiny sizes
set -uo pipefail
OUT=${1:?usage: bench/gpu_checks.sh OUT_DIR [STEP ...]}
shift
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(fused probe gradcheck histograms engine weight-batch fp-step export timing-compiled timing-graph ddp bn)
PY=${DMBQ_PYTHON:-python3}
DEV=${GPU_CHECKS_DEVICE:-cuda}
export PYTHONPATH=$PWD/py_worker${PYTHONPATH:+:$PYTHONPATH}
export DMBQ_COMPILE_QUANT_CUDA=1  # the compiled quantized path is what these checks verify
: "${CIFAR10_DIR:?set CIFAR10_DIR to a folder holding cifar-10-batches-py}"
mkdir -p "$OUT"
WORK=$(mktemp -d)
if [ "$DEV" = cpu ]; then  # smoke sizes: the script's flow, not measurements
  SMALL=(--train-limit 256 --test-limit 128); ENGINE=(--device cpu --dataset synthetic --train-limit 512 --paths graph)
  PREC=fp32; NODE_DEV=cpu; DDP=(--device cpu --epochs 2 --train-limit 512 --test-limit 256 --batch-size 64); EPOCHS=2
else
  SMALL=(); ENGINE=(--data "$CIFAR10_DIR"); PREC=bf16; NODE_DEV=cuda:0; DDP=(--data "$CIFAR10_DIR" --epochs 4); EPOCHS=4
fi
status=0
run() {
  local name=$1; shift
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  if ! "$@" > "$WORK/$name.txt" 2>&1; then echo "   FAILED (exit $?), see $name.txt" | tee -a "$OUT/summary.txt"; status=1; fi
  tail -n 30 "$WORK/$name.txt" | grep '^|' >> "$OUT/summary.txt"
  pack
}
# logs, tables, result.json and model.dmbq files; not checkpoints (a file must stay under 16 MiB to come back)
pack() { tar czf "$OUT/gpu_checks.tgz" -C "$WORK" --exclude='checkpoints' --exclude='*.pt' --exclude='*.onnx' . ; }
for step in "${STEPS[@]}"; do
  case $step in
    fused)
      if [ "$DEV" = cpu ]; then  # the kernels in Triton's interpreter (needs triton installed)
        run fused-check env DMBQ_FUSED_QUANT=interpret TRITON_INTERPRET=1 timeout 300 "$PY" -m dmbq_worker.quant.fused_check --device cpu
      else
        run fused-check timeout 150 "$PY" -m dmbq_worker.quant.fused_check --device cuda
        run fused-tiles timeout 240 "$PY" bench/fused_tiles.py
      fi ;;
    probe) run probe timeout 120 "$PY" bench/compile_backward_probe.py --device "$DEV" ;;
    gradcheck) run gradcheck timeout 240 "$PY" bench/compile_grad_check.py --device "$DEV" --models conv-relu-conv,conv-bn-avgpool ;;
    histograms) run histograms timeout 120 "$PY" bench/histogram_cost.py --device "$DEV" --steps $([ "$DEV" = cpu ] && echo 2 || echo 40) ;;
    engine) run engine timeout 480 "$PY" bench/engine_gpu.py "${ENGINE[@]}" --precision $PREC --epochs 2 --warmup 1 --skip-extra ;;
    weight-batch)
      for mode in 0 forward; do
        run "engine-weight-batch-$mode" env DMBQ_WEIGHT_BATCH=$mode DMBQ_FUSED_QUANT=$([ "$DEV" = cpu ] && echo 0 || echo 1) \
          timeout 300 "$PY" bench/engine_gpu.py "${ENGINE[@]}" --precision $PREC --epochs 3 --warmup 1 --paths graph
      done ;;
    fp-step)
      if [ "$DEV" = cpu ]; then echo "== fp-step: skipped on the CPU (CUDA only)" | tee -a "$OUT/summary.txt"; else
        run fp-step-parts timeout 300 "$PY" bench/fp_step_parts.py --data "$CIFAR10_DIR"
        run engine-operand-cast-0 env DMBQ_OPERAND_CAST=0 \
          timeout 300 "$PY" bench/engine_gpu.py "${ENGINE[@]}" --precision $PREC --epochs 3 --warmup 1 --paths graph --skip-extra
      fi ;;
    export)
      run train timeout 300 node dist/examples/reproduce-cifar.js --data "$CIFAR10_DIR" --runs "$WORK/runs" \
        --rows r20-fp,r20-w2a2-cp --fp-epochs 3 --q-epochs 2 --recalibrate-bn 0 --precision $PREC --devices $NODE_DEV "${SMALL[@]}"
      for dev in $DEV cpu; do
        [ "$dev" = cpu ] && [ "$DEV" = cpu ] && [ -f "$WORK/reload-cpu.txt" ] && continue
        run "reload-$dev" timeout 300 "$PY" -m dmbq_worker.export --check "$WORK/runs/r20-w2a2-cp/model.dmbq" --evaluate \
          --device $dev --data-path "$CIFAR10_DIR"
        grep -o '"top1": [0-9.]*\|"reloadedTop1": [0-9.]*\|"top1Delta": [-0-9.e]*' "$WORK/reload-$dev.txt" | tr '\n' ' ' \
          | tee -a "$OUT/summary.txt"; echo | tee -a "$OUT/summary.txt"
      done ;;
    timing-compiled|timing-graph)
      flag=(); [ "$step" = timing-compiled ] && flag=(--compile)
      run "$step" timeout 420 node dist/examples/reproduce-cifar.js --data "$CIFAR10_DIR" --runs "$WORK/runs-$step" --timing \
        --timing-epochs $EPOCHS --devices $NODE_DEV --precision $PREC "${SMALL[@]}" "${flag[@]}"
      cp "$WORK/runs-$step/timing.md" "$WORK/$step.md" 2>/dev/null
      pack ;;
    ddp)
      if [ "$DEV" = cuda ] && [ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -lt 2 ]; then
        echo "== ddp: skipped (fewer than 2 GPUs visible)" | tee -a "$OUT/summary.txt"; continue
      fi
      run ddp-graph timeout 300 "$PY" bench/ddp_scaling.py "${DDP[@]}" --configs plain,ddp1,ddp2 --out "$WORK/ddp-graph"
      export DMBQ_DDP_CUDA_GRAPH=0  # the eager job, for reference
      run ddp-eager timeout 300 "$PY" bench/ddp_scaling.py "${DDP[@]}" --configs ddp1,ddp2 --out "$WORK/ddp-eager"
      unset DMBQ_DDP_CUDA_GRAPH ;;
    bn) run bn timeout 120 "$PY" bench/global_bn_cost.py --device "$DEV" ;;
    *) echo "unknown step '$step' (steps: fused probe gradcheck histograms engine weight-batch export timing-compiled timing-graph ddp bn)" >&2
       exit 2 ;;
  esac
done
exit $status
