"""Do a checkpoint's samples drift? Row by row: its bits/dim and its share of saturated values on its own
samples, next to the same on real held-out images.

    python benchmarks/sample_drift.py [--checkpoint checkpoints/row_lstm_cifar10.pt] [--n 8]
                                      [--temperature 1.0] [--data ../shared/data/cifar10-train]

A model that samples well scores its samples about as it scores real images, row after row. A model
whose samples drift into flat, saturated regions scores them better and better down the image
(those regions are easy to predict) while the share of 255 (or 0) values grows past the data's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pixelrnn_utils.checkpoint import load_checkpoint
from pixelrnn_utils.metrics import bits_per_dim_by_row
from pixelrnn_utils.sampling import sample
from pixelrnn_utils.train import TrainConfig, load_splits

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "row_lstm_cifar10.pt"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-train"))
    parser.add_argument("--n", type=int, default=8, help="samples (and real images)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=4, help="print every k-th row")
    args = parser.parse_args(argv)

    model, info = load_checkpoint(args.checkpoint)
    run = TrainConfig.from_dict({**info.get("train", {}), "data": args.data})
    run.limit, run.val_limit = 0, args.n  # the first n held-out images, nothing else decoded
    _, held_out = load_splits(run)
    real = torch.stack([held_out[k][0] for k in range(len(held_out))])
    shape = tuple(real.shape[1:])
    generator = torch.Generator().manual_seed(args.seed)
    samples = sample(
        model, args.n, shape, "cached", temperature=args.temperature, generator=generator
    )
    with torch.no_grad():
        rows = {"real": bits_per_dim_by_row(model(real), real)}
        rows["samples"] = bits_per_dim_by_row(model(samples), samples)
    print(
        f"{Path(args.checkpoint).name}: {args.n} samples at temperature {args.temperature} "
        f"(seed {args.seed}) vs {args.n} held-out images\n"
    )
    print(
        "| row | bits/dim, real | bits/dim, samples | % 255, real | % 255, samples | mean value, real | mean value, samples |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in range(0, shape[1], args.every):
        print(
            f"| {r} | {rows['real'][r]:.2f} | {rows['samples'][r]:.2f} | "
            f"{100 * (real[:, :, r] == 255).float().mean():.0f} | "
            f"{100 * (samples[:, :, r] == 255).float().mean():.0f} | "
            f"{real[:, :, r].float().mean():.0f} | {samples[:, :, r].float().mean():.0f} |"
        )


if __name__ == "__main__":
    main()
