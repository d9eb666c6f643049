"""Training speed of the seed model: today's package vs an earlier version, measured in one run.

    python benchmarks/training_speed.py [--baseline 7783b0b] [--threads 2] [--steps 8] [--rounds 2]
                                        [--compile] [--flops] [--readable] [--device cpu|cuda]
                                        [--json]

One training step is what ``pixelrnn train`` does per batch: autocast forward at the chosen
precision, float32 loss, backward, gradient clipping, Adam; on the CPU after
``train.keep_freed_memory()``, as ``train`` calls it (the baseline has no such function). The model
is the seed configuration (Row LSTM, hidden 64, 4 layers, 32x32 RGB, batch 16) on random images
(speed does not depend on the values). Configurations:

* ``baseline fp32``: the package as it was at git revision ``--baseline`` (extracted with
  ``git archive`` into a temporary folder), float32 eager: the speed before this version;
* ``fp32``: this version, float32 eager;
* ``auto``: this version with ``precision="auto"`` (bf16 where the hardware runs it natively);
* ``auto + compile`` (with ``--compile``): the same under ``torch.compile``; its first step, which
  includes compiling, is reported separately;
* ``fp32 readable`` (with ``--readable``): this version, float32, with ``RowLSTM.fast = False``: the
  Row LSTM's readable row loop through autograd instead of its fast recurrence
  (``row_lstm.row_recurrence``), to measure what that alone gains.

``--flops`` also counts the floating-point operations of one step (``torch.utils.flop_counter``:
the convolutions and matrix products, forward and backward) and times a 2048 x 2048 matrix product
in the step's autocast dtype on the same threads: GFLOP/s achieved over a whole step, as a share of
that product's rate, says how much of a step is spent at the hardware's speed for large products
(an upper bound on what any change that keeps the FLOPs can gain). Eager configurations only.

Every configuration runs in a fresh child process, ``--rounds`` times in alternation, and the best
round counts (the least disturbed). Ratios are to the baseline, all from this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import extract_package
from hardware import device_name

ROOT = Path(__file__).resolve().parent.parent


def child(args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps of the package found on ``sys.path``."""
    import torch
    from torch import nn

    from pixelrnn_utils.metrics import nll
    from pixelrnn_utils.model import build_model

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from pixelrnn_utils import train as train_module

    if args.child_readable:
        from pixelrnn_utils.row_lstm import RowLSTM

        RowLSTM.fast = False

    if device.type == "cpu" and hasattr(train_module, "keep_freed_memory"):
        train_module.keep_freed_memory()  # as train() does on the CPU (not in the baseline)
    dtype = None
    if args.precision != "fp32":
        dtype = train_module.autocast_dtype(device, args.precision)
    torch.manual_seed(0)
    model = build_model("row_lstm", 3, hidden=64, layers=4).to(device)
    net, loss_fn = model, nll
    if args.child_compile:  # as pixelrnn train --compile does: the model and the loss
        net = torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None)
        loss_fn = torch.compile(nll)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    x = torch.randint(0, 256, (args.batch, 3, 32, 32), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = net(x)
        loss = loss_fn(logits, x)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    result = {
        "images_per_s": args.batch * args.steps / seconds,
        "first_step_s": first,
        "dtype": str(dtype).replace("torch.", "") if dtype else "float32",
    }
    if args.child_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        step_flops = counter.get_total_flops()
        result["gflop_per_step"] = step_flops / 1e9
        result["gflop_per_s"] = step_flops / 1e9 * args.steps / seconds
        result["matmul_gflop_per_s"] = matmul_rate(device, dtype or torch.float32) / 1e9
    return result


def matmul_rate(device, dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an ``n x n`` matrix product in ``dtype``: the best of ``repeats`` after two warm-ups."""
    import torch

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for i in range(repeats + 2):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def run_child(name: str, args: argparse.Namespace, baseline_tree: Path) -> dict:
    precision = "fp32" if name in ("baseline fp32", "fp32", "fp32 readable") else "auto"
    command = [
        sys.executable,
        __file__,
        "--child",
        "--precision",
        precision,
        "--threads",
        str(args.threads),
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
        "--device",
        args.device,
    ]
    if name == "fp32 readable":
        command.append("--child-readable")
    if name.endswith("compile"):
        command.append("--child-compile")
    elif args.flops:
        command.append("--child-flops")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    package_root = baseline_tree if name.startswith("baseline") else ROOT
    env["PYTHONPATH"] = os.pathsep.join([str(package_root), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        command, check=True, capture_output=True, text=True, env=env, cwd=package_root
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="7783b0b", help="git revision to compare with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time auto + torch.compile")
    parser.add_argument(
        "--flops", action="store_true", help="also count FLOPs and compare with a large matmul"
    )
    parser.add_argument(
        "--readable", action="store_true", help="also time fp32 with the Row LSTM's readable loop"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-readable", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-flops", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return

    names = ["baseline fp32", "fp32", "auto"] + (["fp32 readable"] if args.readable else [])
    names += ["auto + compile"] if args.compile else []
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="pixelrnn-baseline-") as tree:
        extract_package(args.baseline, tree)
        for _ in range(args.rounds):
            for name in names:
                result = run_child(name, args, Path(tree))
                if name not in best or result["images_per_s"] > best[name]["images_per_s"]:
                    best[name] = {**result, "first_step_s": result["first_step_s"]}
                print(f"{name}: {result['images_per_s']:.1f} images/s", file=sys.stderr)
    base = best["baseline fp32"]["images_per_s"]
    info = {
        "hardware": device_name(args.device),
        "threads": args.threads,
        "baseline": args.baseline,
        "steps": args.steps,
        "rounds": args.rounds,
        "batch": args.batch,
    }
    if args.json:
        print(json.dumps({"info": info, "results": best}, indent=2))
        return
    print(
        f"Seed model (Row LSTM h=64, 4 layers), batch {args.batch}, forward + backward + Adam; "
        f"{info['hardware']}, {args.threads} threads; best of {args.rounds} rounds of "
        f"{args.steps} steps; baseline = git {args.baseline}.\n"
    )
    header = "| configuration | autocast dtype | images/s | x baseline | first step (s) |"
    rule = "|---|---|---:|---:|---:|"
    if args.flops:
        header += " GFLOP/step | GFLOP/s | share of a 2048² matmul's GFLOP/s |"
        rule += "---:|---:|---:|"
    print(header)
    print(rule)
    for name in names:
        r = best[name]
        row = (
            f"| {name} | {r['dtype']} | {r['images_per_s']:.1f} | "
            f"{r['images_per_s'] / base:.2f} | {r['first_step_s']:.1f} |"
        )
        if args.flops:
            if "gflop_per_step" in r:
                share = r["gflop_per_s"] / r["matmul_gflop_per_s"]
                row += (
                    f" {r['gflop_per_step']:.1f} | {r['gflop_per_s']:.1f} | "
                    f"{share:.0%} (of {r['matmul_gflop_per_s']:.0f}) |"
                )
            else:
                row += " — | — | — |"
        print(row)


if __name__ == "__main__":
    main()
