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

from .cli_options import add_train_arguments, build_parser
from .data import is_binarized_mnist, is_native_28, is_source_name
from .settings import data_source, smoke

__all__ = ["main", "build_parser"]


def _defaults(command: str) -> dict[str, int]:
    """Defaults of options left unset: the seed's, or a CPU-seconds run when PIXELRNN_SMOKE=1."""
    if command == "train":
        if smoke():
            return {"hidden": 16, "layers": 2, "epochs": 1, "limit": 64, "val_limit": 32}
        return {"hidden": 64, "layers": 4, "epochs": 5}
    return {"limit": 64} if smoke() else {}


def _check_fresh_out(out: Path, resume: bool) -> None:
    """Refuse to start a new run over the files of an earlier one: a forgotten ``--resume``, or
    a ``--resume`` with no ``last.pt`` to continue from (a new run would overwrite ``best.pt``
    and replace ``metrics.jsonl``).

    The Python API's ``train`` starts over, as a re-run notebook cell expects; the command line,
    where the long runs are, keeps what a run folder holds unless told to continue it.
    """
    if resume and (out / "last.pt").is_file():
        return  # continued, not overwritten
    held = [
        name
        for name in ("last.pt", "best.pt", "metrics.jsonl")
        if (out / name).is_file() and (out / name).stat().st_size  # an empty file holds nothing
    ]
    if not held:
        return
    if "last.pt" in held:  # and no --resume
        raise ValueError(
            f"{out} already holds a run ({', '.join(held)}): pass --resume to continue it, or "
            "another --out (or delete that folder) to start a new one"
        )
    how = "pass another --out (or delete that folder) to start a new run"
    if "best.pt" in held:
        how = (
            f"to continue from best.pt's epoch, copy {out / 'best.pt'} to {out / 'last.pt'} and "
            f"train with --resume; or {how}"
        )
    raise ValueError(
        f"{out} holds {' and '.join(held)} of an earlier run but no last.pt to resume, and a new "
        f"run there would overwrite them: {how}"
    )


# What a run is: with --resume, these come from OUT/last.pt unless given on the command line.
# Not taken from it: where this process runs (--device) and its folder (--out).
_RUN_SETTINGS = (
    "arch", "hidden", "layers", "epochs", "batch_size", "lr", "lr_schedule", "limit", "val_limit",
    "seed", "split_seed", "channels", "image_size", "levels", "save_every", "data_root", "compile",
    "cuda_graphs", "ema",
)  # fmt: skip


def _given_train_options(argv: list[str]) -> set[str]:
    """The ``train`` options (by ``dest``) that ``argv`` sets, as opposed to left at their defaults."""
    probe = argparse.ArgumentParser(add_help=False)
    add_train_arguments(probe)
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
        _check_recorded_data(before["data"], last)
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


def _check_counts(*options: tuple[str, int | None]) -> None:
    """Refuse counts below 1 (None: not given), before any work."""
    for name, value in options:
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def _device(name: str | None) -> torch.device:
    """``--device``, checked before anything is loaded: a checkpoint read onto a GPU that is not
    there fails in ways that look like a damaged file."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device {name} is not a device: use cpu, cuda or cuda:N") from e
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ValueError(
                f"--device {name}: PyTorch sees no GPU on this machine; use --device cpu"
            )
        if (device.index or 0) >= count:
            raise ValueError(f"--device {name}: this machine has GPUs cuda:0 to cuda:{count - 1}")
    return device


def _check_can_write(folder: Path, out: Path) -> None:
    """Check, creating nothing, that ``folder`` (which need not exist yet) can be made and
    written in: so a bad ``--out`` fails before any work, and a failed command leaves no empty
    folder behind."""
    base = folder
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir():
        raise ValueError(
            f"cannot write {out}: {base} is a file, not a folder. Choose another --out."
        )
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".pixelrnn-write-test-"):
            pass
    except OSError as e:
        raise ValueError(
            f"cannot write {out}: no file can be made in {base} ({e.strerror or e}). "
            "Choose an --out in a folder you can write to."
        ) from e


def _check_data_name(source: str) -> None:
    """Say so when a dataset's name also names a folder here: the built-in dataset is read, not
    the folder (``--data ./NAME`` reads the folder)."""
    if is_source_name(source) and Path(source).exists():
        warnings.warn(
            f"--data {source} is the built-in dataset of that name, not the folder {source} here "
            f"(to train on the folder, pass --data ./{source})",
            stacklevel=2,
        )


def _data_option(data: str) -> str:
    """``--data DATA`` as a hint. A run records its folder as it was typed, relative to where the
    run was started: where that path leads nowhere, the hint names the folder instead."""
    if is_source_name(data) or Path(data).expanduser().exists():
        return f"--data {data}"
    return f"--data and the path of the folder it was trained on (recorded as {data})"


def _check_recorded_data(data: str, checkpoint: Path) -> None:
    """Refuse, before any work, the folder a checkpoint records if it is not there from here."""
    if not (is_source_name(data) or Path(data).expanduser().exists()):
        raise ValueError(
            f"{checkpoint} was trained on the folder {data}, which is not there from "
            f"{Path.cwd()} (a path is recorded as typed, relative to where the run was started): "
            "pass --data with its path from here"
        )


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
    _device(args.device)
    out = Path(values["out"])
    _check_fresh_out(out, args.resume)
    _check_can_write(out, out)
    if args.resume and given is not None:
        values = _resumed_settings(values, given)
    _check_data_name(values["data"])
    # checked on the run's architecture, which --resume may have taken from last.pt
    if values["options"].get("full_context") is False and values["arch"] != "diagonal_bilstm":
        raise ValueError("--no-full-context applies to --arch diagonal_bilstm only")
    if values["options"].get("learned_initial_state") and "pixelcnn" in values["arch"]:
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
    _check_counts(("--limit", limit), ("--batch-size", args.batch_size))
    device = _device(args.device)
    model, info = load_checkpoint(args.checkpoint, map_location=device)
    # the run's own settings, so that "val" is exactly the split it held out; no training image
    # is decoded (limit 0) and only the first `limit` held-out images are
    run = TrainConfig.from_dict(
        {**info.get("train", {}), "channels": model.in_channels, "val_limit": limit, "limit": 0}
    )
    # --data, else $PIXELRNN_DATA, else the data the run was trained on
    trained_on = run.data
    asked = args.data or os.environ.get("PIXELRNN_DATA")
    if not asked:
        _check_recorded_data(trained_on, Path(args.checkpoint))
    run.data = asked or trained_on
    _check_data_name(run.data)
    run.data_root = args.data_root
    run.levels = model.levels
    if source_levels(trained_on) < source_levels(run.data):
        raise ValueError(
            f"{args.checkpoint} was trained on {trained_on} ({source_levels(trained_on)} levels "
            f"per sub-pixel) and {run.data} has {source_levels(run.data)}: evaluate it with "
            f"{_data_option(trained_on)}"
        )
    if source_levels(run.data) < model.levels:
        raise ValueError(
            f"{run.data} has {source_levels(run.data)} levels per sub-pixel and the model in "
            f"{args.checkpoint} predicts {model.levels}: evaluate a {source_levels(run.data)}-level "
            f"checkpoint on it, or this one with {_data_option(trained_on)}"
        )
    if is_native_28(run.data) and (model.in_channels, run.image_size) != (1, 28):
        size = run.image_size
        raise ValueError(
            f"{args.checkpoint} models {model.in_channels}-channel {size}x{size} images and "
            f"{run.data} holds 1-channel 28x28 ones: evaluate it with {_data_option(trained_on)}"
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
    result.update(
        checkpoint=str(args.checkpoint),
        data=str(run.data),
        split=args.split,
        weights=info["weights"],
    )
    if args.json:
        print(json.dumps(result))
    else:
        averaged = " (Polyak-averaged weights)" if info["weights"] == "averaged" else ""
        print(
            f"{result['bits_per_dim']:.4f} bits/dim ({result['nats_per_image']:.1f} nats per image) "
            f"on {result['images']} {args.split} images{averaged}"
        )
    return 0


def _check_image_out(out: Path, overwrite: bool) -> None:
    """Check ``sample --out`` before any sampling, creating nothing: a file name that Pillow can
    write an image to (it goes by the extension), in a folder that can be written, and not an
    existing file unless ``--overwrite``."""
    from PIL import Image

    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'samples.png'}")
    if Image.registered_extensions().get(out.suffix.lower()) not in Image.SAVE:
        what = f"{out.suffix} is not an image type" if out.suffix else "the name has no extension"
        raise ValueError(f"--out {out}: {what}; end it in .png (or .jpg, .bmp, .tif, ...)")
    if out.exists() and not overwrite:
        raise ValueError(
            f"--out {out} already exists: pass --overwrite to replace it, or another --out"
        )
    _check_can_write(out.parent, out)


def _sample(args: argparse.Namespace) -> int:
    from torchvision.utils import save_image

    from .checkpoint import load_checkpoint
    from .sampling import check_temperature, sample

    _check_counts(("--n", args.n), ("--size", args.size))
    try:
        check_temperature(args.temperature)
    except ValueError as e:
        raise ValueError(f"--{e}") from e
    out = Path(args.out)
    _check_image_out(out, args.overwrite)  # before the sampling, not after it
    device = _device(args.device)
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
    out.parent.mkdir(parents=True, exist_ok=True)  # only now: a failed command leaves no folder
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
        except KeyboardInterrupt as e:  # train says where it stopped (runtime.stop_on_ctrl_c)
            print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
