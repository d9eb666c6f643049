"""Polyak averaging: evaluate and sample with an exponential moving average of the weights.

Polyak & Juditsky (1992) average the iterates of stochastic gradient descent; deep learning uses
the exponential moving average ``average <- decay * average + (1 - decay) * weights`` after
every optimizer step (PixelCNN++'s released code uses decay 0.9995). The average moves ``1 - decay`` of
the way to the current weights per step: with decay 0.999 it remembers about the last 1,000
steps, smoothing out the noise of the last few hundred minibatches that the trained weights
still carry.

Training steps the model as before; :class:`PolyakAverage` keeps a copy of the model whose
parameters are the average (``average.model``), updated in one fused pass per step. A run with
``TrainConfig(ema=DECAY)`` (``pixelrnn train --ema DECAY``) validates the average (and, to show
what it gave, the trained weights: ``val_bits_per_dim_trained`` in the log), chooses ``best.pt``
by the average's figure and stores the average in every checkpoint as ``ema``:
``{"decay": DECAY, "weights": {parameter name: tensor}}``. ``load_checkpoint`` gives the
averaged weights (``averaged=False``: the trained ones), so ``evaluate`` and ``sample`` use them.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["PolyakAverage", "check_decay"]


def check_decay(decay: float) -> None:
    """Refuse a decay outside [0, 1), saying what it means."""
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
        raise ValueError(
            f"--ema DECAY must be a number in [0, 1), e.g. 0.999 (the average remembers about "
            f"1 / (1 - DECAY) steps), got {decay!r}"
        )


class PolyakAverage:
    """An exponential moving average of ``model``'s parameters, as a model of its own."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        check_decay(decay)
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.trained = [p for p in model.parameters()]
        self.averaged = [p for p in self.model.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average toward the model's current weights (no host sync)."""
        torch._foreach_lerp_(self.averaged, [p.detach() for p in self.trained], 1 - self.decay)

    @torch.no_grad()
    def restart(self) -> None:
        """Start the average again at the model's current weights."""
        torch._foreach_copy_(self.averaged, [p.detach() for p in self.trained])

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores: the decay and the averaged parameters by name."""
        return {
            "decay": self.decay,
            "weights": {name: p.detach().clone() for name, p in self.model.named_parameters()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The average from a checkpoint's ``ema`` (the decay stays the one this run asks for)."""
        load_averaged(self.model, state)


@torch.no_grad()
def load_averaged(model: nn.Module, state: dict[str, Any]) -> None:
    """Put a checkpoint's averaged weights (its ``ema`` entry) into ``model``'s parameters."""
    weights = state["weights"]
    names = dict(model.named_parameters())
    if set(weights) != set(names):
        missing, extra = sorted(set(names) - set(weights)), sorted(set(weights) - set(names))
        raise ValueError(
            f"the averaged weights do not fit this model: missing {missing[:3]}, "
            f"unexpected {extra[:3]}"
        )
    for name, p in names.items():
        p.copy_(weights[name])
