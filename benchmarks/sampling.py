"""Naive vs cached sampling: wall time for the seed configuration, measured in one run.

    python benchmarks/sampling.py [--batch 8 16] [--size 32] [--arch row_lstm] [--device cpu] [--json]
    python benchmarks/sampling.py --arch gated_pixelcnn --channels 1 --levels 2 --size 28 \
        --hidden 16 --layers 7 --skip --batch 16          # the course's binarized MNIST scale

For each batch size both samplers draw from the same model with the same generator seed; the script
checks that the images are identical and prints a markdown table with the speed-up. The model is the
seed configuration (Row LSTM, hidden 64, 4 layers) with random weights: sampling time does not depend
on the weights. The naive sampler runs one full forward pass per sub-pixel (3,072 for 32x32 RGB), so
at the seed size it takes many minutes per batch on a CPU; ``--naive-rows N`` times it on the last N
rows only (given the cached sample's first rows, which must then come out identical) and scales the
time to the whole image.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from hardware import device_name

from pixelrnn_utils.model import build_model
from pixelrnn_utils.sampling import sample


def timed(fn) -> tuple[torch.Tensor, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument(
        "--arch",
        default="row_lstm",
        choices=["row_lstm", "diagonal_bilstm", "pixelcnn", "gated_pixelcnn"],
    )
    parser.add_argument("--channels", type=int, default=3, choices=[1, 3])
    parser.add_argument("--levels", type=int, default=256, help="values per sub-pixel")
    parser.add_argument("--skip", action="store_true", help="skip connections")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=None,
        help="time the naive sampler on the last N rows only and scale to the whole image (default: all rows)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = build_model(
        args.arch,
        args.channels,
        hidden=args.hidden,
        layers=args.layers,
        levels=args.levels,
        skip=args.skip,
    )
    model = model.to(args.device).eval()
    shape = (args.channels, args.size, args.size)
    rows = []
    for n in args.batch:
        cached, t_cached = timed(
            lambda n=n: sample(
                model, n, shape, "cached", generator=torch.Generator().manual_seed(n)
            )
        )
        # The naive sampler draws the last `rows` rows given the cached sample's first rows: the same
        # generator seed then gives the same uniforms, so those rows must come out identical, and each
        # of their steps is one full forward pass of the whole image, the naive sampler's constant cost.
        rows_naive = min(args.naive_rows or args.size, args.size)
        known = torch.zeros_like(cached, dtype=torch.bool)
        known[:, :, : args.size - rows_naive] = True
        naive, t_naive = timed(
            lambda n=n, known=known, cached=cached: sample(
                model,
                n,
                shape,
                "naive",
                generator=torch.Generator().manual_seed(n),
                prefix=(cached, known),
            )
        )
        t_naive_full = t_naive * args.size / rows_naive
        rows.append(
            {
                "batch": n,
                "naive_rows_timed": rows_naive,
                "naive_s": t_naive_full,
                "cached_s": t_cached,
                "speedup": t_naive_full / t_cached,
                "identical": bool(torch.equal(naive, cached)),
                "mismatched_subpixels": int((naive != cached).sum()),
            }
        )
    device = device_name(args.device)
    meta = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": f"{args.arch} hidden={args.hidden} layers={args.layers} levels={args.levels}"
        + (" skip" if args.skip else ""),
        "image": list(shape),
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return
    print(
        f"{meta['model']}, {shape[0]}x{shape[1]}x{shape[2]} images, {device}, torch {meta['torch']}, "
        f"{meta['threads']} threads"
    )
    print("| batch | naive (s) | cached (s) | speed-up | identical images | naive rows timed |")
    print("|---:|---:|---:|---:|:---:|---:|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['naive_s']:.1f} | {r['cached_s']:.2f} | {r['speedup']:.0f}× | "
            f"{'yes' if r['identical'] else 'NO: ' + str(r['mismatched_subpixels']) + ' differ'} | {r['naive_rows_timed']} of {args.size} |"
        )


if __name__ == "__main__":
    main()
