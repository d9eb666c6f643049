#!/usr/bin/env bash
# The course's GPU check, sized for a lent GPU machine (one command of at most 590 s, nothing
# installed, no network, 64 MiB carried). Run from the repository root:
#
#   python benchmarks/gpu_subset.py               # here, once: data/gpu_subset, 5,000 CIFAR files
#   device run, carry ["data/gpu_subset"], timeout_s 590:  bash benchmarks/gpu_check.sh
#   bash benchmarks/gpu_check.sh --cpu-dry-run    # the same steps on a CPU, tiny (tests use it)
#
# Steps, each under its own time limit so that one hang cannot eat the rest, the most telling
# first; everything is written under ${OUT:-runs/gpu_check}:
#   1. the seed model trained one epoch eagerly (--no-cuda-graphs), then with CUDA graphs (the
#      default) and --resume'd for a second epoch, then in fp16 with a GradScaler (Colab's T4
#      path): each prints images/s and bits/dim;
#   2. naive against cached sampling of the shipped CIFAR-10 model, draw by draw: the largest
#      probability difference and how many draws differ (identical images are what a CPU gives);
#   3. torch.compile: compiled against eager loss and gradients on one batch, then an epoch with
#      --compile. Compiling takes minutes (Dynamo unrolls the recurrences' row loops: 305 s for
#      compile_check.py on a 2-core CPU, torch 2.11 and 2.14 alike): these steps have a budget,
#      and running out of it is reported, not counted as a failure;
#   4. notebooks 06 and 05 top to bottom (full mode, on the subset) with benchmarks/run_notebook.py;
#   5. the layer benchmark, if time is left.
# "GPU CHECK OK" at the end if no step failed.
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
  half=fp32; compile_check=(--small --backend aot_eager); samples=(--n 1 --size 4)
  train_limit=120; compile_limit=120; nb_limit=600
else
  device=cuda; unset PIXELRNN_SMOKE; limits=(--limit 2000 --val-limit 500)
  half=fp16; compile_check=(); samples=(--n 4 --size 16)
  train_limit=60; compile_limit=120; nb_limit=150
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
[[ -d "$data" ]] || { echo "no data at $data: run python benchmarks/gpu_subset.py and carry data/gpu_subset"; exit 2; }
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" | tee -a "$out/gpu.txt"

budget=${BUDGET:-570}  # seconds for the whole check: a device command may run 600
step() {  # step [--soft] NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log
  local soft=0; [[ $1 == --soft ]] && { soft=1; shift; }
  local name=$1 limit=$2; shift 2
  local start=$SECONDS left=$((budget - SECONDS))
  if (( left < 15 )); then
    echo "== $name: skipped, the ${budget} s budget is spent"; (( soft )) || failed=1; return 0
  fi
  (( limit > left )) && limit=$left
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  if (( soft && (rc == 124 || rc == 137) )); then
    echo "== $name: stopped at its ${limit} s budget (compiling took longer; not a failure)"
    return 0
  fi
  echo "== $name: exit $rc, $((SECONDS - start)) s"
  if [[ $rc -ne 0 ]]; then failed=1; tail -n 25 "$out/$name.log"; fi
  return 0
}
train() {  # train [--soft] NAME SECONDS FLAGS...: pixelrnn train on the subset into $out/NAME
  local soft=(); [[ $1 == --soft ]] && { soft=(--soft); shift; }
  local name=$1 limit=$2; shift 2
  step "${soft[@]}" "$name" "$limit" "$python" -m pixelrnn_utils train --data "$data" \
    --device "$device" "${limits[@]}" --save-every 0 --out "$out/${name%_resume}" "$@"
}
report() {  # report NAME: the epochs a run wrote to its metrics.jsonl
  "$python" - "$out/$1/metrics.jsonl" "$1" <<'PY'
import json, os, sys
rows = [json.loads(line) for line in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
for r in rows:
    print(f"seed {sys.argv[2]:>7} epoch {r['epoch']}: {r['images_per_second']:8.1f} images/s, "
          f"val {r['val_bits_per_dim']:.4f} bits/dim, {r['precision']}, {r['device']}"
          + (", CUDA graphs" if r.get("cuda_graphs") else "")
          + (f", first step {r['first_step_seconds']:.0f} s" if "first_step_seconds" in r else ""))
PY
}

# 1. the training step: eager, CUDA graphs (and --resume), fp16 with a GradScaler
train eager "$train_limit" --epochs 1 --no-cuda-graphs; report eager
train graphs "$train_limit" --epochs 1
train graphs_resume "$train_limit" --epochs 2 --resume; report graphs
train "$half" "$train_limit" --epochs 1 --precision "$half"; report "$half"

# 2. naive against cached sampling, draw by draw
step samplers "$train_limit" "$python" benchmarks/sample_agreement.py --device "$device" "${samples[@]}"
tail -n 1 "$out/samplers.log"

# 3. torch.compile: the same loss and gradients, then an epoch; within a budget
step --soft compile_check "$compile_limit" "$python" benchmarks/compile_check.py --device "$device" "${compile_check[@]}"
tail -n 1 "$out/compile_check.log"
if [[ $device == cuda ]]; then
  train --soft compile "$compile_limit" --epochs 1 --compile; report compile
fi

# 4. the notebooks of the GPU run and of sampling, in full mode
for nb in 06_sampling 05_training_gpu; do
  PIXELRNN_DATA="$data" step "nb$nb" "$nb_limit" "$python" benchmarks/run_notebook.py "notebooks/$nb.ipynb"
  grep -E "^(SMOKE|training on|epoch [0-9]+:|shipped checkpoint:|speed-up|===)" "$out/nb$nb.log" | cut -c1-160
done

# 5. the layers, if time is left
if [[ $device == cuda ]]; then
  step --soft layers 60 "$python" benchmarks/layers.py --device cuda --steps 10 --precision fp32 auto
  tail -n 12 "$out/layers.log"
fi
[[ $failed == 0 ]] && echo "GPU CHECK OK ($device)" || { echo "GPU CHECK FAILED ($device)"; exit 1; }
