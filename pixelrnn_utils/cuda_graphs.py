"""CUDA graphs for the eager training step: a forward and a backward as two launches, no compiling.

A Row LSTM step at batch 16 is some 2,000 small kernels; launched one by one from Python, a GPU
waits for the CPU that launches them (3-5 us each). A CUDA graph records the kernels of one
forward and one backward once, and then replays them with one launch each:
``torch.cuda.make_graphed_callables`` does it for a module (its backward too), on a batch of one
shape. :class:`GraphedModel` wraps a model so that ``train`` uses it like the model itself:

* the graphs are recorded at the first batch (the shapes, the precision and the model's
  ``training`` state of that batch); recording runs the step a few times first, on a side
  stream, without touching the parameters' gradients;
* a batch of another shape (the last, smaller batch of an epoch: 45,000 % 16 = 8 images) runs
  eagerly, through the same parameters;
* a step must read no tensor value inside (no host sync: ``settings.values_checked``) and
  allocate nothing the CPU must wait for: the course's models and loss do not.

``train`` uses it on CUDA by default (``--no-cuda-graphs`` switches it off), not with
``--compile`` (which records its own graphs) nor under DistributedDataParallel.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GraphedModel"]


class _Step(nn.Module):
    """The model's forward, in a module of its own: ``make_graphed_callables`` replaces the
    forward of the module it records, and the model itself must keep its own (evaluation,
    sampling and checkpoints use it)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(*args)


class GraphedModel(nn.Module):
    """``module`` whose forward and backward replay recorded CUDA graphs, for batches of the
    shape of the first one; ``forward(x, condition=None)`` as the model's own."""

    def __init__(self, module: nn.Module, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.module = module  # the name DDP and train.forward look for
        self.dtype = dtype  # the autocast dtype the step runs in (None: float32)
        self.graphed: nn.Module | None = None  # recorded at the first batch
        self.recorded_for: tuple | None = None  # the shapes the graphs were recorded for

    @staticmethod
    def _shapes(args: tuple[torch.Tensor, ...]) -> tuple:
        return tuple(tuple(a.shape) for a in args)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        args = (x,) if condition is None else (x, condition)
        if self.graphed is None:
            self.graphed = self._record(args)
            self.recorded_for = self._shapes(args)
        if self._shapes(args) != self.recorded_for:  # another shape: eagerly
            return self.module(*args)
        return self.graphed(*args)

    def _record(self, args: tuple[torch.Tensor, ...]) -> nn.Module:
        """Record the graphs; autocast's cache of cast weights must be off while recording (a
        cached cast would be recorded as a constant)."""
        device = args[0].device.type
        with torch.autocast(
            device, dtype=self.dtype, enabled=self.dtype is not None, cache_enabled=False
        ):
            # a parameter some option leaves without a gradient must not stop the recording
            return torch.cuda.make_graphed_callables(
                _Step(self.module), args, allow_unused_input=True
            )
