"""How far is a mixed-precision gradient from the float32 one? Same weights, same images.

    python benchmarks/gradient_agreement.py [--checkpoint checkpoints/row_lstm_cifar10.pt]
                                            [--images 16] [--precision auto] [--threads 1]

Loads a trained checkpoint and ``--images`` held-out images (the validation split ``pixelrnn
train`` uses) of ``$PIXELRNN_DATA``, else ``../shared/data/cifar10-train``, and computes the
gradient of the training loss once in float32 and once under autocast at ``--precision``. Unlike a
training run, which drifts apart from the smallest difference, this is a deterministic measurement.
It prints:

* the relative error ``|g_mixed - g_fp32| / |g_fp32|`` and the cosine of the two gradients;
* for scale, the cosine between the float32 gradients of two different batches of the same size:
  the minibatch noise every step of SGD lives with;
* the same mixed-precision gradient with the **stem run under autocast** too, as this package did
  before it read the image in float32: there the image itself is rounded to 16 bits.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from pixelrnn_utils.checkpoint import load_checkpoint
from pixelrnn_utils.data import count_images, load_dataset, split_indices
from pixelrnn_utils.metrics import nll
from pixelrnn_utils.settings import data_source
from pixelrnn_utils.train import autocast_dtype

ROOT = Path(__file__).resolve().parent.parent


def gradient(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """The loss's gradient w.r.t. every parameter, flattened into one float32 vector."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        loss = nll(model(x), x)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@contextmanager
def stem_under_autocast(model: torch.nn.Module, dtype: torch.dtype):
    """Run the stem inside autocast (the image rounded to ``dtype``), as before this version."""
    stem_forward = model.stem.forward

    def forward(image: torch.Tensor) -> torch.Tensor:
        with torch.autocast(image.device.type, dtype=dtype):
            return stem_forward(image)

    model.stem.forward = forward
    try:
        yield
    finally:
        model.stem.forward = stem_forward


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "row_lstm_cifar10.pt"))
    parser.add_argument("--images", type=int, default=16, help="images per batch")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = autocast_dtype(args.device, args.precision)
    if dtype is None:
        raise SystemExit(f"--precision {args.precision} runs in float32 here: nothing to compare")
    data = data_source(str(ROOT.parent / "shared" / "data" / "cifar10-train"))
    _, val = split_indices(count_images(data))
    images = load_dataset(data, indices=val[: 2 * args.images])
    batches = [
        torch.stack([images[i][0] for i in range(k * args.images, (k + 1) * args.images)])
        for k in range(2)
    ]
    model, _ = load_checkpoint(args.checkpoint, args.device)
    model.train()
    x, other = (b.to(args.device) for b in batches)

    exact = gradient(model, x, None)
    mixed = gradient(model, x, dtype)
    with stem_under_autocast(model, dtype):
        mixed_stem = gradient(model, x, dtype)
    other_batch = gradient(model, other, None)

    def row(name: str, g: torch.Tensor) -> str:
        error = ((g - exact).norm() / exact.norm()).item()
        return f"| {name} | {error:.3f} | {F.cosine_similarity(g, exact, dim=0).item():.3f} |"

    name = str(dtype).replace("torch.", "")
    print(
        f"{Path(args.checkpoint).name}, {args.images} held-out images of {Path(data).name}; "
        f"gradient of the loss w.r.t. all {exact.numel():,} parameters, compared with float32.\n"
    )
    print("| gradient | relative error | cosine |")
    print("|---|---:|---:|")
    print(row(f"{name} (this version: image, LSTM state, logits in float32)", mixed))
    print(row(f"{name} with the stem under autocast too (the image rounded)", mixed_stem))
    print(row(f"float32, another batch of {args.images} (minibatch noise, for scale)", other_batch))


if __name__ == "__main__":
    main()
