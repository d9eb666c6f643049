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

Around the loop, each in its own module: what a run is (``config``: ``TrainConfig``, its checks,
the learning-rate schedule), its precision (``precision``), evaluation (``evaluation``), resuming
(``resume``), and the plumbing of where it runs (``runtime``: device, DDP, memory, Ctrl-C).

``seed`` also cuts the train/validation split unless ``split_seed`` is set: runs that differ only
in ``seed`` then train and validate on the same images (a seed-variance estimate, notebook 07).

Each epoch's shuffle is seeded by ``seed + epoch``, so a resumed run sees exactly the batches an
uninterrupted run sees and ends with the same weights (on the CPU). Under ``torchrun
--nproc_per_node=N`` the same code runs DistributedDataParallel; rank 0 alone writes checkpoints
and logs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .averaging import PolyakAverage
from .checkpoint import save_checkpoint
from .config import LR_SCHEDULES, TrainConfig, check_config, learning_rate
from .cuda_graphs import GraphedModel
from .data import source_levels
from .evaluation import check_batch, evaluate, forward
from .metrics import LN2, nll
from .model import build_model
from .precision import DTYPES, PRECISIONS, autocast_dtype, cpu_has_fast_bf16, resolve_precision
from .progress import progress_bar
from .resume import read_last, resume_run
from .runtime import (
    keep_freed_memory,
    pick_device,
    start_distributed,
    stop_distributed,
    stop_on_ctrl_c,
)
from .settings import exact_float32, seed_everything, values_checked
from .splits import check_labels, load_splits

__all__ = [  # the loop and the step here; the rest re-exported from where it lives
    "PRECISIONS",
    "LR_SCHEDULES",
    "TrainConfig",
    "TrainingDiverged",
    "train",
    "train_step",
    "evaluate",
    "forward",
    "check_batch",
    "check_config",
    "pick_device",
    "autocast_dtype",
    "resolve_precision",
    "cpu_has_fast_bf16",
    "keep_freed_memory",
    "learning_rate",
    "load_splits",
]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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
    val_loader: DataLoader
    why: str = ""  # why this precision (printed)
    graphed: bool = False  # the step as CUDA graphs
    average: PolyakAverage | None = None  # Polyak averaging (--ema): what is validated and kept
    stop_requested: bool = False  # set by a first Ctrl-C: stop at the next step boundary

    @property
    def log_path(self) -> Path:
        return self.out / "metrics.jsonl"

    def save(self, path: Path, epoch: int, history: list, position: dict | None = None) -> None:
        save_checkpoint(
            path,
            self.model,
            self.optimizer,
            epoch,
            history,
            scaler=self.scaler.state_dict(),
            position=position,
            **({"ema": self.average.state_dict()} if self.average is not None else {}),
            # the precision used, and the one asked for ("auto" picks again where a run resumes)
            train={
                **asdict(self.cfg),
                "precision": self.precision,
                "precision_requested": self.cfg.precision,
            },
        )


#: How many steps a GPU run takes between reading its losses back (each read is a host sync).
LOSS_READ_EVERY = 25


def loss_read_every(device: torch.device) -> int:
    """Steps between reads of the loss: every step on the CPU (a read costs nothing there),
    :data:`LOSS_READ_EVERY` on a GPU, whose progress bar and divergence check lag that much."""
    return 1 if torch.device(device).type == "cpu" else LOSS_READ_EVERY


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
        if run.average is not None:
            run.average.update()
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


def _build_run(cfg: TrainConfig) -> tuple[_Run, dict[str, Any] | None]:
    """Everything a run needs, built once: device, processes, precision, model (wrapped for DDP,
    CUDA graphs or ``torch.compile``), the run's ``last.pt`` to resume (checked before any data
    is decoded; None for a new run), the data and the optimizer."""
    device = pick_device(cfg.device)
    rank, world = start_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        keep_freed_memory()  # no page faults on every step's large tensors
    precision, why = resolve_precision(cfg.precision, device)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run (it is created)")
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
        net = GraphedModel(model, DTYPES[precision])
    loss_fn = nll
    if cfg.compile:  # on CUDA also CUDA graphs: the Row LSTM launches thousands of small kernels
        net = torch.compile(net, mode="reduce-overhead" if device.type == "cuda" else None)
        loss_fn = torch.compile(nll)  # one fused pass over the logits instead of three
    last = read_last(cfg, out, model.config)  # before any data is decoded
    train_set, val_set = load_splits(cfg)
    if cfg.options.get("classes") is not None:
        check_labels(train_set, cfg.options["classes"])
    drop_last = _drop_last(cfg, device, world)
    run = _Run(
        cfg=cfg,
        model=model,
        net=net,
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg.lr),
        scaler=torch.amp.GradScaler(device.type, enabled=DTYPES[precision] == torch.float16),
        dtype=DTYPES[precision],
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
        val_loader=DataLoader(
            Subset(val_set, range(rank, len(val_set), world)), batch_size=max(cfg.batch_size, 64)
        ),
        why=why,
        graphed=graphed,
        average=PolyakAverage(model, cfg.ema) if cfg.ema is not None else None,
    )
    return run, last


def _start(run: _Run, last: dict[str, Any] | None) -> tuple[int, list[dict], dict | None]:
    """Resume from ``last`` (its log rebuilt from the checkpoint: no epoch lost or counted
    twice) or start a new log; say what happens. Returns (epochs done, metrics, position)."""
    cfg, out = run.cfg, run.out
    start_epoch, history, position = 0, [], None
    if last is not None:
        start_epoch, history, position = resume_run(run, last)
        if run.rank == 0:
            run.log_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    elif run.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        run.log_path.write_text("")
    if run.show:
        graphs = ", the step as CUDA graphs" if run.graphed else ""
        tqdm.write(f"training on {run.device} in {run.precision} ({run.why}){graphs}")
        if cfg.resume and last is None:
            tqdm.write(f"--resume: no {out / 'last.pt'} yet, so this is a new run")
        if start_epoch >= cfg.epochs:
            tqdm.write(
                f"{out / 'last.pt'} has trained {start_epoch} epochs of the {cfg.epochs} asked for: "
                "nothing to train (a larger --epochs continues it)"
            )
    return start_epoch, history, position


def _end_epoch(run: _Run, epoch: int, stats: dict[str, Any], history: list, best: float) -> float:
    """Validate, log and save an epoch (``last.pt``; ``best.pt`` if it is the best so far);
    returns the best validation bits/dim. With Polyak averaging the averaged weights are the
    ones validated (and chosen for ``best.pt``); the trained ones are validated too, for the log."""
    validated = run.model if run.average is None else run.average.model
    val = evaluate(validated, run.val_loader, run.device)
    device, world = run.device, run.world
    row = {
        "epoch": epoch,
        "train_bits_per_dim": stats["running"],
        "val_bits_per_dim": val["bits_per_dim"],
        "val_nats_per_image": val["nats_per_image"],
        "train_images": stats["seen"] * world,
        "epoch_seconds": stats["seconds"],
        "images_per_second": stats["seen"] * world / stats["seconds"],
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": run.precision,
        "lr": stats["lr"],
        "world_size": world,
    }
    if run.average is not None:
        row["ema"] = run.average.decay
        trained = evaluate(run.model, run.val_loader, run.device)
        row["val_bits_per_dim_trained"] = trained["bits_per_dim"]
    if run.graphed:
        row["cuda_graphs"] = True
    if run.cfg.compile and stats["first_step_seconds"] is not None:
        row["first_step_seconds"] = stats["first_step_seconds"]
    history.append(row)
    if run.rank == 0:
        run.save(run.out / "last.pt", epoch, history)
        if row["val_bits_per_dim"] < best:
            best = row["val_bits_per_dim"]
            run.save(run.out / "best.pt", epoch, history)
        _append_log(run.log_path, row)
        if run.show:
            tqdm.write(
                f"epoch {epoch}: train {row['train_bits_per_dim']:.3f} bits/dim, "
                f"val {row['val_bits_per_dim']:.3f} bits/dim, {stats['seconds']:.0f} s, "
                f"{run.precision}"
            )
    if world > 1:
        dist.barrier()
    return best


@exact_float32()  # precision="fp32" is float32 on GPUs too, not TF32
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training run; returns the summary of the last epoch.

    Build everything once (:func:`_build_run`), resume or start (:func:`_start`), then per epoch:
    :func:`_train_epoch` (the :func:`train_step` of every batch, with mid-epoch checkpoints) and
    :func:`_end_epoch` (:func:`evaluate` on the validation images, ``last.pt``, ``best.pt`` and
    one line of ``metrics.jsonl``).
    """
    check_config(cfg)
    cfg = replace(cfg, levels=cfg.levels or source_levels(cfg.data))
    run, last = _build_run(cfg)
    start_epoch, history, position = _start(run, last)
    best = min((r["val_bits_per_dim"] for r in history), default=math.inf)
    with stop_on_ctrl_c(run):
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            run.net.train()
            stats = _train_epoch(run, epoch, history, position)
            position = None
            best = _end_epoch(run, epoch, stats, history, best)
            if run.stop_requested and epoch < cfg.epochs:  # Ctrl-C during validation or saving
                raise KeyboardInterrupt(
                    f"stopped after epoch {epoch}; {run.out / 'last.pt'} holds it: the same "
                    "command with --resume continues it"
                )
    stop_distributed(run.world)  # every rank passed the last epoch's barrier
    return history[-1] if history else {}
