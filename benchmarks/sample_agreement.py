"""Naive against cached sampling, draw by draw, on any device: what a GPU changes.

    python benchmarks/sample_agreement.py [--checkpoint checkpoints/row_lstm_cifar10.pt]
                                          [--n 4] [--size 16] [--device cuda] [--json]

The two samplers run different kernels (the naive one a convolution over the whole image, the
cached one matrix products over one column), so their float32 probabilities agree to about 1e-5
on a CPU, where ``pixelrnn sample`` gives the same images with either ``--method`` in practice,
and to about 1e-4 on a GPU, where now and then a draw falls between the two CDFs.
``sampling.compare_samplers`` steps both along the same images and reports the largest
probability difference at a draw and how many of the draws would differ; this script prints
them for a checkpoint (exit 1 if a probability differs by more than ``--tolerance``: a bug, not
rounding).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelrnn_utils.checkpoint import load_checkpoint  # noqa: E402
from pixelrnn_utils.sampling import compare_samplers  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/row_lstm_cifar10.pt")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=1e-2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    model, _ = load_checkpoint(args.checkpoint, map_location=args.device)
    shape = (model.in_channels, args.size, args.size)
    condition = (
        None if getattr(model, "classes", None) is None else torch.arange(args.n) % model.classes
    )
    start = time.perf_counter()
    report = compare_samplers(
        model, args.n, shape, generator=torch.Generator().manual_seed(0), condition=condition
    )
    report.update(
        checkpoint=args.checkpoint, device=args.device, seconds=time.perf_counter() - start
    )
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"naive vs cached on {args.device}, {report['draws']} draws ({args.n} images of "
            f"{args.size}x{args.size}): largest probability difference {report['max_prob_diff']:.2e}, "
            f"{report['draws_differ']} draws differ"
        )
    return 0 if report["max_prob_diff"] <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
