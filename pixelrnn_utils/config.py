"""What a training run is: :class:`TrainConfig`, its checks, and its learning-rate schedule.

``TrainConfig`` holds every setting of a run (the CLI's ``pixelrnn train`` options map one to one,
and every checkpoint records it); :func:`check_config` refuses settings that cannot work before
any data is decoded; :func:`learning_rate` is the schedule (constant, the seed's, or cosine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from .averaging import check_decay
from .data import check_levels, source_levels
from .precision import PRECISIONS

__all__ = ["LR_SCHEDULES", "TrainConfig", "check_config", "learning_rate"]

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything a run needs; the CLI's ``pixelrnn train`` options map one to one."""

    data: str = "cifar10"
    arch: str = "row_lstm"
    hidden: int = 64
    layers: int = 4
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-3
    out: str = "runs/pixelrnn"
    resume: bool = False
    limit: int | None = None  # use at most this many training images
    val_limit: int | None = None  # evaluate on at most this many validation images
    val_fraction: float = 0.1
    device: str | None = None
    seed: int = 0  # initial weights, shuffles and (unless split_seed is set) the split
    split_seed: int | None = None  # the train/validation split; None: ``seed``
    clip: float = 1.0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (see resolve_precision)
    compile: bool = False
    cuda_graphs: bool = True  # on CUDA: the eager step as recorded CUDA graphs (cuda_graphs.py)
    channels: int = 3
    image_size: int = 32
    levels: int | None = None  # values per sub-pixel, 2..256; None: the data's own (see data.py)
    data_root: str = "data"
    progress: bool = True
    save_every: float = 10.0  # minutes between mid-epoch checkpoints; 0 = only at epoch ends
    lr_schedule: str = "constant"  # constant (the seed) | cosine (decays to 0 over the run)
    ema: float | None = None  # Polyak averaging's decay (averaging.py); None: off
    options: dict[str, Any] = field(default_factory=dict)  # extra build_model options, e.g. skip

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a checkpoint's ``train`` entry, including ones written by older versions."""
        values = dict(values)
        if values.pop("amp", True) is False and "precision" not in values:
            values["precision"] = "fp32"
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    ``constant``: ``cfg.lr`` throughout (the seed). ``cosine``: ``cfg.lr`` decayed along half a
    cosine to 0 at the end of the run (``cfg.epochs`` epochs).
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step / max(total_steps, 1), 1.0)))


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings that cannot work, before any data is decoded; messages say what to do."""
    problems = []
    for name in ("hidden", "layers", "epochs", "batch_size", "image_size"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            problems.append(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("limit", "val_limit"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            problems.append(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        problems.append(f"--lr must be a positive number, got {cfg.lr}")
    if not (math.isfinite(cfg.clip) and cfg.clip >= 0):
        problems.append(f"clip must be >= 0 (0 turns clipping off), got {cfg.clip}")
    if not (math.isfinite(cfg.save_every) and cfg.save_every >= 0):
        problems.append(
            f"--save-every must be >= 0 minutes (0: only at epoch ends), got {cfg.save_every}"
        )
    if not 0.0 < cfg.val_fraction < 1.0:
        problems.append(f"val_fraction must be between 0 and 1, got {cfg.val_fraction}")
    if cfg.precision not in PRECISIONS:
        problems.append(
            f"--precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}"
        )
    if cfg.levels is not None:
        try:
            check_levels(cfg.levels)
        except ValueError as e:
            problems.append(f"--levels: {e}")
        else:
            own = source_levels(cfg.data)  # data of fewer than 256 levels is used as it is
            if own != 256 and cfg.levels != own:
                problems.append(
                    f"--levels {cfg.levels}: {cfg.data} has {own} levels per sub-pixel; "
                    f"use --levels {own}"
                )
    if cfg.lr_schedule not in LR_SCHEDULES:
        problems.append(
            f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {cfg.lr_schedule!r}"
        )
    if cfg.ema is not None:
        try:
            check_decay(cfg.ema)
        except ValueError as e:
            problems.append(str(e))
    problems += _conditioning_problems(cfg)
    if problems:
        raise ValueError("; ".join(problems))


def _conditioning_problems(cfg: TrainConfig) -> list[str]:
    """``--classes`` and ``--multiscale`` checked before any work, in the options' own names.

    A Multi-Scale factor must be a power of 2 that divides the image size (the small image is
    every F-th pixel of every F-th row); otherwise the first forward pass would fail, after the
    data, the model and the run folder were set up.
    """
    classes, factor = cfg.options.get("classes"), cfg.options.get("multiscale")
    problems = []
    if classes is not None and not (isinstance(classes, int) and classes >= 2):
        problems.append(f"--classes must be at least 2, got {classes}")
    if factor is not None and classes is not None:
        problems.append("--classes and --multiscale cannot be combined: choose one conditioning")
    size = cfg.image_size
    if factor is not None and isinstance(size, int) and size >= 1:
        fits = [2**k for k in range(1, size.bit_length()) if size % 2**k == 0]
        if factor not in fits:
            which = ", ".join(map(str, fits)) if fits else "none: the size is odd"
            problems.append(
                f"--multiscale must be a power of 2 that divides --image-size {size} "
                f"({which}), got {factor}"
            )
    return problems
