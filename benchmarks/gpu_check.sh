#!/usr/bin/env bash
# One prepared GPU check (for a session that has a CUDA device): layer and sampling benchmarks with
# --device cuda, then the seed model trained for a few minutes at each precision, each evaluated in
# float32 on the same held-out images. Writes everything under ${OUT:-runs/gpu_check}; about 10 minutes
# on an H200.
#   bash benchmarks/gpu_check.sh            (PIXELRNN_DATA or ../shared/data/cifar10-train)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-runs/gpu_check}
data=${PIXELRNN_DATA:-../shared/data/cifar10-train}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python benchmarks/layers.py --device cuda --steps 10 --precision fp32 auto fp16 --compile | tee "$out/layers.md"
python benchmarks/sampling.py --device cuda --batch 16 64 | tee "$out/sampling.md"
for precision in fp32 bf16 fp16; do
  pixelrnn train --data "$data" --limit 32000 --val-limit 1000 --epochs 1 --precision "$precision" \
    --save-every 0 --out "$out/seed_$precision" > "$out/seed_$precision.log" 2>&1
  tail -n 1 "$out/seed_$precision.log" | tee -a "$out/precisions.jsonl"
done
