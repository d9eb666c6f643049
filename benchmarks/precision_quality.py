"""Does mixed precision cost accuracy? The seed model trained at two precisions, same everything else.

    python benchmarks/precision_quality.py [--steps 300] [--val 1000] [--precisions fp32 auto]
                                           [--seeds 0 1 2] [--threads N] [--noise-floor N]

Each precision trains the seed model (Row LSTM, hidden 64, 4 layers, Adam 1e-3, batch 16) with
``pixelrnn_utils.train`` from the same seed on the same batches (``--seeds``: from each of several;
a seed sets the initial weights, the batch order and the split), the first ``steps * 16`` images
of the training split of ``$PIXELRNN_DATA``, else ``../shared/data/cifar10-train``, then measures
the validation bits/dim on the same ``--val`` held-out images, always in float32 (``evaluate`` is
exact whatever the training precision). Prints a markdown table: the difference to the first
precision is the cost of the cheaper arithmetic.

Two training runs drift apart from the smallest numerical difference, so the table also shows the
**noise floor** (``--noise-floor``): the first precision trained again with another number of threads,
which changes only the order of floating-point sums. A precision whose difference is of the size of
the noise floor costs nothing measurable.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from pixelrnn_utils.settings import data_source
from pixelrnn_utils.train import TrainConfig, resolve_precision, train

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--val", type=int, default=1000, help="held-out images to evaluate on")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "auto"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--noise-floor",
        type=int,
        metavar="THREADS",
        help="train the first precision again with THREADS threads (another summation order)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="train every precision from each of these seeds (weights, batch order and split)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = data_source(str(ROOT.parent / "shared" / "data" / "cifar10-train"))
    runs = [(precision, args.threads, seed) for seed in args.seeds for precision in args.precisions]
    if args.noise_floor:
        runs += [(args.precisions[0], args.noise_floor, seed) for seed in args.seeds]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixelrnn-precision-") as tmp:
        for k, (precision, threads, seed) in enumerate(runs):
            if threads:
                torch.set_num_threads(threads)
            cfg = TrainConfig(
                data=data,
                epochs=1,
                limit=args.steps * 16,
                val_limit=args.val,
                precision=precision,
                device=args.device,
                save_every=0,
                progress=False,
                seed=seed,
                out=str(Path(tmp) / f"run{k}"),
            )
            summary = train(cfg)
            rows.append(
                {
                    "precision": precision,
                    "resolved": resolve_precision(precision, args.device)[0],
                    "threads": torch.get_num_threads(),
                    "seed": seed,
                    "val_bits_per_dim": summary["val_bits_per_dim"],
                    "train_bits_per_dim": summary["train_bits_per_dim"],
                    "images_per_second": summary["images_per_second"],
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    base = args.precisions[0]
    first = {  # the first precision at the first thread count, per seed
        r["seed"]: r["val_bits_per_dim"]
        for r in reversed(rows)
        if r["precision"] == base and r["threads"] == rows[0]["threads"]
    }
    print(
        f"Seed model, {args.steps} steps of batch 16 on {Path(data).name}; validation bits/dim on "
        f"{args.val} held-out images, evaluated in float32. Each seed sets the initial weights, the "
        "batch order and the validation split; differences are to the same seed's first row.\n"
    )
    print("| seed | precision | runs as | threads | validation bits/dim | difference | images/s |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['precision']} | {r['resolved']} | {r['threads']} | "
            f"{r['val_bits_per_dim']:.4f} | {r['val_bits_per_dim'] - first[r['seed']]:+.4f} | "
            f"{r['images_per_second']:.1f} |"
        )
    if len(args.seeds) > 1:
        for precision in args.precisions[1:]:
            diffs = [
                r["val_bits_per_dim"] - first[r["seed"]]
                for r in rows
                if r["precision"] == precision and r["threads"] == rows[0]["threads"]
            ]
            mean = sum(diffs) / len(diffs)
            sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
            print(
                f"\n{precision} - {base} over {len(diffs)} seeds: mean {mean:+.4f}, "
                f"standard deviation {sd:.4f}, standard error {sd / len(diffs) ** 0.5:.4f}"
            )


if __name__ == "__main__":
    main()
