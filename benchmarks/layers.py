"""Speed and memory of the layer types at the seed size, measured in one run.

For each architecture (Row LSTM, PixelCNN, Diagonal BiLSTM, Gated PixelCNN) at the seed configuration (32x32 RGB,
hidden 64, 4 layers) this times forward + backward of a cross-entropy loss: one warm-up step, then
``--steps`` timed steps (synchronised on CUDA). It also reports peak memory and the number of
sequential steps per layer (H for the Row LSTM, W + H - 1 = 2W - 1 for the Diagonal BiLSTM, 1 for
the PixelCNNs),
and prints a markdown table with the hardware and ratios relative to PixelCNN at the first precision.

``--precision fp32 auto`` (the default) times every layer at each precision as ``pixelrnn train``
runs it (autocast around the forward pass, float32 loss); ``auto`` is bf16 on GPUs of compute
capability >= 8.0 and on CPUs with native bf16, fp16 on older GPUs, else fp32. ``--compile`` adds a
``torch.compile`` row per layer and precision; its compile time (the first step) is reported.

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` (exact, per architecture). On CPU, each
architecture runs in a fresh child process and the figure is the growth of that process's peak
resident set size (``ru_maxrss``) from just before the warm-up step: a rough measure that includes
allocator caching, not an exact count of tensor bytes.

    python benchmarks/layers.py [--device cpu|cuda] [--batch 16] [--steps N] [--precision fp32 auto]
                                [--compile] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time

import torch
from hardware import device_name

from pixelrnn_utils.metrics import nll
from pixelrnn_utils.model import build_model, sequential_steps
from pixelrnn_utils.settings import exact_float32
from pixelrnn_utils.train import autocast_dtype, resolve_precision

ARCHS = ("row_lstm", "pixelcnn", "diagonal_bilstm", "gated_pixelcnn")


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device_name(device)} (CUDA {torch.version.cuda})"
    return f"{device_name(device)}, {torch.get_num_threads()} threads"


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(arch: str, precision: str, compiled: bool, args, device: torch.device) -> dict:
    """One row; fp32 rows run in float32, not TF32 (a GPU's default for convolutions)."""
    exact = resolve_precision(precision, device)[0] == "fp32"
    with exact_float32() if exact else contextlib.nullcontext():
        return _measure(arch, precision, compiled, args, device)


def _measure(arch: str, precision: str, compiled: bool, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    C, H, W = 3, args.size, args.size
    model = build_model(arch, C, hidden=args.hidden, layers=args.layers).to(device)
    net = model
    if compiled:
        # a fresh Dynamo per row: on a GPU all rows share one process, and the ninth compiled
        # variant would pass Dynamo's recompile limit and silently run eager in a "compiled" row
        torch._dynamo.reset()
        net = torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None)
    dtype = autocast_dtype(device, precision)
    x = torch.randint(0, 256, (args.batch, C, H, W), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = net(x)
        nll(logits, x).backward()

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    step()  # warm-up (and compiling, with --compile)
    sync(device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        memory = peak_rss_mib() - rss_before
    return {
        "arch": arch,
        "precision": resolve_precision(precision, device)[0],
        "compiled": compiled,
        "first_step_s": first,
        "images_per_s": args.batch * args.steps / seconds,
        "ms_per_step": 1000 * seconds / args.steps,
        "peak_memory_mib": memory,
        "sequential_steps_per_layer": sequential_steps(arch, H, W),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def table(results: list[dict], info: dict) -> str:
    base = results[[r["arch"] for r in results].index("pixelcnn")]
    memory_kind = (
        "torch.cuda.max_memory_allocated"
        if info["device"] == "cuda"
        else "growth of peak RSS (ru_maxrss) in a fresh process per row; rough"
    )
    lines = [
        f"Hardware: {info['hardware']}; torch {info['torch']}; "
        f"batch {info['batch']}, {info['size']}x{info['size']} RGB, hidden {info['hidden']}, "
        f"{info['layers']} layers; forward+backward, {info['steps']} timed steps after 1 warm-up.",
        f"Memory: {memory_kind}.",
        "",
        "| layer | precision | compiled | images/s | ms/step | x PixelCNN time | first step (s) "
        "| peak memory (MiB) | sequential steps/layer | parameters |",
        "|---|---|:---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['arch']} | {r['precision']} | {'yes' if r['compiled'] else 'no'} | "
            f"{r['images_per_s']:.1f} | {r['ms_per_step']:.0f} | "
            f"{r['ms_per_step'] / base['ms_per_step']:.1f} | {r['first_step_s']:.1f} | "
            f"{r['peak_memory_mib']:.0f} | {r['sequential_steps_per_layer']} | {r['parameters']:,} |"
        )
    return "\n".join(lines)


def _child(arch: str, precision: str, compiled: bool, argv: list[str]) -> dict:
    argv = [a for a in argv if a != "--json"]
    extra = ["--only", arch, "--only-precision", precision] + (
        ["--only-compiled"] if compiled else []
    )
    out = subprocess.run(
        [sys.executable, __file__, *argv, *extra], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--size", type=int, default=32, help="image height and width")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument(
        "--precision", nargs="+", default=["fp32", "auto"], choices=["auto", "fp32", "bf16", "fp16"]
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--json", action="store_true", help="print JSON, not a markdown table")
    parser.add_argument("--only", choices=ARCHS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--only-precision", help=argparse.SUPPRESS)
    parser.add_argument("--only-compiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.only:
        print(json.dumps(measure(args.only, args.only_precision, args.only_compiled, args, device)))
        return
    if "pixelcnn" not in args.arch:
        args.arch.append("pixelcnn")  # the reference for the time ratios
    rows = [
        (arch, precision, compiled)
        for precision in args.precision
        for compiled in ([False, True] if args.compile else [False])
        for arch in args.arch
    ]
    if device.type == "cpu":  # one fresh process per row, so that peak RSS is its own
        argv = argv if argv is not None else sys.argv[1:]
        results = [_child(*row, argv) for row in rows]
    else:
        results = [measure(*row, args, device) for row in rows]
    info = {
        "device": device.type,
        "hardware": hardware(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "size": args.size,
        "hidden": args.hidden,
        "layers": args.layers,
        "steps": args.steps,
    }
    if args.json:
        print(json.dumps({"info": info, "results": results}, indent=2))
    else:
        print(table(results, info))


if __name__ == "__main__":
    main()
