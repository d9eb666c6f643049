"""End-to-end training speed through the CLI: this tree's ``pixelrnn train`` vs an earlier version's.

    python benchmarks/cli_speed.py [--baseline 7783b0b] [--data DIR] [--limit 800] [--val-limit 16]
                                   [--rounds 2] [--threads 1] [--train-flags FLAGS] [--emulate-avx2]
                                   [--variant NAME=FLAGS ...] [--kept-memory-baseline] [--json]

What a user runs and gets: ``python -m pixelrnn_utils train --data DIR --limit N --val-limit 16
--epochs 1 --device cpu --out TMP`` at its defaults (the seed model: Row LSTM, hidden 64,
4 layers, batch 16, ``--precision auto``), on real images, through the real loop (data loading,
progress bar, loss check, clipping, Adam, validation, checkpoints). The baseline is the package as
it was at ``--baseline``, extracted with ``git archive`` into a temporary folder and run from there
(its own ``PYTHONPATH``); this tree is run the same way from the repository root. Only options
both versions accept are passed; ``--train-flags`` adds flags to every run, both versions (another
model, e.g. the paper's MNIST Diagonal BiLSTM: ``--train-flags "--arch diagonal_bilstm --hidden 16
--layers 7 --skip --no-full-context --channels 1 --image-size 28"``), and ``--variant NAME=FLAGS``
adds a configuration of this tree with extra flags (e.g. ``--variant "compile=--compile"``).

The runs alternate (baseline, this tree, variants, baseline, ...) for ``--rounds`` rounds in this
one process, each with ``OMP_NUM_THREADS=--threads``. For every run it reports:

* ``wall``: seconds from starting the command to its exit (Python start-up, imports, decoding
  the images, the epoch, validation, checkpoints): what a user waits;
* ``images/s``: the ``images_per_second`` the run wrote in ``metrics.jsonl``: training images over
  the epoch's training-loop seconds (the loop includes fetching batches, not validation).

Ratios are this tree (or a variant) over the baseline, medians over rounds. The baseline decodes
every image of an ImageFolder at start (it had no ``limit`` on decoding); this tree decodes only
the images a run uses, so at small ``--limit`` the wall ratio also measures that.
``--kept-memory-baseline`` adds a run of the baseline with the allocator settings this version's
``train`` makes for itself (``train.keep_freed_memory``, given to the baseline through
``GLIBC_TUNABLES``): how much of the gain is freed memory kept, which depends on the machine's
kernel and allocator. Every run's minor page faults and system time are printed too.
The decoded-data cache of this tree goes to a fresh temporary folder (``PIXELRNN_CACHE``), so
it is not reused between runs; at ``--limit`` < 1,000 nothing is cached anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import extract_package

ROOT = Path(__file__).resolve().parent.parent
ISA_LIMITS = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
)
# --emulate-avx2: PyTorch's own kernels, oneDNN (convolutions) and MKL (matrix products) held to
# AVX2 on a newer CPU, so that both versions run the code an AVX2-only CPU runs (not its clock,
# caches or memory).
AVX2_LIMITS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
# --kept-memory-baseline: the baseline with the allocator settings this version's train() makes
# itself (train.keep_freed_memory: no mmap for large blocks, a high trim threshold), through glibc's
# environment tunables, so the comparison shows what that setting is worth on this machine.
KEEP_FREED_MEMORY = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"
}
DEFAULT_DATA = os.environ.get("PIXELRNN_DATA") or str(ROOT.parent / "shared/data/cifar10-train")


def cpu_info() -> dict:
    """The CPU's model name and the instruction-set flags that decide PyTorch's kernels."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"]
    return {
        "cpu": name,
        "flags": [f for f in wanted if f in flags],
        "cores": os.cpu_count(),
    }


def run_once(
    tree: Path, args: argparse.Namespace, extra: list[str], scratch: Path, extra_env: dict
) -> dict:
    """One ``train`` run of the package in ``tree``: wall seconds, its metrics row, page faults."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    command = [
        sys.executable,
        "-m",
        "pixelrnn_utils",
        "train",
        "--data",
        args.data,
        "--limit",
        str(args.limit),
        "--val-limit",
        str(args.val_limit),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
        *shlex.split(args.train_flags),
        *extra,
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        PYTHONPATH=str(tree),
        PIXELRNN_CACHE=str(scratch / "cache"),
        **extra_env,
    )
    env.pop("PIXELRNN_SMOKE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{shlex.join(command)} failed in {tree}:\n{done.stderr[-3000:]}")
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return {
        "wall_s": wall,
        "images_per_s": row["images_per_second"],
        "epoch_s": row["epoch_seconds"],
        "precision": row.get("precision", row.get("amp", "float32")),
        "val_bits_per_dim": row["val_bits_per_dim"],
        "minor_page_faults": after.ru_minflt - before.ru_minflt,
        "system_s": after.ru_stime - before.ru_stime,
    }


def torch_version(tree: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="7783b0b", help="git revision to compare with")
    parser.add_argument(
        "--data", default=DEFAULT_DATA, help="an ImageFolder (default: %(default)s)"
    )
    parser.add_argument("--limit", type=int, default=800, help="training images (one epoch)")
    parser.add_argument("--val-limit", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--train-flags",
        default="",
        metavar="FLAGS",
        help="extra train flags for every run, both versions (default: none, the seed model)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="also run this tree with extra train flags, e.g. 'compile=--compile'",
    )
    parser.add_argument(
        "--emulate-avx2",
        action="store_true",
        help="hold every run's kernels to AVX2 (ATen, oneDNN, MKL) on a newer CPU",
    )
    parser.add_argument(
        "--kept-memory-baseline",
        action="store_true",
        help="also run the baseline with the allocator settings this version makes itself",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.emulate_avx2:  # every child run inherits them
        os.environ.update(AVX2_LIMITS)

    configs: list[tuple[str, str, list[str], dict]] = [
        (f"baseline {args.baseline}", "baseline", [], {}),
        ("this tree", "current", [], {}),
    ]
    if args.kept_memory_baseline:
        name = f"baseline {args.baseline}, freed memory kept"
        configs.insert(1, (name, "baseline", [], KEEP_FREED_MEMORY))
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        configs.append((f"this tree {name}", "current", shlex.split(flags), {}))
    results: dict[str, list[dict]] = {name: [] for name, *_ in configs}
    with tempfile.TemporaryDirectory(prefix="pixelrnn-cli-speed-") as scratch:
        scratch = Path(scratch)
        baseline_tree = scratch / "baseline"
        baseline_tree.mkdir()
        extract_package(args.baseline, baseline_tree)
        trees = {"baseline": baseline_tree, "current": ROOT}
        for r in range(args.rounds):
            for name, tree, extra, extra_env in configs:
                result = run_once(trees[tree], args, extra, scratch, extra_env)
                results[name].append(result)
                print(
                    f"round {r + 1}, {name}: wall {result['wall_s']:.1f} s, "
                    f"{result['images_per_s']:.2f} images/s ({result['precision']})",
                    file=sys.stderr,
                    flush=True,
                )
        version = torch_version(ROOT)
    base_name = configs[0][0]
    base_wall = statistics.median(r["wall_s"] for r in results[base_name])
    base_ips = statistics.median(r["images_per_s"] for r in results[base_name])
    info = {
        **cpu_info(),
        "threads": args.threads,
        "torch": version,
        "baseline": args.baseline,
        "data": args.data,
        "limit": args.limit,
        "val_limit": args.val_limit,
        "rounds": args.rounds,
        "train_flags": args.train_flags,
        # set to emulate an older CPU on a newer one (ATen kernels, oneDNN, MKL)
        "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ},
    }
    if args.json:
        print(json.dumps({"info": info, "results": results}, indent=2))
        return
    model = args.train_flags or "seed model, defaults"
    print(
        f"pixelrnn train --limit {args.limit} --val-limit {args.val_limit} --epochs 1 ({model}); "
        f"{info['cpu']} [{' '.join(info['flags'])}], {args.threads} thread(s), "
        f"torch {version}; {args.rounds} rounds, alternating; medians."
    )
    if info["isa_limits"]:
        limits = ", ".join(f"{k}={v}" for k, v in info["isa_limits"].items())
        print(f"Instruction sets limited for both versions: {limits}.")
    print()
    print("| configuration | precision | wall (s) | x baseline (wall) | images/s | x baseline |")
    print("|---|---|---:|---:|---:|---:|")
    for name, *_ in configs:
        runs = results[name]
        wall = statistics.median(r["wall_s"] for r in runs)
        ips = statistics.median(r["images_per_s"] for r in runs)
        print(
            f"| {name} | {runs[0]['precision']} | {wall:.1f} | {base_wall / wall:.2f} | "
            f"{ips:.2f} | {ips / base_ips:.2f} |"
        )
    if args.kept_memory_baseline:
        print(f"\nfreed memory kept: {KEEP_FREED_MEMORY}")
    print("\nevery run (wall s, images/s, minor page faults, system s):")
    for name, *_ in configs:
        runs = ", ".join(
            f"{r['wall_s']:.1f} s / {r['images_per_s']:.2f} / "
            f"{r['minor_page_faults'] / 1e6:.2f} M / {r['system_s']:.1f} s"
            for r in results[name]
        )
        print(f"  {name}: {runs}")


if __name__ == "__main__":
    main()
