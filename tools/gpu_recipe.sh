#!/usr/bin/env bash
# The bundled model's recipe on one GPU machine, in one call: noisy-expert data collected by every core (states
# only), frames drawn once into GPU memory, bf16 training for a time budget, then the ONNX export, the pose and
# horizon probes and `lewm plan`. Everything it makes lands under OUT (default out/gpu-recipe); the run's
# checkpoint comes back without its optimiser state unless KEEP_OPTIMISER=1 (then it can be resumed here).
#
#   tools/gpu_recipe.sh           the recipe (about 8 minutes of training; MINUTES, EPISODES, BATCH override it)
#   TINY=1 tools/gpu_recipe.sh    the same steps at toy size on a CPU (a few minutes), to test the script
#
# Wheels the machine lacks (pymunk, pygame-ce, onnxruntime-gpu) are installed from .whl/ when that folder exists.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-recipe}
export PYTHONPATH=$PWD SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy MPLBACKEND=Agg
if [ -d .whl ]; then pip install -q --no-index --find-links .whl --no-deps .whl/*.whl; fi
mkdir -p "$OUT"
exec > >(tee -a "$OUT/recipe.log") 2>&1

MIX=expert=0.1,noisy-expert:0.1=0.25,noisy-expert:0.2=0.25,noisy-expert:0.35=0.25,noisy-expert:0.5=0.15
# the design the CPU design runs chose (BENCHMARKS.md, "Design runs: keypoints"):
# the keypoints encoder with SIGReg weight 0.5; DESIGN overrides it
DESIGN=${DESIGN:-"--preset small --set image_size=128 patch_size=8 encoder=keypoints --sigreg-weight 0.5"}
if [ "${TINY:-0}" = 1 ]; then
  EPISODES=${EPISODES:-24} STEPS=40 MINUTES=${MINUTES:-0.5} BATCH=${BATCH:-8} LR=1e-3 WARMUP=5 PLAN_EPISODES=2
  DESIGN="--preset tiny --set encoder=keypoints --sigreg-weight 0.5" PROBE="--frames 64 --fit-frames 256"
else
  EPISODES=${EPISODES:-10000} STEPS=120 MINUTES=${MINUTES:-8} BATCH=${BATCH:-256} LR=1e-3 WARMUP=500 PLAN_EPISODES=50
  PROBE=""
fi
echo "== $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo 'no GPU')"
python -m lewm_cli collect --out "$OUT/data.h5" --force --pixels drawn --episodes "$EPISODES" --steps "$STEPS" \
  --seed 100000 --mix "$MIX" --workers "$(nproc)"
# shellcheck disable=SC2086
python -m lewm_cli train --data "$OUT/data.h5" --run "$OUT/run" $DESIGN --steps 10000000 --schedule time \
  --time-budget "$MINUTES" --batch-size "$BATCH" --lr "$LR" --warmup "$WARMUP" --checkpoint-every 2000 \
  --precision bf16 --seed 0
MODEL="$OUT/run/checkpoint"
python -m lewm_cli export --model "$MODEL"
# shellcheck disable=SC2086
python -m lewm_cli probe pose --model "$MODEL" --out "$OUT/probes" --backend onnx --force $PROBE
python -m lewm_cli probe horizon --model "$MODEL" --out "$OUT/probes" --backend onnx --force --episodes 10 --steps 150
python -m lewm_cli plan --model "$MODEL" --out "$OUT/plan" --episodes "$PLAN_EPISODES" --force
[ "${KEEP_OPTIMISER:-0}" = 1 ] || rm -f "$MODEL/trainer_state.pt"
rm -f "$OUT/data.h5"
du -sh "$OUT"
