"""Training and evaluation in bits/dim.

``train(TrainConfig(...))`` runs the whole loop: data -> model -> Adam -> per-epoch validation ->
checkpoints and a metrics log in the run folder ``out``:

* ``out/last.pt``: written atomically after every completed epoch (what ``--resume`` continues);
* ``out/best.pt``: the epoch with the lowest validation bits/dim;
* ``out/metrics.jsonl``: one JSON object per completed epoch (train/val bits/dim, time, device).

Defaults reproduce the seed (Row LSTM, hidden 64, 4 layers, Adam, lr 1e-3, batch 16, 5 epochs).
On CUDA the forward pass runs under autocast: bfloat16 where the GPU supports it (compute
capability >= 8.0), else float16 with a GradScaler; the CPU runs in float32. Each epoch's shuffle
is seeded by ``seed + epoch``, so a resumed run sees exactly the batches an uninterrupted run sees
and ends with the same weights (on the CPU). Under ``torchrun --nproc_per_node=N`` the same code
runs DistributedDataParallel; rank 0 alone writes checkpoints and logs.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint, set_rng_state
from .data import load_dataset, split_dataset
from .metrics import LN2, nll
from .model import build_model
from .settings import seed_everything

__all__ = ["TrainConfig", "TrainingDiverged", "train", "evaluate", "autocast_dtype", "load_splits"]


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
    seed: int = 0
    clip: float = 1.0
    amp: bool = True
    compile: bool = False
    channels: int = 3
    image_size: int = 32
    data_root: str = "data"
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # extra build_model options, e.g. skip


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on GPUs with compute capability >= 8.0, float16 on older GPUs, None on CPU."""
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def _distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def load_splits(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training and validation sets: a deterministic split of the training data."""
    data = load_dataset(
        cfg.data, root=cfg.data_root, train=True, image_size=cfg.image_size, channels=cfg.channels
    )
    train_set, val_set = split_dataset(data, cfg.val_fraction, seed=cfg.seed)
    if cfg.limit is not None:
        train_set = Subset(train_set, range(min(cfg.limit, len(train_set))))
    if cfg.val_limit is not None:
        val_set = Subset(val_set, range(min(cfg.val_limit, len(val_set))))
    return train_set, val_set


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    amp: bool = True,
    progress: bool = False,
) -> dict[str, float]:
    """Exact bits/dim over a whole loader: total NLL over all sub-pixels / (count * ln 2)."""
    device = torch.device(device)
    dtype = autocast_dtype(device) if amp else None
    was_training = model.training
    model.eval()
    total, count, images, dims = 0.0, 0, 0, 0
    for x, _ in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
        x = x.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        total += nll(logits, x).item() * x.numel()
        count += x.numel()
        images += x.shape[0]
        dims = x[0].numel()
    model.train(was_training)
    totals = torch.tensor([total, count, images], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(totals)
    total, count, images = totals.tolist()
    bpd = total / count / LN2 if count else float("nan")
    return {"bits_per_dim": bpd, "nats_per_image": bpd * dims * LN2, "images": int(images)}


def _epoch_loader(
    dataset: Dataset, cfg: TrainConfig, epoch: int, rank: int, world: int
) -> DataLoader:
    """This epoch's batches: a permutation seeded by ``seed + epoch``, sharded across ranks."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed + epoch))
    shard = order[rank::world].tolist()
    return DataLoader(
        Subset(dataset, shard),
        batch_size=cfg.batch_size,
        shuffle=False,
        drop_last=world > 1,
        pin_memory=torch.cuda.is_available(),
    )


def _append_log(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training run; returns the summary of the last epoch."""
    rank, world = _distributed()
    if cfg.device:
        device = torch.device(cfg.device)
    elif torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = Path(cfg.out)
    log_path = out / "metrics.jsonl"

    seed_everything(cfg.seed)
    model = build_model(cfg.arch, cfg.channels, cfg.hidden, cfg.layers, **cfg.options).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, history = 0, []
    if cfg.resume and (out / "last.pt").exists():
        state = read_checkpoint(out / "last.pt", map_location=device)
        if state["config"] != model.config:
            raise CheckpointError(
                f"cannot resume {out / 'last.pt'}: it was trained with {state['config']}, "
                f"this run asks for {model.config}. Use the same options or another --out folder."
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], list(state["metrics"])
        set_rng_state(state["rng"])
        if rank == 0:  # the log is rebuilt from the checkpoint: no epoch is lost or counted twice
            log_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")

    train_set, val_set = load_splits(cfg)
    val_loader = DataLoader(
        Subset(val_set, range(rank, len(val_set), world)), batch_size=max(cfg.batch_size, 64)
    )
    dtype = autocast_dtype(device) if cfg.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)
    show = cfg.progress and rank == 0
    best = min((r["val_bits_per_dim"] for r in history), default=math.inf)
    summary: dict[str, Any] = history[-1] if history else {}

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        net.train()
        loader = _epoch_loader(train_set, cfg, epoch, rank, world)
        t0, seen, running = time.perf_counter(), 0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", disable=not show)
        for x, _ in bar:
            x = x.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = net(x)
            loss = nll(logits, x)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch} after {seen} images; the last good checkpoint "
                    f"({out / 'last.pt'}) is kept. Lower --lr or keep gradient clipping on, then --resume."
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            scaler.step(optimizer)
            scaler.update()
            seen += x.shape[0]
            running += (loss.item() / LN2 - running) * x.shape[0] / seen
            bar.set_postfix(bpd=f"{running:.3f}")
        train_time = time.perf_counter() - t0
        val = evaluate(net, val_loader, device, cfg.amp)
        row = {
            "epoch": epoch,
            "train_bits_per_dim": running,
            "val_bits_per_dim": val["bits_per_dim"],
            "val_nats_per_image": val["nats_per_image"],
            "train_images": seen * world,
            "epoch_seconds": train_time,
            "images_per_second": seen * world / train_time,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "amp": str(dtype).replace("torch.", "") if dtype else "float32",
            "world_size": world,
        }
        history.append(row)
        summary = row
        if rank == 0:
            extra = {"train": asdict(cfg)}
            save_checkpoint(out / "last.pt", model, optimizer, epoch, history, **extra)
            if row["val_bits_per_dim"] < best:
                best = row["val_bits_per_dim"]
                save_checkpoint(out / "best.pt", model, optimizer, epoch, history, **extra)
            _append_log(log_path, row)
            if show:
                tqdm.write(
                    f"epoch {epoch}: train {row['train_bits_per_dim']:.3f} bits/dim, "
                    f"val {row['val_bits_per_dim']:.3f} bits/dim, {train_time:.0f} s"
                )
        if world > 1:
            dist.barrier()
    return summary
