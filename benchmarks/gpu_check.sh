#!/usr/bin/env bash
# The course's GPU check, sized for a lent GPU machine (one command of at most 600 s, nothing
# installed, no network, 64 MiB carried). Run from the repository root:
#
#   python benchmarks/gpu_subset.py               # here, once: data/gpu_subset, 5,000 CIFAR files
#   device run, carry ["data/gpu_subset"], timeout_s 590:  bash benchmarks/gpu_check.sh
#   bash benchmarks/gpu_check.sh --cpu-dry-run    # the same steps on a CPU, tiny (tests use it)
#
# Steps (each under its own time limit, so one hang cannot eat the rest): notebooks 06 and 05 top
# to bottom on the GPU (full mode, on the subset) with benchmarks/run_notebook.py (no Jupyter
# needed); the seed model trained one epoch and resumed for a second at --precision auto, fp16
# and auto with --compile, each printing images/s and bits/dim; then the layer benchmark.
# Everything is written under ${OUT:-runs/gpu_check}; "GPU CHECK OK" at the end if no step failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
python=${PYTHON:-python3}
out=${OUT:-runs/gpu_check}
data=${PIXELRNN_DATA:-$PWD/data/gpu_subset}
mkdir -p "$out"
out=$(cd "$out" && pwd)
failed=0
if [[ "${1:-}" == "--cpu-dry-run" ]]; then
  device=cpu; export PIXELRNN_SMOKE=1; limits=(--limit 48 --val-limit 16 --hidden 8 --layers 1)
  precisions=(auto fp32); nb_limit=600; train_limit=120
else
  device=cuda; unset PIXELRNN_SMOKE; limits=(--limit 2000 --val-limit 500)
  precisions=(auto fp16 compile); nb_limit=200; train_limit=45
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
[[ -d "$data" ]] || { echo "no data at $data: run python benchmarks/gpu_subset.py and carry data/gpu_subset"; exit 2; }
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" | tee -a "$out/gpu.txt"

budget=${BUDGET:-570}  # seconds for the whole check: a device command may run 600
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log
  local name=$1 limit=$2; shift 2
  local start=$SECONDS left=$((budget - SECONDS))
  if (( left < 15 )); then echo "== $name: skipped, the ${budget} s budget is spent"; failed=1; return 0; fi
  (( limit > left )) && limit=$left
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc, $((SECONDS - start)) s"
  if [[ $rc -ne 0 ]]; then failed=1; tail -n 25 "$out/$name.log"; fi
  return 0
}

for nb in 06_sampling 05_training_gpu; do
  PIXELRNN_DATA="$data" step "nb$nb" "$nb_limit" "$python" benchmarks/run_notebook.py "notebooks/$nb.ipynb"
  grep -E "^(SMOKE|training on|epoch [0-9]+:|shipped checkpoint:|speed-up|===)" "$out/nb$nb.log" | cut -c1-160
done

for p in "${precisions[@]}"; do
  args=(--precision "$p"); [[ $p == compile ]] && args=(--precision auto --compile)
  for epochs in 1 2; do  # train one epoch, then --resume for the second
    resume=(); [[ $epochs == 2 ]] && resume=(--resume)
    limit=$train_limit; [[ $p == compile && $device == cuda ]] && limit=100  # compiling: minutes
    step "seed_${p}_$epochs" "$limit" "$python" -m pixelrnn_utils train --data "$data" \
      --device "$device" "${limits[@]}" --epochs "$epochs" "${args[@]}" "${resume[@]}" \
      --save-every 0 --out "$out/seed_$p"
  done
  "$python" - "$out/seed_$p/metrics.jsonl" "$p" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
for r in rows:
    print(f"seed {sys.argv[2]:>7} epoch {r['epoch']}: {r['images_per_second']:8.1f} images/s, "
          f"val {r['val_bits_per_dim']:.4f} bits/dim, {r['precision']}, {r['device']}"
          + (f", first step {r['first_step_seconds']:.0f} s" if "first_step_seconds" in r else ""))
if len(rows) != 2: print(f"seed {sys.argv[2]}: expected 2 epochs (train + resume), got {len(rows)}")
PY
done

if [[ $device == cuda ]]; then
  step layers 100 "$python" benchmarks/layers.py --device cuda --steps 10 --precision fp32 auto
  cat "$out/layers.log" | tail -n 12
fi
[[ $failed == 0 ]] && echo "GPU CHECK OK ($device)" || { echo "GPU CHECK FAILED ($device)"; exit 1; }
