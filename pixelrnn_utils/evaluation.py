"""Bits/dim of a model on held-out images, exactly: :func:`evaluate`.

Also what the training step and evaluation share: :func:`forward` (a model's logits, with its
class labels if it takes them) and :func:`check_batch` (a batch's values, checked on the CPU where
the batch is made, so that the step itself reads none: no host sync on a GPU).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .metrics import LN2, check_values, nll_per_subpixel
from .progress import progress_bar
from .settings import exact_float32, values_checked

__all__ = ["evaluate", "forward", "check_batch"]


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


def check_batch(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> None:
    """Refuse a batch whose values the model cannot take (images not in ``0..levels-1``, labels
    not in ``0..classes-1``), read on the CPU where the batch is made, so that the step itself
    reads none (:func:`~pixelrnn_utils.settings.values_checked`)."""
    check_values(x, model.levels)
    if getattr(model, "classes", None) is not None:
        model.conditioner.check(labels, x.shape[0])
