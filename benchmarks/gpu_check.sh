#!/usr/bin/env bash
# The GPU check, in one command on a lent GPU machine (CI has none): sets up what the machine lacks, then runs
# benchmarks/gpu_check.py (the CLI end to end on cuda vs cpu) and throughput.py --device cuda (the GPU sections of
# benchmarks/RESULTS.md). What it needs travels with the working tree, prepared here beforehand:
#   .whl/   wheels the GPU image lacks: diffusers, denoising-diffusion-pytorch, ema-pytorch, pytorch-fid,
#           torch-fidelity, importlib_metadata, lazy-importer (pip download ... --python-version 3.12 -d .whl)
#   .gpu/   all-MiniLM-L6-v2 as a local folder (.gpu/minilm) with its weights in fp16 (.gpu/minilm16.safetensors)
#           to fit the transfer limit; widened back to fp32 here before use
# Results go to $OUT (gpu_check.json, log.txt, peers.json, RESULTS.md, two image grids).
set -u -o pipefail
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "gpu_check.sh: installing .whl/ failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src:$PWD
rm -rf /tmp/minilm && cp -r .gpu/minilm /tmp/minilm && python3 - <<'PY' || exit 1
import torch
from safetensors.torch import load_file, save_file
sd = load_file(".gpu/minilm16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, "/tmp/minilm/model.safetensors")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/log.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/log.txt"
timeout ${CHECK_TIMEOUT:-330} python3 benchmarks/gpu_check.py --text-encoder /tmp/minilm ${CHECK_ARGS:-} 2>&1 | tee -a "$OUT/log.txt"
check=$?
timeout ${BENCH_TIMEOUT:-200} python3 benchmarks/throughput.py --device cuda --tiny-batch 256 --cifar-batch 128 \
  --reps 3 --steps 10 --warmup 3 --sample-steps 10 2>&1 | tee -a "$OUT/log.txt"
bench=$?
cp benchmarks/results/peers.json benchmarks/RESULTS.md "$OUT/" 2>/dev/null
echo "gpu_check.sh: check exit $check, throughput exit $bench"
exit $(( check || bench ))
