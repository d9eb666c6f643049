"""Safe, resumable checkpoints.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts:

* ``config``: the ``build_model`` arguments, so ``load_checkpoint`` can rebuild the model
  (``classes``, ``upsample`` and ``multiscale`` appear only in the configs of conditioned models);
* ``model``: the weights; ``optimizer``: the optimiser state (for ``--resume``);
* ``epoch``: the last *completed* epoch; ``metrics``: one dict per completed epoch;
* ``rng``: the torch (CPU and CUDA) and Python random states; ``train``: the training settings;
* ``ema`` (runs with Polyak averaging, ``averaging.py``): the decay and the averaged weights,
  which :func:`load_checkpoint` gives by default;
* written by the trainer also ``scaler`` (the float16 GradScaler's state) and ``position``: where
  in the next epoch a mid-epoch checkpoint was taken (batch, images, running loss), else None.

It is written **atomically** (a temporary file in the same folder, then ``os.replace``), so a run
killed at any moment leaves either the previous checkpoint or the new one, never half a file.
It is read with ``torch.load(..., weights_only=True)``: a file that would run code when unpickled is
refused before anything runs.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .averaging import load_averaged
from .model import MultiScalePixelRNN, PixelRNN, build_model

__all__ = [
    "save_checkpoint",
    "read_checkpoint",
    "load_checkpoint",
    "export_weights",
    "CheckpointError",
    "rng_state",
    "set_rng_state",
]

FORMAT = "pixelrnn_utils.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do."""


def rng_state() -> dict[str, Any]:
    """Every random state that training uses, in a form ``weights_only`` loading accepts."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _python_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (RNG states are CPU byte tensors wherever they were
    loaded: a checkpoint read with ``map_location="cuda"`` is fine too)."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        # one state per GPU of the machine that saved it; this machine may have fewer
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"][: torch.cuda.device_count()]])


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int = 0,
    metrics: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Path:
    """Write a checkpoint atomically; returns its path. ``extra`` entries are stored as they are."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel / compile
    model = getattr(model, "_orig_mod", model)
    if not isinstance(model, PixelRNN | MultiScalePixelRNN):
        raise TypeError("save_checkpoint expects a model made by build_model")
    state = {
        "format": FORMAT,
        "config": dict(model.config),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "metrics": list(metrics or []),
        "rng": rng_state(),
        **extra,
    }
    return _write_atomically(state, Path(path))


def _write_atomically(state: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary file next to ``path``, then rename it: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-write
        stale.unlink(missing_ok=True)
    return path


def _check_integrity(path: Path) -> None:
    """Refuse a checkpoint whose bytes changed after it was written (a bad copy, a disk error).

    ``torch.save`` writes a zip archive with a CRC-32 checksum of every part, but ``torch.load``
    does not check them: flipped bytes in the weights load silently and give wrong results.
    Checking reads the file once more (the shipped checkpoints are at most 11 MB). A file that
    is not a zip archive at all is left to ``torch.load``, which says what it is.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        problem = None if bad is None else f"its part {bad} fails its checksum"
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        problem = f"its archive cannot be read ({type(e).__name__}: {e})"
    if problem:
        raise CheckpointError(
            f"{path} is damaged: {problem}, so the file changed after it was written (an "
            "incomplete copy or download, or a disk error). Copy it again, use the run's other "
            "checkpoint (last.pt or best.pt), or retrain."
        )


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint's dictionary safely (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: check the path (runs write DIR/last.pt and DIR/best.pt)"
        )
    _check_integrity(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # a pickle that names a function or class to call
            raise CheckpointError(
                f"refused to load {path}: it contains Python objects that would run code when unpickled. "
                "Nothing from it was executed. Only load checkpoints written by pixelrnn_utils from a source you trust."
            ) from e
        raise CheckpointError(  # not a pickle at all: a text file, an image, random bytes
            f"{path} is not a checkpoint (not a file written by torch.save). "
            "Pass a file written by `pixelrnn train` (OUT/last.pt or OUT/best.pt)."
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(e).__name__}: {e}). "
            "If a run was interrupted, use the previous checkpoint in the run folder or retrain."
        ) from e
    except Exception as e:  # e.g. a text file: the unpickler fails in its own ways (KeyError, ...)
        raise CheckpointError(
            f"{path} is not a checkpoint that torch.load can read ({type(e).__name__}: {e}). "
            "Pass a file written by `pixelrnn train` (OUT/last.pt or OUT/best.pt)."
        ) from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a pixelrnn_utils checkpoint (expected format {FORMAT!r}); "
            "train one with `pixelrnn train` or save it with save_checkpoint"
        )
    return state


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", averaged: bool = True
) -> tuple[PixelRNN, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained with; returns ``(model, info)``.

    ``info`` is the rest of the checkpoint: ``config``, ``epoch``, ``metrics``, ``optimizer``, ...
    The model is in eval mode on ``map_location``. A run trained with Polyak averaging
    (``--ema``) gives its averaged weights, or with ``averaged=False`` the trained ones;
    ``info["weights"]`` says which: ``"averaged"`` or ``"trained"``.
    """
    state = read_checkpoint(path, map_location)
    config = dict(state["config"])
    try:
        model = build_model(**config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: its config {config} does not describe a model this package can build: {e}"
        ) from e
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise CheckpointError(
            f"{path}: the weights do not fit the architecture in its config "
            f"(arch={config.get('arch')}, hidden={config.get('hidden')}, layers={config.get('layers')}, "
            f"in_channels={config.get('in_channels')}): they come from another architecture or size. "
            f"{' '.join(first)}"
        ) from e
    use_average = averaged and state.get("ema") is not None
    if use_average:
        try:
            load_averaged(model, state["ema"])
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from e
    model.to(map_location).eval()
    info = {k: v for k, v in state.items() if k != "model"}
    info["weights"] = "averaged" if use_average else "trained"
    return model, info


def export_weights(
    src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype = torch.float16
) -> Path:
    """A small copy of checkpoint ``src`` for sharing: its weights in ``dtype``, no optimizer state.

    The config, epoch, metrics and training settings are kept, so :func:`load_checkpoint` rebuilds
    the model from it (in float32, with the weights rounded to ``dtype``); it cannot be resumed.
    """
    state = read_checkpoint(src)
    state["model"] = {
        k: v.to(dtype) if v.is_floating_point() else v for k, v in state["model"].items()
    }
    if state.get("ema") is not None:
        weights = state["ema"]["weights"]
        state["ema"]["weights"] = {k: v.to(dtype) for k, v in weights.items()}
    state.update(optimizer=None, scaler=None, position=None)
    return _write_atomically(state, Path(dst))
