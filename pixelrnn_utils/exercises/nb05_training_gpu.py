"""The exercise checks of notebook 05, training.

Its exercises are at the end of ``notebooks/05_training_gpu.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..model import build_model
from ..train import TrainConfig, learning_rate, train_step
from .feedback import _attempted, _number, _verdict


def check_bits_per_dim_to_loss_per_pixel(answer: float | None) -> bool:
    """The paper's Diagonal BiLSTM, 3.00 bits/dim, as the seed's loss: nats per pixel, summed over
    R, G and B."""
    return _number(
        answer,
        3.00 * math.log(2) * 3,
        "bits -> nats is a factor ln 2 (about 0.693); then a pixel is 3 sub-pixels: times 3",
    )


def check_steps_per_epoch(answer: int | None) -> bool:
    """Optimizer steps in one epoch of 45,000 images in batches of 16 (the last batch is partial)."""
    return _number(
        answer,
        math.ceil(45000 / 16),
        "45,000 / 16 is not a whole number: the last, smaller batch is a step too (round up)",
        tol=0,
    )


def check_cosine_halfway(answer: float | None) -> bool:
    """The cosine schedule's learning rate halfway through a run that starts at 1e-3."""
    expected = learning_rate(TrainConfig(lr=1e-3, lr_schedule="cosine"), 500, 1000)
    return _number(
        answer,
        expected,
        "lr * (1 + cos(pi * step / total)) / 2 with step / total = 1/2",
        tol=1e-6,
    )


def check_train_step(
    fn: Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor], Any] | None,
) -> bool:
    """``fn(model, optimizer, x) -> loss``: one training step, against ``train.train_step``.

    Two identical small Row LSTMs each take three steps on the same batches, one with ``fn`` and
    one with the package's step (float32, clipping at 1.0); the losses returned and the weights
    after every step must agree.
    """
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 256, (4, 3, 6, 6), generator=generator) for _ in range(3)]

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = build_model("row_lstm", 3, hidden=8, layers=1)
        with torch.no_grad():  # large weights: gradient norms well above 1, so clipping shows
            for p in model.parameters():
                p.mul_(5.0)
        return model, torch.optim.Adam(model.parameters(), lr=1e-2)

    def weights(model: nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in model.parameters()]

    mine_model, mine_opt = fresh()
    ref_model, ref_opt = fresh()
    start = weights(ref_model)
    for k, x in enumerate(batches, start=1):
        loss = fn(mine_model, mine_opt, x)
        if not _attempted(loss):  # the stub as given returns None
            return False
        expected = train_step(ref_model, ref_opt, x, clip=1.0)
        loss = float(torch.as_tensor(loss).detach())
        if abs(loss - float(expected)) > 1e-4 * max(1.0, abs(float(expected))):
            if abs(loss * math.log(2) - float(expected)) < 1e-3:
                hint = "the loss is in bits/dim: return the cross-entropy in nats (train on nats)"
            elif any(abs(loss / n - float(expected)) < 1e-3 for n in (x.numel(), x[0].numel())):
                hint = "the loss is summed: F.cross_entropy's default mean (per sub-pixel) is it"
            else:
                hint = f"the loss should be F.cross_entropy(model(x), x) = {float(expected):.4f}"
            return _verdict(False, f"step {k}: {hint}, got {loss:.4f}")
        mine_w, ref_w = weights(mine_model), weights(ref_model)
        if all(torch.equal(a, b) for a, b in zip(mine_w, start, strict=True)):
            return _verdict(False, "the weights did not change: call optimizer.step()")
        if not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine_w, ref_w, strict=True)):
            if k > 1:
                hint = (
                    "the first step is right, a later one is not: zero the gradients "
                    "(optimizer.zero_grad()) before backward, or they add up across steps"
                )
            else:
                hint = (
                    "the loss is right, the weights are not: backward, then "
                    "nn.utils.clip_grad_norm_(model.parameters(), 1.0), then optimizer.step()"
                )
            return _verdict(False, f"step {k}: {hint}")
    return _verdict(True, "")
