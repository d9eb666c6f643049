"""The options of the ``pixelrnn`` command line: ``build_parser`` and the arguments of each command.

Every option has a help line that gives its default (``pixelrnn train --help``); ``cli.py`` runs
the commands.
"""

from __future__ import annotations

import argparse
import importlib.metadata

__all__ = ["build_parser", "add_train_arguments"]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` gives every option's default. It is appended to the options that take a value;
    an option whose default is None (it depends on the data or on the run) says in its own help
    what it is; flags are off unless given."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0 or action.default is None:
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    """The installed package's version, from its metadata (pyproject.toml is the one source)."""
    try:
        return importlib.metadata.version("pixelrnn_utils")
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree, not installed
        from . import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelrnn",
        description="Train, evaluate and sample PixelRNN models.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train a model (resumable), writing checkpoints and a metrics log",
        description="Train a model. Defaults are the seed's run; with PIXELRNN_SMOKE=1, options "
        "left out shrink to a CPU-seconds run; with --resume, they are the run's own (from "
        "OUT/last.pt).",
        formatter_class=_HelpFormatter,
    )
    add_train_arguments(t)

    e = sub.add_parser(
        "evaluate",
        help="bits/dim of a checkpoint on held-out images",
        description="Exact bits/dim (and nats per image) of a checkpoint on held-out images.",
        formatter_class=_HelpFormatter,
    )
    _add_checkpoint_argument(e)
    e.add_argument(
        "--data",
        metavar="SOURCE",
        default=None,
        help="the images to evaluate on (default: $PIXELRNN_DATA, else the data the checkpoint "
        "was trained on)",
    )
    e.add_argument(
        "--split",
        default="val",
        choices=["val", "test"],
        help="val: the run's held-out split of the training data; test: the official test set",
    )
    e.add_argument(
        "--limit",
        metavar="N",
        type=int,
        default=None,
        help="at most N images (default: all; 64 with PIXELRNN_SMOKE=1)",
    )
    e.add_argument(
        "--batch-size",
        "--batch_size",
        dest="batch_size",
        metavar="B",
        type=int,
        default=64,
        help="images per forward pass",
    )
    _add_device_argument(e)
    e.add_argument(
        "--data-root", metavar="DIR", default="data", help="where torchvision datasets are stored"
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser(
        "sample",
        help="draw images from a checkpoint and save them as one image grid",
        description="Draw images from a checkpoint, one sub-pixel at a time, and save them as a "
        "grid in one image file.",
        formatter_class=_HelpFormatter,
    )
    _add_checkpoint_argument(s)
    s.add_argument(
        "--n", metavar="N", type=int, default=16, help="how many images (shown as a square grid)"
    )
    s.add_argument(
        "--method",
        default="cached",
        choices=["naive", "cached"],
        help="cached: each step computes only what the new sub-pixel changes; naive: a whole "
        "forward pass per sub-pixel (the same images, far slower)",
    )
    s.add_argument(
        "--temperature",
        metavar="T",
        type=float,
        default=1.0,
        help="divides the logits: 1 is the model's own distribution, below 1 sharper, above "
        "1 flatter (from 1e-06, finite)",
    )
    s.add_argument(
        "--size",
        metavar="S",
        type=int,
        default=None,
        help="image height and width (default: the run's)",
    )
    s.add_argument(
        "--class",
        dest="label",
        type=int,
        default=None,
        metavar="K",
        help="class-conditional checkpoints: draw images of class K (default: classes in turn)",
    )
    s.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the random draws")
    _add_device_argument(s)
    s.add_argument(
        "--out",
        metavar="FILE",
        default="samples.png",
        help="the image file to write (.png, .jpg, ...); checked before sampling",
    )
    s.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists (else: refused)"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        metavar="CKPT",
        required=True,
        help="a checkpoint written by pixelrnn train (OUT/best.pt, OUT/last.pt) or shipped "
        "in checkpoints/; of a run trained with --ema, its averaged weights are used",
    )


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        metavar="D",
        default=None,
        help="cpu | cuda | cuda:N (default: cuda if PyTorch sees a GPU, else cpu)",
    )


def add_train_arguments(t: argparse.ArgumentParser) -> None:
    """The options of ``pixelrnn train``."""
    t.add_argument(
        "--data",
        metavar="SOURCE",
        default=None,
        help="cifar10 | mnist | fashion_mnist | binarized_mnist (shipped; the paper's Table 4) | "
        "fashion_mnist_4 (shipped: 4 levels, labels) | path to an ImageFolder (./NAME for a "
        "folder named like a dataset) (default: $PIXELRNN_DATA, else cifar10)",
    )
    t.add_argument(
        "--arch",
        default="row_lstm",
        choices=["row_lstm", "diagonal_bilstm", "pixelcnn", "gated_pixelcnn"],
        help="the layers: the paper's Row LSTM or Diagonal BiLSTM, PixelCNN's masked "
        "convolutions, or the Gated PixelCNN's two stacks (no blind spot)",
    )
    t.add_argument(
        "--hidden",
        metavar="H",
        type=int,
        default=None,
        help="h: LSTM state features (layers carry 2h) (default: 64)",
    )
    t.add_argument(
        "--layers", metavar="L", type=int, default=None, help="how many layers (default: 4)"
    )
    t.add_argument(
        "--epochs",
        metavar="E",
        type=int,
        default=None,
        help="epochs in all; with --resume a larger number extends the run (default: 5)",
    )
    t.add_argument(
        "--batch-size",
        "--batch_size",
        dest="batch_size",
        metavar="B",
        type=int,
        default=16,
        help="images per training step",
    )
    t.add_argument("--lr", metavar="LR", type=float, default=1e-3, help="Adam's learning rate")
    t.add_argument(
        "--out",
        metavar="DIR",
        default="runs/pixelrnn",
        help="run folder: last.pt, best.pt, metrics.jsonl",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT/last.pt; options left out are the run's own",
    )
    t.add_argument(
        "--limit",
        metavar="N",
        type=int,
        default=None,
        help="use at most N training images (default: all)",
    )
    t.add_argument(
        "--val-limit",
        metavar="N",
        type=int,
        default=None,
        help="validate on at most N held-out images (default: all)",
    )
    _add_device_argument(t)
    t.add_argument(
        "--seed",
        metavar="S",
        type=int,
        default=0,
        help="seed of the initial weights, the shuffles and (without --split-seed) the split",
    )
    t.add_argument(
        "--split-seed",
        metavar="S",
        type=int,
        default=None,
        help="seed of the train/validation split (default: --seed)",
    )
    t.add_argument(
        "--channels",
        type=int,
        default=None,
        choices=[1, 3],
        help="1: grey, 3: RGB (default: 3; binarized_mnist and fashion_mnist_4: 1)",
    )
    t.add_argument(
        "--image-size",
        metavar="S",
        type=int,
        default=None,
        help="images are resized/cropped to S x S (default: 32; binarized_mnist and "
        "fashion_mnist_4: 28)",
    )
    t.add_argument(
        "--levels",
        metavar="L",
        type=int,
        default=None,
        help="values per sub-pixel, 2..256: 8-bit images are quantised to this many bins and the "
        "model predicts an L-way softmax (default: the data's own: 256; binarized_mnist 2, "
        "fashion_mnist_4 4)",
    )
    t.add_argument(
        "--ema",
        metavar="DECAY",
        type=float,
        default=None,
        help="Polyak averaging: keep an exponential moving average of the weights (decay DECAY "
        "per step, e.g. 0.999), validated, saved and used by evaluate and sample (default: off)",
    )
    t.add_argument(
        "--skip",
        action="store_true",
        help="learned skip connections: every layer's output through its own 1x1 into the head",
    )
    t.add_argument(
        "--no-residual",
        dest="residual",
        action="store_false",
        help="switch off the layers' residual connections (the paper's Table 2 ablation)",
    )
    t.add_argument(
        "--no-full-context",
        dest="full_context",
        action="store_false",
        help="diagonal_bilstm: the paper's layer, without the course's full-context addition",
    )
    t.add_argument(
        "--learned-initial-state",
        action="store_true",
        help="row_lstm, diagonal_bilstm: learn the initial recurrent state (paper §5.2) instead of 0",
    )
    t.add_argument(
        "--classes",
        type=int,
        default=None,
        metavar="K",
        help="class-conditional model: a learned embedding of the label biases every layer "
        "(the data's labels must be 0..K-1, e.g. 10 for fashion_mnist_4) (default: none)",
    )
    t.add_argument(
        "--multiscale",
        type=int,
        default=None,
        metavar="F",
        help="Multi-Scale PixelRNN (paper §3.6): an unconditional model of the image subsampled "
        "by F (a power of 2 that divides --image-size), then a model of the full image "
        "conditioned on it (default: none)",
    )
    t.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto: bf16 on recent GPUs and on CPUs with native bf16, fp16 + GradScaler "
        "on older GPUs, else fp32. The LSTM state, the loss and evaluation stay float32.",
    )
    t.add_argument(
        "--no-amp",
        dest="precision",
        action="store_const",
        const="fp32",
        help="same as --precision fp32",
    )
    t.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model and the loss (CUDA: with CUDA graphs); compiling takes minutes",
    )
    t.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        help="on CUDA, run the step eagerly, kernel by kernel (by default its forward and "
        "backward are recorded as CUDA graphs and replayed; not with --compile)",
    )
    t.add_argument(
        "--save-every",
        type=float,
        default=10.0,
        metavar="MINUTES",
        help="also write OUT/last.pt every MINUTES during an epoch (0: at epoch ends only)",
    )
    t.add_argument(
        "--lr-schedule",
        default="constant",
        choices=["constant", "cosine"],
        help="constant (the seed's) or cosine: decay to 0 over the run's epochs",
    )
    t.add_argument(
        "--data-root",
        metavar="DIR",
        default="data",
        help="where torchvision datasets are downloaded",
    )
