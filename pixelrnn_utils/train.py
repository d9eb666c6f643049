"""Training and evaluation in bits/dim.

``train(TrainConfig(...))`` runs the whole loop: data -> model -> Adam -> per-epoch validation ->
checkpoints and a metrics log in the run folder ``out``:

* ``out/last.pt``: written atomically after every completed epoch **and** every ``save_every``
  minutes during an epoch (what ``--resume`` continues, at the exact next batch);
* ``out/best.pt``: the epoch with the lowest validation bits/dim;
* ``out/metrics.jsonl``: one JSON object per completed epoch (train/val bits/dim, time, precision).

Defaults reproduce the seed (Row LSTM, hidden 64, 4 layers, Adam, lr 1e-3, batch 16, 5 epochs).

**Precision** is one explicit choice, ``precision="auto" | "fp32" | "bf16" | "fp16"``. ``auto``
means bfloat16 on CUDA GPUs of compute capability >= 8.0 and on CPUs with native bfloat16
instructions (AVX512-BF16 or AMX), float16 with a GradScaler on older GPUs, float32 otherwise.
Mixed precision is ``torch.autocast`` around the forward pass: the convolutions run in 16 bits,
while the LSTM state and update (see ``row_lstm.lstm_update``), the logits (the head's last
product, see ``model.logits_linear``), the loss and every reported bits/dim stay float32;
:func:`evaluate` always runs in float32.

``seed`` also cuts the train/validation split unless ``split_seed`` is set: runs that differ only
in ``seed`` then train and validate on the same images (a seed-variance estimate, notebook 07).

Each epoch's shuffle is seeded by ``seed + epoch``, so a resumed run sees exactly the batches an
uninterrupted run sees and ends with the same weights (on the CPU). Under ``torchrun
--nproc_per_node=N`` the same code runs DistributedDataParallel; rank 0 alone writes checkpoints
and logs.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint, set_rng_state
from .cuda_graphs import GraphedModel
from .data import (
    check_levels,
    count_images,
    is_binarized_mnist,
    load_dataset,
    source_levels,
    split_indices,
    with_levels,
)
from .metrics import LN2, check_values, nll, nll_per_subpixel
from .model import build_model
from .progress import progress_bar
from .settings import exact_float32, seed_everything, values_checked

__all__ = [
    "PRECISIONS",
    "TrainConfig",
    "TrainingDiverged",
    "train",
    "train_step",
    "evaluate",
    "pick_device",
    "autocast_dtype",
    "resolve_precision",
    "cpu_has_fast_bf16",
    "learning_rate",
    "load_splits",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
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
    options: dict[str, Any] = field(default_factory=dict)  # extra build_model options, e.g. skip

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a checkpoint's ``train`` entry, including ones written by older versions."""
        values = dict(values)
        if values.pop("amp", True) is False and "precision" not in values:
            values["precision"] = "fp32"
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bfloat16 instructions that PyTorch uses (AVX512-BF16, AMX).

    False as well when PyTorch's kernels are held below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``, as
    when emulating an older CPU): bfloat16 is then emulated in software, many times slower.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    except RuntimeError:  # pragma: no cover - very old builds
        return False


def resolve_precision(precision: str, device: torch.device | str) -> tuple[str, str]:
    """``(precision, reason)``: what ``precision`` means on ``device``; ``auto`` picks one.

    ``auto``: bf16 on CUDA GPUs with compute capability >= 8.0 and on CPUs with native bfloat16
    (:func:`cpu_has_fast_bf16`); fp16 (with a GradScaler) on older GPUs; fp32 otherwise.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        bf16_ok = major >= 8
        if precision == "bf16" and not bf16_ok:
            raise ValueError(
                f"this GPU (compute capability {major}.{minor}) has no fast bfloat16; "
                "use --precision fp16 (or auto, which picks it)"
            )
        if precision == "auto":
            if bf16_ok:
                return "bf16", f"auto: bf16 on a GPU of compute capability {major}.{minor}"
            return "fp16", f"auto: fp16 + GradScaler, the GPU ({major}.{minor}) lacks fast bf16"
        return precision, "chosen"
    if precision != "auto":
        return precision, "chosen"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16", "auto: this CPU runs bfloat16 natively (AVX512-BF16/AMX)"
    return "fp32", f"auto: float32 ({device.type} has no fast bfloat16 path here)"


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype ``precision`` means on ``device``: bfloat16, float16 or None (fp32)."""
    return _DTYPES[resolve_precision(precision, device)[0]]


def keep_freed_memory() -> bool:
    """Ask the C allocator to keep freed memory for reuse instead of handing it back to the OS.

    A training step on the CPU allocates and frees a few hundred MB in large tensors (the float32
    logits of a batch of 16 alone are 50 MB). By default glibc's ``malloc`` returns every large
    block to the operating system, and the next step pays again to fault the same pages in: on the
    course's 2-core CPU that was about a sixth of a bf16 training step. With ``M_MMAP_MAX = 0`` and
    a high trim threshold, freed blocks stay in the process and are reused; the process's memory
    then stays at its peak until it exits. Linux with glibc only (``train`` calls it for CPU runs);
    elsewhere it does nothing and returns False.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


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


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device a run uses: ``device`` if given, else this process's GPU, else the CPU.

    A CUDA device always gets an index (``"cuda"`` means this process's GPU: ``LOCAL_RANK`` under
    torchrun, else the current one), as ``torch.cuda.set_device`` and DDP need.
    """
    if device is None or str(device) == "":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        local = os.environ.get("LOCAL_RANK")
        device = torch.device("cuda", int(local) if local else torch.cuda.current_device())
    return device


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun.

    The backend follows the run's device, not the machine: NCCL for GPUs, Gloo for
    ``--device cpu`` (also on a GPU host).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def load_splits(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training and validation sets, with sub-pixels in ``cfg.levels`` bins.

    Binarized MNIST has published splits, used as they are: ``train`` and ``valid`` (``limit`` and
    ``val_limit`` keep evenly spread images of each). Every other source has one training split,
    cut deterministically into two parts (by ``split_seed``, else ``seed``); only the images used
    are decoded: ``limit`` and ``val_limit`` keep the first images of each part (in sorted order), so a small run starts
    fast; large decodes are cached (see ``data``).
    """
    levels = cfg.levels or source_levels(cfg.data)
    if is_binarized_mnist(cfg.data):
        train_set, val_set = (
            load_dataset(
                cfg.data,
                split=split,
                image_size=cfg.image_size,
                channels=cfg.channels,
                limit=limit,
            )
            for split, limit in (("train", cfg.limit), ("valid", cfg.val_limit))
        )
        return with_levels(train_set, levels), with_levels(val_set, levels)
    n = count_images(cfg.data, root=cfg.data_root, train=True)
    if n < 2:
        raise ValueError(f"{cfg.data} has {n} image: a run needs one to train on, one to validate")
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    train_part, val_part = split_indices(n, cfg.val_fraction, seed=split_seed)
    train_part, val_part = train_part[: cfg.limit], val_part[: cfg.val_limit]
    data = load_dataset(
        cfg.data,
        root=cfg.data_root,
        train=True,
        image_size=cfg.image_size,
        channels=cfg.channels,
        indices=train_part + val_part,
    )
    data = with_levels(data, levels)
    position = {source: k for k, source in enumerate(data.indices)}  # unreadable files are gone
    train_set = Subset(data, [position[i] for i in train_part if i in position])
    val_set = Subset(data, [position[i] for i in val_part if i in position])
    for name, asked, part in (
        ("training", train_part, train_set),
        ("validation", val_part, val_set),
    ):
        if asked and not len(part):  # an epoch would report 0 bits/dim, a validation NaN
            raise ValueError(
                f"none of the {len(asked)} {name} images of {cfg.data} could be read (see the "
                "warnings above): replace or remove those files, or use more images"
            )
    return train_set, val_set


@torch.no_grad()
@exact_float32()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Exact bits/dim over a whole loader: total NLL over all sub-pixels / (count * ln 2).

    Exact whatever precision trained the model: the forward pass runs in float32 with autocast
    switched off (even inside a caller's autocast region) and TF32 off on GPUs, and the NLL of
    every sub-pixel is summed in float64. The batches go to ``device``, which must be the
    model's (default: the model's device).
    """
    model_device = next(model.parameters()).device
    device = model_device if device is None else torch.device(device)
    if (device.type, device.index or 0) != (model_device.type, model_device.index or 0):
        raise ValueError(
            f"evaluate on {device}, but the model is on {model_device}: "
            f"move it first (model.to({str(device)!r})) or leave device out"
        )
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync
    count, images, dims = 0, 0, 0
    for x, y in progress_bar(loader, desc="evaluate", disable=not progress, leave=False):
        check_batch(model, x, y)  # on the CPU: the loss below reads no value (no host sync)
        x = x.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=False), values_checked():
            logits = forward(model, x, y)
            total += nll_per_subpixel(logits, x).sum(dtype=torch.float64)
        count += x.numel()
        images += x.shape[0]
        dims = x[0].numel()
    model.train(was_training)
    totals = torch.stack([total, *torch.tensor([count, images], dtype=torch.float64).to(device)])
    if dist.is_initialized():
        dist.all_reduce(totals)
    total, count, images = totals.tolist()
    bpd = total / count / LN2 if count else float("nan")
    return {"bits_per_dim": bpd, "nats_per_image": bpd * dims * LN2, "images": int(images)}


def forward(net: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``net(x)``, or ``net(x, condition=labels)`` for a class-conditional model."""
    model = getattr(net, "module", net)  # DistributedDataParallel / compile wrap the model
    model = getattr(model, "_orig_mod", model)
    if getattr(model, "classes", None) is None:
        return net(x)
    return net(x, condition=labels.to(x.device, non_blocking=True))


def check_labels(dataset: Dataset, classes: int) -> None:
    """Refuse data whose labels are not class numbers ``0..classes-1`` (binarized MNIST has none);
    warn about classes the training images never show: their vectors stay as initialised, and
    images sampled for them are not images of anything."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    labels = getattr(base, "labels", None)
    if labels is None or not len(labels):
        return
    if isinstance(dataset, Subset):
        labels = labels[list(dataset.indices)]
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(
            f"--classes {classes} needs labels 0..{classes - 1}; this data's labels run from "
            f"{low} to {high}" + (" (it has no class labels)" if high < 0 else "")
        )
    unseen = sorted(set(range(classes)) - set(labels.tolist()))
    if unseen:
        fewer = (
            f"pass --classes {high + 1} if the data has {high + 1}, or "
            if high + 1 < classes
            else ""
        )
        warnings.warn(
            f"--classes {classes}, but the training images have no label {_ranges(unseen)}: the "
            f"model learns nothing for those classes ({fewer}train on more images)",
            stacklevel=2,
        )


def _ranges(numbers: list[int]) -> str:
    """Sorted integers as a short list: ``[3, 4, 5, 9]`` -> ``"3..5, 9"``."""
    runs: list[list[int]] = []
    for k in numbers:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)


def _epoch_order(
    dataset: Dataset, cfg: TrainConfig, epoch: int, rank: int, world: int
) -> list[int]:
    """This epoch's order of this rank's images: a permutation seeded by ``seed + epoch``.

    With several ranks every rank gets the same number of images (the permutation is cut to a
    multiple of ``world``; the at most ``world - 1`` images left out change every epoch), so all
    ranks run the same number of steps and none waits for a gradient that never comes.
    """
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed + epoch))
    return order[: len(order) - len(order) % world][rank::world].tolist()


def _drop_last(cfg: TrainConfig, device: torch.device, world: int) -> bool:
    """Whether an epoch skips its last, smaller batch.

    Under DDP (ranks stay in step) and with ``--compile`` on a GPU, where CUDA graphs are recorded
    for one batch shape and a smaller last batch (45,000 % 16 = 8 images) would compile and record
    everything again. The shuffle changes every epoch, so different images are left out each time.
    """
    return world > 1 or (cfg.compile and device.type == "cuda")


def _batches(
    dataset: Dataset, order: list[int], cfg: TrainConfig, start: int, drop_last: bool, device
) -> DataLoader:
    """The batches of ``order`` from batch number ``start`` on (``start > 0`` when resuming)."""
    return DataLoader(
        Subset(dataset, order[start * cfg.batch_size :]),
        batch_size=cfg.batch_size,
        shuffle=False,
        drop_last=drop_last,
        pin_memory=torch.device(device).type == "cuda",
    )


def _steps_per_epoch(images: int, cfg: TrainConfig, drop_last: bool) -> int:
    return images // cfg.batch_size if drop_last else math.ceil(images / cfg.batch_size)


def _append_log(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
    clip: float | None = 1.0,
    scaler: torch.amp.GradScaler | None = None,
    loss_fn=nll,
) -> torch.Tensor:
    """One optimizer step on one batch; returns its loss, the mean NLL per sub-pixel in nats.

    The step every run takes, ``train()`` and notebook 05's loop alike: the forward pass under
    autocast at ``dtype`` (None: float32), the loss in float32 whatever that dtype, backward,
    gradient-norm clipping at ``clip`` (None or 0: none), and the optimizer's step. ``scaler``
    is the GradScaler of a float16 run. bits/dim of the batch = loss / ln 2.
    """
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        logits = forward(net, x, labels)
    loss = loss_fn(logits, x)  # float32 log-probabilities whatever the autocast dtype
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, clip)
    if scaler is not None and scaler.is_enabled():
        scaler.step(optimizer)  # skipped when the float16 gradients overflowed
        scaler.update()
    else:
        optimizer.step()
    return loss.detach()


@dataclass
class _Run:
    """What every epoch of one run needs (built once by ``train``)."""

    cfg: TrainConfig
    model: nn.Module
    net: nn.Module  # the model as stepped: wrapped by DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None
    precision: str
    loss_fn: Any
    device: torch.device
    rank: int
    world: int
    out: Path
    train_set: Dataset
    drop_last: bool
    steps_per_epoch: int
    show: bool
    stop_requested: bool = False  # set by a first Ctrl-C: stop at the next step boundary

    def save(self, path: Path, epoch: int, history: list, position: dict | None = None) -> None:
        save_checkpoint(
            path,
            self.model,
            self.optimizer,
            epoch,
            history,
            scaler=self.scaler.state_dict(),
            position=position,
            # the precision used, and the one asked for ("auto" picks again where a run resumes)
            train={
                **asdict(self.cfg),
                "precision": self.precision,
                "precision_requested": self.cfg.precision,
            },
        )


def _read_last(cfg: TrainConfig, out: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """``out/last.pt`` of a run to resume (None: there is none), checked against this run's
    model and settings before any data is decoded."""
    if not (cfg.resume and (out / "last.pt").exists()):
        return None
    # read on the CPU: the RNG states must stay CPU tensors; load_state_dict (model and
    # Adam) copies the rest to the model's device
    state = read_checkpoint(out / "last.pt", map_location="cpu")
    if state["config"] != config:
        raise CheckpointError(
            f"cannot resume {out / 'last.pt'}: it was trained with {state['config']}, "
            f"this run asks for {config}. Use the same options or another --out folder."
        )
    position = state.get("position")  # set when the run stopped in the middle of an epoch
    if position:  # the rest of that epoch must be the same batches
        before = state.get("train", {})
        for key in ("batch_size", "seed", "split_seed", "limit", "val_fraction"):
            if key in before and before[key] != getattr(cfg, key):
                raise CheckpointError(
                    f"cannot resume {out / 'last.pt'} in the middle of epoch {position['epoch']}: "
                    f"it was trained with {key}={before[key]!r}, this run asks for "
                    f"{getattr(cfg, key)!r}. Use the same {key} (or another --out folder)."
                )
    return state


def _resume(
    run: _Run, state: dict[str, Any]
) -> tuple[int, list[dict[str, Any]], dict[str, Any] | None]:
    """Load ``state`` (``out/last.pt``, see :func:`_read_last`) into the run: (epochs done,
    metrics so far, position inside an epoch)."""
    run.model.load_state_dict(state["model"])
    if state.get("optimizer") is not None:
        run.optimizer.load_state_dict(state["optimizer"])
    elif run.rank == 0:  # a checkpoint exported for sharing (export_weights): weights only
        warnings.warn(
            f"{run.out / 'last.pt'} holds no optimizer state (a checkpoint made for sharing): the "
            "run continues from its weights with a fresh Adam optimizer, so its next steps are "
            "not the ones the original run would have taken",
            stacklevel=3,
        )
    if state.get("scaler") and run.scaler.is_enabled():
        run.scaler.load_state_dict(state["scaler"])
    position = state.get("position")
    note = _schedule_change(run, state.get("train", {}), state["epoch"], position)
    if note and run.rank == 0:
        warnings.warn(note, stacklevel=3)
    set_rng_state(state["rng"])
    return state["epoch"], list(state["metrics"]), position


def _schedule_change(
    run: _Run, before: dict[str, Any], epoch: int, position: dict | None
) -> str | None:
    """What resuming with another ``--epochs`` or ``--lr-schedule`` does to the learning rate.

    A cosine schedule is laid out over the run's epochs, so resuming a cosine run with more epochs
    than it started with moves the rest of the curve: the rate jumps back up. None when nothing
    changes (or the checkpoint does not say how it was started).
    """
    cfg = run.cfg
    old = replace(
        cfg,
        epochs=before.get("epochs", cfg.epochs),
        lr_schedule=before.get("lr_schedule", cfg.lr_schedule),
        lr=before.get("lr", cfg.lr),
    )
    if "cosine" not in (old.lr_schedule, cfg.lr_schedule):
        return None
    if (old.epochs, old.lr_schedule, old.lr) == (cfg.epochs, cfg.lr_schedule, cfg.lr):
        return None
    step = epoch * run.steps_per_epoch + (position["step"] if position else 0)
    was = learning_rate(old, step, old.epochs * run.steps_per_epoch)
    now = learning_rate(cfg, step, cfg.epochs * run.steps_per_epoch)
    return (
        f"--resume with another learning-rate schedule: {run.out / 'last.pt'} was started with "
        f"--lr-schedule {old.lr_schedule} --lr {old.lr:g} over {old.epochs} epochs, this run asks "
        f"for --lr-schedule {cfg.lr_schedule} --lr {cfg.lr:g} over {cfg.epochs}. Its next step "
        f"runs at learning rate {now:.3g} where the old schedule had {was:.3g}. To keep the old "
        f"schedule, resume with --epochs {old.epochs} --lr-schedule {old.lr_schedule} --lr {old.lr:g}."
    )


#: How many steps a GPU run takes between reading its losses back (each read is a host sync).
LOSS_READ_EVERY = 25


def loss_read_every(device: torch.device) -> int:
    """Steps between reads of the loss: every step on the CPU (a read costs nothing there),
    :data:`LOSS_READ_EVERY` on a GPU, whose progress bar and divergence check lag that much."""
    return 1 if torch.device(device).type == "cpu" else LOSS_READ_EVERY


def check_batch(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> None:
    """Refuse a batch whose values the model cannot take (images not in ``0..levels-1``, labels
    not in ``0..classes-1``), read on the CPU where the batch is made, so that the step itself
    reads none (:func:`~pixelrnn_utils.settings.values_checked`)."""
    check_values(x, model.levels)
    if getattr(model, "classes", None) is not None:
        model.conditioner.check(labels, x.shape[0])


def _read_losses(
    run: _Run, pending: list[tuple[torch.Tensor, int]], epoch: int, seen: int, running: float
) -> tuple[int, float]:
    """Read back the losses of the steps since the last read (one host sync), stop the run if
    one is not finite (every rank together), and return the images seen and the running mean
    bits/dim after them."""
    losses = torch.stack([loss for loss, _ in pending])
    finite = torch.isfinite(losses).all().float()
    if run.world > 1:  # every rank stops together, none waits in the next all-reduce
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    values = losses.tolist()
    if not finite.item():  # the weights in memory are spoiled; last.pt on disk is not
        bad = next((k for k, value in enumerate(values) if not math.isfinite(value)), None)
        before = seen + sum(images for _, images in pending[: bad or 0])
        shown = "NaN or infinite on another rank" if bad is None else values[bad]
        raise TrainingDiverged(
            f"loss became {shown} at epoch {epoch} after {before} images; the last good "
            f"checkpoint ({run.out / 'last.pt'}) is kept. Lower --lr or keep gradient clipping "
            "on, then --resume."
        )
    for value, (_, images) in zip(values, pending, strict=True):
        seen += images
        running += (value / LN2 - running) * images / seen
    return seen, running


def _train_epoch(
    run: _Run, epoch: int, history: list, position: dict[str, Any] | None
) -> dict[str, Any]:
    """One epoch of training steps (from ``position`` when resuming inside it); its statistics.

    Saves ``last.pt`` every ``save_every`` minutes with the exact position, so that ``--resume``
    continues at the next batch.
    """
    cfg, out = run.cfg, run.out
    resuming = position is not None and position["epoch"] == epoch
    start = position["step"] if resuming else 0
    seen = position["seen"] if resuming else 0
    running = position["running"] if resuming else 0.0
    earlier = position["seconds"] if resuming else 0.0
    order = _epoch_order(run.train_set, cfg, epoch, run.rank, run.world)
    loader = _batches(run.train_set, order, cfg, start, run.drop_last, run.device)
    t0 = last_save = time.perf_counter()
    first_step_seconds, lr = None, cfg.lr
    last_step, every = start + len(loader), loss_read_every(run.device)
    pending: list[tuple[torch.Tensor, int]] = []  # the losses not read back yet, batch sizes
    bar = progress_bar(
        loader,
        desc=f"epoch {epoch}/{cfg.epochs} [{run.precision}]",
        disable=not run.show,
        initial=start,
        total=start + len(loader),
        mininterval=1.0,
    )
    for step, (x, y) in enumerate(bar, start=start + 1):
        total_steps = cfg.epochs * run.steps_per_epoch
        lr = learning_rate(cfg, (epoch - 1) * run.steps_per_epoch + step - 1, total_steps)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        check_batch(run.model, x, y)  # on the CPU, where the batch is made
        x = x.to(run.device, non_blocking=True)
        with values_checked():  # so the step itself reads no value: no host sync
            loss = train_step(
                run.net,
                run.optimizer,
                x,
                y,
                dtype=run.dtype,
                clip=cfg.clip,
                scaler=run.scaler,
                loss_fn=run.loss_fn,
            )
        pending.append((loss, x.shape[0]))
        due = cfg.save_every and time.perf_counter() - last_save >= cfg.save_every * 60
        save = (due or run.stop_requested) and step < last_step
        # the losses are read back every few steps (each read waits for the GPU), and always
        # before a save: a diverged run stops before it writes anything
        if len(pending) >= every or save or step in (start + 1, last_step):
            seen, running = _read_losses(run, pending, epoch, seen, running)
            pending.clear()
            bar.set_postfix(bpd=f"{running:.3f}", lr=f"{lr:.2g}", refresh=False)
        if first_step_seconds is None:
            first_step_seconds = time.perf_counter() - t0  # includes compiling, with --compile
        now = time.perf_counter()
        if save:
            if run.rank == 0:
                done = {"epoch": epoch, "step": step, "seen": seen, "running": running}
                run.save(
                    out / "last.pt", epoch - 1, history, {**done, "seconds": earlier + now - t0}
                )
            last_save = time.perf_counter()
            if run.stop_requested:
                bar.close()
                raise KeyboardInterrupt(
                    f"stopped in epoch {epoch} after step {step} of {last_step}; "
                    f"{out / 'last.pt'} holds this exact point: the same command with --resume "
                    "continues it"
                )
    bar.close()
    return {
        "seen": seen,
        "running": running,
        "seconds": earlier + time.perf_counter() - t0,
        "lr": lr,
        "first_step_seconds": first_step_seconds,
    }


@contextmanager
def _stop_on_ctrl_c(run: _Run) -> Iterator[None]:
    """A first Ctrl-C (SIGINT; Jupyter's "interrupt") ends the run at the next step boundary.

    The step in flight finishes, ``last.pt`` is written with the exact position (as the periodic
    saves are) and ``KeyboardInterrupt`` is raised, so that ``--resume`` loses nothing. A second
    Ctrl-C interrupts at once. Single-process runs in the main thread only (under torchrun the
    processes must stop together, and signal handlers belong to the main thread).
    """
    if run.world > 1 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python: fall back to Python's own
        previous = signal.default_int_handler

    def ask_to_stop(signum, frame) -> None:
        run.stop_requested = True
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C stops at once
        if run.show:
            tqdm.write("Ctrl-C: stopping after this step and saving last.pt (again: stop at once)")

    signal.signal(signal.SIGINT, ask_to_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@exact_float32()  # precision="fp32" is float32 on GPUs too, not TF32
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training run; returns the summary of the last epoch.

    Build everything once, then per epoch: :func:`_train_epoch` (the :func:`train_step` of every
    batch, with mid-epoch checkpoints), :func:`evaluate` on the validation images, ``last.pt``,
    ``best.pt`` and one line of ``metrics.jsonl``.
    """
    check_config(cfg)
    cfg = replace(cfg, levels=cfg.levels or source_levels(cfg.data))
    device = pick_device(cfg.device)
    rank, world = _distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        keep_freed_memory()  # no page faults on every step's large tensors
    precision, why = resolve_precision(cfg.precision, device)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run (it is created)")
    log_path = out / "metrics.jsonl"

    seed_everything(cfg.seed)
    model = build_model(
        cfg.arch, cfg.channels, cfg.hidden, cfg.layers, levels=cfg.levels, **cfg.options
    ).to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    graphed = cfg.cuda_graphs and device.type == "cuda" and not cfg.compile and world == 1
    if graphed:  # a forward and a backward as two launches instead of thousands
        net = GraphedModel(model, _DTYPES[precision])
    loss_fn = nll
    if cfg.compile:  # on CUDA also CUDA graphs: the Row LSTM launches thousands of small kernels
        net = torch.compile(net, mode="reduce-overhead" if device.type == "cuda" else None)
        loss_fn = torch.compile(nll)  # one fused pass over the logits instead of three
    last = _read_last(cfg, out, model.config)  # before any data is decoded
    train_set, val_set = load_splits(cfg)
    if cfg.options.get("classes") is not None:
        check_labels(train_set, cfg.options["classes"])
    drop_last = _drop_last(cfg, device, world)
    run = _Run(
        cfg=cfg,
        model=model,
        net=net,
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg.lr),
        scaler=torch.amp.GradScaler(device.type, enabled=_DTYPES[precision] == torch.float16),
        dtype=_DTYPES[precision],
        precision=precision,
        loss_fn=loss_fn,
        device=device,
        rank=rank,
        world=world,
        out=out,
        train_set=train_set,
        drop_last=drop_last,
        steps_per_epoch=_steps_per_epoch(len(train_set) // world, cfg, drop_last),
        show=cfg.progress and rank == 0,
    )
    start_epoch, history, position = 0, [], None
    resumed = last is not None
    if resumed:
        start_epoch, history, position = _resume(run, last)
        if rank == 0:  # the log is rebuilt from the checkpoint: no epoch is lost or counted twice
            log_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
    val_loader = DataLoader(
        Subset(val_set, range(rank, len(val_set), world)), batch_size=max(cfg.batch_size, 64)
    )
    if run.show:
        graphs = ", the step as CUDA graphs" if graphed else ""
        tqdm.write(f"training on {device} in {precision} ({why}){graphs}")
        if cfg.resume and not resumed:
            tqdm.write(f"--resume: no {out / 'last.pt'} yet, so this is a new run")
        if start_epoch >= cfg.epochs:
            tqdm.write(
                f"{out / 'last.pt'} has trained {start_epoch} epochs of the {cfg.epochs} asked for: "
                "nothing to train (a larger --epochs continues it)"
            )
    best = min((r["val_bits_per_dim"] for r in history), default=math.inf)
    summary: dict[str, Any] = history[-1] if history else {}

    with _stop_on_ctrl_c(run):
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            net.train()
            stats = _train_epoch(run, epoch, history, position)
            position = None
            val = evaluate(model, val_loader, device)
            row = {
                "epoch": epoch,
                "train_bits_per_dim": stats["running"],
                "val_bits_per_dim": val["bits_per_dim"],
                "val_nats_per_image": val["nats_per_image"],
                "train_images": stats["seen"] * world,
                "epoch_seconds": stats["seconds"],
                "images_per_second": stats["seen"] * world / stats["seconds"],
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "precision": precision,
                "lr": stats["lr"],
                "world_size": world,
            }
            if graphed:
                row["cuda_graphs"] = True
            if cfg.compile and stats["first_step_seconds"] is not None:
                row["first_step_seconds"] = stats["first_step_seconds"]
            history.append(row)
            summary = row
            if rank == 0:
                run.save(out / "last.pt", epoch, history)
                if row["val_bits_per_dim"] < best:
                    best = row["val_bits_per_dim"]
                    run.save(out / "best.pt", epoch, history)
                _append_log(log_path, row)
                if run.show:
                    tqdm.write(
                        f"epoch {epoch}: train {row['train_bits_per_dim']:.3f} bits/dim, "
                        f"val {row['val_bits_per_dim']:.3f} bits/dim, {stats['seconds']:.0f} s, "
                        f"{precision}"
                    )
            if world > 1:
                dist.barrier()
            if run.stop_requested and epoch < cfg.epochs:  # Ctrl-C during validation or saving
                raise KeyboardInterrupt(
                    f"stopped after epoch {epoch}; {out / 'last.pt'} holds it: the same command "
                    "with --resume continues it"
                )
    return summary
