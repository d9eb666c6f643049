"""Diagonal BiLSTM training speed: the fast recurrence vs the per-column layer it replaced, one run.

    python benchmarks/diagonal_bilstm_speed.py [--baseline 4d9fa0b] [--threads 1 2] [--steps 4]
                                               [--rounds 3] [--precision auto|fp32] [--json]

One training step is what ``pixelrnn train`` does per batch: autocast forward at ``--precision``,
float32 loss, backward, Adam, after ``train.keep_freed_memory()``. Configurations (batch 16, random
images: speed does not depend on the values):

* ``mnist``: the paper's MNIST model, ``build_model("diagonal_bilstm", 1, hidden=16, layers=7,
  skip=True)`` on 28x28 grey images;
* ``mnist + learned h0``: the same with ``learned_initial_state=True`` (the baseline has no such
  option and runs the plain model: the option adds four vectors per layer, nothing per step);
* ``mnist, 2 levels``: the same with ``levels=2``, where the package has that option (else skipped);
* ``cifar``: ``build_model("diagonal_bilstm", 3, 64, 4)`` on 32x32 RGB images.

``baseline`` is the package at git revision ``--baseline`` (extracted with ``git archive`` into a
temporary folder): two directions one after the other, one autograd-recorded column step each.
``new`` is this checkout. Every (configuration, version, thread count) runs in a fresh child
process, ``--rounds`` times in alternation, and the best round counts (the least disturbed by other
work on the machine). Ratios are new / baseline from this one run.
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
CONFIGS = {
    "mnist": dict(args=("diagonal_bilstm", 1), kw=dict(hidden=16, layers=7, skip=True), size=28),
    "mnist + learned h0": dict(
        args=("diagonal_bilstm", 1),
        kw=dict(hidden=16, layers=7, skip=True, learned_initial_state=True),
        size=28,
        baseline_drops=("learned_initial_state",),
    ),
    "mnist, 2 levels": dict(
        args=("diagonal_bilstm", 1), kw=dict(hidden=16, layers=7, skip=True, levels=2), size=28
    ),
    "cifar": dict(args=("diagonal_bilstm", 3), kw=dict(hidden=64, layers=4), size=32),
}


def child(args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps of one configuration of the package on ``sys.path``."""
    import torch

    from pixelrnn_utils import train as train_module
    from pixelrnn_utils.metrics import nll
    from pixelrnn_utils.model import build_model

    torch.set_num_threads(args.threads[0])
    train_module.keep_freed_memory()
    config = CONFIGS[args.config]
    kw = dict(config["kw"])
    if args.baseline_child:
        for name in config.get("baseline_drops", ()):
            kw.pop(name)
    torch.manual_seed(0)
    try:
        model = build_model(*config["args"], **kw)
    except (TypeError, ValueError) as e:  # e.g. no `levels` option in this version
        return {"skipped": str(e).split(":")[0]}
    levels = kw.get("levels", 256)
    device = torch.device("cpu")
    dtype = train_module.autocast_dtype(device, args.precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    channels, size = config["args"][1], config["size"]
    x = torch.randint(0, levels, (args.batch, channels, size, size))

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        loss = nll(logits, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return {"images_per_s": args.batch * args.steps / (time.perf_counter() - start)}


def run_child(config: str, version: str, threads: int, args, baseline_tree: Path) -> dict:
    command = [sys.executable, __file__, "--child", "--config", config]
    command += ["--threads", str(threads), "--steps", str(args.steps), "--batch", str(args.batch)]
    command += ["--precision", args.precision]
    if version == "baseline":
        command.append("--baseline-child")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    root = baseline_tree if version == "baseline" else ROOT
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(ROOT / "benchmarks")])
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="4d9fa0b", help="git revision to compare with")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return

    best: dict[tuple[str, str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="pixelrnn-baseline-") as tree:
        extract_package(args.baseline, tree)
        for _ in range(args.rounds):
            for config in args.configs:
                for threads in args.threads:
                    for version in ("baseline", "new"):
                        key = (config, version, threads)
                        result = run_child(config, version, threads, args, Path(tree))
                        speed = result.get("images_per_s", 0.0)
                        if key not in best or speed > best[key].get("images_per_s", 0.0):
                            best[key] = result
                        print(f"{key}: {result}", file=sys.stderr)
    info = {
        "hardware": device_name("cpu"),
        "baseline": args.baseline,
        "precision": args.precision,
        "steps": args.steps,
        "rounds": args.rounds,
        "batch": args.batch,
    }
    rows = []
    for config in args.configs:
        for threads in args.threads:
            old, new = best[(config, "baseline", threads)], best[(config, "new", threads)]
            if "images_per_s" not in old or "images_per_s" not in new:
                skipped = old.get("skipped") or new.get("skipped")
                rows.append(dict(config=config, threads=threads, skipped=skipped))
                continue
            ratio = new["images_per_s"] / old["images_per_s"]
            rows.append(
                dict(
                    config=config,
                    threads=threads,
                    baseline=old["images_per_s"],
                    new=new["images_per_s"],
                    ratio=ratio,
                )
            )
    if args.json:
        print(json.dumps({"info": info, "results": rows}, indent=2))
        return
    print(
        f"Diagonal BiLSTM training step (forward + backward + Adam), batch {args.batch}, precision "
        f"{args.precision}; {info['hardware']}; best of {args.rounds} rounds of {args.steps} steps; "
        f"baseline = git {args.baseline}.\n"
    )
    print("| configuration | threads | baseline images/s | new images/s | new / baseline |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['config']} | {r['threads']} | n/a | n/a | ({r['skipped']}) |")
        else:
            print(
                f"| {r['config']} | {r['threads']} | {r['baseline']:.1f} | {r['new']:.1f} | "
                f"**{r['ratio']:.2f}** |"
            )


if __name__ == "__main__":
    main()
