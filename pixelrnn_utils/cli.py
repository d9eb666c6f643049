"""The ``pixelrnn`` command line: ``train``, ``evaluate`` and ``sample``.

Also runs as ``python -m pixelrnn_utils``. Defaults reproduce the seed project (Row LSTM, hidden 64,
4 layers, Adam lr 1e-3, batch 16, 5 epochs) on CIFAR-10, or on ``PIXELRNN_DATA`` when it is set.
With ``PIXELRNN_SMOKE=1`` the options you leave unset shrink to a CPU-seconds run. With
``--resume`` the options you leave unset are the run's own, read from ``OUT/last.pt``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from dataclasses import fields
from pathlib import Path

import torch

from .data import is_binarized_mnist, is_native_28
from .settings import data_source, smoke

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelrnn", description="Train, evaluate and sample PixelRNN models."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train a model (resumable), writing checkpoints and a metrics log"
    )
    _add_train_arguments(t)

    e = sub.add_parser("evaluate", help="bits/dim of a checkpoint on held-out images")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", default=None)
    e.add_argument(
        "--split",
        default="val",
        choices=["val", "test"],
        help="val: the run's held-out split of the training data; test: the official test set",
    )
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=64)
    e.add_argument("--device", default=None)
    e.add_argument("--data-root", default="data")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser("sample", help="draw images from a checkpoint and save a PNG grid")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--method", default="cached", choices=["naive", "cached"])
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument(
        "--size", type=int, default=None, help="image height and width (default: the run's)"
    )
    s.add_argument(
        "--class",
        dest="label",
        type=int,
        default=None,
        metavar="K",
        help="class-conditional checkpoints: draw images of class K (default: classes in turn)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--out", default="samples.png")
    s.add_argument("--json", action="store_true")
    return parser


def _add_train_arguments(t: argparse.ArgumentParser) -> None:
    """The options of ``pixelrnn train``."""
    t.add_argument(
        "--data",
        default=None,
        help="cifar10 | mnist | fashion_mnist | binarized_mnist (shipped; the paper's Table 4) | "
        "fashion_mnist_4 (shipped: 4 levels, labels) | path to an ImageFolder "
        "(default: $PIXELRNN_DATA, else cifar10)",
    )
    t.add_argument(
        "--arch", default="row_lstm", choices=["row_lstm", "diagonal_bilstm", "pixelcnn"]
    )
    t.add_argument(
        "--hidden",
        type=int,
        default=None,
        help="h: LSTM state features (layers carry 2h); default 64",
    )
    t.add_argument("--layers", type=int, default=None, help="default 4")
    t.add_argument("--epochs", type=int, default=None, help="default 5")
    t.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument(
        "--out", default="runs/pixelrnn", help="run folder: last.pt, best.pt, metrics.jsonl"
    )
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--limit", type=int, default=None, help="use at most N training images")
    t.add_argument("--val-limit", type=int, default=None, help="validate on at most N images")
    t.add_argument(
        "--device", default=None, help="cpu | cuda | cuda:1 (default: cuda if available)"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the train/validation split (default: --seed)",
    )
    t.add_argument(
        "--channels", type=int, default=None, choices=[1, 3], help="default 3 (binarized MNIST: 1)"
    )
    t.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="images are resized/cropped to this size; default 32 (binarized MNIST: 28)",
    )
    t.add_argument(
        "--levels",
        type=int,
        default=None,
        help="values per sub-pixel, 2..256: 8-bit images are quantised to this many bins and the "
        "model predicts an L-way softmax; default: the data's own (256, binarized MNIST 2)",
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
        "(the data's labels must be 0..K-1, e.g. 10 for fashion_mnist_4)",
    )
    t.add_argument(
        "--multiscale",
        type=int,
        default=None,
        metavar="F",
        help="Multi-Scale PixelRNN (paper §3.6): an unconditional model of the image subsampled "
        "by F (a power of 2), then a model of the full image conditioned on it",
    )
    t.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto (default): bf16 on recent GPUs and on CPUs with native bf16, fp16 + GradScaler "
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
        "--save-every",
        type=float,
        default=10.0,
        metavar="MINUTES",
        help="also write OUT/last.pt every MINUTES during an epoch (default 10; 0: epoch ends only)",
    )
    t.add_argument(
        "--lr-schedule",
        default="constant",
        choices=["constant", "cosine"],
        help="constant (the seed's) or cosine: decay to 0 over the run's epochs",
    )
    t.add_argument("--data-root", default="data", help="where torchvision datasets are downloaded")


def _defaults(command: str) -> dict[str, int]:
    """Defaults of options left unset: the seed's, or a CPU-seconds run when PIXELRNN_SMOKE=1."""
    if command == "train":
        if smoke():
            return {"hidden": 16, "layers": 2, "epochs": 1, "limit": 64, "val_limit": 32}
        return {"hidden": 64, "layers": 4, "epochs": 5}
    return {"limit": 64} if smoke() else {}


def _check_fresh_out(out: Path, resume: bool) -> None:
    """Refuse to start a new run over the checkpoints of an earlier one (a forgotten --resume).

    The Python API's ``train`` starts over, as a re-run notebook cell expects; the command line,
    where the long runs are, keeps what a run folder holds unless told to continue it.
    """
    if resume:
        return
    held = [name for name in ("last.pt", "best.pt") if (out / name).is_file()]
    if held:
        raise ValueError(
            f"{out} already holds a run ({', '.join(held)}): pass --resume to continue it, or "
            "another --out (or delete that folder) to start a new one"
        )


# What a run is: with --resume, these come from OUT/last.pt unless given on the command line.
# Not taken from it: where this process runs (--device) and its folder (--out).
_RUN_SETTINGS = (
    "arch", "hidden", "layers", "epochs", "batch_size", "lr", "lr_schedule", "limit", "val_limit",
    "seed", "split_seed", "channels", "image_size", "levels", "save_every", "data_root", "compile",
)  # fmt: skip


def _given_train_options(argv: list[str]) -> set[str]:
    """The ``train`` options (by ``dest``) that ``argv`` sets, as opposed to left at their defaults."""
    probe = argparse.ArgumentParser(add_help=False)
    _add_train_arguments(probe)
    unset = object()  # not a string: argparse would parse a string default with the option's type
    probe.set_defaults(**{dest: unset for dest in vars(probe.parse_args([]))})
    given = probe.parse_args(argv[1:])  # argv[0] is "train"
    return {dest for dest, value in vars(given).items() if value is not unset}


def _resumed_settings(values: dict, given: set[str]) -> dict:
    """``values`` with the settings of the run in ``OUT/last.pt`` wherever ``given`` has none.

    So ``pixelrnn train --out DIR --resume`` continues a run without its options repeated; an
    option given overrides the run's (``--epochs`` to extend it; a different model is refused
    when the weights are loaded).
    """
    from .checkpoint import read_checkpoint

    last = Path(values["out"]) / "last.pt"
    if not last.is_file():
        return values
    before = read_checkpoint(last).get("train")
    if not before:  # written by a version that did not store its settings
        return values
    resumed = dict(values)
    if "data" not in given:  # not $PIXELRNN_DATA, which may name another dataset by now
        resumed["data"] = before["data"]
    for name in _RUN_SETTINGS:
        if name not in given and name in before:
            resumed[name] = before[name]
    if "precision" not in given and "precision_requested" in before:
        resumed["precision"] = before["precision_requested"]  # "auto" picks again on this machine
    options = {k: v for k, v in before.get("options", {}).items() if k not in given}
    resumed["options"] = {**options, **values["options"]}
    taken = [
        f"{name}={resumed[name]!r}"
        for name in ("data", *_RUN_SETTINGS, "precision", "options")
        if resumed.get(name) != values.get(name)
    ]
    if taken and os.environ.get("RANK", "0") == "0":  # once under torchrun
        print(
            f"--resume: the run's own settings (from its last.pt): {', '.join(taken)}",
            file=sys.stderr,
        )
    return resumed


def _train(args: argparse.Namespace, given: set[str] | None = None) -> int:
    """``pixelrnn train``; ``given``: the options set on the command line (all, if None)."""
    from .train import TrainConfig, train

    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in known}
    values["data"] = args.data or data_source()
    native = is_native_28(values["data"])  # shipped 28x28 grey data
    for name, usual, binarized in (("channels", 3, 1), ("image_size", 32, 28)):
        if values[name] is None:
            values[name] = binarized if native else usual
    values["options"] = {"skip": True} if args.skip else {}
    if not args.residual:
        values["options"]["residual"] = False
    if not args.full_context:
        values["options"]["full_context"] = False
    if args.learned_initial_state:
        values["options"]["learned_initial_state"] = True
    for name in ("classes", "multiscale"):
        if getattr(args, name) is not None:
            values["options"][name] = getattr(args, name)
    for name, value in _defaults("train").items():
        if values.get(name) is None:
            values[name] = value
    _check_fresh_out(Path(values["out"]), args.resume)
    if args.resume and given is not None:
        values = _resumed_settings(values, given)
    # checked on the run's architecture, which --resume may have taken from last.pt
    if values["options"].get("full_context") is False and values["arch"] != "diagonal_bilstm":
        raise ValueError("--no-full-context applies to --arch diagonal_bilstm only")
    if values["options"].get("learned_initial_state") and values["arch"] == "pixelcnn":
        raise ValueError("--learned-initial-state applies to the recurrent layers only")
    summary = train(TrainConfig(**values))
    print(json.dumps(summary))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader, Subset

    from .checkpoint import load_checkpoint
    from .data import load_dataset, source_levels, with_levels
    from .train import TrainConfig, evaluate, load_splits

    limit = args.limit if args.limit is not None else _defaults("evaluate").get("limit")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, info = load_checkpoint(args.checkpoint, map_location=device)
    # the run's own settings, so that "val" is exactly the split it held out; no training image
    # is decoded (limit 0) and only the first `limit` held-out images are
    run = TrainConfig.from_dict(
        {**info.get("train", {}), "channels": model.in_channels, "val_limit": limit, "limit": 0}
    )
    # --data, else $PIXELRNN_DATA, else the data the run was trained on
    trained_on = run.data
    run.data = args.data or os.environ.get("PIXELRNN_DATA") or run.data
    run.data_root = args.data_root
    run.levels = model.levels
    if source_levels(trained_on) < source_levels(run.data):
        raise ValueError(
            f"{args.checkpoint} was trained on {trained_on} ({source_levels(trained_on)} levels "
            f"per sub-pixel) and {run.data} has {source_levels(run.data)}: evaluate it with "
            f"--data {trained_on}"
        )
    if source_levels(run.data) < model.levels:
        raise ValueError(
            f"{run.data} has {source_levels(run.data)} levels per sub-pixel and the model in "
            f"{args.checkpoint} predicts {model.levels}: evaluate a {source_levels(run.data)}-level "
            f"checkpoint on it, or this one with --data {trained_on}"
        )
    if args.split == "test":
        if Path(run.data).exists() and not is_binarized_mnist(run.data):
            raise ValueError(
                f"{run.data} is an image folder and has no test split; use --split val"
            )
        # binarized MNIST's test split is ordered by digit: a limit keeps evenly spread images
        spread = limit if is_binarized_mnist(run.data) else None
        held_out = load_dataset(
            run.data,
            root=run.data_root,
            train=False,
            image_size=run.image_size,
            channels=run.channels,
            limit=spread,
        )
        held_out = with_levels(held_out, model.levels)
        if limit is not None:
            held_out = Subset(held_out, range(min(limit, len(held_out))))
    else:
        _, held_out = load_splits(run)
    result = evaluate(
        model, DataLoader(held_out, batch_size=args.batch_size), device, progress=not args.json
    )
    result.update(checkpoint=str(args.checkpoint), data=str(run.data), split=args.split)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['bits_per_dim']:.4f} bits/dim ({result['nats_per_image']:.1f} nats per image) "
            f"on {result['images']} {args.split} images"
        )
    return 0


def _check_writable(path: Path) -> None:
    """Create ``path``'s folder and check that a file can be written there, or say why not."""
    if path.is_dir():
        raise ValueError(
            f"--out {path} is a folder; give a file name such as {path / 'samples.png'}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".pixelrnn-write-test-"):
            pass
    except OSError as e:
        raise ValueError(
            f"cannot write {path}: {e.strerror or e}. Choose an --out in a folder you can write to."
        ) from e


def _sample(args: argparse.Namespace) -> int:
    from torchvision.utils import save_image

    from .checkpoint import load_checkpoint
    from .sampling import sample

    out = Path(args.out)
    _check_writable(out)  # before the sampling, not after it
    for name, value in (("--n", args.n), ("--size", args.size)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, info = load_checkpoint(args.checkpoint, map_location=device)
    size = args.size or info.get("train", {}).get("image_size", 32)
    classes = getattr(model, "classes", None)
    if args.label is not None and classes is None:
        raise ValueError(
            f"--class: {args.checkpoint} is not class-conditional (train one with --classes K)"
        )
    if args.label is not None and not 0 <= args.label < classes:
        raise ValueError(
            f"--class must be in 0..{classes - 1} for this checkpoint, got {args.label}"
        )
    condition = None
    if classes is not None:  # one class, or the classes in turn
        labels = torch.arange(args.n) % classes if args.label is None else args.label
        condition = torch.as_tensor(labels).expand(args.n).clone()
    method = args.method
    generator = torch.Generator().manual_seed(args.seed)
    images = sample(
        model,
        args.n,
        (model.in_channels, size, size),
        method=method,
        temperature=args.temperature,
        generator=generator,
        progress=True,
        condition=condition,
    )
    save_image(images.float() / (model.levels - 1), out, nrow=int(args.n**0.5 + 0.999))
    if args.json:
        row = {"out": str(out), "n": args.n, "method": method, "temperature": args.temperature}
        if condition is not None:
            row["classes"] = condition.tolist()
        print(json.dumps(row))
    else:
        print(f"wrote {args.n} samples to {out}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning on the command line: one line that says what happened, not where in the code."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if args.command == "train":
                return _train(args, _given_train_options(argv))
            return {"evaluate": _evaluate, "sample": _sample}[args.command](args)
        except (OSError, ValueError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:  # train says where it stopped (train._stop_on_ctrl_c)
            print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
